/*-------------------------------------------------------------------------
 *
 * sqs_ingest.c
 *	  Entry point of sqs_ingest: _PG_init and the SQL-callable functions,
 *	  which hand over to the modules under src/ (the settings: config.c).
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
#include "codecs.h"
#include "security.h"
#include "sink.h"
#include "sqs_client.h"
#include "stats.h"
#include "transport.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

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

void
_PG_init(void)
{
	bool		preloaded = process_shared_preload_libraries_in_progress;

	config_define_settings(preloaded);
	MarkGUCPrefixReserved("sqs_ingest");

	transport_global_init();

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

	mask_value(mask_prepare((MaskAlgorithm) config_mask_algorithm()),
			   VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), hex);
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
	SinkTarget *sink;
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
	message.sent_timestamp_ms = codec_unix_ms(PG_GETARG_TIMESTAMPTZ(1));
	message.receive_count = 1;

	sink = sink_target_create(config_default_definition());
	PG_TRY();
	{
		const CompiledMapping *mapping = sink_check(sink, AccessShareLock);

		/* the login mapping masks: not a way around EXECUTE on the mask */
		security_check_mask_privilege(GetUserId(), NULL);
		preview_values(mapping, &message, tupdesc, values, nulls);
	}
	PG_FINALLY();
	{
		sink_target_free(sink);
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
	mapping_prepare(mapping, (MaskAlgorithm) config_mask_algorithm(),
					config_max_rows_per_message());

	message.message_id = "preview";
	message.body = VARDATA_ANY(body);
	message.body_len = VARSIZE_ANY_EXHDR(body);
	message.sent_timestamp_ms = codec_unix_ms(PG_ARGISNULL(4) ?
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

	if (!codec_parse_app_version(VARDATA_ANY(version), VARSIZE_ANY_EXHDR(version),
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

	if (config_processed_retention() > 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pruned = sink_prune_ledger(config_processed_retention());
		SPI_finish();
	}
	PG_RETURN_INT64(pruned);
}
