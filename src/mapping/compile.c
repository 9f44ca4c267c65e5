/*-------------------------------------------------------------------------
 *
 * mapping.c
 *	  The mapping language: which column of the target table gets what of
 *	  a message, compiled once against the table, applied to each message.
 *
 * A mapping is a jsonb object from column name to rule (README, Mapping).
 * Compiling it resolves every column (number, type, domain base type,
 * typmod), looks up the input functions and parses every SQL/JSON path,
 * so that nothing is looked up per message; any mistake is reported
 * naming the column.
 *
 * Applying it never raises an error for a bad message: the result is the
 * rows, or the reason the message is a dead letter.  The body is parsed by
 * PostgreSQL's own JSON parser in its non-throwing form.  Paths that are
 * member chains ($.a.b, the common case) are read in that same streaming
 * pass, through a tree of the member names the mapping asks for; no jsonb
 * is built for them.  Other paths, explode, and member chains that meet an
 * array on the way (which lax mode unwraps) go through PostgreSQL's
 * jsonpath executor on a jsonb built only then.
 *
 * Values become Datums through the column type's input function, except
 * for text, varchar and ISO dates, which are built directly.  Built-in
 * input functions report bad input by raising an error while holding no
 * resource, so their errors are caught without a subtransaction; other
 * input functions (extension types, and the domains, composites and ranges
 * whose input runs a user's code) run in one.  The caller maps as the role
 * the target table's code runs as (security.c), so that such code never
 * runs with the rights of the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "mapping.h"
#include "mask.h"
#include "openpgp.h"
#include "record.h"
#include "recovery.h"
#include "sqs_ingest.h"
#include "subxact.h"

/* the take-home's login events, in the mapping language */
static const char login_mapping[] =
"{\"user_id\": {\"path\": \"$.user_id\", \"type\": \"string\", \"required\": true},"
" \"device_type\": {\"path\": \"$.device_type\", \"type\": \"string\"},"
" \"masked_ip\": {\"path\": \"$.ip\", \"type\": \"string\", \"transform\": \"mask\"},"
" \"masked_device_id\": {\"path\": \"$.device_id\", \"type\": \"string\", \"transform\": \"mask\"},"
" \"locale\": {\"path\": \"$.locale\", \"type\": \"string\"},"
" \"app_version\": {\"path\": \"$.app_version\", \"transform\": \"version_number\"},"
" \"create_date\": {\"path\": \"$.create_date\", \"type\": \"string\","
" \"else\": {\"message\": \"sent_date\"}}}";

/* with a recovery key, and these columns in the table, the originals too */
static const char login_encrypted_ip[] =
"\"encrypted_ip\": {\"path\": \"$.ip\", \"type\": \"string\", \"transform\": \"encrypt\"}";
static const char login_encrypted_device_id[] =
"\"encrypted_device_id\": {\"path\": \"$.device_id\", \"type\": \"string\", \"transform\": \"encrypt\"}";

static const char *const kind_names[] = {
	"absent", "null", "a string", "a number", "a boolean", "an object",
	"an array", "a message field"
};

/* null is accepted whatever the type: it is a NULL */
static const char *const type_keywords[] = {
	NULL, NULL, "string", "number", "boolean", "object", "array", NULL
};

#define KIND_BIT(kind) (1 << (kind))

typedef enum RuleSource
{
	SOURCE_PATH,
	SOURCE_MESSAGE,
	SOURCE_ATTRIBUTE
} RuleSource;

typedef enum MessageField
{
	FIELD_ID,
	FIELD_SENT_AT,
	FIELD_SENT_DATE,
	FIELD_RECEIVE_COUNT,
	FIELD_BODY,
	FIELD_COUNT
} MessageField;

static const char *const field_names[FIELD_COUNT] = {
	"id", "sent_at", "sent_date", "receive_count", "body"
};

typedef enum Transform
{
	TRANSFORM_NONE,
	TRANSFORM_MASK,
	TRANSFORM_VERSION_NUMBER,
	TRANSFORM_ENCRYPT
} Transform;

struct MappingRule
{
	RuleSource	source;
	char	   *what;			/* how messages name the source: $.a.b, ... */
	JsonPath   *path;
	CaptureNode *node;			/* member chain read while parsing, or NULL */
	MessageField field;
	char	   *attribute;
	Transform	transform;
	int			types;			/* KIND_BITs accepted, 0 for any */
	char	   *types_text;		/* "a string or a number" */
	bool		required;
	MappingRule *otherwise;
};

/* a value a rule produced */
typedef struct MappingValue
{
	JsonKind	kind;
	char	   *str;			/* not NUL-terminated */
	int			len;
	Datum		datum;			/* JV_DATUM */
	Oid			datum_type;
	const MappingRule *rule;
} MappingValue;

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


/* ---------------------------------------------------------------------
 * Calling functions that report bad data by raising an error
 * ---------------------------------------------------------------------
 */

typedef Datum (*CatchingFunction) (void *arg);

/*
 * Errors that say nothing about the value: they are re-thrown, never turned
 * into a dead letter.  Cancel, shutdown and running out of resources are
 * the process's; a serialization failure or a deadlock is the
 * transaction's; an I/O error is the system's.  Anything else an input
 * function raises is about its input, the value of the message: extension
 * types often report bad input with elog(), as an internal error (XX000).
 */
static bool
is_process_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_OPERATOR_INTERVENTION ||
		category == ERRCODE_SYSTEM_ERROR ||
		category == ERRCODE_TRANSACTION_ROLLBACK;
}

/*
 * Built-in functions are called without a subtransaction, which is safe
 * only for the errors they raise about their input while holding nothing.
 * An internal error or a program limit may leave state behind that only an
 * abort cleans up: those are re-thrown too.
 */
static bool
is_builtin_process_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return is_process_error(sqlerrcode) ||
		category == ERRCODE_INTERNAL_ERROR ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_PROGRAM_LIMIT_EXCEEDED);
}

/* run a built-in function; NULL, or the message of the error it raised */
static char *
call_builtin(CatchingFunction fn, void *arg, Datum *result)
{
	MemoryContext context = CurrentMemoryContext;
	char	   *volatile error = NULL;

	PG_TRY();
	{
		*result = fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = subxact_copy_error();
		if (is_builtin_process_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		error = edata->message;
	}
	PG_END_TRY();
	return error;
}

typedef struct IsolatedCall
{
	CatchingFunction fn;
	void	   *arg;
	Datum		result;
} IsolatedCall;

static void
isolated_call(void *arg)
{
	IsolatedCall *call = arg;

	call->result = call->fn(call->arg);
}

/* run any function in a subtransaction; NULL, or the message of its error */
static char *
call_isolated(CatchingFunction fn, void *arg, Datum *result)
{
	IsolatedCall call = {fn, arg, (Datum) 0};
	ErrorData  *error = subxact_call(isolated_call, &call);

	if (error == NULL)
	{
		*result = call.result;
		return NULL;
	}
	if (is_process_error(error->sqlerrcode))
		ReThrowError(error);
	return error->message;
}

typedef struct InputCall
{
	const TypeInput *input;
	char	   *str;
} InputCall;

static Datum
input_function(void *arg)
{
	InputCall  *call = arg;

	return InputFunctionCall((FmgrInfo *) &call->input->func, call->str,
							 call->input->ioparam, call->input->typmod);
}

/* a value through a type's input function; NULL or the reason it failed */
static char *
call_input(const TypeInput *input, char *str, int len, Datum *result)
{
	InputCall	call = {input, pnstrdup(str, len)};

	if (input->builtin)
		return call_builtin(input_function, &call, result);
	return call_isolated(input_function, &call, result);
}

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


/* ---------------------------------------------------------------------
 * Compiling
 * ---------------------------------------------------------------------
 */

typedef struct Member
{
	char	   *key;
	JsonbValue	value;
} Member;

/* the members of a jsonb object, nested values as jbvBinary */
static int
object_members(JsonbContainer *container, Member **members)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbIteratorToken token;
	JsonbValue	v;
	int			n = 0;

	*members = palloc(sizeof(Member) * Max(JsonContainerSize(container), 1));
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
			(*members)[n].key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (token == WJB_VALUE)
			(*members)[n++].value = v;
	}
	return n;
}

static bool
is_object(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static char *
jsonb_string(const JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

pg_noreturn static void
rule_error(const MappingColumn *col, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid mapping for column \"%s\"", col->name),
			 errdetail("%s", detail)));
}

/*
 * Does a type's input function run nothing but built-in code?  True of a
 * base or enum type whose input function is built in, and of arrays of
 * those.  A domain runs its CHECK expressions, and composites, ranges and
 * multiranges run their members' input functions: any of them can be a
 * user's code, which must not run uncaught outside a subtransaction.
 */
static bool
input_runs_builtin_code(Oid typid)
{
	char		typtype = get_typtype(typid);
	Oid			func;
	Oid			ioparam;

	if (typtype != TYPTYPE_BASE && typtype != TYPTYPE_ENUM)
		return false;
	getTypeInputInfo(typid, &func, &ioparam);
	if (func >= FirstGenbkiObjectId)
		return false;
	if (func == F_ARRAY_IN)
		return input_runs_builtin_code(get_element_type(typid));
	return true;
}

/* a type's input function */
static void
lookup_input(TypeInput *input, Oid typid, int32 typmod)
{
	Oid			func;

	getTypeInputInfo(typid, &func, &input->ioparam);
	fmgr_info(func, &input->func);
	input->typid = typid;
	input->typmod = typmod;
	input->builtin = input_runs_builtin_code(typid);
}

static ColumnConversion
conversion_of(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			return CONV_TEXT;
		case INT4OID:
			return CONV_INT4;
		case INT8OID:
			return CONV_INT8;
		case NUMERICOID:
			return CONV_NUMERIC;
		case DATEOID:
			return CONV_DATE;
		case TIMESTAMPOID:
			return CONV_TIMESTAMP;
		case TIMESTAMPTZOID:
			return CONV_TIMESTAMPTZ;
		case JSONOID:
		case JSONBOID:
			return CONV_JSON;
		default:
			return OidIsValid(get_element_type(typid)) ? CONV_ARRAY : CONV_INPUT;
	}
}

/* read a column's type from the catalog */
static void
resolve_column(MappingColumn *col, Form_pg_attribute att, const char *relname)
{
	col->name = pstrdup(NameStr(att->attname));
	if (att->attgenerated != '\0')
		rule_error(col, psprintf("Column \"%s\" of %s is a generated column.",
								 col->name, relname));
	if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		rule_error(col, psprintf("Column \"%s\" of %s is an identity column GENERATED ALWAYS.",
								 col->name, relname));
	col->attnum = att->attnum;
	col->typid = att->atttypid;
	col->basetypmod = att->atttypmod;
	col->basetypid = getBaseTypeAndTypmod(col->typid, &col->basetypmod);
	col->conversion = conversion_of(col->basetypid);
	get_typlenbyval(col->basetypid, &col->typlen, &col->typbyval);
	col->max_chars = -1;
	if (col->basetypid == VARCHAROID && col->basetypmod >= VARHDRSZ)
		col->max_chars = col->basetypmod - VARHDRSZ;
	lookup_input(&col->input, col->basetypid, col->basetypmod);
	if (col->conversion == CONV_ARRAY)
	{
		Oid			elemtype = get_element_type(col->basetypid);

		/* elements get the array's typmod, as array_in gives them */
		lookup_input(&col->elem_input, elemtype, col->basetypmod);
		col->elem_conversion = conversion_of(elemtype);
		get_typlenbyvalalign(elemtype, &col->elem_len, &col->elem_byval,
							 &col->elem_align);
	}
}

static bool
is_text_like(const MappingColumn *col)
{
	return col->conversion == CONV_TEXT || col->basetypid == BPCHAROID;
}

/* the node of a member chain in the capture tree, created as needed */
static CaptureNode *
chain_node(CaptureNode *root, List *keys)
{
	ListCell   *lc;

	foreach(lc, keys)
		root = capture_child(root, lfirst(lc));
	return root;
}

/* the keys of a lax $.a.b..., or NIL if the path is anything else */
static List *
member_chain(JsonPath *path)
{
	JsonPathItem item;
	JsonPathItem next;
	List	   *keys = NIL;

	if ((path->header & JSONPATH_LAX) == 0)
		return NIL;
	jspInit(&item, path);
	if (item.type != jpiRoot)
		return NIL;
	while (jspGetNext(&item, &next))
	{
		int32		len;
		char	   *key;

		if (next.type != jpiKey)
			return NIL;
		key = jspGetString(&next, &len);
		keys = lappend(keys, pnstrdup(key, len));
		item = next;
	}
	return keys;
}

static Datum
jsonpath_input_function(void *arg)
{
	return DirectFunctionCall1(jsonpath_in, CStringGetDatum((char *) arg));
}

/* parse an SQL/JSON path, an error naming the column if it is not one */
static JsonPath *
compile_path(const MappingColumn *col, char *text, const char *what)
{
	Datum		path;
	char	   *error = call_builtin(jsonpath_input_function, text, &path);

	if (error && col)
		rule_error(col, psprintf("\"%s\" is not an SQL/JSON path: %s", text, error));
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: \"%s\" is not an SQL/JSON path", what, text),
				 errdetail("%s", error)));
	return DatumGetJsonPathP(path);
}

static void
compile_types(MappingColumn *col, MappingRule *rule, const JsonbValue *v)
{
	JsonbValue *names;
	int			n;
	StringInfoData text;

	if (v->type == jbvString)
	{
		names = (JsonbValue *) v;
		n = 1;
	}
	else if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
			 JsonContainerSize(v->val.binary.data) > 0)
	{
		n = JsonContainerSize(v->val.binary.data);
		names = palloc(sizeof(JsonbValue) * n);
		for (int i = 0; i < n; i++)
			names[i] = *getIthJsonbValueFromContainer(v->val.binary.data, i);
	}
	else
		rule_error(col, "\"type\" must be a JSON type name or an array of them.");

	initStringInfo(&text);
	for (int i = 0; i < n; i++)
	{
		int			kind = -1;

		if (names[i].type == jbvString)
			for (int k = JV_STRING; k <= JV_ARRAY; k++)
				if ((int) strlen(type_keywords[k]) == names[i].val.string.len &&
					strncmp(type_keywords[k], names[i].val.string.val,
							names[i].val.string.len) == 0)
					kind = k;
		if (kind < 0)
			rule_error(col, "\"type\" names one of string, number, boolean, object, array.");
		rule->types |= KIND_BIT(kind);
		appendStringInfo(&text, "%s%s", i == 0 ? "" : " or ", kind_names[kind]);
	}
	rule->types_text = text.data;
}

static MappingRule *compile_rule(CompiledMapping *mapping, MappingColumn *col,
								 const JsonbValue *v, bool top);

static void
compile_transform(MappingColumn *col, MappingRule *rule, const JsonbValue *v)
{
	char	   *name = v->type == jbvString ? jsonb_string(v) : "";

	if (strcmp(name, "mask") == 0)
	{
		if (!is_text_like(col))
			rule_error(col, psprintf("A mask is text; the column is %s.",
									 format_type_be(col->typid)));
		if (col->max_chars >= 0 && col->max_chars < MASK_HEX_LEN)
			rule_error(col, psprintf("A mask is %d characters; the column allows %d.",
									 MASK_HEX_LEN, col->max_chars));
		rule->transform = TRANSFORM_MASK;
	}
	else if (strcmp(name, "version_number") == 0)
	{
		if (col->conversion != CONV_INT4 && col->conversion != CONV_INT8 &&
			col->conversion != CONV_NUMERIC && !is_text_like(col))
			rule_error(col, psprintf("A version number goes into an integer, bigint, numeric or text column; the column is %s.",
									 format_type_be(col->typid)));
		rule->transform = TRANSFORM_VERSION_NUMBER;
	}
	else if (strcmp(name, "encrypt") == 0)
	{
		if (col->basetypid != BYTEAOID)
			rule_error(col, psprintf("An encrypted value is an OpenPGP message, bytea; the column is %s.",
									 format_type_be(col->typid)));
		rule->transform = TRANSFORM_ENCRYPT;
	}
	else
		rule_error(col, "\"transform\" is \"mask\", \"version_number\" or \"encrypt\".");
}

static void
compile_source(CompiledMapping *mapping, MappingColumn *col, MappingRule *rule,
			   const char *key, const JsonbValue *v)
{
	if (rule->what != NULL)
		rule_error(col, "A rule has one of \"path\", \"message\", \"message_attribute\".");
	if (v->type != jbvString || v->val.string.len == 0)
		rule_error(col, psprintf("\"%s\" must be a non-empty string.", key));

	if (strcmp(key, "path") == 0)
	{
		List	   *keys;

		rule->source = SOURCE_PATH;
		rule->what = jsonb_string(v);
		rule->path = compile_path(col, rule->what, NULL);
		keys = member_chain(rule->path);
		/* elements of explode are jsonb anyway */
		if (keys != NIL && mapping->explode == NULL)
		{
			rule->node = chain_node(mapping->captures.root, keys);
			rule->node->wanted = true;
		}
		mapping->reads_body = true;
	}
	else if (strcmp(key, "message") == 0)
	{
		char	   *name = jsonb_string(v);

		rule->source = SOURCE_MESSAGE;
		rule->field = FIELD_COUNT;
		for (int f = 0; f < FIELD_COUNT; f++)
			if (strcmp(name, field_names[f]) == 0)
				rule->field = f;
		if (rule->field == FIELD_COUNT)
			rule_error(col, "\"message\" is one of id, sent_at, sent_date, receive_count, body.");
		rule->what = psprintf("message %s", name);
	}
	else
	{
		rule->source = SOURCE_ATTRIBUTE;
		rule->attribute = jsonb_string(v);
		rule->what = psprintf("message attribute \"%s\"", rule->attribute);
		mapping->uses_attributes = true;
	}
}

/* compile one rule (an object) of a column */
static MappingRule *
compile_rule(CompiledMapping *mapping, MappingColumn *col, const JsonbValue *v,
			 bool top)
{
	MappingRule *rule = palloc0(sizeof(MappingRule));
	Member	   *members;
	int			n;
	const JsonbValue *types = NULL;

	if (!is_object(v))
		rule_error(col, "A rule is a JSON object such as {\"path\": \"$.field\"}.");
	n = object_members(v->val.binary.data, &members);
	for (int i = 0; i < n; i++)
	{
		const char *key = members[i].key;
		const JsonbValue *value = &members[i].value;

		if (strcmp(key, "path") == 0 || strcmp(key, "message") == 0 ||
			strcmp(key, "message_attribute") == 0)
			compile_source(mapping, col, rule, key, value);
		else if (strcmp(key, "transform") == 0)
			compile_transform(col, rule, value);
		else if (strcmp(key, "type") == 0)
			types = value;
		else if (strcmp(key, "required") == 0)
		{
			if (value->type != jbvBool)
				rule_error(col, "\"required\" must be true or false.");
			if (!top)
				rule_error(col, "\"required\" belongs to the column's rule, not to an \"else\".");
			rule->required = value->val.boolean;
		}
		else if (strcmp(key, "else") == 0)
			rule->otherwise = compile_rule(mapping, col, value, false);
		else
			rule_error(col, psprintf("Unknown key \"%s\"; a rule has path, message, message_attribute, transform, type, required, else.",
									 key));
	}
	if (rule->what == NULL)
		rule_error(col, "A rule has one of \"path\", \"message\", \"message_attribute\".");
	if (types)
	{
		if (rule->source != SOURCE_PATH)
			rule_error(col, "\"type\" applies to a \"path\" rule.");
		compile_types(col, rule, types);
	}
	if (rule->transform == TRANSFORM_MASK)
		mapping->uses_mask = true;
	if (rule->transform == TRANSFORM_ENCRYPT && mapping->encrypts == NULL)
		mapping->encrypts = col->name;
	return rule;
}

/* the rule of a column taken from the body member of the same name */
static MappingRule *
same_name_rule(CompiledMapping *mapping, MappingColumn *col)
{
	MappingRule *rule = palloc0(sizeof(MappingRule));
	StringInfoData path;

	initStringInfo(&path);
	appendStringInfoString(&path, "$.\"");
	for (const char *c = col->name; *c; c++)
	{
		if (*c == '"' || *c == '\\')
			appendStringInfoChar(&path, '\\');
		appendStringInfoChar(&path, *c);
	}
	appendStringInfoChar(&path, '"');

	rule->source = SOURCE_PATH;
	rule->what = path.data;
	rule->path = compile_path(col, path.data, NULL);
	if (mapping->explode == NULL)
	{
		rule->node = capture_child(mapping->captures.root, col->name);
		rule->node->wanted = true;
	}
	mapping->reads_body = true;
	return rule;
}

static int
compare_attnums(const void *a, const void *b)
{
	return ((const MappingColumn *) a)->attnum - ((const MappingColumn *) b)->attnum;
}

/* read envelope and explode from a pipeline's options */
static void
compile_options(CompiledMapping *mapping, Jsonb *options)
{
	JsonbValue *v;

	if (options == NULL || !JsonContainerIsObject(&options->root))
		return;
	v = getKeyJsonValueFromContainer(&options->root, "envelope", strlen("envelope"), NULL);
	if (v && v->type != jbvNull)
	{
		if (v->type != jbvString || strcmp(jsonb_string(v), "sns") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid envelope option"),
					 errdetail("The only envelope is \"sns\" (an SNS notification delivered to SQS)."),
					 errhint("Leave it out for messages that are the data themselves.")));
		mapping->envelope_sns = true;
	}
	v = getKeyJsonValueFromContainer(&options->root, "explode", strlen("explode"), NULL);
	if (v && v->type != jbvNull)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid explode option"),
					 errdetail("explode is an SQL/JSON path such as \"$.Records[*]\".")));
		mapping->explode_text = jsonb_string(v);
		mapping->explode = compile_path(NULL, mapping->explode_text, "explode option");
	}
	v = getKeyJsonValueFromContainer(&options->root, "recovery_key", strlen("recovery_key"), NULL);
	if (v && v->type != jbvNull)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid recovery_key option"),
					 errdetail("recovery_key is an ASCII-armored OpenPGP public key, as gpg --armor --export prints it.")));
		mapping->recovery_key = openpgp_public_key_parse(v->val.string.val,
														 v->val.string.len,
														 "pipeline option \"recovery_key\"");
	}
	/* checked against its bounds when the pipeline was defined (catalog.c) */
	v = getKeyJsonValueFromContainer(&options->root, "max_rows_per_message",
									 strlen("max_rows_per_message"), NULL);
	if (v && v->type == jbvNumeric)
		mapping->max_rows = DatumGetInt32(DirectFunctionCall1(numeric_int4,
															  NumericGetDatum(v->val.numeric)));
}

/*
 * A mapping that encrypts needs a key: the pipeline's, else the one of
 * sqs_ingest.recovery_key_file, which must be usable now.
 */
static void
check_recovery_key(const CompiledMapping *mapping)
{
	if (mapping->encrypts == NULL || mapping->recovery_key != NULL)
		return;
	if (!recovery_key_configured())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid mapping for column \"%s\"", mapping->encrypts),
				 errdetail("The column is encrypted, and there is no recovery key to encrypt to."),
				 errhint("Give the pipeline the option \"recovery_key\" (an ASCII-armored OpenPGP public key), or set sqs_ingest.recovery_key_file.")));
	(void) recovery_key_prepare();
}

/*
 * Compile a mapping (NULL: every column that has no default, from the body
 * member of its name) with the envelope and explode options, against the
 * table relid.  Errors name the column at fault.  Allocates in the current
 * memory context.
 */
CompiledMapping *
mapping_compile(Oid relid, Jsonb *mapping_jsonb, Jsonb *options)
{
	static uint64 generations = 0;
	CompiledMapping *mapping = palloc0(sizeof(CompiledMapping));
	Relation	rel;
	TupleDesc	tupdesc;
	const char *relname;

	mapping->generation = ++generations;

	rel = relation_open(relid, AccessShareLock);
	relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										 RelationGetRelationName(rel));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target %s is not a table", relname)));
	mapping->relid = relid;
	mapping->qualified_name = pstrdup(relname);
	mapping->captures.root = palloc0(sizeof(CaptureNode));
	mapping->no_vars = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	compile_options(mapping, options);
	tupdesc = RelationGetDescr(rel);

	if (mapping_jsonb == NULL)
	{
		mapping->columns = palloc0(sizeof(MappingColumn) * Max(tupdesc->natts, 1));
		for (int i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);
			MappingColumn *col = &mapping->columns[mapping->ncolumns];

			/* a column with a default, identity or generation keeps it */
			if (att->attisdropped || att->atthasdef || att->attidentity != '\0' ||
				att->attgenerated != '\0')
				continue;
			resolve_column(col, att, relname);
			col->rule = same_name_rule(mapping, col);
			mapping->ncolumns++;
		}
		if (mapping->ncolumns == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("table %s has no column to fill from the body", relname),
					 errdetail("Without a mapping, every column that has no default gets the body member of its name."),
					 errhint("Give a mapping.")));
	}
	else
	{
		Member	   *members;
		int			n;

		if (!JsonContainerIsObject(&mapping_jsonb->root) ||
			JsonContainerIsScalar(&mapping_jsonb->root))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a mapping is a JSON object from column name to rule")));
		n = object_members(&mapping_jsonb->root, &members);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a mapping names at least one column")));
		mapping->columns = palloc0(sizeof(MappingColumn) * n);
		for (int i = 0; i < n; i++)
		{
			MappingColumn *col = &mapping->columns[mapping->ncolumns++];
			Form_pg_attribute att = NULL;

			for (int a = 0; a < tupdesc->natts && att == NULL; a++)
			{
				Form_pg_attribute candidate = TupleDescAttr(tupdesc, a);

				if (!candidate->attisdropped &&
					strcmp(NameStr(candidate->attname), members[i].key) == 0)
					att = candidate;
			}
			if (att == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("invalid mapping for column \"%s\"", members[i].key),
						 errdetail("Table %s has no column \"%s\".", relname, members[i].key)));
			resolve_column(col, att, relname);
			col->rule = compile_rule(mapping, col, &members[i].value, true);
		}
		qsort(mapping->columns, mapping->ncolumns, sizeof(MappingColumn),
			  compare_attnums);
	}
	relation_close(rel, NoLock);
	check_recovery_key(mapping);

	capture_number(mapping->captures.root, &mapping->captures);
	return mapping;
}

/*
 * Make ready the keys a compiled mapping uses that come from settings:
 * the mask key, the recovery key of the setting.  Before each batch, so
 * that a reload takes effect at the next one.
 */
void
mapping_prepare(const CompiledMapping *mapping)
{
	if (mapping->uses_mask)
		mask_prepare();
	if (mapping->encrypts != NULL && mapping->recovery_key == NULL)
		(void) recovery_key_prepare();
}

/*
 * The login events' mapping (sqs_ingest_fetch_login_mapping() with
 * InvalidOid); for a table relid that has the columns encrypted_ip and
 * encrypted_device_id, with those encrypted, when sqs_ingest.recovery_key_file
 * is set.
 */
Jsonb *
mapping_login(Oid relid)
{
	Jsonb	   *mapping = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(login_mapping)));
	StringInfoData encrypted;

	if (!OidIsValid(relid) || !recovery_key_configured())
		return mapping;
	initStringInfo(&encrypted);
	appendStringInfoChar(&encrypted, '{');
	if (get_attnum(relid, "encrypted_ip") != InvalidAttrNumber)
		appendStringInfoString(&encrypted, login_encrypted_ip);
	if (get_attnum(relid, "encrypted_device_id") != InvalidAttrNumber)
		appendStringInfo(&encrypted, "%s%s", encrypted.len > 1 ? ", " : "",
						 login_encrypted_device_id);
	appendStringInfoChar(&encrypted, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(mapping),
											  DirectFunctionCall1(jsonb_in,
																  CStringGetDatum(encrypted.data))));
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
						kind_names[slots[sns_message->capture].kind]);
	cx->doc = slots[sns_message->capture].str;
	cx->doc_len = slots[sns_message->capture].len;
	cx->doc_name = "SNS message";
	return NULL;
}


/* ---------------------------------------------------------------------
 * Evaluating rules
 * ---------------------------------------------------------------------
 */

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
	error = call_builtin(jsonb_input_function, pnstrdup(cx->doc, cx->doc_len), &result);
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
	char	   *error = call_builtin(path_query_function, &call, &result);

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
				!record_unix_ms_in_range(m->sent_timestamp_ms))
			{
				v->kind = JV_NULL;
				break;
			}
			if (rule->field == FIELD_SENT_DATE)
			{
				v->kind = JV_DATUM;
				v->datum = DateADTGetDatum(record_date_of_unix_ms(m->sent_timestamp_ms));
				v->datum_type = DATEOID;
				break;
			}
			v->kind = JV_DATUM;
			v->datum = TimestampTzGetDatum(record_timestamptz(m->sent_timestamp_ms));
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
						rule->what, rule->types_text, kind_names[v->kind]);
	return NULL;
}

/* a value quoted for messages, cut short if long */
static char *
quoted(const MappingValue *v)
{
	if (v->len > 64)
		return psprintf("\"%.*s...\"", pg_mbcliplen(v->str, v->len, 64), v->str);
	return psprintf("\"%.*s\"", v->len, v->str);
}

static char *
text_datum(const MappingColumn *col, const MappingValue *v, Datum *result)
{
	if (col->max_chars >= 0 && v->len > col->max_chars)
	{
		int			nchars = pg_mbstrlen_with_len(v->str, v->len);

		if (nchars > col->max_chars)
			return psprintf("column \"%s\": %s is %d characters long, the column allows %d",
							col->name, v->rule->what, nchars, col->max_chars);
	}
	*result = PointerGetDatum(cstring_to_text_with_len(v->str, v->len));
	return NULL;
}

/* the JSON text of a value, for a json or jsonb column */
static char *
json_text(const MappingValue *v, int *len)
{
	StringInfoData buf;

	if (v->kind != JV_STRING)
	{
		*len = v->len;
		return v->str;
	}
	initStringInfo(&buf);
	escape_json(&buf, pnstrdup(v->str, v->len));
	*len = buf.len;
	return buf.data;
}

typedef struct ElementState
{
	JsonLexContext *lex;
	int			depth;
	int			n;
	int			capacity;
	MappingValue *elements;
} ElementState;

static MappingValue *
next_element(ElementState *s, JsonKind kind)
{
	MappingValue *e;

	if (s->n == s->capacity)
	{
		s->capacity *= 2;
		s->elements = repalloc(s->elements, sizeof(MappingValue) * s->capacity);
	}
	e = &s->elements[s->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	return e;
}

static void
element_container_start(ElementState *s, JsonKind kind)
{
	if (s->depth == 1)
		next_element(s, kind)->str = (char *) s->lex->token_start;
	s->depth++;
}

static JsonSemResult
element_object_start(void *state)
{
	element_container_start(state, JV_OBJECT);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
element_array_start(void *state)
{
	element_container_start(state, JV_ARRAY);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
element_container_end(void *state)
{
	ElementState *s = state;

	s->depth--;
	if (s->depth == 1)
	{
		MappingValue *e = &s->elements[s->n - 1];

		e->len = s->lex->prev_token_terminator - e->str;
	}
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
element_scalar(void *state, char *token, JsonTokenType tokentype)
{
	ElementState *s = state;

	if (s->depth == 1)
	{
		MappingValue *e = next_element(s, capture_scalar_kind(tokentype));

		e->str = token;
		e->len = token ? strlen(token) : 0;
	}
	return JSON_SEM_SUCCESS;
}

/* a JSON array into an array column, element by element */
static char *
array_datum(const MappingColumn *col, const MappingValue *v, Datum *result)
{
	JsonSemAction sem = {0};
	ElementState s = {0};
	Datum	   *values;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};

	s.lex = compat_json_lex(v->str, v->len, true);
	s.capacity = 8;
	s.elements = palloc(sizeof(MappingValue) * s.capacity);
	sem.semstate = &s;
	sem.object_start = element_object_start;
	sem.object_end = element_container_end;
	sem.array_start = element_array_start;
	sem.array_end = element_container_end;
	sem.scalar = element_scalar;
	if (pg_parse_json(s.lex, &sem) != JSON_SUCCESS)
		elog(ERROR, "array value is not valid JSON");
	compat_json_lex_free(s.lex);

	values = palloc(sizeof(Datum) * Max(s.n, 1));
	nulls = palloc(sizeof(bool) * Max(s.n, 1));
	for (int i = 0; i < s.n; i++)
	{
		MappingValue *e = &s.elements[i];
		char	   *str = e->str;
		int			len = e->len;
		char	   *error;

		nulls[i] = e->kind == JV_NULL;
		if (nulls[i])
			continue;
		if (col->elem_conversion == CONV_JSON)
			str = json_text(e, &len);
		if ((error = call_input(&col->elem_input, str, len, &values[i])) != NULL)
			return psprintf("column \"%s\": element %d of %s: %s", col->name, i + 1,
							v->rule->what, error);
	}
	dims[0] = s.n;
	*result = PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
												 col->elem_input.typid,
												 col->elem_len, col->elem_byval,
												 col->elem_align));
	return NULL;
}

/* a message field's own Datum, if the column takes it as it is */
static bool
datum_as_is(const MappingColumn *col, const MappingValue *v, Datum *result)
{
	if (v->datum_type == col->basetypid)
	{
		*result = v->datum;
		return true;
	}
	if (v->datum_type == DATEOID &&
		(col->conversion == CONV_TIMESTAMP || col->conversion == CONV_TIMESTAMPTZ))
	{
		/* midnight UTC of that date */
		*result = TimestampGetDatum((Timestamp) DatumGetDateADT(v->datum) * USECS_PER_DAY);
		return true;
	}
	return false;
}

/* turn a value into the column's Datum; NULL or the reason it cannot be */
static char *
convert(const MapContext *cx, const MappingColumn *col, MappingValue *v, Datum *result)
{
	const MappingRule *rule = v->rule;
	char	   *error;

	if (v->kind == JV_DATUM)
	{
		Oid			outfunc;
		bool		isvarlena;

		if (rule->transform == TRANSFORM_NONE && datum_as_is(col, v, result))
			return NULL;
		/* otherwise as text, dates in ISO form whatever DateStyle says */
		if (v->datum_type == DATEOID)
			v->str = record_iso_date(DatumGetDateADT(v->datum));
		else
		{
			getTypeOutputInfo(v->datum_type, &outfunc, &isvarlena);
			v->str = OidOutputFunctionCall(outfunc, v->datum);
		}
		v->kind = JV_STRING;
		v->len = strlen(v->str);
	}

	if (rule->transform == TRANSFORM_MASK)
	{
		char	   *hex = palloc(MASK_HEX_LEN + 1);

		if (v->kind == JV_OBJECT || v->kind == JV_ARRAY)
			return psprintf("column \"%s\": %s is %s, which cannot be masked",
							col->name, rule->what, kind_names[v->kind]);
		mask_value(v->str, v->len, hex);
		v->kind = JV_STRING;
		v->str = hex;
		v->len = MASK_HEX_LEN;
	}
	else if (rule->transform == TRANSFORM_ENCRYPT)
	{
		const CompiledMapping *mapping = cx->mapping;

		if (v->kind == JV_OBJECT || v->kind == JV_ARRAY)
			return psprintf("column \"%s\": %s is %s, which cannot be encrypted",
							col->name, rule->what, kind_names[v->kind]);
		if (v->len > OPENPGP_MAX_PLAINTEXT)
			return psprintf("column \"%s\": %s is %d bytes long, more than the %d bytes a value to encrypt may have",
							col->name, rule->what, v->len, OPENPGP_MAX_PLAINTEXT);
		*result = PointerGetDatum(openpgp_encrypt(mapping->recovery_key ?
												  mapping->recovery_key :
												  recovery_key_current(),
												  v->str, v->len));
		return NULL;
	}
	else if (rule->transform == TRANSFORM_VERSION_NUMBER)
	{
		int64		number;

		if (v->kind != JV_STRING && v->kind != JV_NUMBER)
			return psprintf("column \"%s\": %s must be a string or a number, not %s",
							col->name, rule->what, kind_names[v->kind]);
		/* a text column keeps the version as written */
		if (!is_text_like(col))
		{
			if (!record_parse_app_version(v->str, v->len, &number))
				return psprintf("column \"%s\": %s %s is not a version of the form M.m or M.m.p with parts 0 to 999",
								col->name, rule->what, quoted(v));
			if (col->conversion == CONV_INT4)
				*result = Int32GetDatum((int32) number);
			else if (col->conversion == CONV_INT8)
				*result = Int64GetDatum(number);
			else
				*result = NumericGetDatum(int64_to_numeric(number));
			return NULL;
		}
	}

	switch (col->conversion)
	{
		case CONV_TEXT:
			return text_datum(col, v, result);
		case CONV_JSON:
			{
				int			len;
				char	   *str = json_text(v, &len);

				error = call_input(&col->input, str, len, result);
				break;
			}
		case CONV_ARRAY:
			if (v->kind == JV_ARRAY)
				return array_datum(col, v, result);
			error = call_input(&col->input, v->str, v->len, result);
			break;
		case CONV_DATE:
			{
				DateADT		date;

				if (v->kind == JV_STRING && record_parse_iso_date(v->str, v->len, &date))
				{
					*result = DateADTGetDatum(date);
					return NULL;
				}
			}
			/* FALLTHROUGH */
		default:
			error = call_input(&col->input, v->str, v->len, result);
			break;
	}
	if (error)
		return psprintf("column \"%s\": %s: %s", col->name, rule->what, error);
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
		return Min(mapping->max_rows, sqs_ingest_max_rows_per_message);
	return sqs_ingest_max_rows_per_message;
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
		if ((error = convert(cx, col, &v, &value)) != NULL)
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
 * must stay valid while the rows are used.  mask_prepare() must have been
 * called if the mapping masks.  The message is mapped in rows' message
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
