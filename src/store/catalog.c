/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The pipeline catalog, sqs_ingest.pipelines, and the SQL functions
 *	  that define, change and remove pipelines.
 *
 * A pipeline is checked whole before it is stored: its options, and its
 * mapping compiled against its target table, so that a pipeline in the
 * catalog can run as soon as its table exists.  The catalog records the
 * role that created the pipeline; only that role (or a member of it, or a
 * superuser) may change or drop it, and it must be able to insert into the
 * target.  The catalog table itself is not granted to anyone: these
 * functions read and write it as its owner, with every name qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "catalog.h"
#include "compat.h"
#include "config.h"
#include "mapping.h"
#include "queue_grants.h"
#include "security.h"
#include "setting_values.h"
#include "transport.h"

PG_FUNCTION_INFO_V1(sqs_ingest_create_pipeline);
PG_FUNCTION_INFO_V1(sqs_ingest_alter_pipeline);
PG_FUNCTION_INFO_V1(sqs_ingest_drop_pipeline);

/* longest pipeline name: it goes into worker names and log lines */
#define PIPELINE_NAME_MAX 48


#define PIPELINE_COLUMNS "name, queue_url, target, mapping, options, owner, updated_at"

/*
 * An integer option: its key, bounds, where it goes, and the setting that
 * caps it, if any: what a pipeline's owner may ask for that costs the
 * server memory is bounded by a superuser.
 */
typedef struct IntOption
{
	const char *key;
	int			min;
	int			max;
	size_t		offset;
	const char *cap_name;
	int			(*cap) (void);
} IntOption;

static const IntOption int_options[] = {
	{"workers", 0, 64, offsetof(PipelineSettings, workers)},
	{"visibility_timeout", 1, 43200, offsetof(PipelineSettings, visibility_timeout)},
	{"wait_time_seconds", 0, 20, offsetof(PipelineSettings, wait_time_seconds)},
	{"batch_size", 1, 100000, offsetof(PipelineSettings, batch_size),
	"sqs_ingest.max_pipeline_batch_size", config_max_pipeline_batch_size},
	{"max_inflight", 1, SQS_INGEST_MAX_INFLIGHT_CAP, offsetof(PipelineSettings, max_inflight),
	"sqs_ingest.max_pipeline_inflight", config_max_pipeline_inflight},
	{"max_rows_per_message", 1, 1000000, offsetof(PipelineSettings, max_rows_per_message),
	"sqs_ingest.max_rows_per_message", config_max_rows_per_message},
};

/* detail: a whole sentence marked with gettext_noop, translated here */
pg_noreturn static void
option_error(const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid pipeline option \"%s\"", key),
			 errdetail_internal("%s", _(detail))));
}

/* an integral JSON number within bounds */
static int
int_option(const IntOption *option, const JsonbValue *v)
{
	char	   *text;
	char	   *end;
	long		value;

	if (v->type != jbvNumeric)
		option_error(option->key, gettext_noop("It must be a number."));
	text = DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(v->val.numeric)));
	errno = 0;
	value = strtol(text, &end, 10);
	if (*end != '\0' || errno != 0 || value < option->min || value > option->max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid pipeline option \"%s\"", option->key),
				 errdetail("It must be a whole number from %d to %d.",
						   option->min, option->max)));
	return (int) value;
}

/*
 * Check a pipeline's options and read them; envelope, explode and
 * recovery_key are checked with the mapping (mapping_compile).  Errors name the option.
 */
void
catalog_parse_options(Jsonb *options, PipelineSettings *settings)
{
	JsonbIterator *it;
	JsonbIteratorToken token;
	JsonbValue	v;
	char	   *key = NULL;

	for (int i = 0; i < (int) lengthof(int_options); i++)
		*(int *) ((char *) settings + int_options[i].offset) = -1;
	settings->workers = 1;
	settings->enabled = true;
	settings->region = NULL;
	settings->endpoint = NULL;
	if (options == NULL)
		return;
	if (!JsonContainerIsObject(&options->root) || JsonContainerIsScalar(&options->root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline options must be a JSON object")));

	it = JsonbIteratorInit(&options->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (token == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (token != WJB_VALUE)
			continue;
		for (int i = 0; i < (int) lengthof(int_options); i++)
			if (strcmp(key, int_options[i].key) == 0)
			{
				*(int *) ((char *) settings + int_options[i].offset) =
					int_option(&int_options[i], &v);
				known = true;
			}
		/* checked with the mapping */
		if (known || strcmp(key, "envelope") == 0 || strcmp(key, "explode") == 0 ||
			strcmp(key, "recovery_key") == 0)
			continue;
		if (strcmp(key, "enabled") == 0)
		{
			if (v.type != jbvBool)
				option_error(key, gettext_noop("It must be true or false."));
			settings->enabled = v.val.boolean;
		}
		else if (strcmp(key, "region") == 0)
		{
			if (v.type != jbvString || v.val.string.len == 0)
				option_error(key, gettext_noop("It must be a region name such as \"eu-west-1\"."));
			settings->region = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (strcmp(key, "endpoint") == 0)
		{
			if (v.type != jbvString)
				option_error(key, gettext_noop("It must be a URL starting with http:// or https://."));
			settings->endpoint = pnstrdup(v.val.string.val, v.val.string.len);
			if (!transport_http_prefix(settings->endpoint, false))
				option_error(key, gettext_noop("It must be a URL starting with http:// or https://."));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown pipeline option \"%s\"", key),
					 errhint("The options are workers, enabled, envelope, explode, max_rows_per_message, recovery_key, region, endpoint, visibility_timeout, wait_time_seconds, batch_size, max_inflight.")));
	}
}

/*
 * Refuse options above the settings that cap them.  Checked for the
 * options given when a pipeline is defined or changed, superusers'
 * included, so that what the options say is what runs; a cap lowered later
 * is applied when the pipeline runs (config_resolve(),
 * mapping_max_rows()), and does not keep its owner from changing other
 * options.
 */
static void
check_option_caps(Jsonb *given)
{
	PipelineSettings settings;

	catalog_parse_options(DatumGetJsonbP(DirectFunctionCall1(jsonb_strip_nulls,
															 JsonbPGetDatum(given))),
						  &settings);
	for (int i = 0; i < (int) lengthof(int_options); i++)
	{
		const IntOption *option = &int_options[i];
		int			value = *(const int *) ((const char *) &settings + option->offset);

		if (option->cap && value > option->cap())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pipeline option \"%s\" is above its cap", option->key),
					 errdetail("It is %d; %s allows at most %d.",
							   value, option->cap_name, option->cap()),
					 errhint("Ask a superuser to raise %s, or set a smaller value.",
							 option->cap_name)));
	}
}

static PipelineDefinition *
definition_from_tuple(HeapTuple tuple, TupleDesc tupdesc)
{
	PipelineDefinition *def = palloc0(sizeof(PipelineDefinition));
	bool		isnull;
	Datum		d;

	def->name = TextDatumGetCString(SPI_getbinval(tuple, tupdesc, 1, &isnull));
	def->queue_url = TextDatumGetCString(SPI_getbinval(tuple, tupdesc, 2, &isnull));
	def->target = TextDatumGetCString(SPI_getbinval(tuple, tupdesc, 3, &isnull));
	d = SPI_getbinval(tuple, tupdesc, 4, &isnull);
	def->mapping = isnull ? NULL : DatumGetJsonbPCopy(d);
	def->options = DatumGetJsonbPCopy(SPI_getbinval(tuple, tupdesc, 5, &isnull));
	def->owner = DatumGetObjectId(SPI_getbinval(tuple, tupdesc, 6, &isnull));
	def->updated_at = DatumGetTimestampTz(SPI_getbinval(tuple, tupdesc, 7, &isnull));
	catalog_parse_options(def->options, &def->settings);
	return def;
}

/* read pipelines (all of them, or the one named) in the caller's context */
static List *
read_definitions(const char *name, bool for_update)
{
	MemoryContext caller = CurrentMemoryContext;
	CatalogAccess access;
	List	   *result = NIL;
	int			rc;

	catalog_begin(&access);
	if (name)
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(name)};

		rc = SPI_execute_with_args(psprintf("SELECT " PIPELINE_COLUMNS " FROM sqs_ingest.pipelines "
											"WHERE name OPERATOR(pg_catalog.=) $1%s",
											for_update ? " FOR UPDATE" : ""),
								   1, argtypes, args, NULL, false, 0);
	}
	else
		rc = SPI_execute("SELECT " PIPELINE_COLUMNS " FROM sqs_ingest.pipelines ORDER BY name",
						 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read sqs_ingest.pipelines: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		result = lappend(result, definition_from_tuple(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc));
		MemoryContextSwitchTo(old);
	}
	catalog_end(&access);
	return result;
}

/* the pipeline of that name; an error if there is none */
PipelineDefinition *
catalog_get(const char *name)
{
	List	   *defs = read_definitions(name, false);

	if (defs == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name)));
	return linitial(defs);
}

/*
 * The pipeline's target table, or InvalidOid if there is none of its name,
 * locked in lockmode.  NoLock only resolves the name: for callers that must
 * not wait on whoever holds the table.
 */
Oid
catalog_target_relid(const PipelineDefinition *def, LOCKMODE lockmode)
{
	List	   *names = textToQualifiedNameList(cstring_to_text(def->target));

	return RangeVarGetRelid(makeRangeVarFromNameList(names), lockmode, true);
}

/* every pipeline, by name */
List *
catalog_list(void)
{
	return read_definitions(NULL, false);
}

static void
check_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > PIPELINE_NAME_MAX ||
		strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid pipeline name \"%s\"", name),
				 errdetail_plural("A pipeline name is 1 to %d letter, digit, \"_\" or \"-\".",
								  "A pipeline name is 1 to %d letters, digits, \"_\" or \"-\".",
								  PIPELINE_NAME_MAX,
								  PIPELINE_NAME_MAX)));
	if (strcmp(name, DEFAULT_PIPELINE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("pipeline name \"%s\" is reserved", name),
				 errdetail("The pipeline \"default\" is the one the sqs_ingest.* settings define.")));
}

static void
check_queue_url(const char *url)
{
	if (!transport_http_prefix(url, false))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue_url must start with http:// or https://"),
				 errhint("Give the queue's URL, for example https://sqs.us-east-1.amazonaws.com/123456789012/orders.")));
}

/* the caller must be able to insert into the target it names */
static char *
check_target(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("A pipeline inserts with its owner's rights, who must be allowed to insert into its target.")));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * A pipeline as it will be stored, checked whole, for its owner: options
 * (those given by the caller, NULL: none, against their caps), endpoint,
 * mapping (and the owner's right to the mask it uses), and its queue (see
 * queue_grants.c).
 */
static void
check_definition(const PipelineDefinition *def, Oid relid, Jsonb *given)
{
	PipelineSettings settings;
	CompiledMapping *compiled;
	PipelineRefusal refusal;

	catalog_parse_options(def->options, &settings);
	if (given)
		check_option_caps(given);
	security_check_pipeline_endpoint(def->queue_url, settings.endpoint);
	compiled = mapping_compile(relid, def->mapping, def->options);
	if (compiled->uses_mask)
		security_check_mask_privilege(def->owner, def->name);
	(void) queue_identity_checked(def->queue_url);

	/*
	 * One definer at a time (the workers' reads go on), so that two cannot
	 * take one queue at once.
	 */
	LockRelationOid(catalog_relid(), ShareRowExclusiveLock);
	refusal = queue_refusal(def, catalog_list(), true);
	if (refusal != PIPELINE_MAY_READ)
		queue_report_refusal(def, refusal, ERROR);
}

static void
write_definition(const char *sql, const char *name, const char *queue_url,
				 const char *target, Jsonb *mapping, Jsonb *options)
{
	CatalogAccess access;
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, OIDOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(queue_url);
	args[2] = CStringGetTextDatum(target);
	args[3] = mapping ? JsonbPGetDatum(mapping) : (Datum) 0;
	nulls[3] = mapping ? ' ' : 'n';
	args[4] = JsonbPGetDatum(options);
	args[5] = ObjectIdGetDatum(GetUserId());

	catalog_begin(&access);
	rc = SPI_execute_with_args(sql, 6, argtypes, args, nulls, false, 0);
	if (rc != SPI_OK_INSERT && rc != SPI_OK_UPDATE)
		elog(ERROR, "could not write sqs_ingest.pipelines: %s", SPI_result_code_string(rc));
	catalog_end(&access);
}

/*
 * sqs_ingest_create_pipeline(name text, queue_url text, target regclass,
 *							  mapping jsonb, options jsonb) RETURNS void
 */
Datum
sqs_ingest_create_pipeline(PG_FUNCTION_ARGS)
{
	PipelineDefinition def = {0};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a pipeline needs a name, a queue_url and a target")));
	def.name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	def.queue_url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	def.mapping = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	def.options = PG_ARGISNULL(4) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(4);
	def.owner = GetUserId();

	check_name(def.name);
	check_queue_url(def.queue_url);
	def.target = check_target(PG_GETARG_OID(2));
	check_definition(&def, PG_GETARG_OID(2), def.options);
	if (read_definitions(def.name, true) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already exists", def.name),
				 errhint("Change it with sqs_ingest_alter_pipeline().")));

	write_definition("INSERT INTO sqs_ingest.pipelines "
					 "(name, queue_url, target, mapping, options, owner) "
					 "VALUES ($1, $2, $3, $4, $5, $6)",
					 def.name, def.queue_url, def.target, def.mapping, def.options);
	PG_RETURN_VOID();
}

/* the pipeline of that name, locked, if the caller may change it */
static PipelineDefinition *
owned_definition(const char *name)
{
	List	   *defs = read_definitions(name, true);
	PipelineDefinition *def;

	if (defs == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name)));
	def = linitial(defs);
	if (!has_privs_of_role(GetUserId(), def->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of pipeline \"%s\"", name),
				 errdetail("It belongs to role %s.", GetUserNameFromId(def->owner, true) ?
						   GetUserNameFromId(def->owner, true) : "(dropped)")));
	return def;
}

/*
 * sqs_ingest_alter_pipeline(name text, queue_url text, target regclass,
 *							 mapping jsonb, options jsonb) RETURNS void
 *
 * NULL leaves a part unchanged.  Options given are merged into the
 * pipeline's; an option set to null returns to its default.
 */
Datum
sqs_ingest_alter_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name;
	PipelineDefinition *def;
	Oid			relid;
	Jsonb	   *options;
	Jsonb	   *mapping;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	def = owned_definition(name);

	if (!PG_ARGISNULL(1))
	{
		def->queue_url = text_to_cstring(PG_GETARG_TEXT_PP(1));
		check_queue_url(def->queue_url);
	}
	if (!PG_ARGISNULL(2))
		relid = PG_GETARG_OID(2);
	else
	{
		relid = catalog_target_relid(def, AccessShareLock);
		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("target %s of pipeline \"%s\" does not exist", def->target, name),
					 errdetail("The pipeline is checked against its target when it changes."),
					 errhint("Create the table, or give the pipeline another target.")));
	}
	def->target = check_target(relid);
	mapping = PG_ARGISNULL(3) ? def->mapping : PG_GETARG_JSONB_P(3);
	options = def->options;
	if (!PG_ARGISNULL(4))
	{
		Jsonb	   *merged;

		/* merge, then drop the keys set to null */
		merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
													JsonbPGetDatum(def->options),
													PG_GETARG_DATUM(4)));
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_strip_nulls,
													 JsonbPGetDatum(merged)));
	}
	def->mapping = mapping;
	def->options = options;
	check_definition(def, relid, PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4));

	write_definition("UPDATE sqs_ingest.pipelines SET queue_url = $2, target = $3, "
					 "mapping = $4, options = $5, updated_at = pg_catalog.now() "
					 "WHERE name OPERATOR(pg_catalog.=) $1",
					 name, def->queue_url, def->target, mapping, options);
	PG_RETURN_VOID();
}

/* sqs_ingest_drop_pipeline(name text) RETURNS void */
Datum
sqs_ingest_drop_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name;
	CatalogAccess access;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			rc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	(void) owned_definition(name);

	args[0] = CStringGetTextDatum(name);
	catalog_begin(&access);
	rc = SPI_execute_with_args("DELETE FROM sqs_ingest.pipelines WHERE name OPERATOR(pg_catalog.=) $1",
							   1, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not write sqs_ingest.pipelines: %s", SPI_result_code_string(rc));
	catalog_end(&access);
	PG_RETURN_VOID();
}
