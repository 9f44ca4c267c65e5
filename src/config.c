/*-------------------------------------------------------------------------
 *
 * config.c
 *	  Resolve a pipeline: the values a run of it takes, from its definition
 *	  and the sqs_ingest.* settings.
 *
 * The settings define the pipeline "default" (DEFAULT_PIPELINE) as a
 * PipelineDefinition like a row of the catalog: its queue, endpoint,
 * region and target are theirs, its mapping the login events' (mapping
 * data, as a catalog row's), and it has no owner and no option of its
 * own.  Every pipeline takes its queue and the options it sets from its
 * definition, and the rest from the settings; the result is one
 * ResolvedPipeline, from which the SQS client's configuration and the
 * runner's options are built, so that no pipeline value is ever written
 * back into a setting.
 * A worker resolves again at each configuration reload: a setting a
 * pipeline inherits, or a cap lowered by a superuser, applies without a
 * restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "config.h"
#include "mapping.h"
#include "recovery.h"
#include "secrets.h"
#include "setting_values.h"

/*
 * The settings, read here only: other modules take their values from the
 * functions below, or a pipeline's from config_resolve().  The secrets
 * (secrets.c) and the recovery key (recovery.c) are defined with them, by
 * their modules, which alone read them: no copy of a secret goes through
 * another module.
 */
static char *sqs_ingest_queue_url = NULL;
static char *sqs_ingest_endpoint = NULL;
static char *sqs_ingest_region = NULL;
static char *sqs_ingest_ca_file = NULL;
static int	sqs_ingest_mask_algorithm = MASK_HMAC_SHA256;
static int	sqs_ingest_protocol = SQS_PROTOCOL_AUTO;
static char *sqs_ingest_target_table = NULL;
static char *sqs_ingest_database = NULL;
static char *sqs_ingest_role = NULL;
static int	sqs_ingest_workers = 1;
static int	sqs_ingest_max_pipeline_workers = 8;
static int	sqs_ingest_visibility_timeout = 30;
static int	sqs_ingest_wait_time_seconds = 20;
static int	sqs_ingest_drain_wait_time_seconds = 1;
static int	sqs_ingest_max_inflight = 32;
static int	sqs_ingest_batch_size = 1000;
static int	sqs_ingest_batch_timeout_ms = 100;
static int	sqs_ingest_connect_timeout_ms = 5000;
static int	sqs_ingest_request_timeout_ms = 10000;
static int	sqs_ingest_processed_retention = 14 * 24 * 60;
static int	sqs_ingest_retry_interval = 60;
static int	sqs_ingest_max_receive_count = 10;
static int	sqs_ingest_delete_after = DELETE_AFTER_LOCAL_FLUSH;
static int	sqs_ingest_max_batch_bytes = 16 * 1024;
static int	sqs_ingest_max_rows_per_message = 1000;
static int	sqs_ingest_max_pipeline_batch_size = 1000;
static int	sqs_ingest_max_pipeline_inflight = 32;

static const struct config_enum_entry mask_algorithm_options[] = {
	{"hmac-sha256", MASK_HMAC_SHA256, false},
	{"sha256", MASK_SHA256, false},
	{NULL, 0, false}
};

static const struct config_enum_entry protocol_options[] = {
	{"auto", SQS_PROTOCOL_AUTO, false},
	{"json", SQS_PROTOCOL_JSON, false},
	{"query", SQS_PROTOCOL_QUERY, false},
	{NULL, 0, false}
};

static const struct config_enum_entry delete_after_options[] = {
	{"local_flush", DELETE_AFTER_LOCAL_FLUSH, false},
	{"standby_flush", DELETE_AFTER_STANDBY_FLUSH, false},
	{NULL, 0, false}
};

/*
 * Worker settings of a library that was not preloaded say that they do
 * nothing, and why.
 */
#define INACTIVE_SHOW_HOOK(variable, format) \
static const char * \
show_##variable##_inactive(void) \
{ \
	return psprintf(format " (inactive: sqs_ingest is not in shared_preload_libraries)", \
					variable); \
}

INACTIVE_SHOW_HOOK(sqs_ingest_workers, "%d")
INACTIVE_SHOW_HOOK(sqs_ingest_max_pipeline_workers, "%d")
INACTIVE_SHOW_HOOK(sqs_ingest_database, "%s")

/*
 * Who may point sqs_ingest at another queue or endpoint in a session: a
 * drain signs its requests with the server's credentials (and sends the
 * session token) to that address, so only a superuser, even where GRANT
 * SET ON PARAMETER let another role set the parameter.  Setting the value
 * already in force is allowed, so that a drain's worker can take over its
 * caller's settings.
 */
static bool
check_redirect(const char *current, const char *newval, GucSource source)
{
	if (source < PGC_S_CLIENT || superuser() ||
		strcmp(current ? current : "", newval ? newval : "") == 0)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("only a superuser may point sqs_ingest at another queue or endpoint");
	GUC_check_errdetail("Requests are signed with the server's AWS credentials and carry its session token.");
	return false;
}

/* check hook of sqs_ingest.queue_url */
static bool
check_queue_url(char **newval, void **extra, GucSource source)
{
	return check_redirect(sqs_ingest_queue_url, *newval, source);
}

/* check hook of sqs_ingest.endpoint */
static bool
check_endpoint(char **newval, void **extra, GucSource source)
{
	return check_redirect(sqs_ingest_endpoint, *newval, source);
}

/*
 * Define the sqs_ingest.* settings (from _PG_init).  preloaded: from
 * shared_preload_libraries, where alone the workers' settings do anything.
 */
void
config_define_settings(bool preloaded)
{
	/* postmaster-level settings can only be created while preloading */
	GucContext	worker_context = preloaded ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("sqs_ingest.queue_url",
							   gettext_noop("URL of the SQS queue to ingest from."),
							   NULL, &sqs_ingest_queue_url, "",
							   PGC_SUSET, 0, check_queue_url, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.endpoint",
							   gettext_noop("SQS API endpoint; empty means scheme://host[:port] of the queue URL."),
							   NULL, &sqs_ingest_endpoint, "",
							   PGC_SUSET, 0, check_endpoint, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.region",
							   gettext_noop("AWS region requests are signed for."),
							   NULL, &sqs_ingest_region, "us-east-1",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	secrets_define_settings();
	recovery_define_settings();
	DefineCustomStringVariable("sqs_ingest.ca_file",
							   gettext_noop("File of CA certificates that HTTPS endpoints are verified against; empty means the system's."),
							   gettext_noop("For an endpoint whose certificate a private CA issued. Verification itself is always on."),
							   &sqs_ingest_ca_file, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("sqs_ingest.mask_algorithm",
							 gettext_noop("How personal data is masked: hmac-sha256 (keyed) or sha256 (unkeyed)."),
							 gettext_noop("An unkeyed SHA-256 of an IPv4 address is reversed by enumerating all addresses."),
							 &sqs_ingest_mask_algorithm, MASK_HMAC_SHA256,
							 mask_algorithm_options, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("sqs_ingest.protocol",
							 gettext_noop("SQS wire protocol: auto, json (AWS JSON 1.0) or query (form-encoded requests, XML answers)."),
							 gettext_noop("auto speaks JSON and switches to Query, once, when the endpoint shows it does not speak JSON."),
							 &sqs_ingest_protocol, SQS_PROTOCOL_AUTO,
							 protocol_options, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.target_table",
							   gettext_noop("Table the login events are inserted into."),
							   NULL, &sqs_ingest_target_table, "public.user_logins",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.role",
							   gettext_noop("Role the background workers run as."),
							   gettext_noop("Empty: the workers connect as the bootstrap superuser and insert as the owner of the target table. A change restarts the workers."),
							   &sqs_ingest_role, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.database",
							   gettext_noop("Database the background workers connect to."),
							   gettext_noop("Takes effect only when sqs_ingest is in shared_preload_libraries."),
							   &sqs_ingest_database, "postgres",
							   worker_context, 0, NULL, NULL,
							   preloaded ? NULL : show_sqs_ingest_database_inactive);
	DefineCustomIntVariable("sqs_ingest.workers",
							gettext_noop("Number of background workers consuming the queue."),
							gettext_noop("Takes effect only when sqs_ingest is in shared_preload_libraries."),
							&sqs_ingest_workers, 1, 0, 64,
							worker_context, 0, NULL, NULL,
							preloaded ? NULL : show_sqs_ingest_workers_inactive);
	DefineCustomIntVariable("sqs_ingest.max_pipeline_workers",
							gettext_noop("Most background workers the pipelines of sqs_ingest.pipelines run in all."),
							gettext_noop("Takes effect only when sqs_ingest is in shared_preload_libraries; the workers also count against max_worker_processes."),
							&sqs_ingest_max_pipeline_workers, 8, 0, 1024,
							worker_context, 0, NULL, NULL,
							preloaded ? NULL : show_sqs_ingest_max_pipeline_workers_inactive);
	DefineCustomIntVariable("sqs_ingest.visibility_timeout",
							gettext_noop("How long a received message stays hidden from other consumers."),
							NULL, &sqs_ingest_visibility_timeout, 30, 1, 43200,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.wait_time_seconds",
							gettext_noop("Long-poll wait of the background workers' receives."),
							NULL, &sqs_ingest_wait_time_seconds, 20, 0, 20,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.drain_wait_time_seconds",
							gettext_noop("Long-poll wait of sqs_ingest_drain()'s receives."),
							gettext_noop("A short poll can come back empty while messages remain, so a drain decides that the queue is empty only after a long poll."),
							&sqs_ingest_drain_wait_time_seconds, 1, 0, 20,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.max_inflight",
							gettext_noop("Concurrent receive requests of one worker or drain."),
							NULL, &sqs_ingest_max_inflight, 32, 1,
							SQS_INGEST_MAX_INFLIGHT_CAP,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.batch_size",
							gettext_noop("Messages stored per transaction at most."),
							NULL, &sqs_ingest_batch_size, 1000, 1, 100000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.batch_timeout",
							gettext_noop("How long a worker lets a partial batch wait before storing it."),
							NULL, &sqs_ingest_batch_timeout_ms, 100, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.connect_timeout",
							gettext_noop("Timeout for connecting to SQS."),
							NULL, &sqs_ingest_connect_timeout_ms, 5000, 100, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.request_timeout",
							gettext_noop("Timeout of an SQS request, beyond the long-poll wait of a receive."),
							NULL, &sqs_ingest_request_timeout_ms, 10000, 100, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.processed_retention",
							gettext_noop("How long message ids are kept in the ledger; 0 keeps them forever."),
							gettext_noop("SQS keeps a message 14 days at most; an id older than the queue's retention cannot be delivered again."),
							&sqs_ingest_processed_retention, 14 * 24 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.retry_interval",
							gettext_noop("Longest wait of a worker between attempts after a failure."),
							NULL, &sqs_ingest_retry_interval, 60, 1, 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("sqs_ingest.max_receive_count",
							gettext_noop("Receives after which a message that is still in SQS becomes a dead letter; 0 means no limit."),
							gettext_noop("A message SQS has handed out this often keeps failing its batch: it is stored whole in sqs_ingest.dead_letters instead of cycling forever."),
							&sqs_ingest_max_receive_count, 10, 0, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);

	/*
	 * Server-wide, like synchronous_standby_names: a session (or a drain's
	 * caller) cannot trade the failover guarantee for speed.
	 */
	DefineCustomEnumVariable("sqs_ingest.delete_after",
							 gettext_noop("What the delete of a stored message from SQS waits for."),
							 gettext_noop("local_flush: the commit that stored it is flushed to disk here; standby_flush: also on the synchronous standbys if synchronous_standby_names is set, else on every streaming standby, so that a failover loses no message."),
							 &sqs_ingest_delete_after, DELETE_AFTER_LOCAL_FLUSH,
							 delete_after_options, PGC_SIGHUP, 0, NULL, NULL, NULL);

	/* what bounds a worker's memory, whatever producers send (docs/production.md, Limits) */
	DefineCustomIntVariable("sqs_ingest.max_batch_bytes",
							gettext_noop("Bytes of message bodies gathered for one transaction, and of mapped rows held at a time while storing them."),
							gettext_noop("A batch is stored once its bodies take this much, even if it holds fewer than batch_size messages; its rows are mapped and inserted a part of this size at a time."),
							&sqs_ingest_max_batch_bytes, 16 * 1024, 64, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.max_rows_per_message",
							gettext_noop("Most rows explode makes of one message; a message with more elements becomes a dead letter."),
							gettext_noop("Also the most a pipeline's max_rows_per_message option may say, and its value when the option is not set."),
							&sqs_ingest_max_rows_per_message, 1000, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.max_pipeline_batch_size",
							gettext_noop("Largest batch_size a pipeline of sqs_ingest.pipelines may set or run with."),
							gettext_noop("A pipeline whose option or inherited batch_size is larger runs with this."),
							&sqs_ingest_max_pipeline_batch_size, 1000, 1, 100000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sqs_ingest.max_pipeline_inflight",
							gettext_noop("Largest max_inflight a pipeline of sqs_ingest.pipelines may set or run with."),
							gettext_noop("A pipeline whose option or inherited max_inflight is larger runs with this."),
							&sqs_ingest_max_pipeline_inflight, 32, 1,
							SQS_INGEST_MAX_INFLIGHT_CAP,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * In a drain's worker, the settings of the drain's caller (see
 * config_session_write()); NULL in every other process.
 */
static SessionSettings *session = NULL;

/* the secrets of SessionSettings, in the order of SessionString */
#define SESSION_SECRET(id) ((SessionString) (SESSION_ACCESS_KEY_ID + (id)))

static const char *
session_string(SessionString which)
{
	return session->text + session->strings[which];
}

/*
 * Write the settings a drain's worker takes from this session into dest,
 * or with dest NULL only measure them; returns their size.  They are
 * written straight into the drain's segment, so that no copy of the
 * secrets among them is left in the caller's memory.  pipeline: of a
 * catalog pipeline's drain, which leaves out what the pipeline sets.
 */
Size
config_session_write(bool pipeline, SessionSettings *dest)
{
	const char *strings[NUM_SESSION_STRINGS];
	Size		len = 0;

	strings[SESSION_QUEUE_URL] = pipeline ? NULL : sqs_ingest_queue_url;
	strings[SESSION_ENDPOINT] = pipeline ? NULL : sqs_ingest_endpoint;
	strings[SESSION_REGION] = pipeline ? NULL : sqs_ingest_region;
	strings[SESSION_CA_FILE] = sqs_ingest_ca_file;
	strings[SESSION_TARGET_TABLE] = sqs_ingest_target_table;
	for (int id = 0; id < NUM_SECRETS; id++)
		strings[SESSION_SECRET(id)] = secret_session_value((SecretId) id);

	for (int i = 0; i < NUM_SESSION_STRINGS; i++)
	{
		const char *value = strings[i] ? strings[i] : "";
		Size		value_len = strlen(value) + 1;

		if (dest)
		{
			dest->strings[i] = len;
			memcpy(dest->text + len, value, value_len);
		}
		len += value_len;
	}
	len += offsetof(SessionSettings, text);
	if (dest == NULL)
		return len;

	dest->pipeline = pipeline;
	dest->protocol = sqs_ingest_protocol;
	dest->mask_algorithm = sqs_ingest_mask_algorithm;
	dest->visibility_timeout = sqs_ingest_visibility_timeout;
	dest->drain_wait_time_seconds = sqs_ingest_drain_wait_time_seconds;
	dest->max_inflight = sqs_ingest_max_inflight;
	dest->batch_size = sqs_ingest_batch_size;
	dest->batch_timeout_ms = sqs_ingest_batch_timeout_ms;
	dest->connect_timeout_ms = sqs_ingest_connect_timeout_ms;
	dest->request_timeout_ms = sqs_ingest_request_timeout_ms;
	dest->max_receive_count = sqs_ingest_max_receive_count;
	return len;
}

/*
 * In a drain's worker: run with the caller's settings, which the worker
 * keeps for its life.  The secrets go to secrets.c, and are wiped here.
 */
void
config_use_session(SessionSettings *settings)
{
	session = settings;
	for (int id = 0; id < NUM_SECRETS; id++)
	{
		char	   *secret = session->text + session->strings[SESSION_SECRET(id)];

		secret_set_session((SecretId) id, secret);
		explicit_bzero(secret, strlen(secret));
	}
}

/* the database the background workers connect to */
const char *
config_database(void)
{
	return sqs_ingest_database;
}

/* the role the background workers and drains connect as; "": none set */
const char *
config_role(void)
{
	return sqs_ingest_role ? sqs_ingest_role : "";
}

/* how many workers the settings' pipeline runs */
int
config_workers(void)
{
	return sqs_ingest_workers;
}

/* how many workers the catalog's pipelines run in all, at most */
int
config_max_pipeline_workers(void)
{
	return sqs_ingest_max_pipeline_workers;
}

/* minutes a message id stays in the ledger; 0: forever */
int
config_processed_retention(void)
{
	return sqs_ingest_processed_retention;
}

/* seconds a worker waits at most between attempts after a failure */
int
config_retry_interval(void)
{
	return sqs_ingest_retry_interval;
}

/* kB of message bodies, and of mapped rows, a store holds at a time */
int
config_max_batch_bytes(void)
{
	return sqs_ingest_max_batch_bytes;
}

/* the most rows explode makes of one message */
int
config_max_rows_per_message(void)
{
	return sqs_ingest_max_rows_per_message;
}

/* the largest batch_size a catalog pipeline may set or run with */
int
config_max_pipeline_batch_size(void)
{
	return sqs_ingest_max_pipeline_batch_size;
}

/* the largest max_inflight a catalog pipeline may set or run with */
int
config_max_pipeline_inflight(void)
{
	return sqs_ingest_max_pipeline_inflight;
}

/* sqs_ingest.queue_url as in force here; "" if none is set */
const char *
config_queue_url(void)
{
	return sqs_ingest_queue_url ? sqs_ingest_queue_url : "";
}

/* sqs_ingest.endpoint as in force here; "" if none is set */
const char *
config_endpoint(void)
{
	return sqs_ingest_endpoint ? sqs_ingest_endpoint : "";
}

/*
 * sqs_ingest.queue_url as the server's configuration sets it, not as a
 * session may have SET it
 */
const char *
config_server_queue_url(void)
{
	return GetConfigOptionResetString("sqs_ingest.queue_url");
}

/* the target table of the settings' pipeline */
const char *
config_target_table(void)
{
	return session ? session_string(SESSION_TARGET_TABLE) : sqs_ingest_target_table;
}

/* the receive count past which a message is a dead letter; 0: none */
int
config_max_receive_count(void)
{
	return session ? session->max_receive_count : sqs_ingest_max_receive_count;
}

/* MaskAlgorithm */
int
config_mask_algorithm(void)
{
	return session ? session->mask_algorithm : sqs_ingest_mask_algorithm;
}

static char *
setting_string(const char *value)
{
	return pstrdup(value ? value : "");
}

/* an option a pipeline sets (>= 0), else the setting it inherits */
static int
option_or_setting(int option, int setting)
{
	return option >= 0 ? option : setting;
}

/* the values of the settings, those of a drain's caller taken where they apply */
static void
resolve_settings(ResolvedPipeline *resolved)
{
	resolved->queue_url = setting_string(sqs_ingest_queue_url);
	resolved->endpoint = setting_string(sqs_ingest_endpoint);
	resolved->region = setting_string(sqs_ingest_region);
	resolved->ca_file = setting_string(sqs_ingest_ca_file);
	resolved->protocol = sqs_ingest_protocol;
	resolved->visibility_timeout = sqs_ingest_visibility_timeout;
	resolved->wait_time_seconds = sqs_ingest_wait_time_seconds;
	resolved->drain_wait_time_seconds = sqs_ingest_drain_wait_time_seconds;
	resolved->batch_size = sqs_ingest_batch_size;
	resolved->max_inflight = sqs_ingest_max_inflight;
	resolved->max_batch_bytes = sqs_ingest_max_batch_bytes;
	resolved->batch_timeout_ms = sqs_ingest_batch_timeout_ms;
	resolved->connect_timeout_ms = sqs_ingest_connect_timeout_ms;
	resolved->request_timeout_ms = sqs_ingest_request_timeout_ms;
	resolved->delete_after = sqs_ingest_delete_after;
	if (session == NULL)
		return;
	if (!session->pipeline)
	{
		pfree(resolved->queue_url);
		resolved->queue_url = pstrdup(session_string(SESSION_QUEUE_URL));
		pfree(resolved->endpoint);
		resolved->endpoint = pstrdup(session_string(SESSION_ENDPOINT));
		pfree(resolved->region);
		resolved->region = pstrdup(session_string(SESSION_REGION));
		resolved->visibility_timeout = session->visibility_timeout;
		resolved->batch_size = session->batch_size;
		resolved->max_inflight = session->max_inflight;
	}
	pfree(resolved->ca_file);
	resolved->ca_file = pstrdup(session_string(SESSION_CA_FILE));
	resolved->protocol = session->protocol;
	resolved->drain_wait_time_seconds = session->drain_wait_time_seconds;
	resolved->batch_timeout_ms = session->batch_timeout_ms;
	resolved->connect_timeout_ms = session->connect_timeout_ms;
	resolved->request_timeout_ms = session->request_timeout_ms;
}

/*
 * The pipeline DEFAULT_PIPELINE as the settings define it now: their
 * queue, endpoint, region and target table, the login events' mapping, no
 * owner (its rows go in as ingest_role_for_target() says) and no option of
 * its own.  A worker of it builds it again at each configuration reload.
 */
PipelineDefinition *
config_default_definition(void)
{
	PipelineDefinition *def = palloc0(sizeof(PipelineDefinition));
	ResolvedPipeline settings;

	resolve_settings(&settings);
	def->name = pstrdup(DEFAULT_PIPELINE);
	def->queue_url = settings.queue_url;
	def->target = pstrdup(config_target_table());
	def->mapping = mapping_login(InvalidOid);
	def->options = NULL;
	def->owner = InvalidOid;
	def->settings.workers = sqs_ingest_workers;
	def->settings.enabled = true;
	def->settings.region = settings.region;
	def->settings.endpoint = settings.endpoint;
	def->settings.visibility_timeout = -1;
	def->settings.wait_time_seconds = -1;
	def->settings.batch_size = -1;
	def->settings.max_inflight = -1;
	def->settings.max_rows_per_message = -1;
	pfree(settings.ca_file);
	return def;
}

/* free what config_default_definition() allocated */
void
config_free_definition(PipelineDefinition *def)
{
	pfree(def->name);
	pfree(def->queue_url);
	pfree(def->target);
	pfree(def->mapping);
	pfree(def->settings.region);
	pfree(def->settings.endpoint);
	pfree(def);
}

/*
 * The mapping that pipeline name, defined with mapping, stores into the
 * table relid with.  A catalog pipeline's is its definition's.  The login
 * events' mapping of DEFAULT_PIPELINE also encrypts the originals into the
 * table's encrypted_* columns while a recovery key is configured: what it
 * depends on may change under a running pipeline, so it is built again for
 * each store, and the sink compiles it again when it differs.
 */
Jsonb *
config_pipeline_mapping(const char *name, Jsonb *mapping, Oid relid)
{
	if (strcmp(name, DEFAULT_PIPELINE) != 0)
		return mapping;
	return mapping_login(relid);
}

/*
 * Resolve the pipeline def (see config_default_definition() for the
 * settings' one) into resolved.
 */
void
config_resolve(const PipelineDefinition *def, ResolvedPipeline *resolved)
{
	memset(resolved, 0, sizeof(ResolvedPipeline));
	resolved->name = pstrdup(def->name);
	resolve_settings(resolved);

	/*
	 * A pipeline names its own queue, and talks to its own endpoint or to
	 * the one of its queue URL; the settings' pipeline's are the settings'.
	 * A catalog pipeline may do so whoever runs it: the role that created
	 * it was allowed to (see security_check_pipeline_endpoint()).
	 */
	pfree(resolved->queue_url);
	resolved->queue_url = pstrdup(def->queue_url);
	pfree(resolved->endpoint);
	resolved->endpoint = setting_string(def->settings.endpoint);
	if (def->settings.region)
	{
		pfree(resolved->region);
		resolved->region = pstrdup(def->settings.region);
	}
	resolved->visibility_timeout = option_or_setting(def->settings.visibility_timeout,
													 resolved->visibility_timeout);
	resolved->wait_time_seconds = option_or_setting(def->settings.wait_time_seconds,
													resolved->wait_time_seconds);
	resolved->batch_size = option_or_setting(def->settings.batch_size,
											 resolved->batch_size);
	resolved->max_inflight = option_or_setting(def->settings.max_inflight,
											   resolved->max_inflight);

	/*
	 * What a pipeline's owner may ask for that costs the server memory is
	 * bounded by a superuser, whether the pipeline's options or the settings
	 * it inherits say it.  The settings' pipeline has no owner: a superuser
	 * set all it runs with.
	 */
	if (!OidIsValid(def->owner))
		return;
	resolved->batch_size = Min(resolved->batch_size, sqs_ingest_max_pipeline_batch_size);
	resolved->max_inflight = Min(resolved->max_inflight, sqs_ingest_max_pipeline_inflight);
}

/* free what config_resolve() allocated */
void
config_release(ResolvedPipeline *resolved)
{
	pfree(resolved->name);
	pfree(resolved->queue_url);
	pfree(resolved->endpoint);
	pfree(resolved->region);
	pfree(resolved->ca_file);
}
