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

#include "config.h"
#include "mapping.h"
#include "secrets.h"
#include "sqs_ingest.h"

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
