/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  Store a batch in the current transaction: ledger first, then rows,
 *	  then dead letters.
 *
 * The ledger insert (sqs_ingest.processed, ON CONFLICT DO NOTHING) tells
 * which messages are new; redelivered ones count as duplicates and are not
 * inserted again.  Rows go in with one prepared INSERT ... SELECT FROM
 * unnest() over column arrays, so a batch of a thousand messages costs one
 * executor run.  That insert runs in one subtransaction: if the target
 * rejects a row (constraint, trigger, domain check, deferred constraint,
 * whatever SQLSTATE), it is rolled back and the rejected rows are found by
 * bisection, halves retried in subtransactions of their own, so that only
 * they become dead letters.  Errors that are not about a row (table
 * missing, permissions, disk full, cancel, deadlock) fail the batch, and
 * its messages stay in SQS.
 *
 * A batch belongs to one pipeline, whose mapping turns each message into
 * rows of its target table (any number of columns; several rows for a
 * message its explode option splits, stored or rejected together).  It is
 * mapped and stored a part at a time, each part as many messages as map to
 * sqs_ingest.max_batch_bytes of memory (one, if a message alone takes
 * more), so that a worker's memory is bounded by its settings whatever the
 * messages make; the parts share the caller's transaction.  The
 * mapping is compiled when the pipeline first stores, and again only when
 * the target table changes (a relcache invalidation) or is replaced by
 * another of the same name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "compat.h"
#include "config.h"
#include "mapping.h"
#include "codecs.h"
#include "security.h"
#include "sink.h"
#include "subxact.h"

/*
 * Longest MessageId kept as it is in the ledger and the dead letters (SQS's
 * are 36-character UUIDs); a longer one would not fit the primary key's
 * index, and is kept under its SHA-256 instead.
 */
#define MAX_LEDGER_ID_BYTES 1024
#define LEDGER_DIGEST_PREFIX "sha256:"


/*
 * Plans kept across batches.  The insert is re-prepared when the mapping is
 * recompiled (the table changed): recognised by the mapping's generation,
 * since a recompiled mapping may well land at the address of the old one.
 */
static SPIPlanPtr insert_plan = NULL;
static uint64 insert_plan_generation = 0;
static SPIPlanPtr ledger_plan = NULL;
static SPIPlanPtr ledger_all_new_plan = NULL;
static SPIPlanPtr dead_letter_plan = NULL;
static bool dead_letter_plan_has_pipeline = false;

/*
 * RangeVarGetRelidExtended callback: may the user insert, before locking?
 * For a catalog pipeline, the user is its owner, whose rights its inserts
 * run with.
 */
static void
check_target_privilege(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	const SinkTarget *sink = arg;

	if (!OidIsValid(relid))
		return;
	if (!OidIsValid(sink->owner))
		security_check_target_privilege(relid, rv->relname);
	else if (pg_class_aclcheck(relid, sink->owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rv->relname),
				 errdetail("Pipeline \"%s\" inserts with the rights of its owner, %s, who may not insert there.",
						   sink->name, GetUserNameFromId(sink->owner, true) ?
						   GetUserNameFromId(sink->owner, true) : "(dropped)")));
}

/*
 * A relcache invalidation of a pipeline's target (or of every relation)
 * makes its compiled mapping stale; the next batch compiles it again.
 */
static SinkTarget *registered_targets = NULL;

static void
invalidate_mappings(Datum arg, Oid relid)
{
	for (SinkTarget *p = registered_targets; p; p = p->next)
		if (p->compiled && (relid == InvalidOid || relid == p->compiled->relid))
			p->stale = true;
}

/* a copy of a definition's jsonb, or NULL */
static Jsonb *
copy_jsonb(Jsonb *value)
{
	return value ? (Jsonb *) PG_DETOAST_DATUM_COPY(JsonbPGetDatum(value)) : NULL;
}

/* the same jsonb, or both NULL */
static bool
same_jsonb(const Jsonb *a, const Jsonb *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

/*
 * What the pipeline stores by, from its definition: name, target, mapping,
 * options, owner.  Rows of a pipeline with an owner go in with the owner's
 * rights.
 */
SinkTarget *
sink_target_create(const PipelineDefinition *def)
{
	static bool callback_registered = false;
	MemoryContext context = AllocSetContextCreate(TopMemoryContext,
												  "sqs_ingest pipeline",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	SinkTarget *p = palloc0(sizeof(SinkTarget));

	p->context = context;
	p->name = pstrdup(def->name);
	p->target = pstrdup(def->target);
	p->mapping = copy_jsonb(def->mapping);
	p->options = copy_jsonb(def->options);
	p->owner = def->owner;
	MemoryContextSwitchTo(old);

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(invalidate_mappings, (Datum) 0);
		callback_registered = true;
	}
	p->next = registered_targets;
	registered_targets = p;
	return p;
}

/*
 * Store by what the pipeline's definition says now (the settings' pipeline
 * after a configuration reload): its next store resolves the target again
 * and compiles the mapping again if either changed.
 */
void
sink_redefine(SinkTarget *sink, const PipelineDefinition *def)
{
	MemoryContext old = MemoryContextSwitchTo(sink->context);

	pfree(sink->target);
	sink->target = pstrdup(def->target);
	if (sink->mapping)
		pfree(sink->mapping);
	sink->mapping = copy_jsonb(def->mapping);
	if (sink->options)
		pfree(sink->options);
	sink->options = copy_jsonb(def->options);
	sink->owner = def->owner;
	MemoryContextSwitchTo(old);
}

/* forget a pipeline and its compiled mapping */
void
sink_target_free(SinkTarget *sink)
{
	SinkTarget **link = &registered_targets;

	while (*link && *link != sink)
		link = &(*link)->next;
	if (*link)
		*link = sink->next;
	MemoryContextDelete(sink->context);
}

static void
target_missing(const SinkTarget *sink, const char *relname)
{
	if (strcmp(sink->name, DEFAULT_PIPELINE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("sqs_ingest target table %s does not exist", relname),
				 errhint("Create it, for example: " LOGIN_TABLE_DDL, relname)));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_TABLE),
			 errmsg("target table %s of pipeline \"%s\" does not exist",
					relname, sink->name),
			 errhint("Create the table; the pipeline starts when it exists.")));
}

/*
 * Resolve the pipeline's target table, taking the lock the insert will
 * need once the current user is known to have INSERT on it, and compile
 * its mapping if the table or the mapping (config_pipeline_mapping()) is
 * new or has changed.  An unqualified name means schema public, whatever
 * search_path says.  The compiled mapping lives as long as the pipeline.
 * Errors say what to fix.
 */
const CompiledMapping *
sink_prepare_target(SinkTarget *sink, LOCKMODE lockmode)
{
	List	   *names;
	Oid			relid;
	Jsonb	   *mapping;
	MemoryContext old;

	/* not stringToQualifiedNameList(): its arguments changed in 16 */
	names = textToQualifiedNameList(cstring_to_text(sink->target));
	if (list_length(names) == 1)
		names = lcons(makeString("public"), names);
	relid = RangeVarGetRelidExtended(makeRangeVarFromNameList(names), lockmode,
									 RVR_MISSING_OK, check_target_privilege, sink);
	if (!OidIsValid(relid))
		target_missing(sink, sink->target);
	mapping = config_pipeline_mapping(sink->name, sink->mapping, relid);
	if (sink->compiled && !sink->stale && sink->compiled->relid == relid &&
		same_jsonb(sink->compiled_from, mapping))
		return sink->compiled;

	if (sink->compiled_context)
		MemoryContextDelete(sink->compiled_context);
	sink->compiled = NULL;
	sink->compiled_context = AllocSetContextCreate(sink->context,
													   "sqs_ingest mapping",
													   ALLOCSET_DEFAULT_SIZES);
	sink->stale = false;
	old = MemoryContextSwitchTo(sink->compiled_context);
	sink->compiled_from = copy_jsonb(mapping);
	sink->compiled = mapping_compile(relid, mapping, sink->options);
	MemoryContextSwitchTo(old);
	return sink->compiled;
}

/*
 * Check, in a transaction, that the pipeline can store: its target table,
 * with the lock an insert takes, and its mapping; the keys the mapping
 * takes from settings, and, if it masks, that a catalog pipeline's owner
 * may execute the mask (a revoke takes effect at the next batch).  Returns
 * the compiled mapping.
 */
const CompiledMapping *
sink_check(SinkTarget *sink, LOCKMODE lockmode)
{
	const CompiledMapping *mapping = sink_prepare_target(sink, lockmode);

	if (mapping->uses_mask && OidIsValid(sink->owner))
		security_check_mask_privilege(sink->owner, sink->name);
	mapping_prepare(sink->compiled, (MaskAlgorithm) config_mask_algorithm(),
					config_max_rows_per_message());
	return mapping;
}

/*
 * Has role the privilege mode on the table, or else on each of the given
 * columns (NULL-terminated) that the table has?
 */
static bool
has_columns_privilege(Oid relid, Oid role, AclMode mode, const char *const *columns)
{
	if (pg_class_aclcheck(relid, role, mode) == ACLCHECK_OK)
		return true;
	for (; *columns; columns++)
	{
		AttrNumber	attnum = get_attnum(relid, *columns);

		if (attnum != InvalidAttrNumber &&
			pg_attribute_aclcheck(relid, attnum, role, mode) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * Refuse to go on unless role may write the bookkeeping table
 * sqs_ingest.relname as the store does: INSERT of the columns listed,
 * SELECT of its key (ON CONFLICT and RETURNING read it).
 */
static void
check_bookkeeping_table(Oid schema, const char *relname, const char *const *columns,
						Oid role)
{
	static const char *const key[] = {"message_id", NULL};
	Oid			relid = get_relname_relid(relname, schema);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"sqs_ingest.%s\" does not exist", relname),
				 errhint("Drop and create the extension sqs_ingest again, or restore the table from a backup.")));
	if (!has_columns_privilege(relid, role, ACL_INSERT, columns) ||
		!has_columns_privilege(relid, role, ACL_SELECT, key))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table sqs_ingest.%s", relname),
				 errdetail("sqs_ingest stores each batch's ledger entries and dead letters as role \"%s\", which needs INSERT on sqs_ingest.%s and SELECT on its message_id.",
						   GetUserNameFromId(role, false), relname),
				 errhint("GRANT INSERT, SELECT ON sqs_ingest.%s TO %s;",
						 relname, quote_identifier(GetUserNameFromId(role, false)))));
}

/*
 * Check, before anything is received, what storing a batch needs besides
 * the target table and the mapping (sink_check()): the extension in this
 * database, its ledger and dead letters, which the session's role writes,
 * and the target's schema, which the role the rows are inserted as must be
 * able to use.  Asked of the catalogs and the ACLs, not found out by
 * trying: a worker that could not store must not receive, or the
 * messages' receive counts would climb towards the queue's dead-letter
 * queue with each attempt.
 */
void
sink_check_bookkeeping(const SinkTarget *sink, const CompiledMapping *mapping)
{
	static const char *const processed_columns[] = {"message_id", "processed_at", NULL};
	static const char *const dead_letter_columns[] = {
		"message_id", "body", "error", "received_at", "sent_at", "receive_count",
		"queue_url", "pipeline", NULL
	};
	Oid			user = GetUserId();
	Oid			schema;
	Oid			role;
	Oid			target_schema;

	if (!OidIsValid(get_extension_oid("sqs_ingest", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"sqs_ingest\" does not exist in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("Each batch is stored with its ledger entries and dead letters, in tables the extension creates."),
				 errhint("Run CREATE EXTENSION sqs_ingest in that database, or set sqs_ingest.database to the database where it is created.")));
	schema = get_namespace_oid("sqs_ingest", false);
	if (compat_namespace_aclcheck(schema, user, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema sqs_ingest"),
				 errdetail("sqs_ingest stores each batch's ledger entries and dead letters as role \"%s\".",
						   GetUserNameFromId(user, false)),
				 errhint("GRANT USAGE ON SCHEMA sqs_ingest TO %s;",
						 quote_identifier(GetUserNameFromId(user, false)))));
	check_bookkeeping_table(schema, "processed", processed_columns, user);
	check_bookkeeping_table(schema, "dead_letters", dead_letter_columns, user);

	role = sink_store_role(sink, mapping->relid);
	target_schema = get_rel_namespace(mapping->relid);
	if (compat_namespace_aclcheck(target_schema, role, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema %s", get_namespace_name(target_schema)),
				 errdetail("The rows of pipeline \"%s\" are inserted into %s as role \"%s\".",
						   sink->name, mapping->qualified_name,
						   GetUserNameFromId(role, false)),
				 errhint("GRANT USAGE ON SCHEMA %s TO %s;",
						 quote_identifier(get_namespace_name(target_schema)),
						 quote_identifier(GetUserNameFromId(role, false)))));
}

/* the role the target table's code runs as, for this pipeline */
Oid
sink_store_role(const SinkTarget *sink, Oid relid)
{
	return OidIsValid(sink->owner) ? sink->owner : ingest_role_for_target(relid);
}

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static void
prepare_plans(const CompiledMapping *mapping)
{
	Oid			dead_letters = get_relname_relid("dead_letters",
												 get_namespace_oid("sqs_ingest", false));
	bool		has_pipeline;

	if (insert_plan == NULL || insert_plan_generation != mapping->generation)
	{
		StringInfoData sql;
		Oid		   *argtypes = palloc(sizeof(Oid) * mapping->ncolumns);

		if (insert_plan)
			SPI_freeplan(insert_plan);
		insert_plan = NULL;

		/*
		 * The arrays are unnested in the select list, where set-returning
		 * functions run in lockstep and hand each row straight to the insert,
		 * rather than in FROM, where a function scan first copies every row
		 * of each array into a tuplestore.  The arrays have the same length:
		 * the rows are the same.
		 */
		initStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO %s (", mapping->qualified_name);
		for (int i = 0; i < mapping->ncolumns; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "",
							 quote_identifier(mapping->columns[i].name));
		appendStringInfoString(&sql, ") SELECT ");
		for (int i = 0; i < mapping->ncolumns; i++)
		{
			const MappingColumn *col = &mapping->columns[i];

			/* an array of arrays cannot be passed: arrays go as their text */
			argtypes[i] = get_array_type(col->basetypid);
			appendStringInfo(&sql, "%spg_catalog.unnest($%d)", i ? ", " : "", i + 1);
			if (!OidIsValid(argtypes[i]))
			{
				argtypes[i] = TEXTARRAYOID;
				appendStringInfo(&sql, "::%s",
								 format_type_extended(col->basetypid, col->basetypmod,
													  FORMAT_TYPE_TYPEMOD_GIVEN |
													  FORMAT_TYPE_FORCE_QUALIFY));
			}
		}

		insert_plan = prepare_kept(sql.data, mapping->ncolumns, argtypes);
		insert_plan_generation = mapping->generation;
	}

	if (ledger_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTARRAYOID};

		/* positions (1-based) of the ids that were not in the ledger yet */
		ledger_plan = prepare_kept("WITH ids AS (SELECT * FROM pg_catalog.unnest($1) WITH ORDINALITY AS u(message_id, position)), "
								   "fresh AS (INSERT INTO sqs_ingest.processed (message_id, processed_at) "
								   "SELECT message_id, pg_catalog.now() FROM ids "
								   "ON CONFLICT (message_id) DO NOTHING RETURNING message_id) "
								   "SELECT ids.position::pg_catalog.int4 FROM ids JOIN fresh "
								   "ON ids.message_id OPERATOR(pg_catalog.=) fresh.message_id",
								   1, argtypes);
	}

	if (ledger_all_new_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTARRAYOID};

		/*
		 * The happy path: no id seen before, a unique violation if wrong.
		 * Unnested in the select list, as the rows are.
		 */
		ledger_all_new_plan = prepare_kept("INSERT INTO sqs_ingest.processed (message_id, processed_at) "
										   "SELECT pg_catalog.unnest($1), pg_catalog.now()",
										   1, argtypes);
	}

	/*
	 * Dead letters name their pipeline from version 1.1 of the SQL objects
	 * on; a schema still at 1.0 (the library is updated first) has no such
	 * column.  Looked at for each batch, so that ALTER EXTENSION UPDATE is
	 * picked up.
	 */
	has_pipeline = OidIsValid(dead_letters) &&
		get_attnum(dead_letters, "pipeline") != InvalidAttrNumber;
	if (dead_letter_plan == NULL || dead_letter_plan_has_pipeline != has_pipeline)
	{
		Oid			argtypes[8] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
								   TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
		INT4ARRAYOID, TEXTOID, TEXTOID};

		if (dead_letter_plan)
			SPI_freeplan(dead_letter_plan);
		dead_letter_plan = prepare_kept(psprintf("INSERT INTO sqs_ingest.dead_letters "
												 "(message_id, body, error, received_at, sent_at, receive_count, queue_url%s) "
												 "SELECT m, b, e, r, s, c, $7%s FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
												 "pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
												 "pg_catalog.unnest($6)) AS u(m, b, e, r, s, c) "
												 "ON CONFLICT (message_id) DO NOTHING",
												 has_pipeline ? ", pipeline" : "",
												 has_pipeline ? ", $8" : ""),
										has_pipeline ? 8 : 7, argtypes);
		dead_letter_plan_has_pipeline = has_pipeline;
	}
}

/* a one-dimensional array of count Datums of the given type */
static Datum
make_array(Oid elemtype, Datum *elems, bool *nulls, int count)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {count};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
											  typlen, typbyval, typalign));
}

/*
 * The parameter array of a column's values: of its base type, or of their
 * text for a type that has no array type (an array column).
 */
static Datum
make_column_array(const MappingColumn *col, Datum *values, bool *nulls, int count)
{
	Oid			outfunc;
	bool		isvarlena;
	Datum	   *texts;

	if (OidIsValid(get_array_type(col->basetypid)))
		return make_array(col->basetypid, values, nulls, count);
	getTypeOutputInfo(col->basetypid, &outfunc, &isvarlena);
	texts = palloc(sizeof(Datum) * Max(count, 1));
	for (int i = 0; i < count; i++)
		texts[i] = nulls[i] ? (Datum) 0 :
			CStringGetTextDatum(OidOutputFunctionCall(outfunc, values[i]));
	return make_array(TEXTOID, texts, nulls, count);
}

/* one message of the batch, as the sink sees it */
typedef struct BatchItem
{
	SqsMessage *message;
	char	   *ledger_id;		/* its id in the ledger and dead letters */
	char	   *error;			/* dead-letter reason, or NULL for rows */
	int			first_row;		/* its rows in the row arrays */
	int			nrows;
} BatchItem;

/* everything needed to store a batch, built before any statement runs */
typedef struct Batch
{
	const CompiledMapping *mapping;
	Oid			role;			/* the target's code runs as this role */
	int			count;			/* distinct messages */
	BatchItem  *items;
	Datum		ids;			/* text[] of the items' message ids */
	MappedRows	rows;			/* column-major */
	/* rows chosen for the next insert_rows() */
	int			nchosen;
	int		   *chosen;			/* or NULL: every row */
} Batch;

/*
 * Insert the chosen rows with one execution of the prepared insert, as the
 * role the target's code runs as.  On error the enclosing (sub)transaction
 * restores the role and settings.
 */
static void
insert_rows(void *arg)
{
	Batch	   *batch = arg;
	int			ncolumns = batch->mapping->ncolumns;
	Datum	   *params = palloc(sizeof(Datum) * Max(ncolumns, 1));
	SecurityScope scope;
	int			rc;

	for (int c = 0; c < ncolumns; c++)
	{
		Datum	   *values = batch->rows.values[c];
		bool	   *nulls = batch->rows.nulls[c];

		if (batch->chosen)
		{
			values = palloc(sizeof(Datum) * Max(batch->nchosen, 1));
			nulls = palloc(sizeof(bool) * Max(batch->nchosen, 1));
			for (int i = 0; i < batch->nchosen; i++)
			{
				values[i] = batch->rows.values[c][batch->chosen[i]];
				nulls[i] = batch->rows.nulls[c][batch->chosen[i]];
			}
		}
		params[c] = make_column_array(&batch->mapping->columns[c], values, nulls,
									  batch->nchosen);
	}
	security_enter(&scope, batch->role);
	rc = SPI_execute_plan(insert_plan, params, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "insert into the target table failed: %s",
			 SPI_result_code_string(rc));
	security_leave(&scope);
}

/* the happy path: every message is new and every row is accepted */
static void
store_all_new(void *arg)
{
	Batch	   *batch = arg;
	int			rc;

	rc = SPI_execute_plan(ledger_all_new_plan, &batch->ids, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "ledger insert failed: %s", SPI_result_code_string(rc));
	if (batch->rows.nrows > 0)
	{
		batch->chosen = NULL;
		batch->nchosen = batch->rows.nrows;
		insert_rows(batch);
	}
}

/*
 * Is this error about the rows being inserted, so that the batch without
 * them can be stored?  Any SQLSTATE a constraint, a domain or a trigger
 * raises is, custom ones included, except the classes that are about the
 * session, the server or the table itself: connection, feature not
 * supported, transaction state, serialization failure and deadlock, a
 * missing table, column or privilege, lack of resources, a lock not
 * granted, cancel and shutdown, system, configuration, foreign data
 * wrapper and internal errors.  Those fail the whole batch, whose
 * messages stay in SQS to be tried again.
 */
static bool
is_row_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_FEATURE_NOT_SUPPORTED:
		case ERRCODE_INVALID_TRANSACTION_STATE:
		case ERRCODE_TRANSACTION_ROLLBACK:
		case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_CONFIG_FILE_ERROR:
		case ERRCODE_FDW_ERROR:
		case ERRCODE_INTERNAL_ERROR:
			return false;
		default:
			return true;
	}
}

/*
 * Did a row-level security policy reject a row?  PostgreSQL reports that
 * with the SQLSTATE of a missing privilege (42501); it is a rejection of
 * the row when the role the insert runs as holds INSERT on the target and
 * the target's policies apply to it.
 */
static bool
is_policy_rejection(const Batch *batch, int sqlerrcode)
{
	Oid			relid = batch->mapping->relid;

	return sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
		pg_class_aclcheck(relid, batch->role, ACL_INSERT) == ACLCHECK_OK &&
		check_enable_rls(relid, batch->role, true) == RLS_ENABLED;
}

/*
 * Run fn(batch) in a subtransaction.  Returns NULL if it succeeded, or the
 * error if it failed on the data; any other error is re-thrown after
 * rollback.
 */
static ErrorData *
run_isolated(void (*fn) (void *), Batch *batch)
{
	ErrorData  *error = subxact_call(fn, batch);

	if (error && !is_row_error(error->sqlerrcode) &&
		!is_policy_rejection(batch, error->sqlerrcode))
		ReThrowError(error);
	return error;
}

static char *
describe_row_error(ErrorData *error)
{
	return psprintf("target table rejected the row: %s%s%s (SQLSTATE %s)",
					error->message, error->detail ? " " : "",
					error->detail ? error->detail : "",
					unpack_sql_state(error->sqlerrcode));
}

/*
 * When the message was sent, in Unix milliseconds; SQS always says, but if
 * it did not, the time it was received is the closest thing known.
 */
static int64
sent_or_received_ms(const SqsMessage *m)
{
	if (m->sent_timestamp_ms >= 0)
		return m->sent_timestamp_ms;
	return codec_unix_ms(m->received_at);
}

/*
 * The id a message goes by in the ledger and the dead letters: its
 * MessageId, or, for one too long for the index, LEDGER_DIGEST_PREFIX and
 * the SHA-256 of it (the same id gives the same digest, so a redelivery is
 * still recognised).  *reason says why such a message is a dead letter.
 */
static char *
ledger_id(const SqsMessage *m, char **reason)
{
	size_t		len = strlen(m->message_id);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *id;
	pg_cryptohash_ctx *ctx;

	*reason = NULL;
	if (len <= MAX_LEDGER_ID_BYTES)
		return m->message_id;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) m->message_id, len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute the SHA-256 of a message id: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	id = palloc(strlen(LEDGER_DIGEST_PREFIX) + 2 * sizeof(digest) + 1);
	strcpy(id, LEDGER_DIGEST_PREFIX);
	id[strlen(LEDGER_DIGEST_PREFIX) +
	   hex_encode((const char *) digest, sizeof(digest),
				  id + strlen(LEDGER_DIGEST_PREFIX))] = '\0';
	*reason = psprintf("MessageId is %zu bytes long, longer than the %d bytes the ledger holds; kept under its SHA-256",
					   len, MAX_LEDGER_ID_BYTES);
	return id;
}

/*
 * Why a message cannot be a row whatever its body says, or NULL: what the
 * decoder found wrong with it, an id too long for the ledger, or more
 * receives than sqs_ingest.max_receive_count (it keeps failing somewhere,
 * and would otherwise cycle forever).
 */
static char *
message_defect(const SqsMessage *m, char *ledger_id_reason)
{
	int			max_receive_count = config_max_receive_count();

	if (m->defect)
		return pstrdup(m->defect);
	if (ledger_id_reason)
		return ledger_id_reason;
	if (max_receive_count > 0 && m->receive_count > max_receive_count)
		return psprintf("received %d times, more than sqs_ingest.max_receive_count (%d)",
						m->receive_count, max_receive_count);
	return NULL;
}

/* a message's attributes with a string value, as the mapping reads them */
static void
message_attributes(const SqsMessage *m, MappingMessage *message)
{
	message->attribute_names = palloc(sizeof(char *) * Max(m->nattributes, 1));
	message->attribute_values = palloc(sizeof(char *) * Max(m->nattributes, 1));
	for (int i = 0; i < m->nattributes; i++)
	{
		if (m->attributes[i].string_value == NULL)
			continue;
		message->attribute_names[message->nattributes] = m->attributes[i].name;
		message->attribute_values[message->nattributes++] = m->attributes[i].string_value;
	}
}

static int
compare_message_ids(const void *a, const void *b)
{
	const SqsMessage *const *ma = a;
	const SqsMessage *const *mb = b;

	return strcmp((*ma)->message_id, (*mb)->message_id);
}

/*
 * The distinct messages of a batch, by id: SQS may deliver a message twice
 * in one batch when its visibility timeout ran out while the batch filled.
 * Returns how many; *distinct points to them.
 */
static int
distinct_messages(SqsMessage *messages, int count, SqsMessage ***distinct)
{
	SqsMessage **sorted = palloc(sizeof(SqsMessage *) * count);
	int			n = 0;

	for (int i = 0; i < count; i++)
		sorted[i] = &messages[i];
	qsort(sorted, count, sizeof(SqsMessage *), compare_message_ids);
	for (int i = 0; i < count; i++)
		if (n == 0 || strcmp(sorted[i]->message_id, sorted[n - 1]->message_id) != 0)
			sorted[n++] = sorted[i];
	*distinct = sorted;
	return n;
}

/*
 * Build a part of the batch from the first of the given distinct messages,
 * each mapped to its rows or a dead-letter reason: as many as fit in
 * sqs_ingest.max_batch_bytes of the current memory context (at least one),
 * so that rows made by explode or copied from large bodies are stored a
 * part at a time.  batch->count says how many were taken.  look(look_arg)
 * is called after each message, for the caller's network.
 */
static void
build_batch(Batch *batch, const CompiledMapping *mapping, SqsMessage **messages, int count,
			SinkLook look, void *look_arg)
{
	Datum	   *ids = palloc(sizeof(Datum) * count);
	Size		max_bytes = (Size) config_max_batch_bytes() * 1024;

	memset(batch, 0, sizeof(*batch));
	batch->mapping = mapping;
	batch->items = palloc(sizeof(BatchItem) * count);
	mapping_rows_init(&batch->rows, mapping->ncolumns);

	while (batch->count < count &&
		   (batch->count == 0 ||
			MemoryContextMemAllocated(CurrentMemoryContext, true) < max_bytes))
	{
		BatchItem  *item;
		MappingMessage message = {0};

		item = &batch->items[batch->count];
		item->message = messages[batch->count];
		item->ledger_id = ledger_id(item->message, &item->error);
		ids[batch->count++] = CStringGetTextDatum(item->ledger_id);
		item->first_row = batch->rows.nrows;
		item->error = message_defect(item->message, item->error);
		if (item->error == NULL)
		{
			message.message_id = item->message->message_id;
			message.body = item->message->body;
			message.body_len = item->message->body_len;
			message.sent_timestamp_ms = sent_or_received_ms(item->message);
			message.receive_count = item->message->receive_count;
			if (mapping->uses_attributes)
				message_attributes(item->message, &message);
			item->error = mapping_map(mapping, &message, &batch->rows);
		}
		item->nrows = batch->rows.nrows - item->first_row;
		look(look_arg);
	}
	batch->ids = make_array(TEXTOID, ids, NULL, batch->count);
}

/* which items are not in the ledger yet; enters them; returns how many */
static int
ledger_new_items(Batch *batch, bool *is_new)
{
	int			rc = SPI_execute_plan(ledger_plan, &batch->ids, NULL, false, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "ledger insert failed: %s", SPI_result_code_string(rc));
	memset(is_new, 0, sizeof(bool) * batch->count);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int32		position = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														   SPI_tuptable->tupdesc, 1,
														   &isnull));

		is_new[position - 1] = true;
	}
	return (int) SPI_processed;
}

/* choose the rows of the given items */
static void
choose_rows(Batch *batch, const int *items, int nitems)
{
	batch->nchosen = 0;
	for (int i = 0; i < nitems; i++)
	{
		BatchItem  *item = &batch->items[items[i]];

		for (int r = 0; r < item->nrows; r++)
			batch->chosen[batch->nchosen++] = item->first_row + r;
	}
}

/*
 * Insert the rows of the given items, or, if the target rejects any, find
 * which items by bisection: each half is tried in a subtransaction of its
 * own until every rejected item stands alone.  k rejected items among n
 * cost about 2k log2(n/k) subtransactions rather than n.  All the rows of
 * an item are stored or rejected together; the reason of each rejected
 * item goes to it.
 */
static void
insert_bisecting(Batch *batch, int *items, int nitems, BatchCounts *counts)
{
	ErrorData  *error;
	int			half;

	choose_rows(batch, items, nitems);
	error = run_isolated(insert_rows, batch);
	if (error == NULL)
	{
		counts->inserted += batch->nchosen;
		return;
	}
	if (nitems == 1)
		batch->items[items[0]].error = describe_row_error(error);
	FreeErrorData(error);
	if (nitems == 1)
		return;
	half = nitems / 2;
	insert_bisecting(batch, items, half, counts);
	insert_bisecting(batch, items + half, nitems - half, counts);
}

/*
 * The careful path, after the happy path failed: find the duplicates, then
 * the rejected messages.  Fills the reason of each new item that has no
 * rows stored.
 */
static void
store_carefully(Batch *batch, bool *is_new, BatchCounts *counts)
{
	int			nnew = ledger_new_items(batch, is_new);
	int		   *items;
	int			nitems = 0;

	counts->duplicates += batch->count - nnew;

	items = palloc(sizeof(int) * Max(batch->count, 1));
	batch->chosen = palloc(sizeof(int) * Max(batch->rows.nrows, 1));
	for (int i = 0; i < batch->count; i++)
		if (is_new[i] && batch->items[i].error == NULL)
			items[nitems++] = i;
	if (nitems > 0)
		insert_bisecting(batch, items, nitems, counts);
}

static void
insert_dead_letters(Batch *batch, const bool *is_new, const char *queue_url,
					const char *pipeline_name)
{
	int			n = 0;
	Datum	   *message_id = palloc(sizeof(Datum) * batch->count);
	Datum	   *body = palloc(sizeof(Datum) * batch->count);
	Datum	   *error = palloc(sizeof(Datum) * batch->count);
	Datum	   *received_at = palloc(sizeof(Datum) * batch->count);
	Datum	   *sent_at = palloc(sizeof(Datum) * batch->count);
	bool	   *sent_at_null = palloc(sizeof(bool) * batch->count);
	Datum	   *receive_count = palloc(sizeof(Datum) * batch->count);
	bool	   *receive_count_null = palloc(sizeof(bool) * batch->count);
	Datum		params[8];
	int			rc;

	for (int i = 0; i < batch->count; i++)
	{
		SqsMessage *m = batch->items[i].message;

		if (!is_new[i] || batch->items[i].error == NULL)
			continue;
		message_id[n] = CStringGetTextDatum(batch->items[i].ledger_id);
		body[n] = PointerGetDatum(cstring_to_text_with_len(m->body, m->body_len));
		error[n] = CStringGetTextDatum(batch->items[i].error);
		received_at[n] = TimestampTzGetDatum(m->received_at);
		sent_at_null[n] = m->sent_timestamp_ms < 0 ||
			!codec_unix_ms_in_range(m->sent_timestamp_ms);
		sent_at[n] = TimestampTzGetDatum(sent_at_null[n] ? 0 :
										 codec_timestamptz(m->sent_timestamp_ms));
		/* the decoder says -1 when SQS did not say or said nonsense */
		receive_count_null[n] = m->receive_count < 0;
		receive_count[n] = Int32GetDatum(Max(m->receive_count, 0));
		n++;
	}
	if (n == 0)
		return;

	params[0] = make_array(TEXTOID, message_id, NULL, n);
	params[1] = make_array(TEXTOID, body, NULL, n);
	params[2] = make_array(TEXTOID, error, NULL, n);
	params[3] = make_array(TIMESTAMPTZOID, received_at, NULL, n);
	params[4] = make_array(TIMESTAMPTZOID, sent_at, sent_at_null, n);
	params[5] = make_array(INT4OID, receive_count, receive_count_null, n);
	params[6] = CStringGetTextDatum(queue_url);
	params[7] = CStringGetTextDatum(pipeline_name);
	rc = SPI_execute_plan(dead_letter_plan, params, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "dead letter insert failed: %s", SPI_result_code_string(rc));
}

/*
 * Store the first of the given distinct messages, as many as build_batch()
 * takes, adding to counts; returns how many.  Everything it allocates goes
 * with its SPI connection.
 */
static int
store_part(SinkTarget *sink, SqsMessage **messages, int count,
		   const char *queue_url, BatchCounts *counts, SinkLook look, void *look_arg)
{
	const CompiledMapping *mapping;
	Batch		batch;
	Oid			role;
	SecurityScope scope;
	bool	   *is_new;
	int			nest_level;
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	nest_level = security_pin_search_path();

	/*
	 * Deferred constraints are checked at the end of each statement, inside
	 * the subtransaction that can isolate a row, rather than at a commit
	 * that would fail the whole batch on every retry.
	 */
	if ((rc = SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0)) != SPI_OK_UTILITY)
		elog(ERROR, "SET CONSTRAINTS failed: %s", SPI_result_code_string(rc));

	mapping = sink_check(sink, RowExclusiveLock);
	prepare_plans(mapping);
	/* input functions may run the target's code (domain checks) */
	role = sink_store_role(sink, mapping->relid);
	security_enter(&scope, role);
	build_batch(&batch, mapping, messages, count, look, look_arg);
	security_leave(&scope);
	batch.role = role;

	is_new = palloc(sizeof(bool) * batch.count);
	if (run_isolated(store_all_new, &batch) == NULL)
	{
		memset(is_new, true, sizeof(bool) * batch.count);
		counts->inserted += batch.rows.nrows;
	}
	else
		store_carefully(&batch, is_new, counts);

	insert_dead_letters(&batch, is_new, queue_url, sink->name);
	for (int i = 0; i < batch.count; i++)
		if (is_new[i] && batch.items[i].error)
			counts->dead_lettered++;

	security_unpin_search_path(nest_level);
	SPI_finish();
	return batch.count;
}

/*
 * Store a batch of a pipeline in the current transaction, a part at a time
 * (build_batch()).  The caller commits, then deletes every message of the
 * batch from SQS (stored, dead-lettered or duplicate alike).  look(look_arg)
 * is called after each message mapped and each part stored: the caller's
 * network goes on meanwhile (see flow.c).
 */
void
sink_store_batch(SinkTarget *sink, SqsMessage *messages, int count,
				 const char *queue_url, BatchCounts *counts,
				 SinkLook look, void *look_arg)
{
	SqsMessage **distinct;
	int			ndistinct;

	memset(counts, 0, sizeof(*counts));
	counts->received = count;
	if (count == 0)
		return;

	ndistinct = distinct_messages(messages, count, &distinct);
	counts->duplicates = count - ndistinct;
	for (int stored = 0; stored < ndistinct;)
	{
		stored += store_part(sink, distinct + stored, ndistinct - stored,
							 queue_url, counts, look, look_arg);
		look(look_arg);
	}
	pfree(distinct);
}

/*
 * Delete ledger entries older than retention_minutes; returns how many.
 * SQS keeps a message at most 14 days, so an older id cannot come back.
 * Runs inside the caller's transaction and SPI connection.
 */
int64
sink_prune_ledger(int retention_minutes)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		params[1] = {Int32GetDatum(retention_minutes)};
	int			rc;

	int			nest_level = security_pin_search_path();

	rc = SPI_execute_with_args("DELETE FROM sqs_ingest.processed "
							   "WHERE processed_at OPERATOR(pg_catalog.<) "
							   "(pg_catalog.now() OPERATOR(pg_catalog.-) "
							   "pg_catalog.make_interval(mins => $1))",
							   1, argtypes, params, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "ledger pruning failed: %s", SPI_result_code_string(rc));
	security_unpin_search_path(nest_level);
	return (int64) SPI_processed;
}
