/*-------------------------------------------------------------------------
 *
 * record.c
 *	  Turn a message body into a row of the target table, or into the
 *	  precise reason it cannot be one.
 *
 * Bodies are parsed by PostgreSQL's own JSON parser (pg_parse_json, the
 * parser under json_in and jsonb_in) in its non-throwing form: a malformed
 * body must become a dead letter, never an error that would fail the whole
 * batch.  Semantic callbacks pick up the top-level fields the mapping
 * needs, so no jsonb value is built for a body.  The parser's only
 * throwing path is its stack-depth check, which is why nesting depth is
 * measured first, with the JSON lexer, whenever a body could be deep.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

#include "compat.h"
#include "mask.h"
#include "record.h"
#include "sqs_decode.h"

/* longest excerpt of a value quoted in a dead-letter reason, in bytes */
#define REASON_EXCERPT_BYTES 64

const char *const target_column_names[TC_COUNT] = {
	"user_id", "device_type", "masked_ip", "masked_device_id",
	"locale", "app_version", "create_date"
};

/* fields of a login event */
typedef enum EventField
{
	EF_USER_ID,
	EF_DEVICE_TYPE,
	EF_IP,
	EF_DEVICE_ID,
	EF_LOCALE,
	EF_APP_VERSION,
	EF_CREATE_DATE,
	EF_COUNT
} EventField;

static const char *const event_field_names[EF_COUNT] = {
	"user_id", "device_type", "ip", "device_id",
	"locale", "app_version", "create_date"
};

/* JSON type of a field's value as the parser saw it */
typedef enum EventValueType
{
	EV_ABSENT,
	EV_STRING,
	EV_NUMBER,
	EV_BOOLEAN,
	EV_NULL,
	EV_OBJECT,
	EV_ARRAY
} EventValueType;

static const char *const event_value_type_names[] = {
	"absent", "a string", "a number", "a boolean", "null", "an object",
	"an array"
};

typedef struct EventValue
{
	EventValueType type;
	char	   *str;			/* de-escaped text of a string or number */
	int			len;
} EventValue;

typedef struct EventParseState
{
	EventValue	field[EF_COUNT];
	int			depth;			/* current nesting; 1 = inside the body */
	int			current;		/* EventField of the member being parsed */
	EventValueType top_type;	/* type of the body itself */
} EventParseState;

static JsonSemResult
event_object_start(void *state)
{
	EventParseState *s = state;

	if (s->depth == 0)
		s->top_type = EV_OBJECT;
	else if (s->depth == 1 && s->current >= 0)
		s->field[s->current].type = EV_OBJECT;
	s->depth++;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
event_array_start(void *state)
{
	EventParseState *s = state;

	if (s->depth == 0)
		s->top_type = EV_ARRAY;
	else if (s->depth == 1 && s->current >= 0)
		s->field[s->current].type = EV_ARRAY;
	s->depth++;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
event_struct_end(void *state)
{
	EventParseState *s = state;

	s->depth--;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
event_field_start(void *state, char *fname, bool isnull)
{
	EventParseState *s = state;

	if (s->depth != 1)
		return JSON_SEM_SUCCESS;
	s->current = -1;
	for (int i = 0; i < EF_COUNT; i++)
	{
		if (strcmp(fname, event_field_names[i]) == 0)
		{
			/* a repeated key replaces the earlier one, as in jsonb */
			s->current = i;
			s->field[i].type = EV_NULL;
			s->field[i].str = NULL;
			s->field[i].len = 0;
			break;
		}
	}
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
event_scalar(void *state, char *token, JsonTokenType tokentype)
{
	EventParseState *s = state;
	EventValue *v;

	if (s->depth == 0)
	{
		s->top_type = tokentype == JSON_TOKEN_STRING ? EV_STRING :
			tokentype == JSON_TOKEN_NUMBER ? EV_NUMBER :
			tokentype == JSON_TOKEN_NULL ? EV_NULL : EV_BOOLEAN;
		return JSON_SEM_SUCCESS;
	}
	if (s->depth != 1 || s->current < 0)
		return JSON_SEM_SUCCESS;

	v = &s->field[s->current];
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			v->type = EV_STRING;
			break;
		case JSON_TOKEN_NUMBER:
			v->type = EV_NUMBER;
			break;
		case JSON_TOKEN_NULL:
			v->type = EV_NULL;
			return JSON_SEM_SUCCESS;
		default:
			v->type = EV_BOOLEAN;
			return JSON_SEM_SUCCESS;
	}
	v->str = token;
	v->len = strlen(token);
	return JSON_SEM_SUCCESS;
}

/*
 * Refuse JSON nested deeper than RECORD_MAX_JSON_DEPTH, whose parse could
 * exhaust the stack; what names the document in the reason returned.
 */
char *
record_check_depth(char *json, int len, const char *what)
{
	if (sqs_json_nests_deeper_than(json, len, RECORD_MAX_JSON_DEPTH))
		return psprintf("%s nests JSON deeper than %d levels", what,
						RECORD_MAX_JSON_DEPTH);
	return NULL;
}

/* parse a body into its top-level fields; NULL or the reason it failed */
static char *
parse_event(char *body, int len, EventParseState *state)
{
	JsonSemAction sem = {0};
	JsonLexContext *lex;
	JsonParseErrorType rc;
	char	   *error;

	memset(state, 0, sizeof(*state));
	state->current = -1;
	state->top_type = EV_ABSENT;

	if ((error = record_check_depth(body, len, "body")) != NULL)
		return error;

	sem.semstate = state;
	sem.object_start = event_object_start;
	sem.object_end = event_struct_end;
	sem.array_start = event_array_start;
	sem.array_end = event_struct_end;
	sem.object_field_start = event_field_start;
	sem.scalar = event_scalar;

	lex = compat_json_lex(body, len, true);
	rc = pg_parse_json(lex, &sem);
	if (rc != JSON_SUCCESS)
		error = psprintf("body is not valid JSON: %s", json_errdetail(rc, lex));
	compat_json_lex_free(lex);
	if (error)
		return error;
	if (state->top_type != EV_OBJECT)
		return psprintf("body is %s, not a JSON object",
						state->top_type == EV_ARRAY ? "a JSON array" :
						state->top_type == EV_STRING ? "a JSON string" :
						state->top_type == EV_NUMBER ? "a JSON number" :
						state->top_type == EV_NULL ? "JSON null" :
						"a JSON boolean");
	return NULL;
}

/*
 * Encode "M.m.p" or "M.m" (each part 0..999, one to three digits) as
 * M*1000000 + m*1000 + p.  The encoding is monotonic in version order and
 * injective on versions compared part by part, unlike stripping the dots.
 */
bool
record_parse_app_version(const char *str, int len, int64 *result)
{
	int64		parts[3] = {0, 0, 0};
	int			nparts = 0;
	int			i = 0;

	while (nparts < 3)
	{
		int			digits = 0;
		int64		part = 0;

		while (i < len && str[i] >= '0' && str[i] <= '9' && digits < 4)
		{
			part = part * 10 + (str[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3)
			return false;
		parts[nparts++] = part;
		if (i == len)
			break;
		if (str[i] != '.')
			return false;
		i++;
	}
	if (i != len || nparts < 2)
		return false;
	*result = parts[0] * 1000000 + parts[1] * 1000 + parts[2];
	return true;
}

/* parse a strict ISO date YYYY-MM-DD into a DateADT */
bool
record_parse_iso_date(const char *str, int len, DateADT *result)
{
	int			year,
				month,
				day;

	if (len != 10 || str[4] != '-' || str[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (str[i] < '0' || str[i] > '9'))
			return false;
	year = atoi(str);
	month = (str[5] - '0') * 10 + (str[6] - '0');
	day = (str[8] - '0') * 10 + (str[9] - '0');
	if (year < 1 || month < 1 || month > 12 || day < 1 ||
		day > day_tab[isleap(year)][month - 1])
		return false;
	*result = date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
	return true;
}

/* SQS speaks Unix milliseconds; PostgreSQL microseconds since 2000 */
int64
record_unix_ms(TimestampTz ts)
{
	return ts / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

TimestampTz
record_timestamptz(int64 unix_ms)
{
	return (unix_ms -
			(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000) * 1000;
}

/*
 * Is a Unix timestamp in milliseconds within the range of timestamptz?  If
 * so, record_timestamptz() cannot overflow, and the date of it (midnight)
 * fits date, timestamp and timestamptz columns alike.
 */
bool
record_unix_ms_in_range(int64 unix_ms)
{
	return unix_ms >= record_unix_ms(MIN_TIMESTAMP) &&
		unix_ms < record_unix_ms(END_TIMESTAMP);
}

/* the UTC date of a Unix timestamp in milliseconds */
DateADT
record_date_of_unix_ms(int64 ms)
{
	int64		days = ms / (SECS_PER_DAY * INT64CONST(1000));

	if (ms < 0 && ms % (SECS_PER_DAY * INT64CONST(1000)) != 0)
		days--;
	return (DateADT) (days + UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
}

/* a date in ISO form YYYY-MM-DD, whatever DateStyle says */
char *
record_iso_date(DateADT date)
{
	int			year,
				month,
				day;

	j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	return psprintf("%04d-%02d-%02d", year, month, day);
}

static Datum
date_datum(ColumnKind kind, DateADT date)
{
	switch (kind)
	{
		case CK_DATE:
			return DateADTGetDatum(date);
		case CK_TIMESTAMP:
		case CK_TIMESTAMPTZ:
			/* midnight UTC of that date */
			return TimestampGetDatum((Timestamp) date * USECS_PER_DAY);
		default:
			return PointerGetDatum(cstring_to_text(record_iso_date(date)));
	}
}

/* check a string value's length against its column; NULL or the reason */
static char *
check_length(const TargetTable *target, TargetColumnId id,
			 const char *field, const EventValue *v)
{
	int			max_chars = target->col[id].max_chars;
	int			nchars;

	if (max_chars < 0 || v->len <= max_chars)
		return NULL;			/* no character is shorter than a byte */
	nchars = pg_mbstrlen_with_len(v->str, v->len);
	if (nchars <= max_chars)
		return NULL;
	return psprintf("\"%s\" is %d characters long, column \"%s\" allows %d",
					field, nchars, target_column_names[id], max_chars);
}

/* a field that must be a string (or absent or null) */
static char *
check_string(const EventValue *v, const char *field)
{
	if (v->type == EV_ABSENT || v->type == EV_NULL || v->type == EV_STRING)
		return NULL;
	return psprintf("\"%s\" must be a string, not %s", field,
					event_value_type_names[v->type]);
}

/*
 * A value quoted in a dead-letter reason: whole if short, else its first
 * REASON_EXCERPT_BYTES bytes cut on a character boundary, so that the
 * reason stays valid text.
 */
static const char *
excerpt(const EventValue *v)
{
	if (v->len <= REASON_EXCERPT_BYTES)
		return v->str;
	return psprintf("%.*s...", pg_mbcliplen(v->str, v->len, REASON_EXCERPT_BYTES),
					v->str);
}

static Datum
text_datum(const EventValue *v)
{
	return PointerGetDatum(cstring_to_text_with_len(v->str, v->len));
}

static Datum
masked_datum(const EventValue *v)
{
	char		hex[MASK_HEX_LEN + 1];

	mask_value(v->str, v->len, hex);
	return PointerGetDatum(cstring_to_text_with_len(hex, MASK_HEX_LEN));
}

/*
 * Map one message body to the target's column values.
 *
 * Returns NULL on success, with values/nulls filled in the TargetColumnId
 * order, or the reason the message is a dead letter.  body must stay valid
 * while the values are used (strings are copied, but only once).
 * mask_prepare() must have been called.
 */
char *
record_map(const TargetTable *target, char *body, int len,
		   int64 sent_timestamp_ms, Datum *values, bool *nulls)
{
	EventParseState ev;
	EventValue *f = ev.field;
	char	   *error;
	static const struct
	{
		EventField field;
		TargetColumnId column;
		bool		masked;
	}			plain[] = {
		{EF_USER_ID, TC_USER_ID, false},
		{EF_DEVICE_TYPE, TC_DEVICE_TYPE, false},
		{EF_IP, TC_MASKED_IP, true},
		{EF_DEVICE_ID, TC_MASKED_DEVICE_ID, true},
		{EF_LOCALE, TC_LOCALE, false},
	};

	if ((error = parse_event(body, len, &ev)) != NULL)
		return error;

	if (f[EF_USER_ID].type == EV_ABSENT)
		return pstrdup("\"user_id\" is missing");
	if (f[EF_USER_ID].type == EV_NULL)
		return pstrdup("\"user_id\" is null");
	if ((error = check_string(&f[EF_USER_ID], "user_id")) != NULL)
		return error;
	if (f[EF_USER_ID].len == 0)
		return pstrdup("\"user_id\" is empty");

	/* the text fields, masked or not */
	for (int i = 0; i < (int) lengthof(plain); i++)
	{
		EventValue *v = &f[plain[i].field];
		const char *name = event_field_names[plain[i].field];

		if ((error = check_string(v, name)) != NULL)
			return error;
		if (v->type != EV_STRING)
		{
			nulls[plain[i].column] = true;
			values[plain[i].column] = (Datum) 0;
			continue;
		}
		if (!plain[i].masked &&
			(error = check_length(target, plain[i].column, name, v)) != NULL)
			return error;
		nulls[plain[i].column] = false;
		values[plain[i].column] = plain[i].masked ? masked_datum(v) : text_datum(v);
	}

	/* app_version: a string or a number, encoded unless the column is text */
	{
		EventValue *v = &f[EF_APP_VERSION];
		const TargetColumn *col = &target->col[TC_APP_VERSION];
		int64		encoded;

		if (v->type != EV_ABSENT && v->type != EV_NULL &&
			v->type != EV_STRING && v->type != EV_NUMBER)
			return psprintf("\"app_version\" must be a string or a number, not %s",
							event_value_type_names[v->type]);
		nulls[TC_APP_VERSION] = (v->type == EV_ABSENT || v->type == EV_NULL);
		values[TC_APP_VERSION] = (Datum) 0;
		if (!nulls[TC_APP_VERSION])
		{
			if (col->kind == CK_TEXT)
			{
				if ((error = check_length(target, TC_APP_VERSION, "app_version", v)) != NULL)
					return error;
				values[TC_APP_VERSION] = text_datum(v);
			}
			else if (!record_parse_app_version(v->str, v->len, &encoded))
				return psprintf("\"app_version\" \"%s\" is not a version of the form M.m or M.m.p with parts 0 to 999",
								excerpt(v));
			else if (col->kind == CK_INT4)
				values[TC_APP_VERSION] = Int32GetDatum((int32) encoded);
			else if (col->kind == CK_INT8)
				values[TC_APP_VERSION] = Int64GetDatum(encoded);
			else
				values[TC_APP_VERSION] = NumericGetDatum(int64_to_numeric(encoded));
		}
	}

	/* create_date: the body's, else the date the message was sent */
	{
		EventValue *v = &f[EF_CREATE_DATE];
		const TargetColumn *col = &target->col[TC_CREATE_DATE];
		DateADT		date;

		if ((error = check_string(v, "create_date")) != NULL)
			return error;
		if (v->type == EV_STRING)
		{
			if (!record_parse_iso_date(v->str, v->len, &date))
				return psprintf("\"create_date\" \"%s\" is not a date of the form YYYY-MM-DD",
								excerpt(v));
		}
		else if (record_unix_ms_in_range(sent_timestamp_ms))
			date = record_date_of_unix_ms(sent_timestamp_ms);
		else
			return psprintf("no \"create_date\", and the SentTimestamp %lld is outside the range of dates",
							(long long) sent_timestamp_ms);

		nulls[TC_CREATE_DATE] = false;
		values[TC_CREATE_DATE] = date_datum(col->kind, date);
	}

	return NULL;
}
