/*-------------------------------------------------------------------------
 *
 * sqs_decode.c
 *	  Pure decoders of SQS's AWS JSON 1.0 responses, and the checks every
 *	  decoder (JSON or XML) applies to what it found.
 *
 * Every byte from an endpoint is untrusted.  A document is first checked
 * as text (UTF-8, no NUL byte) and for its nesting depth, measured with the
 * JSON lexer alone: pg_parse_json recurses once per level.  It is then
 * parsed with pg_parse_json in its non-throwing form, through one small
 * walker that keeps a frame per open object or array and hands each value
 * to the decoder with its parent frame and key.  A value of the wrong JSON
 * type where SQS defines the shape is a protocol error naming it; members
 * SQS may add later are skipped.
 *
 * Values the database cannot hold (a SentTimestamp past year 9999, a
 * receive count past int32) are not errors of the response but defects of
 * one message: the value becomes "unknown" and the defect says why the
 * message must be dead-lettered.
 *
 * The file builds as backend code and, with FRONTEND defined, as frontend
 * code against libpgcommon (fuzzing, known-answer tests).
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <openssl/evp.h>

#include "common/int.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "compat.h"
#include "sqs_decode.h"

/* 9999-12-31 23:59:59.999 UTC: dates past it do not survive every dump */
#define SQS_MAX_SENT_TIMESTAMP_MS INT64CONST(253402300799999)

/* how much of an untrusted value a defect quotes */
#define DEFECT_QUOTE_CHARS 64

/* ---------------------------------------------------------------------
 * checks shared by the JSON and XML decoders
 * ---------------------------------------------------------------------
 */

/* NULL if the bytes are text SQS could have sent, else what is wrong */
char *
sqs_decode_check_text(const char *data, size_t len)
{
	if (len > (size_t) (PG_INT32_MAX / 2))
		return psprintf("the response is too large to decode");
	/* an empty body may come as NULL, which memchr() must not be given */
	if (len > 0 && memchr(data, '\0', len) != NULL)
		return psprintf("the response contains a NUL byte");
	if (pg_encoding_verifymbstr(PG_UTF8, data, (int) len) != (int) len)
		return psprintf("the response is not valid UTF-8");
	return NULL;
}

/* number of characters of a valid UTF-8 string */
static int
utf8_chars(const char *str)
{
	int			n = 0;

	for (; *str; str++)
		if ((*str & 0xC0) != 0x80)
			n++;
	return n;
}

/*
 * A copy of str clipped to max_chars characters ("..." marks a cut), valid
 * UTF-8 whatever str holds, so that it can go into a log line or a column.
 */
char *
sqs_decode_clip(const char *str, int max_chars)
{
	int			len = 0;
	int			chars = 0;
	char	   *result;

	while (str[len] && chars < max_chars)
	{
		len++;
		while ((str[len] & 0xC0) == 0x80)
			len++;
		chars++;
	}
	len = pg_encoding_verifymbstr(PG_UTF8, str, len);
	result = palloc(len + 4);
	memcpy(result, str, len);
	strcpy(result + len, str[len] ? "..." : "");
	return result;
}

/* the message's defect, with another reason appended */
static void
add_defect(SqsMessage *message, char *reason)
{
	if (message->defect == NULL)
		message->defect = reason;
	else
		message->defect = psprintf("%s; %s", message->defect, reason);
}

typedef enum IntParse
{
	INT_OK,
	INT_INVALID,
	INT_OUT_OF_RANGE
} IntParse;

/* parse an optionally signed decimal integer, nothing else around it */
static IntParse
parse_int64(const char *str, int64 *result)
{
	bool		negative = (*str == '-');
	int64		value = 0;
	const char *p = str + (negative ? 1 : 0);
	bool		overflow = false;

	if (*p == '\0')
		return INT_INVALID;
	for (; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return INT_INVALID;
		if (!overflow &&
			(pg_mul_s64_overflow(value, 10, &value) ||
			 pg_sub_s64_overflow(value, *p - '0', &value)))
			overflow = true;
	}
	if (overflow || (!negative && value == PG_INT64_MIN))
		return INT_OUT_OF_RANGE;
	*result = negative ? value : -value;
	return INT_OK;
}

/*
 * The value of an integer attribute of a message, if it lies within
 * [min, max] (range says so in words); else -1 and a defect saying why.
 */
static int64
integer_attribute(SqsMessage *message, const char *name, const char *value,
				  int64 min, int64 max, const char *range)
{
	int64		n = -1;
	IntParse	parse = value ? parse_int64(value, &n) : INT_INVALID;

	if (parse == INT_INVALID)
	{
		add_defect(message, value ?
				   psprintf("%s \"%s\" is not an integer", name,
							sqs_decode_clip(value, DEFECT_QUOTE_CHARS)) :
				   psprintf("%s is not an integer", name));
		return -1;
	}
	if (parse == INT_OUT_OF_RANGE || n < min || n > max)
	{
		add_defect(message, psprintf("%s %s is outside the range %s", name,
									 sqs_decode_clip(value, DEFECT_QUOTE_CHARS),
									 range));
		return -1;
	}
	return n;
}

/* record a message's SentTimestamp (Unix ms), or the defect it is */
void
sqs_decode_sent_timestamp(SqsMessage *message, const char *value)
{
	message->sent_timestamp_ms =
		integer_attribute(message, "SentTimestamp", value, 0,
						  SQS_MAX_SENT_TIMESTAMP_MS, "1970 to 9999");
}

/* record a message's ApproximateReceiveCount, or the defect it is */
void
sqs_decode_receive_count(SqsMessage *message, const char *value)
{
	message->receive_count = (int32)
		integer_attribute(message, "ApproximateReceiveCount", value, 0,
						  PG_INT32_MAX, "0 to 2147483647");
}

/* a queue attribute that counts messages: a non-negative integer */
bool
sqs_decode_count(const char *value, int64 *result)
{
	return parse_int64(value, result) == INT_OK && *result >= 0;
}

/* does the body match the hex MD5 digest SQS computed when it was sent? */
static bool
body_matches_md5(const SqsMessage *message, const char *md5)
{
	static const char hexdigits[] = "0123456789abcdef";

	/*
	 * Fetched and allocated once per process: EVP_Digest() with EVP_md5()
	 * looks the implementation up in the provider store and allocates a
	 * context for every body.
	 */
	static EVP_MD *md5_md = NULL;
	static EVP_MD_CTX *md5_ctx = NULL;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	if (md5_md == NULL)
		md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (md5_ctx == NULL)
		md5_ctx = EVP_MD_CTX_new();
	if (strlen(md5) != 32 || md5_md == NULL || md5_ctx == NULL ||
		!EVP_DigestInit_ex(md5_ctx, md5_md, NULL) ||
		!EVP_DigestUpdate(md5_ctx, message->body, message->body_len) ||
		!EVP_DigestFinal_ex(md5_ctx, digest, &digest_len) || digest_len != 16)
		return false;
	for (int i = 0; i < 16; i++)
		if (pg_tolower((unsigned char) md5[2 * i]) != hexdigits[digest[i] >> 4] ||
			pg_tolower((unsigned char) md5[2 * i + 1]) != hexdigits[digest[i] & 0x0f])
			return false;
	return true;
}

/*
 * Check a decoded message (index counts from 1): NULL if it can be used,
 * else the protocol error.  A message whose ReceiptHandle is longer than
 * SQS's could never be deleted: *skipped is set, and it is to be left out
 * of the answer (SQS's redrive policy deals with it).  Anything else wrong
 * with one message is its defect, which makes it a dead letter: a MessageId
 * longer than SQS's (the ledger keeps a long one under its digest), a body
 * that does not match md5 (NULL: nothing to check against).
 */
char *
sqs_decode_finish_message(SqsMessage *message, int index, const char *md5,
						  bool *skipped)
{
	int			id_chars;

	*skipped = false;
	if (message->message_id == NULL || message->message_id[0] == '\0')
		return psprintf("message %d has no MessageId", index);
	if (message->receipt_handle == NULL || message->receipt_handle[0] == '\0')
		return psprintf("message %d has no ReceiptHandle", index);
	if (utf8_chars(message->receipt_handle) > SQS_MAX_RECEIPT_HANDLE_CHARS)
	{
		*skipped = true;
		return NULL;
	}
	if ((id_chars = utf8_chars(message->message_id)) > SQS_MAX_MESSAGE_ID_CHARS)
		add_defect(message, psprintf("MessageId is %d characters long, more than the %d of SQS's",
									 id_chars, SQS_MAX_MESSAGE_ID_CHARS));
	if (message->body == NULL)
		message->body = pstrdup("");
	message->body_len = strlen(message->body);
	if (md5 != NULL && !body_matches_md5(message, md5))
		add_defect(message, psprintf("body does not match its MD5OfBody \"%s\": it was changed after SQS took it in",
									 sqs_decode_clip(md5, DEFECT_QUOTE_CHARS)));
	return NULL;
}

/*
 * Record one entry of a batch answer (Ids "0" .. entries-1 were sent):
 * NULL, or the protocol error if the entry is not one of them or is
 * reported twice.  reported tracks the entries seen.
 */
char *
sqs_decode_batch_entry(SqsBatchResponse *result, bool *reported, int entries,
					   const char *id, bool failed, const char *code,
					   const char *message)
{
	int64		n;

	if (id == NULL)
		return psprintf("an entry has no Id");
	if (parse_int64(id, &n) != INT_OK || n < 0 || n >= entries ||
		id[0] == '-' || (id[0] == '0' && id[1] != '\0'))
		return psprintf("entry Id \"%s\" was not in the request",
						sqs_decode_clip(id, DEFECT_QUOTE_CHARS));
	if (reported[n])
		return psprintf("entry %d is reported twice", (int) n);
	reported[n] = true;
	if (!failed)
		return NULL;
	result->failed[n] = true;
	result->nfailed++;
	if (result->failure == NULL)
		result->failure =
			psprintf("%s%s%s",
					 code ? sqs_decode_clip(code, SQS_DECODE_MAX_TEXT_CHARS) : "unknown error",
					 message ? ": " : "",
					 message ? sqs_decode_clip(message, SQS_DECODE_MAX_TEXT_CHARS) : "");
	return NULL;
}

/* NULL if every entry of a batch was reported, else the protocol error */
char *
sqs_decode_batch_missing(const bool *reported, int entries)
{
	int			missing = 0;

	for (int i = 0; i < entries; i++)
		if (!reported[i])
			missing++;
	if (missing > 0)
		return psprintf("%d of its %d entries are neither successful nor failed",
						missing, entries);
	return NULL;
}

/* ---------------------------------------------------------------------
 * the JSON walker
 * ---------------------------------------------------------------------
 */

typedef enum JsonKind
{
	JK_STRING,
	JK_NUMBER,
	JK_BOOLEAN,
	JK_NULL,
	JK_OBJECT,
	JK_ARRAY
} JsonKind;

static const char *const json_kind_names[] = {
	"a string", "a number", "a boolean", "null", "an object", "an array"
};

/* frames every decoder knows: the document itself, and a subtree skipped */
#define FRAME_DOCUMENT (-1)
#define FRAME_SKIP 0

typedef struct JsonWalk JsonWalk;

/*
 * A value in the parent frame, under key (NULL in an array).  Returns the
 * frame of an object or array value (FRAME_SKIP to skip it).  A scalar
 * callback keeps *token by setting it to NULL.
 */
typedef int (*WalkValue) (JsonWalk *walk, int parent, const char *key,
						  JsonKind kind, char **token);

/* an object or array of the given frame (not FRAME_SKIP) has ended; optional */
typedef void (*WalkEnd) (JsonWalk *walk, int frame);

struct JsonWalk
{
	JsonLexContext *lex;
	int			depth;			/* open objects and arrays */
	int			frame[SQS_DECODE_MAX_DEPTH + 1];
	char	   *key[SQS_DECODE_MAX_DEPTH + 1];
	char	   *error;			/* first error met: the rest is skipped */
	WalkValue	value;
	WalkEnd		end;
	void	   *decoder;
};

/* the current member's key, or NULL inside an array or at the top */
static const char *
walk_key(JsonWalk *walk)
{
	return walk->depth > 0 ? walk->key[walk->depth] : NULL;
}

static int
walk_parent(JsonWalk *walk)
{
	return walk->depth > 0 ? walk->frame[walk->depth] : FRAME_DOCUMENT;
}

static void
walk_container_start(JsonWalk *walk, JsonKind kind)
{
	int			parent = walk_parent(walk);
	int			frame = FRAME_SKIP;

	if (walk->error == NULL && parent != FRAME_SKIP)
		frame = walk->value(walk, parent, walk_key(walk), kind, NULL);
	/* the depth was measured before parsing: this cannot overflow */
	Assert(walk->depth < SQS_DECODE_MAX_DEPTH);
	walk->depth++;
	walk->frame[walk->depth] = frame;
	walk->key[walk->depth] = NULL;
}

static JsonSemResult
walk_object_start(void *state)
{
	walk_container_start(state, JK_OBJECT);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
walk_array_start(void *state)
{
	walk_container_start(state, JK_ARRAY);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
walk_container_end(void *state)
{
	JsonWalk   *walk = state;
	int			frame = walk->frame[walk->depth];

	if (walk->key[walk->depth])
		pfree(walk->key[walk->depth]);
	walk->depth--;
	if (walk->error == NULL && frame != FRAME_SKIP && walk->end)
		walk->end(walk, frame);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
walk_field_start(void *state, char *fname, bool isnull)
{
	JsonWalk   *walk = state;

	if (walk->key[walk->depth])
		pfree(walk->key[walk->depth]);
	walk->key[walk->depth] = fname;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
walk_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JsonWalk   *walk = state;
	int			parent = walk_parent(walk);
	JsonKind	kind;

	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			kind = JK_STRING;
			break;
		case JSON_TOKEN_NUMBER:
			kind = JK_NUMBER;
			break;
		case JSON_TOKEN_NULL:
			kind = JK_NULL;
			break;
		default:
			kind = JK_BOOLEAN;
			break;
	}
	if (walk->error == NULL && parent != FRAME_SKIP)
		walk->value(walk, parent, walk_key(walk), kind, &token);
	if (token)
		pfree(token);
	return JSON_SEM_SUCCESS;
}

/* occurrences of c in data, counted up to max */
static int
count_byte_upto(const char *data, int len, char c, int max)
{
	const char *end = data + len;
	int			n = 0;

	while (n < max && data < end &&
		   (data = memchr(data, c, end - data)) != NULL)
	{
		n++;
		data++;
	}
	return n;
}

/*
 * Does a JSON text nest objects and arrays deeper than limit?  Counted with
 * the lexer alone, without recursion, and only when the text holds enough
 * brackets to matter.  A text the lexer rejects is left to the parser.
 */
bool
sqs_json_nests_deeper_than(const char *data, int len, int limit)
{
	JsonLexContext *lex;
	int			brackets;
	int			depth = 0;
	bool		deeper = false;

	/*
	 * Every response and body passes here, and most hold few brackets: found
	 * by memchr(), which skips the bytes between them many at a time.
	 */
	brackets = count_byte_upto(data, len, '[', limit + 1);
	if (brackets <= limit)
		brackets += count_byte_upto(data, len, '{', limit + 1 - brackets);
	if (brackets <= limit)
		return false;

	lex = compat_json_lex((char *) data, len, false);
	while (!deeper && json_lex(lex) == JSON_SUCCESS &&
		   lex->token_type != JSON_TOKEN_END)
	{
		if (lex->token_type == JSON_TOKEN_OBJECT_START ||
			lex->token_type == JSON_TOKEN_ARRAY_START)
			deeper = (++depth > limit);
		else if (lex->token_type == JSON_TOKEN_OBJECT_END ||
				 lex->token_type == JSON_TOKEN_ARRAY_END)
			depth--;
	}
	compat_json_lex_free(lex);
	return deeper;
}

/*
 * Check and parse a response document through the walker.  An empty
 * document is an empty object.  Returns NULL or what is wrong.
 */
static char *
walk_json(const char *data, size_t len, JsonWalk *walk)
{
	JsonSemAction sem = {0};
	JsonParseErrorType rc;
	char	   *error;

	error = sqs_decode_check_text(data, len);
	if (error)
		return error;
	if (len == 0)
	{
		data = "{}";
		len = 2;
	}
	if (sqs_json_nests_deeper_than(data, (int) len, SQS_DECODE_MAX_DEPTH))
		return psprintf("the response nests deeper than %d levels",
						SQS_DECODE_MAX_DEPTH);

	walk->lex = compat_json_lex((char *) data, (int) len, true);
	sem.semstate = walk;
	sem.object_start = walk_object_start;
	sem.object_end = walk_container_end;
	sem.array_start = walk_array_start;
	sem.array_end = walk_container_end;
	sem.object_field_start = walk_field_start;
	sem.scalar = walk_scalar;
	rc = pg_parse_json(walk->lex, &sem);
	if (rc != JSON_SUCCESS)
		error = psprintf("the response is not valid JSON: %s",
						 sqs_decode_clip(json_errdetail(rc, walk->lex),
										 SQS_DECODE_MAX_TEXT_CHARS));
	compat_json_lex_free(walk->lex);
	walk->lex = NULL;
	return error ? error : walk->error;
}

/* set the walk's error: a value of the wrong type */
static void
wrong_type(JsonWalk *walk, const char *what, JsonKind kind, const char *expected)
{
	walk->error = psprintf("%s is %s, not %s", what, json_kind_names[kind],
						   expected);
}

/* the document must be an object */
static int
document_object(JsonWalk *walk, JsonKind kind, int frame)
{
	if (kind == JK_OBJECT)
		return frame;
	wrong_type(walk, "the response", kind, "a JSON object");
	return FRAME_SKIP;
}

/* keep a string member in *target; false if the value is not a string */
static bool
take_string(JsonKind kind, char **token, char **target)
{
	if (kind != JK_STRING)
		return false;
	if (*target)
		pfree(*target);			/* a repeated key replaces the earlier one */
	*target = *token;
	*token = NULL;
	return true;
}

/* ---------------------------------------------------------------------
 * ReceiveMessage
 * ---------------------------------------------------------------------
 */

enum
{
	RF_TOP = 1,
	RF_MESSAGES,
	RF_MESSAGE,
	RF_BODY,
	RF_ATTRIBUTES,
	RF_MESSAGE_ATTRIBUTES,
	RF_MESSAGE_ATTRIBUTE
};

typedef struct ReceiveDecoder
{
	SqsReceiveResponse *result;
	int			max_messages;
	int			seen;			/* messages met so far */
	SqsMessage *message;		/* the one being decoded */
	char	   *md5;
	bool		body_is_string;
	const char *body_start;		/* of a Body that is an object or array */
	int			attributes_capacity;
} ReceiveDecoder;

static int
receive_message_member(JsonWalk *walk, ReceiveDecoder *d, const char *key,
					   JsonKind kind, char **token)
{
	SqsMessage *m = d->message;
	char	  **target = NULL;

	if (strcmp(key, "Body") == 0)
	{
		if (m->body)
			pfree(m->body);
		m->body = NULL;
		d->body_is_string = (kind == JK_STRING);
		if (kind == JK_OBJECT || kind == JK_ARRAY)
		{
			/* kept as its JSON text, cut out when it ends */
			d->body_start = walk->lex->token_start;
			return RF_BODY;
		}
		m->body = *token;
		*token = NULL;
		return FRAME_SKIP;
	}
	if (strcmp(key, "Attributes") == 0 || strcmp(key, "MessageAttributes") == 0)
	{
		if (kind == JK_OBJECT)
			return key[0] == 'A' ? RF_ATTRIBUTES : RF_MESSAGE_ATTRIBUTES;
		wrong_type(walk, psprintf("the %s of message %d", key, d->seen),
				   kind, "an object");
		return FRAME_SKIP;
	}
	if (strcmp(key, "MessageId") == 0)
		target = &m->message_id;
	else if (strcmp(key, "ReceiptHandle") == 0)
		target = &m->receipt_handle;
	else if (strcmp(key, "MD5OfBody") == 0)
		target = &d->md5;
	if (target && !take_string(kind, token, target))
		wrong_type(walk, psprintf("the %s of message %d", key, d->seen),
				   kind, "a string");
	return FRAME_SKIP;
}

static int
receive_value(JsonWalk *walk, int parent, const char *key, JsonKind kind,
			  char **token)
{
	ReceiveDecoder *d = walk->decoder;
	SqsMessage *m = d->message;

	switch (parent)
	{
		case FRAME_DOCUMENT:
			return document_object(walk, kind, RF_TOP);
		case RF_TOP:
			if (strcmp(key, "Messages") != 0)
				return FRAME_SKIP;
			if (kind == JK_ARRAY)
				return RF_MESSAGES;
			wrong_type(walk, "\"Messages\"", kind, "an array");
			return FRAME_SKIP;
		case RF_MESSAGES:
			if (d->seen >= d->max_messages)
			{
				walk->error = psprintf("it holds more than the %d messages asked for",
									   d->max_messages);
				return FRAME_SKIP;
			}
			d->seen++;
			if (kind != JK_OBJECT)
			{
				char	   *what = psprintf("message %d", d->seen);

				wrong_type(walk, what, kind, "an object");
				return FRAME_SKIP;
			}
			d->message = &d->result->messages[d->result->nmessages];
			memset(d->message, 0, sizeof(SqsMessage));
			d->message->sent_timestamp_ms = -1;
			d->md5 = NULL;
			d->body_is_string = true;
			return RF_MESSAGE;
		case RF_MESSAGE:
			return receive_message_member(walk, d, key, kind, token);
		case RF_ATTRIBUTES:
			{
				/* SQS sends them as strings; take plain numbers too */
				const char *value = (kind == JK_STRING || kind == JK_NUMBER) ?
					*token : NULL;

				if (strcmp(key, "SentTimestamp") == 0)
					sqs_decode_sent_timestamp(m, value);
				else if (strcmp(key, "ApproximateReceiveCount") == 0)
					sqs_decode_receive_count(m, value);
				return FRAME_SKIP;
			}
		case RF_MESSAGE_ATTRIBUTES:
			if (kind != JK_OBJECT)
			{
				char	   *what = psprintf("message attribute \"%s\" of message %d",
											sqs_decode_clip(key, DEFECT_QUOTE_CHARS),
											d->seen);

				wrong_type(walk, what, kind, "an object");
				return FRAME_SKIP;
			}
			if (m->nattributes == d->attributes_capacity)
			{
				d->attributes_capacity = Max(4, d->attributes_capacity * 2);
				m->attributes = m->attributes ?
					repalloc(m->attributes,
							 sizeof(SqsMessageAttribute) * d->attributes_capacity) :
					palloc(sizeof(SqsMessageAttribute) * d->attributes_capacity);
			}
			memset(&m->attributes[m->nattributes], 0, sizeof(SqsMessageAttribute));
			m->attributes[m->nattributes++].name = pstrdup(key);
			return RF_MESSAGE_ATTRIBUTE;
		case RF_MESSAGE_ATTRIBUTE:
			{
				SqsMessageAttribute *a = &m->attributes[m->nattributes - 1];
				char	  **target = strcmp(key, "StringValue") == 0 ? &a->string_value :
					strcmp(key, "DataType") == 0 ? &a->data_type : NULL;

				if (target && !take_string(kind, token, target))
					wrong_type(walk, psprintf("the %s of message attribute \"%s\"",
											  key, sqs_decode_clip(a->name, DEFECT_QUOTE_CHARS)),
							   kind, "a string");
				return FRAME_SKIP;
			}
		case RF_BODY:
			return FRAME_SKIP;
	}
	return FRAME_SKIP;
}

static void
receive_end(JsonWalk *walk, int frame)
{
	ReceiveDecoder *d = walk->decoder;
	bool		skipped;

	if (frame == RF_BODY)
	{
		d->message->body = pnstrdup(d->body_start,
									walk->lex->prev_token_terminator - d->body_start);
	}
	else if (frame == RF_MESSAGE)
	{
		walk->error = sqs_decode_finish_message(d->message, d->seen,
												d->body_is_string ? d->md5 : NULL,
												&skipped);
		if (walk->error)
			return;
		if (skipped)
			d->result->nskipped++;
		else
			d->result->nmessages++;
		d->attributes_capacity = 0;
	}
}

/*
 * Decode a ReceiveMessage response of at most max_messages messages.
 */
char *
sqs_decode_json_receive(const char *data, size_t len, int max_messages,
						SqsReceiveResponse *result)
{
	JsonWalk	walk = {0};
	ReceiveDecoder decoder = {0};

	memset(result, 0, sizeof(SqsReceiveResponse));
	result->messages = palloc0(sizeof(SqsMessage) * Max(max_messages, 1));
	decoder.result = result;
	decoder.max_messages = max_messages;
	walk.value = receive_value;
	walk.end = receive_end;
	walk.decoder = &decoder;
	return walk_json(data, len, &walk);
}

/* ---------------------------------------------------------------------
 * DeleteMessageBatch, ChangeMessageVisibilityBatch
 * ---------------------------------------------------------------------
 */

enum
{
	BF_TOP = 1,
	BF_SUCCESSFUL,
	BF_FAILED,
	BF_ENTRY_OK,
	BF_ENTRY_FAILED
};

typedef struct BatchDecoder
{
	SqsBatchResponse *result;
	int			entries;
	bool	   *reported;
	char	   *id;				/* of the entry being decoded */
	char	   *code;
	char	   *message;
} BatchDecoder;

static int
batch_value(JsonWalk *walk, int parent, const char *key, JsonKind kind,
			char **token)
{
	BatchDecoder *d = walk->decoder;

	switch (parent)
	{
		case FRAME_DOCUMENT:
			return document_object(walk, kind, BF_TOP);
		case BF_TOP:
			if (strcmp(key, "Successful") != 0 && strcmp(key, "Failed") != 0)
				return FRAME_SKIP;
			if (kind == JK_ARRAY)
				return key[0] == 'S' ? BF_SUCCESSFUL : BF_FAILED;
			wrong_type(walk, key[0] == 'S' ? "\"Successful\"" : "\"Failed\"",
					   kind, "an array");
			return FRAME_SKIP;
		case BF_SUCCESSFUL:
		case BF_FAILED:
			if (kind != JK_OBJECT)
			{
				wrong_type(walk, "an entry", kind, "an object");
				return FRAME_SKIP;
			}
			d->id = d->code = d->message = NULL;
			return parent == BF_SUCCESSFUL ? BF_ENTRY_OK : BF_ENTRY_FAILED;
		case BF_ENTRY_OK:
		case BF_ENTRY_FAILED:
			{
				char	  **target = strcmp(key, "Id") == 0 ? &d->id :
					parent == BF_ENTRY_OK ? NULL :
					strcmp(key, "Code") == 0 ? &d->code :
					strcmp(key, "Message") == 0 ? &d->message : NULL;

				if (target && !take_string(kind, token, target))
					wrong_type(walk, psprintf("the %s of an entry", key), kind,
							   "a string");
				return FRAME_SKIP;
			}
	}
	return FRAME_SKIP;
}

static void
batch_end(JsonWalk *walk, int frame)
{
	BatchDecoder *d = walk->decoder;

	if (frame == BF_ENTRY_OK || frame == BF_ENTRY_FAILED)
		walk->error = sqs_decode_batch_entry(d->result, d->reported, d->entries,
											 d->id, frame == BF_ENTRY_FAILED,
											 d->code, d->message);
}

/*
 * Decode the response to a batch of entries with Ids "0" .. entries-1.
 * Every entry must be reported, once, as successful or failed.
 */
char *
sqs_decode_json_batch(const char *data, size_t len, int entries,
					  SqsBatchResponse *result)
{
	JsonWalk	walk = {0};
	BatchDecoder decoder = {0};
	char	   *error;

	memset(result, 0, sizeof(SqsBatchResponse));
	result->failed = palloc0(sizeof(bool) * Max(entries, 1));
	decoder.result = result;
	decoder.entries = entries;
	decoder.reported = palloc0(sizeof(bool) * Max(entries, 1));
	walk.value = batch_value;
	walk.end = batch_end;
	walk.decoder = &decoder;
	error = walk_json(data, len, &walk);
	return error ? error : sqs_decode_batch_missing(decoder.reported, entries);
}

/* ---------------------------------------------------------------------
 * GetQueueAttributes
 * ---------------------------------------------------------------------
 */

enum
{
	AF_TOP = 1,
	AF_ATTRIBUTES
};

typedef struct AttributesDecoder
{
	const char *const *names;
	int			count;
	int64	   *values;
} AttributesDecoder;

static int
attributes_value(JsonWalk *walk, int parent, const char *key, JsonKind kind,
				 char **token)
{
	AttributesDecoder *d = walk->decoder;

	switch (parent)
	{
		case FRAME_DOCUMENT:
			return document_object(walk, kind, AF_TOP);
		case AF_TOP:
			if (strcmp(key, "Attributes") != 0)
				return FRAME_SKIP;
			if (kind == JK_OBJECT)
				return AF_ATTRIBUTES;
			wrong_type(walk, "\"Attributes\"", kind, "an object");
			return FRAME_SKIP;
		case AF_ATTRIBUTES:
			for (int i = 0; i < d->count; i++)
			{
				if (strcmp(key, d->names[i]) != 0)
					continue;
				if ((kind != JK_STRING && kind != JK_NUMBER) ||
					!sqs_decode_count(*token, &d->values[i]))
				{
					d->values[i] = -1;
					walk->error = psprintf("attribute %s is not a count of messages",
										   d->names[i]);
				}
			}
			return FRAME_SKIP;
	}
	return FRAME_SKIP;
}

/*
 * Decode a GetQueueAttributes response: values[i] is the count named
 * names[i], or -1 if the response does not have it.
 */
char *
sqs_decode_json_attributes(const char *data, size_t len,
						   const char *const *names, int count, int64 *values)
{
	JsonWalk	walk = {0};
	AttributesDecoder decoder = {names, count, values};

	for (int i = 0; i < count; i++)
		values[i] = -1;
	walk.value = attributes_value;
	walk.decoder = &decoder;
	return walk_json(data, len, &walk);
}

/* ---------------------------------------------------------------------
 * AWS error documents
 * ---------------------------------------------------------------------
 */

static int
error_value(JsonWalk *walk, int parent, const char *key, JsonKind kind,
			char **token)
{
	SqsErrorDocument *d = walk->decoder;

	if (parent == FRAME_DOCUMENT)
		return document_object(walk, kind, 1);
	if (kind != JK_STRING)
		return FRAME_SKIP;
	if (strcmp(key, "__type") == 0 || (d->code == NULL && pg_strcasecmp(key, "code") == 0))
	{
		const char *hash = strrchr(*token, '#');

		d->code = sqs_decode_clip(hash ? hash + 1 : *token, SQS_DECODE_MAX_TEXT_CHARS);
	}
	else if (pg_strcasecmp(key, "message") == 0)
		d->message = sqs_decode_clip(*token, SQS_DECODE_MAX_TEXT_CHARS);
	return FRAME_SKIP;
}

/*
 * Read an AWS JSON error document ({"__type": "...#Code", "message": ...}).
 * Returns false if the bytes are not one.
 */
bool
sqs_decode_json_error(const char *data, size_t len, SqsErrorDocument *result)
{
	JsonWalk	walk = {0};

	memset(result, 0, sizeof(SqsErrorDocument));
	walk.value = error_value;
	walk.decoder = result;
	if (len == 0 || walk_json(data, len, &walk) != NULL)
		return false;
	return result->code != NULL || result->message != NULL;
}
