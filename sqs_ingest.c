/*-------------------------------------------------------------------------
 *
 * sqs_ingest.c
 *	  Entry point of sqs_ingest: configuration and SQL-callable functions.
 *
 * sqs_ingest moves JSON messages from Amazon SQS queues into tables from
 * inside PostgreSQL, each pipeline mapping its queue's bodies to its
 * table's columns (the login events, with the IP address and device id
 * masked, being the settings-based pipeline): background workers consume
 * continuously, and sqs_ingest_drain() drains on demand.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "config.h"
#include "drain.h"
#include "launcher.h"
#include "mapping.h"
#include "mask.h"
#include "record.h"
#include "recovery.h"
#include "secrets.h"
#include "security.h"
#include "sink.h"
#include "sqs_client.h"
#include "sqs_ingest.h"
#include "stats.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *sqs_ingest_queue_url = NULL;
char	   *sqs_ingest_endpoint = NULL;
char	   *sqs_ingest_region = NULL;
char	   *sqs_ingest_ca_file = NULL;
int			sqs_ingest_mask_algorithm = MASK_HMAC_SHA256;
int			sqs_ingest_protocol = SQS_PROTOCOL_AUTO;
char	   *sqs_ingest_target_table = NULL;
char	   *sqs_ingest_database = NULL;
char	   *sqs_ingest_role = NULL;
int			sqs_ingest_workers = 1;
int			sqs_ingest_max_pipeline_workers = 8;
int			sqs_ingest_visibility_timeout = 30;
int			sqs_ingest_wait_time_seconds = 20;
int			sqs_ingest_drain_wait_time_seconds = 1;
int			sqs_ingest_max_inflight = 32;
int			sqs_ingest_batch_size = 1000;
int			sqs_ingest_batch_timeout_ms = 100;
int			sqs_ingest_connect_timeout_ms = 5000;
int			sqs_ingest_request_timeout_ms = 10000;
int			sqs_ingest_processed_retention = 14 * 24 * 60;
int			sqs_ingest_retry_interval = 60;
int			sqs_ingest_max_receive_count = 10;
int			sqs_ingest_delete_after = DELETE_AFTER_LOCAL_FLUSH;
int			sqs_ingest_max_batch_bytes = 16 * 1024;
int			sqs_ingest_max_rows_per_message = 1000;
int			sqs_ingest_max_pipeline_batch_size = 1000;
int			sqs_ingest_max_pipeline_inflight = 32;

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

PG_FUNCTION_INFO_V1(sqs_ingest_drain);
PG_FUNCTION_INFO_V1(sqs_ingest_drain_pipeline);
PG_FUNCTION_INFO_V1(sqs_ingest_mask);
PG_FUNCTION_INFO_V1(sqs_ingest_preview);
PG_FUNCTION_INFO_V1(sqs_ingest_preview_mapping);
PG_FUNCTION_INFO_V1(sqs_ingest_fetch_login_mapping);
PG_FUNCTION_INFO_V1(sqs_ingest_version_number);
PG_FUNCTION_INFO_V1(sqs_ingest_stats);
PG_FUNCTION_INFO_V1(sqs_ingest_queue_depth);
PG_FUNCTION_INFO_V1(sqs_ingest_prune_processed);

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

void
_PG_init(void)
{
	bool		preloaded = process_shared_preload_libraries_in_progress;

	/* postmaster-level settings can only be created while preloading */
	GucContext	worker_context = preloaded ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("sqs_ingest.queue_url",
							   gettext_noop("URL of the SQS queue to ingest from."),
							   NULL, &sqs_ingest_queue_url, "",
							   PGC_SUSET, 0, security_check_queue_url, NULL, NULL);
	DefineCustomStringVariable("sqs_ingest.endpoint",
							   gettext_noop("SQS API endpoint; empty means scheme://host[:port] of the queue URL."),
							   NULL, &sqs_ingest_endpoint, "",
							   PGC_SUSET, 0, security_check_endpoint, NULL, NULL);
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

	MarkGUCPrefixReserved("sqs_ingest");

	secrets_curl_global_init();

	if (preloaded)
	{
		stats_request_shmem();
		worker_register_all();
		launcher_register();
	}
}

/* the function's result tuple from its values */
static Datum
result_tuple(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

static void
require_utf8(void)
{
	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sqs_ingest requires a UTF8 database"),
				 errdetail("SQS message bodies are Unicode text.")));
}

/* the drain's result row */
static Datum
drain_result(FunctionCallInfo fcinfo, const BatchCounts *totals)
{
	Datum		values[4];
	bool		nulls[4] = {0};

	values[0] = Int64GetDatum(totals->received);
	values[1] = Int64GetDatum(totals->inserted);
	values[2] = Int64GetDatum(totals->duplicates);
	values[3] = Int64GetDatum(totals->dead_lettered);
	return result_tuple(fcinfo, values, nulls);
}

/* drain a pipeline */
static Datum
drain(FunctionCallInfo fcinfo, const PipelineDefinition *def, int argno)
{
	int64		max_messages = PG_ARGISNULL(argno) ? -1 : PG_GETARG_INT64(argno);
	BatchCounts totals;

	if (!PG_ARGISNULL(argno) && max_messages < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must not be negative")));
	require_utf8();

	if (max_messages == 0)
		memset(&totals, 0, sizeof(totals));
	else
		drain_run(def, max_messages, &totals);
	return drain_result(fcinfo, &totals);
}

/*
 * sqs_ingest_drain(max_messages bigint DEFAULT NULL)
 *		RETURNS TABLE(received, inserted, duplicates, dead_lettered)
 *
 * Drains the settings-based pipeline.
 */
Datum
sqs_ingest_drain(PG_FUNCTION_ARGS)
{
	return drain(fcinfo, config_default_definition(), 0);
}

/*
 * sqs_ingest_drain(pipeline text, max_messages bigint DEFAULT NULL)
 *		RETURNS TABLE(received, inserted, duplicates, dead_lettered)
 *
 * Drains a pipeline of the catalog, with its queue, options and mapping.
 */
Datum
sqs_ingest_drain_pipeline(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	return drain(fcinfo, catalog_get(text_to_cstring(PG_GETARG_TEXT_PP(0))), 1);
}

/* sqs_ingest_mask(value text) RETURNS text: the mask the pipeline applies */
Datum
sqs_ingest_mask(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	char		hex[MASK_HEX_LEN + 1];

	mask_value(mask_prepare(), VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), hex);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(hex, MASK_HEX_LEN));
}

/*
 * Map a message as ingestion would, as the role the target's code runs as
 * (a domain's check, say, is the table's code, not the caller's).
 */
static char *
preview_map(const CompiledMapping *mapping, const MappingMessage *message,
			MappedRows *rows)
{
	SecurityScope scope;
	char	   *error;

	security_enter(&scope, ingest_role_for_target(mapping->relid));
	error = mapping_map(mapping, message, rows);
	security_leave(&scope);
	return error;
}

/*
 * The preview's values: the columns of the function's result but its last,
 * error, each the mapped row's column of that name; or the reason the
 * message would be a dead letter.  The columns follow the function's
 * declaration (sqs_ingest--1.0.sql): no second list of them is kept here.
 */
static void
preview_values(const CompiledMapping *mapping, const MappingMessage *message,
			   TupleDesc tupdesc, Datum *values, bool *nulls)
{
	int			ncolumns = tupdesc->natts - 1;
	MappedRows	rows;
	char	   *error;

	mapping_rows_init(&rows, mapping->ncolumns);
	error = preview_map(mapping, message, &rows);
	for (int i = 0; i < ncolumns; i++)
	{
		const char *name = NameStr(TupleDescAttr(tupdesc, i)->attname);

		nulls[i] = true;
		for (int c = 0; c < mapping->ncolumns && error == NULL; c++)
		{
			const MappingColumn *col = &mapping->columns[c];
			Oid			outfunc;
			bool		isvarlena;

			if (strcmp(col->name, name) != 0 || rows.nulls[c][0])
				continue;
			getTypeOutputInfo(col->basetypid, &outfunc, &isvarlena);
			values[i] = CStringGetTextDatum(OidOutputFunctionCall(outfunc, rows.values[c][0]));
			nulls[i] = false;
		}
	}
	nulls[ncolumns] = error == NULL;
	values[ncolumns] = error ? CStringGetTextDatum(error) : (Datum) 0;
}

/*
 * sqs_ingest_preview(body text, sent_at timestamptz)
 *		RETURNS TABLE(user_id, device_type, masked_ip, masked_device_id,
 *					  locale, app_version, create_date, error) (all text)
 *
 * What the settings-based pipeline would insert for a message body,
 * against the current target table, or why it would be a dead letter.
 * Nothing is stored.
 */
Datum
sqs_ingest_preview(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	SinkPipeline *sink;
	MappingMessage message = {0};
	TupleDesc	tupdesc;
	Datum	   *values;
	bool	   *nulls;

	require_utf8();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values = palloc0(tupdesc->natts * sizeof(Datum));
	nulls = palloc0(tupdesc->natts * sizeof(bool));
	message.message_id = "preview";
	message.body = VARDATA_ANY(body);
	message.body_len = VARSIZE_ANY_EXHDR(body);
	message.sent_timestamp_ms = record_unix_ms(PG_GETARG_TIMESTAMPTZ(1));
	message.receive_count = 1;

	sink = sink_pipeline(config_default_definition());
	PG_TRY();
	{
		const CompiledMapping *mapping = sink_check(sink, AccessShareLock);

		/* the login mapping masks: not a way around EXECUTE on the mask */
		security_check_mask_privilege(GetUserId(), NULL);
		preview_values(mapping, &message, tupdesc, values, nulls);
	}
	PG_FINALLY();
	{
		sink_free_pipeline(sink);
	}
	PG_END_TRY();
	return result_tuple(fcinfo, values, nulls);
}

/* the string values of a jsonb object, as message attributes */
static void
preview_attributes(Jsonb *attributes, MappingMessage *message)
{
	JsonbIterator *it;
	JsonbIteratorToken token;
	JsonbValue	v;
	int			n;

	if (attributes == NULL)
		return;
	if (!JsonContainerIsObject(&attributes->root) || JsonContainerIsScalar(&attributes->root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("attributes must be a JSON object from attribute name to string")));
	n = JsonContainerSize(&attributes->root);
	message->attribute_names = palloc(sizeof(char *) * Max(n, 1));
	message->attribute_values = palloc(sizeof(char *) * Max(n, 1));
	it = JsonbIteratorInit(&attributes->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *str;

		if (token != WJB_KEY && token != WJB_VALUE)
			continue;
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("attributes must be a JSON object from attribute name to string")));
		str = pnstrdup(v.val.string.val, v.val.string.len);
		if (token == WJB_KEY)
			message->attribute_names[message->nattributes] = str;
		else
			message->attribute_values[message->nattributes++] = str;
	}
}

/* a mapped row as a jsonb object from column name to text */
static Jsonb *
row_as_jsonb(const CompiledMapping *mapping, const MappedRows *rows, int row)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int c = 0; c < mapping->ncolumns; c++)
	{
		const MappingColumn *col = &mapping->columns[c];
		JsonbValue	key;
		JsonbValue	value;

		key.type = jbvString;
		key.val.string.val = col->name;
		key.val.string.len = strlen(col->name);
		pushJsonbValue(&state, WJB_KEY, &key);
		if (rows->nulls[c][row])
			value.type = jbvNull;
		else
		{
			Oid			outfunc;
			bool		isvarlena;

			getTypeOutputInfo(col->basetypid, &outfunc, &isvarlena);
			value.type = jbvString;
			value.val.string.val = OidOutputFunctionCall(outfunc, rows->values[c][row]);
			value.val.string.len = strlen(value.val.string.val);
		}
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * sqs_ingest_preview_mapping(body text, target regclass, mapping jsonb,
 *							  options jsonb, sent_at timestamptz,
 *							  attributes jsonb)
 *		RETURNS TABLE(mapped jsonb, error text)
 *
 * The rows a message would become under a mapping (column name to the
 * value's text), or the one reason it would be a dead letter.  Nothing is
 * stored.
 */
Datum
sqs_ingest_preview_mapping(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *body;
	CompiledMapping *mapping;
	MappingMessage message = {0};
	MappedRows	rows;
	char	   *error;
	Datum		values[2];
	bool		nulls[2] = {0};

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	require_utf8();
	body = PG_GETARG_TEXT_PP(0);
	/* whoever previews the rows for a table must be allowed to insert them */
	security_check_target_privilege(PG_GETARG_OID(1),
									get_rel_name(PG_GETARG_OID(1)));
	mapping = mapping_compile(PG_GETARG_OID(1),
							  PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
							  PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	/* nor a way around EXECUTE on the mask */
	if (mapping->uses_mask)
		security_check_mask_privilege(GetUserId(), NULL);
	mapping_prepare(mapping);

	message.message_id = "preview";
	message.body = VARDATA_ANY(body);
	message.body_len = VARSIZE_ANY_EXHDR(body);
	message.sent_timestamp_ms = record_unix_ms(PG_ARGISNULL(4) ?
											   GetCurrentTransactionStartTimestamp() :
											   PG_GETARG_TIMESTAMPTZ(4));
	message.receive_count = 1;
	preview_attributes(PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5), &message);

	mapping_rows_init(&rows, mapping->ncolumns);
	error = preview_map(mapping, &message, &rows);
	if (error)
	{
		nulls[0] = true;
		values[1] = CStringGetTextDatum(error);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	nulls[1] = true;
	for (int r = 0; r < rows.nrows; r++)
	{
		values[0] = JsonbPGetDatum(row_as_jsonb(mapping, &rows, r));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* sqs_ingest_fetch_login_mapping() RETURNS jsonb */
Datum
sqs_ingest_fetch_login_mapping(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(config_default_definition()->mapping);
}

/*
 * sqs_ingest_version_number(version text) RETURNS integer
 *
 * The integer a version string is stored as: M*1000000 + m*1000 + p.
 */
Datum
sqs_ingest_version_number(PG_FUNCTION_ARGS)
{
	text	   *version = PG_GETARG_TEXT_PP(0);
	int64		result;

	if (!record_parse_app_version(VARDATA_ANY(version), VARSIZE_ANY_EXHDR(version),
								  &result))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid app version: \"%s\"", text_to_cstring(version)),
				 errdetail("A version is M.m or M.m.p, each part a number from 0 to 999.")));
	PG_RETURN_INT32((int32) result);
}

/* sqs_ingest_stats(): one row per worker and running drain */
Datum
sqs_ingest_stats(PG_FUNCTION_ARGS)
{
	return stats_srf(fcinfo);
}

/*
 * sqs_ingest_queue_depth()
 *		RETURNS TABLE(visible bigint, not_visible bigint, delayed bigint)
 *
 * SQS's approximate message counts of the configured queue.
 */
Datum
sqs_ingest_queue_depth(PG_FUNCTION_ARGS)
{
	ResolvedPipeline resolved;
	SqsConfig  *config;
	SqsResult  *volatile result = NULL;
	Datum		values[3];
	bool		nulls[3];

	config_resolve(config_default_definition(), &resolved);
	config = sqs_config_from_definition(&resolved);

	/* the configuration's copies of the credentials are wiped, error or not */
	PG_TRY();
	{
		SqsClient  *client = sqs_client_create(config);

		sqs_start_get_attributes(client);
		while (result == NULL)
			result = sqs_next_result(client, -1);
		sqs_client_destroy(client);
	}
	PG_FINALLY();
	{
		sqs_config_free(config);
	}
	PG_END_TRY();
	if (result->error)
		sqs_report_error(result->error, ERROR);

	for (int i = 0; i < 3; i++)
	{
		nulls[i] = result->attributes[i] < 0;
		values[i] = Int64GetDatum(result->attributes[i]);
	}
	return result_tuple(fcinfo, values, nulls);
}

/*
 * sqs_ingest_prune_processed() RETURNS bigint
 *
 * Prune the ledger now to sqs_ingest.processed_retention; the first worker
 * does it hourly.
 */
Datum
sqs_ingest_prune_processed(PG_FUNCTION_ARGS)
{
	int64		pruned = 0;

	if (sqs_ingest_processed_retention > 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pruned = sink_prune_ledger(sqs_ingest_processed_retention);
		SPI_finish();
	}
	PG_RETURN_INT64(pruned);
}
