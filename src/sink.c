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
 * rejects a row (constraint, trigger, domain check), it is rolled back and
 * the rows are inserted one by one, each in its own subtransaction, so
 * that only the rejected rows become dead letters.  Errors that are not
 * about a row (table missing, disk full, permissions) fail the batch, and
 * its messages stay in SQS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "mask.h"
#include "sink.h"
#include "sqs_ingest.h"

#define TARGET_DDL \
	"CREATE TABLE %s (user_id varchar(128), device_type varchar(32), " \
	"masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32), " \
	"app_version integer, create_date date);"

/* plans kept across batches; re-prepared when the target changes */
static SPIPlanPtr insert_plan = NULL;
static TargetTable insert_plan_target;
static SPIPlanPtr ledger_plan = NULL;
static SPIPlanPtr dead_letter_plan = NULL;

static void
target_error(const char *relname, const char *message, const char *detail,
			 bool missing)
{
	ereport(ERROR,
			(errcode(missing ? ERRCODE_UNDEFINED_TABLE : ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("sqs_ingest target table %s %s", relname, message),
			 detail ? errdetail("%s", detail) : 0,
			 missing ?
			 errhint("Create it, for example: " TARGET_DDL, relname) :
			 errhint("sqs_ingest expects a table like: " TARGET_DDL, relname)));
}

/* kind of a column's base type, or -1 if unusable for that column */
static int
column_kind(TargetColumnId id, Oid basetypid)
{
	bool		textual = (basetypid == TEXTOID || basetypid == VARCHAROID ||
						   basetypid == BPCHAROID);

	if (textual)
		return CK_TEXT;
	if (id == TC_APP_VERSION)
	{
		if (basetypid == INT4OID)
			return CK_INT4;
		if (basetypid == INT8OID)
			return CK_INT8;
		if (basetypid == NUMERICOID)
			return CK_NUMERIC;
	}
	if (id == TC_CREATE_DATE)
	{
		if (basetypid == DATEOID)
			return CK_DATE;
		if (basetypid == TIMESTAMPOID)
			return CK_TIMESTAMP;
		if (basetypid == TIMESTAMPTZOID)
			return CK_TIMESTAMPTZ;
	}
	return -1;
}

/*
 * Resolve sqs_ingest.target_table and read its columns from the catalog,
 * taking the lock the insert will need.  Errors say what to fix.
 */
void
sink_lookup_target(TargetTable *target, LOCKMODE lockmode)
{
	List	   *names;
	RangeVar   *rv;
	Oid			relid;
	char		relkind;
	const char *relname = sqs_ingest_target_table;

	names = stringToQualifiedNameList(relname);
	rv = makeRangeVarFromNameList(names);
	relid = RangeVarGetRelid(rv, lockmode, true);
	if (!OidIsValid(relid))
		target_error(relname, "does not exist", NULL, true);
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		target_error(relname, "is not a table", NULL, false);

	memset(target, 0, sizeof(*target));
	target->relid = relid;
	target->qualified_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														get_rel_name(relid));

	for (int i = 0; i < TC_COUNT; i++)
	{
		TargetColumn *col = &target->col[i];
		AttrNumber	attnum = get_attnum(relid, target_column_names[i]);
		Oid			collation;
		int			kind;

		if (attnum == InvalidAttrNumber || attnum < 0)
			target_error(target->qualified_name,
						 psprintf("has no column \"%s\"", target_column_names[i]),
						 NULL, false);
		get_atttypetypmodcoll(relid, attnum, &col->typid, &col->basetypmod, &collation);
		col->basetypid = getBaseTypeAndTypmod(col->typid, &col->basetypmod);
		kind = column_kind((TargetColumnId) i, col->basetypid);
		if (kind < 0)
			target_error(target->qualified_name,
						 psprintf("has column \"%s\" of unsupported type %s",
								  target_column_names[i], format_type_be(col->typid)),
						 i == TC_APP_VERSION ?
						 "app_version must be integer, bigint, numeric or text-like." :
						 i == TC_CREATE_DATE ?
						 "create_date must be date, timestamp, timestamptz or text-like." :
						 "This column must be text, varchar or char.", false);
		col->kind = (ColumnKind) kind;
		col->max_chars = -1;
		if (col->kind == CK_TEXT && col->basetypid != TEXTOID && col->basetypmod >= VARHDRSZ)
			col->max_chars = col->basetypmod - VARHDRSZ;
		if ((i == TC_MASKED_IP || i == TC_MASKED_DEVICE_ID) &&
			col->max_chars >= 0 && col->max_chars < MASK_HEX_LEN)
			target_error(target->qualified_name,
						 psprintf("has column \"%s\" too short for a mask",
								  target_column_names[i]),
						 psprintf("A mask is %d characters; the column allows %d.",
								  MASK_HEX_LEN, col->max_chars), false);
	}
}

static bool
same_target(const TargetTable *a, const TargetTable *b)
{
	if (a->relid != b->relid)
		return false;
	for (int i = 0; i < TC_COUNT; i++)
		if (a->col[i].typid != b->col[i].typid ||
			a->col[i].basetypmod != b->col[i].basetypmod)
			return false;
	return true;
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
prepare_plans(const TargetTable *target)
{
	if (insert_plan == NULL || !same_target(&insert_plan_target, target))
	{
		StringInfoData sql;
		Oid			argtypes[TC_COUNT];

		if (insert_plan)
			SPI_freeplan(insert_plan);
		insert_plan = NULL;

		initStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO %s (", target->qualified_name);
		for (int i = 0; i < TC_COUNT; i++)
		{
			appendStringInfo(&sql, "%s%s", i ? ", " : "",
							 quote_identifier(target_column_names[i]));
			argtypes[i] = get_array_type(target->col[i].basetypid);
			if (!OidIsValid(argtypes[i]))
				elog(ERROR, "type %u has no array type", target->col[i].basetypid);
		}
		appendStringInfoString(&sql, ") SELECT * FROM unnest(");
		for (int i = 0; i < TC_COUNT; i++)
			appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
		appendStringInfoChar(&sql, ')');

		insert_plan = prepare_kept(sql.data, TC_COUNT, argtypes);
		insert_plan_target = *target;
		insert_plan_target.qualified_name = NULL;
	}

	if (ledger_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTARRAYOID};

		/* positions (1-based) of the ids that were not in the ledger yet */
		ledger_plan = prepare_kept("WITH ids AS (SELECT * FROM unnest($1) WITH ORDINALITY AS u(message_id, position)), "
								   "fresh AS (INSERT INTO sqs_ingest.processed (message_id, processed_at) "
								   "SELECT message_id, now() FROM ids "
								   "ON CONFLICT (message_id) DO NOTHING RETURNING message_id) "
								   "SELECT ids.position::int4 FROM ids JOIN fresh USING (message_id)",
								   1, argtypes);
	}

	if (dead_letter_plan == NULL)
	{
		Oid			argtypes[7] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
								   TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
		INT4ARRAYOID, TEXTOID};

		dead_letter_plan = prepare_kept("INSERT INTO sqs_ingest.dead_letters "
										"(message_id, body, error, received_at, sent_at, receive_count, queue_url) "
										"SELECT m, b, e, r, s, c, $7 FROM unnest($1, $2, $3, $4, $5, $6) AS u(m, b, e, r, s, c) "
										"ON CONFLICT (message_id) DO NOTHING",
										7, argtypes);
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

/* rows of the batch in column-major order */
typedef struct RowSet
{
	int			count;
	Datum	   *values[TC_COUNT];
	bool	   *nulls[TC_COUNT];
} RowSet;

typedef struct InsertArgs
{
	const TargetTable *target;
	RowSet	   *rows;
	int			first;
	int			count;
} InsertArgs;

static void
insert_rows(void *arg)
{
	InsertArgs *args = arg;
	Datum		params[TC_COUNT];
	int			rc;

	for (int c = 0; c < TC_COUNT; c++)
		params[c] = make_array(args->target->col[c].basetypid,
							   args->rows->values[c] + args->first,
							   args->rows->nulls[c] + args->first, args->count);
	rc = SPI_execute_plan(insert_plan, params, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "insert into the target table failed: %s",
			 SPI_result_code_string(rc));
}

/* is this an error about the row itself, rather than about the database? */
static bool
is_row_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		category == ERRCODE_WITH_CHECK_OPTION_VIOLATION ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_RAISE_EXCEPTION);
}

/*
 * Run fn in a subtransaction.  Returns NULL if it succeeded, or the error
 * if it failed on a row; any other error is re-thrown after rollback.
 */
static ErrorData *
run_isolated(void (*fn) (void *), void *arg)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
		if (!is_row_error(error->sqlerrcode))
			ReThrowError(error);
	}
	PG_END_TRY();
	return error;
}

/* dead letters accumulated for the batch */
typedef struct DeadLetters
{
	int			count;
	Datum	   *message_id;
	Datum	   *body;
	Datum	   *error;
	Datum	   *received_at;
	Datum	   *sent_at;
	bool	   *sent_at_null;
	Datum	   *receive_count;
} DeadLetters;

static void
add_dead_letter(DeadLetters *dl, const SqsMessage *m, const char *error)
{
	int			i = dl->count++;

	dl->message_id[i] = CStringGetTextDatum(m->message_id);
	dl->body[i] = PointerGetDatum(cstring_to_text_with_len(m->body, m->body_len));
	dl->error[i] = CStringGetTextDatum(error);
	dl->received_at[i] = TimestampTzGetDatum(m->received_at);
	dl->sent_at_null[i] = m->sent_timestamp_ms < 0;
	dl->sent_at[i] = TimestampTzGetDatum(dl->sent_at_null[i] ? 0 :
										 time_t_to_timestamptz(m->sent_timestamp_ms / 1000) +
										 (m->sent_timestamp_ms % 1000) * 1000);
	dl->receive_count[i] = Int32GetDatum(m->receive_count);
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
	return m->received_at / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

static char *
describe_row_error(ErrorData *error)
{
	return psprintf("target table rejected the row: %s%s%s", error->message,
					error->detail ? " " : "", error->detail ? error->detail : "");
}

static int
compare_message_ids(const void *a, const void *b)
{
	const SqsMessage *const *ma = a;
	const SqsMessage *const *mb = b;

	return strcmp((*ma)->message_id, (*mb)->message_id);
}

/*
 * Ledger the batch; returns how many are new and sets is_new[i] for them.
 * A message id seen twice in the same batch (redelivered while the batch
 * was filling) counts once.
 */
static int
ledger_batch(SqsMessage *messages, int count, bool *is_new)
{
	SqsMessage **sorted = palloc(sizeof(SqsMessage *) * count);
	Datum	   *ids = palloc(sizeof(Datum) * count);
	int		   *positions = palloc(sizeof(int) * count);
	int			nids = 0;
	int			rc;
	Datum		param;

	for (int i = 0; i < count; i++)
		sorted[i] = &messages[i];
	qsort(sorted, count, sizeof(SqsMessage *), compare_message_ids);
	for (int i = 0; i < count; i++)
	{
		is_new[i] = false;
		if (i > 0 && strcmp(sorted[i]->message_id, sorted[i - 1]->message_id) == 0)
			continue;
		positions[nids] = sorted[i] - messages;
		ids[nids++] = CStringGetTextDatum(sorted[i]->message_id);
	}

	param = make_array(TEXTOID, ids, NULL, nids);
	rc = SPI_execute_plan(ledger_plan, &param, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "ledger insert failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int32		position = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														   SPI_tuptable->tupdesc, 1,
														   &isnull));

		is_new[positions[position - 1]] = true;
	}
	return (int) SPI_processed;
}

static void
insert_dead_letters(DeadLetters *dl, const char *queue_url)
{
	Datum		params[7];
	int			rc;

	if (dl->count == 0)
		return;
	params[0] = make_array(TEXTOID, dl->message_id, NULL, dl->count);
	params[1] = make_array(TEXTOID, dl->body, NULL, dl->count);
	params[2] = make_array(TEXTOID, dl->error, NULL, dl->count);
	params[3] = make_array(TIMESTAMPTZOID, dl->received_at, NULL, dl->count);
	params[4] = make_array(TIMESTAMPTZOID, dl->sent_at, dl->sent_at_null, dl->count);
	params[5] = make_array(INT4OID, dl->receive_count, NULL, dl->count);
	params[6] = CStringGetTextDatum(queue_url);
	rc = SPI_execute_plan(dead_letter_plan, params, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "dead letter insert failed: %s", SPI_result_code_string(rc));
}

/*
 * Store a batch in the current transaction.  The caller commits, then
 * deletes every message of the batch from SQS (stored, dead-lettered or
 * duplicate alike).  mask_prepare() must have been called.
 */
void
sink_store_batch(SqsMessage *messages, int count, const char *queue_url,
				 BatchCounts *counts)
{
	TargetTable target;
	bool	   *is_new = palloc(sizeof(bool) * count);
	int		   *row_message = palloc(sizeof(int) * count);
	RowSet		rows;
	DeadLetters dl;
	int			nnew;
	int			rc;

	memset(counts, 0, sizeof(*counts));
	counts->received = count;
	if (count == 0)
		return;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));

	sink_lookup_target(&target, RowExclusiveLock);
	prepare_plans(&target);

	nnew = ledger_batch(messages, count, is_new);
	counts->duplicates = count - nnew;

	rows.count = 0;
	for (int c = 0; c < TC_COUNT; c++)
	{
		rows.values[c] = palloc(sizeof(Datum) * count);
		rows.nulls[c] = palloc(sizeof(bool) * count);
	}
	dl.count = 0;
	dl.message_id = palloc(sizeof(Datum) * count);
	dl.body = palloc(sizeof(Datum) * count);
	dl.error = palloc(sizeof(Datum) * count);
	dl.received_at = palloc(sizeof(Datum) * count);
	dl.sent_at = palloc(sizeof(Datum) * count);
	dl.sent_at_null = palloc(sizeof(bool) * count);
	dl.receive_count = palloc(sizeof(Datum) * count);

	for (int i = 0; i < count; i++)
	{
		Datum		values[TC_COUNT];
		bool		nulls[TC_COUNT];
		char	   *error;

		if (!is_new[i])
			continue;
		error = record_map(&target, messages[i].body, messages[i].body_len,
						   sent_or_received_ms(&messages[i]), values, nulls);
		if (error)
		{
			add_dead_letter(&dl, &messages[i], error);
			continue;
		}
		for (int c = 0; c < TC_COUNT; c++)
		{
			rows.values[c][rows.count] = values[c];
			rows.nulls[c][rows.count] = nulls[c];
		}
		row_message[rows.count++] = i;
	}

	if (rows.count > 0)
	{
		InsertArgs	args = {&target, &rows, 0, rows.count};

		if (run_isolated(insert_rows, &args) == NULL)
			counts->inserted = rows.count;
		else
		{
			/* some row was rejected: find which, one subtransaction each */
			for (int r = 0; r < rows.count; r++)
			{
				ErrorData  *error;

				args.first = r;
				args.count = 1;
				error = run_isolated(insert_rows, &args);
				if (error == NULL)
					counts->inserted++;
				else
				{
					add_dead_letter(&dl, &messages[row_message[r]],
									describe_row_error(error));
					FreeErrorData(error);
				}
			}
		}
	}

	insert_dead_letters(&dl, queue_url);
	counts->dead_lettered = dl.count;

	SPI_finish();
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

	rc = SPI_execute_with_args("DELETE FROM sqs_ingest.processed "
							   "WHERE processed_at < now() - make_interval(mins => $1)",
							   1, argtypes, params, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "ledger pruning failed: %s", SPI_result_code_string(rc));
	return (int64) SPI_processed;
}
