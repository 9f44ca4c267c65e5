/*-------------------------------------------------------------------------
 *
 * evaluate.c
 *	  A compiled mapping applied to a message: each rule's value found in
 *	  the message, made the column's Datum (convert.c), row by row.
 *
 * Applying a mapping never raises an error for a bad message: the result
 * is the rows, or the reason the message is a dead letter.  The body is
 * parsed by PostgreSQL's own JSON parser in its non-throwing form.  Paths
 * that are member chains ($.a.b, the common case) are read in that same
 * streaming pass, through a tree of the member names the mapping asks for;
 * no jsonb is built for them.  Other paths, explode, and member chains that
 * meet an array on the way (which lax mode unwraps) go through
 * PostgreSQL's jsonpath executor on a jsonb built only then.
 *
 * The caller maps as the role the target table's code runs as
 * (security.c), so that such code never runs with the rights of the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "mapping_internal.h"
#include "codecs.h"

const char *const mapping_kind_names[] = {
	"absent", "null", "a string", "a number", "a boolean", "an object",
	"an array", "a message field"
};

/* one message being mapped */
typedef struct MapContext
{
	const CompiledMapping *mapping;
	const MappingMessage *message;
	const char *doc_name;		/* "body", or "SNS message" */
	char	   *doc;
	int			doc_len;
	Captured   *slots;
	Jsonb	   *doc_jsonb;		/* built on first need */
	Jsonb	   *element;		/* explode: the element being mapped */
} MapContext;

/* SNS notifications: the two members read from the envelope */
static CapturePlan *sns_plan = NULL;
static const CaptureNode *sns_type;
static const CaptureNode *sns_message;

typedef struct PathCall
{
	Jsonb	   *target;
	JsonPath   *path;
	Jsonb	   *vars;
} PathCall;

static Datum
path_query_function(void *arg)
{
	PathCall   *call = arg;

	return DirectFunctionCall4(jsonb_path_query_array,
							   JsonbPGetDatum(call->target),
							   PointerGetDatum(call->path),
							   JsonbPGetDatum(call->vars),
							   BoolGetDatum(true));
}

static Datum
jsonb_input_function(void *arg)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum((char *) arg));
}


/* unwrap an SNS notification: the document is its Message */
static char *
unwrap_sns(MapContext *cx)
{
	Captured   *slots;
	JsonKind	top;
	char	   *error;

	if (sns_plan == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		CapturePlan *plan = palloc0(sizeof(CapturePlan));
		CaptureNode *root = palloc0(sizeof(CaptureNode));

		CaptureNode *type = capture_child(root, "Type");
		CaptureNode *message = capture_child(root, "Message");

		type->wanted = message->wanted = true;
		capture_number(root, plan);
		sns_type = type;
		sns_message = message;
		sns_plan = plan;
		MemoryContextSwitchTo(old);
	}

	error = capture_parse(sns_plan, cx->message->body, cx->message->body_len,
						  "body", &slots, &top);
	if (error)
		return error;
	if (top != JV_OBJECT || slots[sns_type->capture].kind != JV_STRING ||
		strcmp(slots[sns_type->capture].str, "Notification") != 0)
		return pstrdup("body is not an SNS notification: it needs \"Type\": \"Notification\"");
	if (slots[sns_message->capture].kind != JV_STRING)
		return psprintf("SNS notification's \"Message\" is %s, not a string",
						mapping_kind_names[slots[sns_message->capture].kind]);
	cx->doc = slots[sns_message->capture].str;
	cx->doc_len = slots[sns_message->capture].len;
	cx->doc_name = "SNS message";
	return NULL;
}


/* a JsonbValue as a MappingValue */
static void
value_from_jsonb(const JsonbValue *jv, MappingValue *v)
{
	switch (jv->type)
	{
		case jbvNull:
			v->kind = JV_NULL;
			break;
		case jbvString:
			v->kind = JV_STRING;
			v->str = jv->val.string.val;
			v->len = jv->val.string.len;
			break;
		case jbvNumeric:
			v->kind = JV_NUMBER;
			v->str = DatumGetCString(DirectFunctionCall1(numeric_out,
														 NumericGetDatum(jv->val.numeric)));
			v->len = strlen(v->str);
			break;
		case jbvBool:
			v->kind = JV_BOOLEAN;
			v->str = jv->val.boolean ? "true" : "false";
			v->len = strlen(v->str);
			break;
		case jbvBinary:
			v->kind = JsonContainerIsObject(jv->val.binary.data) ? JV_OBJECT : JV_ARRAY;
			v->str = JsonbToCString(NULL, jv->val.binary.data, jv->val.binary.len);
			v->len = strlen(v->str);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) jv->type);
	}
}

/* the document as jsonb, built once */
static char *
document_jsonb(MapContext *cx)
{
	Datum		result;
	char	   *error;

	if (cx->doc_jsonb)
		return NULL;
	error = mapping_call_builtin(jsonb_input_function, pnstrdup(cx->doc, cx->doc_len), &result);
	if (error)
		return psprintf("%s cannot be read as jsonb: %s", cx->doc_name, error);
	cx->doc_jsonb = DatumGetJsonbP(result);
	return NULL;
}

/* the items a path finds, as a jsonb array */
static char *
path_items(const MapContext *cx, JsonPath *path, Jsonb *target, Jsonb **items)
{
	PathCall	call = {target, path, cx->mapping->no_vars};
	Datum		result;
	char	   *error = mapping_call_builtin(path_query_function, &call, &result);

	if (error == NULL)
		*items = DatumGetJsonbP(result);
	return error;
}

/* the value of a path rule */
static char *
path_value(MapContext *cx, const MappingColumn *col, const MappingRule *rule,
		   MappingValue *v)
{
	Jsonb	   *target;
	Jsonb	   *items;
	char	   *error;
	int			n;

	if (cx->element == NULL && rule->node && !cx->slots[rule->node->capture].unwrap)
	{
		Captured   *slot = &cx->slots[rule->node->capture];

		v->kind = slot->kind;
		v->str = slot->str;
		v->len = slot->len;
		return NULL;
	}
	if (cx->element)
		target = cx->element;
	else
	{
		if ((error = document_jsonb(cx)) != NULL)
			return error;
		target = cx->doc_jsonb;
	}
	if ((error = path_items(cx, rule->path, target, &items)) != NULL)
		return psprintf("column \"%s\": %s: %s", col->name, rule->what, error);
	n = JsonContainerSize(&items->root);
	if (n == 1)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&items->root, 0);

		/* an array column takes one array found as it is */
		if (col->conversion != CONV_ARRAY ||
			(item->type == jbvBinary && JsonContainerIsArray(item->val.binary.data)))
		{
			value_from_jsonb(item, v);
			return NULL;
		}
	}
	if (n > 1 && col->conversion != CONV_ARRAY)
		return psprintf("column \"%s\": %s finds %d values, not one",
						col->name, rule->what, n);
	/* an array column takes the values found as its elements */
	if (n > 0)
	{
		v->kind = JV_ARRAY;
		v->str = JsonbToCString(NULL, &items->root, VARSIZE(items));
		v->len = strlen(v->str);
	}
	return NULL;
}

static void
message_value(const MapContext *cx, const MappingRule *rule, MappingValue *v)
{
	const MappingMessage *m = cx->message;

	switch (rule->field)
	{
		case FIELD_ID:
			v->kind = JV_STRING;
			v->str = (char *) m->message_id;
			v->len = strlen(m->message_id);
			break;
		case FIELD_BODY:
			/* JSON text, whatever its type: kept whole */
			v->kind = JV_OBJECT;
			v->str = m->body;
			v->len = m->body_len;
			break;
		case FIELD_SENT_AT:
		case FIELD_SENT_DATE:
			/* unknown, or beyond what PostgreSQL can store: null */
			if (m->sent_timestamp_ms < 0 ||
				!codec_unix_ms_in_range(m->sent_timestamp_ms))
			{
				v->kind = JV_NULL;
				break;
			}
			if (rule->field == FIELD_SENT_DATE)
			{
				v->kind = JV_DATUM;
				v->datum = DateADTGetDatum(codec_date_of_unix_ms(m->sent_timestamp_ms));
				v->datum_type = DATEOID;
				break;
			}
			v->kind = JV_DATUM;
			v->datum = TimestampTzGetDatum(codec_timestamptz(m->sent_timestamp_ms));
			v->datum_type = TIMESTAMPTZOID;
			break;
		case FIELD_RECEIVE_COUNT:
			v->kind = JV_DATUM;
			v->datum = Int32GetDatum(m->receive_count);
			v->datum_type = INT4OID;
			break;
		case FIELD_COUNT:
			elog(ERROR, "unexpected message field");
	}
}

/* evaluate a rule and its else: a value (maybe absent or null) or an error */
static char *
eval_rule(MapContext *cx, const MappingColumn *col, const MappingRule *rule,
		  MappingValue *v)
{
	char	   *error = NULL;

	memset(v, 0, sizeof(*v));
	v->rule = rule;
	switch (rule->source)
	{
		case SOURCE_PATH:
			error = path_value(cx, col, rule, v);
			break;
		case SOURCE_MESSAGE:
			message_value(cx, rule, v);
			break;
		case SOURCE_ATTRIBUTE:
			for (int i = 0; i < cx->message->nattributes; i++)
				if (strcmp(cx->message->attribute_names[i], rule->attribute) == 0)
				{
					v->kind = JV_STRING;
					v->str = cx->message->attribute_values[i];
					v->len = strlen(v->str);
				}
			break;
	}
	if (error)
		return error;
	if ((v->kind == JV_ABSENT || v->kind == JV_NULL) && rule->otherwise)
		return eval_rule(cx, col, rule->otherwise, v);
	if (rule->types && v->kind != JV_ABSENT && v->kind != JV_NULL &&
		!(rule->types & KIND_BIT(v->kind)))
		return psprintf("column \"%s\": %s must be %s, not %s", col->name,
						rule->what, rule->types_text, mapping_kind_names[v->kind]);
	return NULL;
}

/* room for one more row; returns its index */
static int
add_row(MappedRows *rows)
{
	if (rows->nrows == rows->capacity)
	{
		rows->capacity *= 2;
		for (int c = 0; c < rows->ncolumns; c++)
		{
			rows->values[c] = repalloc(rows->values[c], sizeof(Datum) * rows->capacity);
			rows->nulls[c] = repalloc(rows->nulls[c], sizeof(bool) * rows->capacity);
		}
	}
	return rows->nrows++;
}

void
mapping_rows_init(MappedRows *rows, int ncolumns)
{
	rows->context = CurrentMemoryContext;
	rows->message_context = AllocSetContextCreate(CurrentMemoryContext,
												  "sqs_ingest message",
												  ALLOCSET_DEFAULT_SIZES);
	rows->row_context = AllocSetContextCreate(CurrentMemoryContext,
											  "sqs_ingest row",
											  ALLOCSET_DEFAULT_SIZES);
	rows->ncolumns = ncolumns;
	rows->nrows = 0;
	rows->capacity = 16;
	rows->values = palloc(sizeof(Datum *) * Max(ncolumns, 1));
	rows->nulls = palloc(sizeof(bool *) * Max(ncolumns, 1));
	for (int c = 0; c < ncolumns; c++)
	{
		rows->values[c] = palloc(sizeof(Datum) * rows->capacity);
		rows->nulls[c] = palloc(sizeof(bool) * rows->capacity);
	}
}

/*
 * The most rows explode may make of one message: the pipeline's
 * max_rows_per_message, within sqs_ingest.max_rows_per_message (which a
 * superuser may have lowered since the pipeline was defined).
 */
static int
mapping_max_rows(const CompiledMapping *mapping)
{
	if (mapping->max_rows > 0)
		return Min(mapping->max_rows, mapping->max_rows_cap);
	return mapping->max_rows_cap;
}

/* evaluate one row's columns into rows, in the current memory context */
static char *
eval_row(MapContext *cx, MappedRows *rows, int row)
{
	const CompiledMapping *mapping = cx->mapping;

	for (int c = 0; c < mapping->ncolumns; c++)
	{
		const MappingColumn *col = &mapping->columns[c];
		MappingValue v;
		Datum		value = (Datum) 0;
		char	   *error;

		if ((error = eval_rule(cx, col, col->rule, &v)) != NULL)
			return error;
		if (col->rule->required &&
			(v.kind == JV_ABSENT || v.kind == JV_NULL ||
			 (v.kind == JV_STRING && v.len == 0)))
			return psprintf("column \"%s\": %s is %s", col->name, v.rule->what,
							v.kind == JV_ABSENT ? "missing" :
							v.kind == JV_NULL ? "null" : "empty");
		if (v.kind == JV_ABSENT || v.kind == JV_NULL)
			continue;
		if ((error = mapping_convert(cx->mapping, col, &v, &value)) != NULL)
			return error;
		/* the value alone outlives the row's memory */
		if (!col->typbyval)
		{
			MemoryContext old = MemoryContextSwitchTo(rows->context);

			value = datumCopy(value, false, col->typlen);
			MemoryContextSwitchTo(old);
		}
		rows->values[c][row] = value;
		rows->nulls[c][row] = false;
	}
	return NULL;
}

/*
 * Forget the rows from first_row on, of a message that is a dead letter,
 * and free their values.
 */
static void
drop_rows(const CompiledMapping *mapping, MappedRows *rows, int first_row)
{
	for (int c = 0; c < mapping->ncolumns; c++)
	{
		if (mapping->columns[c].typbyval)
			continue;
		for (int r = first_row; r < rows->nrows; r++)
			if (!rows->nulls[c][r])
				pfree(DatumGetPointer(rows->values[c][r]));
	}
	rows->nrows = first_row;
}

/*
 * Map one row: the document, or the current element of explode.  Whatever
 * evaluating it allocates goes with the row's memory context, reset once
 * its values are copied out; an error is returned in the caller's context.
 */
static char *
map_row(MapContext *cx, MappedRows *rows)
{
	int			row = add_row(rows);
	MemoryContext caller;
	char	   *error;

	/* a column is null until its value is made */
	for (int c = 0; c < rows->ncolumns; c++)
	{
		rows->values[c][row] = (Datum) 0;
		rows->nulls[c][row] = true;
	}
	caller = MemoryContextSwitchTo(rows->row_context);
	error = eval_row(cx, rows, row);

	MemoryContextSwitchTo(caller);
	if (error)
		error = pstrdup(error);
	MemoryContextReset(rows->row_context);
	return error;
}

/* map each element explode finds: one row each */
static char *
map_exploded(MapContext *cx, MappedRows *rows)
{
	const CompiledMapping *mapping = cx->mapping;
	Jsonb	   *items;
	char	   *error;
	int			nrows = 0;
	int			nitems;
	int			nfound = 0;
	int			max_rows = mapping_max_rows(mapping);

	if ((error = document_jsonb(cx)) != NULL ||
		(error = path_items(cx, mapping->explode, cx->doc_jsonb, &items)) != NULL)
		return error;

	/* counted before any row is made: a message past the cap makes none */
	nitems = JsonContainerSize(&items->root);
	for (int i = 0; i < nitems; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&items->root, i);

		nfound += (item->type == jbvBinary && JsonContainerIsArray(item->val.binary.data)) ?
			JsonContainerSize(item->val.binary.data) : 1;
		if (nfound > max_rows)
			return psprintf("%s finds more than %d elements in the %s, the most rows one message may make (max_rows_per_message)",
							mapping->explode_text, max_rows, cx->doc_name);
	}

	for (int i = 0; i < nitems; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&items->root, i);
		bool		is_array = item->type == jbvBinary &&
			JsonContainerIsArray(item->val.binary.data);
		int			nelements = is_array ? JsonContainerSize(item->val.binary.data) : 1;

		/* an array found is exploded too: $.Records works as $.Records[*] */
		for (int e = 0; e < nelements; e++)
		{
			JsonbValue *element = is_array ?
				getIthJsonbValueFromContainer(item->val.binary.data, e) : item;
			MemoryContext old = MemoryContextSwitchTo(rows->row_context);

			/* freed with the row's memory */
			cx->element = JsonbValueToJsonb(element);
			MemoryContextSwitchTo(old);
			if ((error = map_row(cx, rows)) != NULL)
				return psprintf("element %d of %s: %s", nrows + 1,
								mapping->explode_text, error);
			nrows++;
		}
	}
	if (nrows == 0)
		return psprintf("%s finds no element in the %s", mapping->explode_text,
						cx->doc_name);
	return NULL;
}

/* map one message, in the current memory context */
static char *
map_message(const CompiledMapping *mapping, const MappingMessage *message,
			MappedRows *rows)
{
	MapContext	cx = {0};
	int			first_row = rows->nrows;
	char	   *error = NULL;

	cx.mapping = mapping;
	cx.message = message;
	cx.doc = message->body;
	cx.doc_len = message->body_len;
	cx.doc_name = "body";

	if (mapping->envelope_sns)
		error = unwrap_sns(&cx);
	if (error == NULL && (mapping->reads_body || mapping->explode))
	{
		JsonKind	top;

		error = capture_parse(&mapping->captures, cx.doc, cx.doc_len,
							  cx.doc_name, &cx.slots, &top);
		if (error == NULL && mapping->explode == NULL && top != JV_OBJECT)
			error = psprintf("%s is %s, not a JSON object", cx.doc_name,
							 top == JV_ARRAY ? "a JSON array" :
							 top == JV_STRING ? "a JSON string" :
							 top == JV_NUMBER ? "a JSON number" :
							 top == JV_NULL ? "JSON null" : "a JSON boolean");
	}
	if (error == NULL)
		error = mapping->explode ? map_exploded(&cx, rows) : map_row(&cx, rows);
	if (error)
		drop_rows(mapping, rows, first_row);
	return error;
}

/*
 * Map one message to rows, appended to rows.  Returns NULL, or the reason
 * the message is a dead letter (and then no row of it is kept).  The body
 * must stay valid while the rows are used.  mapping_prepare() must have
 * succeeded for the current batch.  The message is mapped in rows' message
 * context, reset before this returns: only the rows' values and the reason
 * stay.
 */
char *
mapping_map(const CompiledMapping *mapping, const MappingMessage *message,
			MappedRows *rows)
{
	MemoryContext caller = MemoryContextSwitchTo(rows->message_context);
	char	   *error = map_message(mapping, message, rows);

	MemoryContextSwitchTo(caller);
	if (error)
		error = pstrdup(error);
	MemoryContextReset(rows->message_context);
	return error;
}
