/*-------------------------------------------------------------------------
 *
 * convert.c
 *	  A rule's value made the column's Datum, after the rule's transform.
 *
 * Values become Datums through the column type's input function (calls.c),
 * except for text, varchar and ISO dates, which are built directly, and
 * for JSON arrays into array columns, built element by element.  A message
 * field that is already a Datum of the column's type is taken as it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "mapping_internal.h"
#include "codecs.h"

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
		if ((error = mapping_call_input(&col->elem_input, str, len, &values[i])) != NULL)
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

/*
 * Turn a value into the column's Datum, through the transform of the rule
 * that made it; NULL or the reason it cannot be.
 */
char *
mapping_convert(const CompiledMapping *mapping, const MappingColumn *col,
				MappingValue *v, Datum *result)
{
	const MappingRule *rule = v->rule;
	char	   *error;

	if (v->kind == JV_DATUM)
	{
		Oid			outfunc;
		bool		isvarlena;

		if (rule->transform == NULL && datum_as_is(col, v, result))
			return NULL;
		/* otherwise as text, dates in ISO form whatever DateStyle says */
		if (v->datum_type == DATEOID)
			v->str = codec_iso_date(DatumGetDateADT(v->datum));
		else
		{
			getTypeOutputInfo(v->datum_type, &outfunc, &isvarlena);
			v->str = OidOutputFunctionCall(outfunc, v->datum);
		}
		v->kind = JV_STRING;
		v->len = strlen(v->str);
	}

	if (rule->transform)
	{
		bool		done = false;

		error = rule->transform->apply(mapping, col, v, result, &done);
		if (error || done)
			return error;
	}

	switch (col->conversion)
	{
		case CONV_TEXT:
			return text_datum(col, v, result);
		case CONV_JSON:
			{
				int			len;
				char	   *str = json_text(v, &len);

				error = mapping_call_input(&col->input, str, len, result);
				break;
			}
		case CONV_ARRAY:
			if (v->kind == JV_ARRAY)
				return array_datum(col, v, result);
			error = mapping_call_input(&col->input, v->str, v->len, result);
			break;
		case CONV_DATE:
			{
				DateADT		date;

				if (v->kind == JV_STRING && codec_parse_iso_date(v->str, v->len, &date))
				{
					*result = DateADTGetDatum(date);
					return NULL;
				}
			}
			/* FALLTHROUGH */
		default:
			error = mapping_call_input(&col->input, v->str, v->len, result);
			break;
	}
	if (error)
		return psprintf("column \"%s\": %s: %s", col->name, rule->what, error);
	return NULL;
}
