/*-------------------------------------------------------------------------
 *
 * compile.c
 *	  The mapping language: which column of the target table gets what of
 *	  a message, compiled once against the table.
 *
 * A mapping is a jsonb object from column name to rule (docs/mapping.md).
 * Compiling it resolves every column (number, type, domain base type,
 * typmod), looks up the input functions, parses every SQL/JSON path and
 * checks each transform against its column (transforms.c), so that nothing
 * is looked up per message; any mistake is reported naming the column.
 * evaluate.c applies the compiled mapping to messages.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "mapping_internal.h"
#include "openpgp.h"

/* null is accepted whatever the type: it is a NULL */
static const char *const type_keywords[] = {
	NULL, NULL, "string", "number", "boolean", "object", "array", NULL
};

static const char *const field_names[FIELD_COUNT] = {
	"id", "sent_at", "sent_date", "receive_count", "body"
};

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
		mapping_rule_error(col, "Column \"%s\" of %s is a generated column.",
						   col->name, relname);
	if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		mapping_rule_error(col, "Column \"%s\" of %s is an identity column GENERATED ALWAYS.",
						   col->name, relname);
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

/*
 * parse an SQL/JSON path: a column's rule's (an error names the column),
 * or with col NULL the explode option's
 */
static JsonPath *
compile_path(const MappingColumn *col, char *text)
{
	Datum		path;
	char	   *error = mapping_call_builtin(jsonpath_input_function, text, &path);

	if (error && col)
		mapping_rule_error(col, "\"%s\" is not an SQL/JSON path: %s", text, error);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid explode option: \"%s\" is not an SQL/JSON path", text),
				 errdetail_internal("%s", error)));
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
		mapping_rule_error(col, "\"type\" must be a JSON type name or an array of them.");

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
			mapping_rule_error(col, "\"type\" names one of string, number, boolean, object, array.");
		rule->types |= KIND_BIT(kind);
		appendStringInfo(&text, "%s%s", i == 0 ? "" : " or ", mapping_kind_names[kind]);
	}
	rule->types_text = text.data;
}

static MappingRule *compile_rule(CompiledMapping *mapping, MappingColumn *col,
								 const JsonbValue *v, bool top);

static void
compile_source(CompiledMapping *mapping, MappingColumn *col, MappingRule *rule,
			   const char *key, const JsonbValue *v)
{
	if (rule->what != NULL)
		mapping_rule_error(col, "A rule has one of \"path\", \"message\", \"message_attribute\".");
	if (v->type != jbvString || v->val.string.len == 0)
		mapping_rule_error(col, "\"%s\" must be a non-empty string.", key);

	if (strcmp(key, "path") == 0)
	{
		List	   *keys;

		rule->source = SOURCE_PATH;
		rule->what = jsonb_string(v);
		rule->path = compile_path(col, rule->what);
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
			mapping_rule_error(col, "\"message\" is one of id, sent_at, sent_date, receive_count, body.");
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
		mapping_rule_error(col, "A rule is a JSON object such as {\"path\": \"$.field\"}.");
	n = object_members(v->val.binary.data, &members);
	for (int i = 0; i < n; i++)
	{
		const char *key = members[i].key;
		const JsonbValue *value = &members[i].value;

		if (strcmp(key, "path") == 0 || strcmp(key, "message") == 0 ||
			strcmp(key, "message_attribute") == 0)
			compile_source(mapping, col, rule, key, value);
		else if (strcmp(key, "transform") == 0)
			rule->transform = mapping_transform_compile(col, value);
		else if (strcmp(key, "type") == 0)
			types = value;
		else if (strcmp(key, "required") == 0)
		{
			if (value->type != jbvBool)
				mapping_rule_error(col, "\"required\" must be true or false.");
			if (!top)
				mapping_rule_error(col, "\"required\" belongs to the column's rule, not to an \"else\".");
			rule->required = value->val.boolean;
		}
		else if (strcmp(key, "else") == 0)
			rule->otherwise = compile_rule(mapping, col, value, false);
		else
			mapping_rule_error(col, "Unknown key \"%s\"; a rule has path, message, message_attribute, transform, type, required, else.",
							   key);
	}
	if (rule->what == NULL)
		mapping_rule_error(col, "A rule has one of \"path\", \"message\", \"message_attribute\".");
	if (types)
	{
		if (rule->source != SOURCE_PATH)
			mapping_rule_error(col, "\"type\" applies to a \"path\" rule.");
		compile_types(col, rule, types);
	}
	if (rule->transform && (rule->transform->needs & TRANSFORM_NEEDS_MASK))
		mapping->uses_mask = true;
	if (rule->transform && (rule->transform->needs & TRANSFORM_NEEDS_RECOVERY_KEY) &&
		mapping->encrypts == NULL)
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
	rule->path = compile_path(col, path.data);
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
		mapping->explode = compile_path(NULL, mapping->explode_text);
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
	mapping_check_recovery_key(mapping);

	capture_number(mapping->captures.root, &mapping->captures);
	return mapping;
}
