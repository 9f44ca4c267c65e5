/*-------------------------------------------------------------------------
 *
 * sqs_decode.h
 *	  Pure decoders of SQS responses (and of STS's, for the credential
 *	  chain): bytes in, a struct or the reason the bytes are not a valid
 *	  answer out.
 *
 * Nothing here raises an error, touches the database or the network: the
 * same code runs in the server and, built as frontend code against
 * libpgcommon, in the fuzzer and the known-answer tests.  Everything
 * returned is palloc'd in the current memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SQS_DECODE_H
#define SQS_INGEST_SQS_DECODE_H

#include "datatype/timestamp.h"

/* limits SQS documents for the identifiers it hands out, in characters */
#define SQS_MAX_MESSAGE_ID_CHARS 100
#define SQS_MAX_RECEIPT_HANDLE_CHARS 1024

/* deepest nesting accepted in a response document */
#define SQS_DECODE_MAX_DEPTH 64

/* longest error text taken from a response, in characters */
#define SQS_DECODE_MAX_TEXT_CHARS 256

/* a message attribute with a string value (DataType String or Number) */
typedef struct SqsMessageAttribute
{
	char	   *name;
	char	   *data_type;
	char	   *string_value;
} SqsMessageAttribute;

typedef struct SqsMessage
{
	char	   *message_id;
	char	   *receipt_handle;
	char	   *body;			/* NUL-terminated; a non-string Body as JSON */
	int			body_len;
	int64		sent_timestamp_ms;	/* -1 if unknown */
	int32		receive_count;	/* 0 if SQS did not say, -1 if unusable */
	TimestampTz received_at;	/* set by the client, not the decoder */
	int			nattributes;
	SqsMessageAttribute *attributes;
	char	   *defect;			/* why the message must be dead-lettered, or
								 * NULL */
} SqsMessage;

/* a decoded ReceiveMessage response */
typedef struct SqsReceiveResponse
{
	int			nmessages;
	SqsMessage *messages;
	int			nskipped;		/* left out: a ReceiptHandle too long to be
								 * deleted */
} SqsReceiveResponse;

/* a decoded DeleteMessageBatch or ChangeMessageVisibilityBatch response */
typedef struct SqsBatchResponse
{
	int			nfailed;
	bool	   *failed;			/* per entry (Id "0", "1", ...) sent */
	char	   *failure;		/* first failed entry, for the log */
} SqsBatchResponse;

/* a decoded AWS error document */
typedef struct SqsErrorDocument
{
	char	   *code;			/* AWS error code, after any '#' */
	char	   *message;
} SqsErrorDocument;

/*
 * A decoded STS answer (AssumeRole, AssumeRoleWithWebIdentity): the
 * credentials, or an error's code and message.
 */
typedef struct SqsStsAnswer
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *expiration;
	char	   *code;
	char	   *message;
} SqsStsAnswer;

/*
 * Each decoder returns NULL on success or a palloc'd sentence fragment
 * saying what is wrong with the document ("\"Messages\" is a string, not an
 * array").  An empty document is an empty object, as the AWS SDKs read it.
 */
extern char *sqs_decode_json_receive(const char *data, size_t len,
									 int max_messages,
									 SqsReceiveResponse *result);
extern char *sqs_decode_json_batch(const char *data, size_t len, int entries,
								   SqsBatchResponse *result);
extern char *sqs_decode_json_attributes(const char *data, size_t len,
										const char *const *names, int count,
										int64 *values);
extern bool sqs_decode_json_error(const char *data, size_t len,
								  SqsErrorDocument *result);
extern char *sqs_decode_xml_receive(const char *data, size_t len,
									int max_messages,
									SqsReceiveResponse *result);
extern char *sqs_decode_xml_batch(const char *data, size_t len,
								  const char *action, int entries,
								  SqsBatchResponse *result);
extern char *sqs_decode_xml_attributes(const char *data, size_t len,
									   const char *const *names, int count,
									   int64 *values);
extern bool sqs_decode_xml_error(const char *data, size_t len,
								 SqsErrorDocument *result);
extern char *sqs_decode_xml_sts(const char *data, size_t len,
								SqsStsAnswer *result);

/* shared by the JSON and XML decoders */
extern char *sqs_decode_check_text(const char *data, size_t len);
extern char *sqs_decode_clip(const char *str, int max_chars);
extern char *sqs_decode_finish_message(SqsMessage *message, int index,
									   const char *md5, bool *skipped);
extern void sqs_decode_sent_timestamp(SqsMessage *message, const char *value);
extern void sqs_decode_receive_count(SqsMessage *message, const char *value);
extern bool sqs_decode_count(const char *value, int64 *result);
extern char *sqs_decode_batch_entry(SqsBatchResponse *result, bool *reported,
									int entries, const char *id, bool failed,
									const char *code, const char *message);
extern char *sqs_decode_batch_missing(const bool *reported, int entries);
extern bool sqs_json_nests_deeper_than(const char *data, int len, int limit);

#endif							/* SQS_INGEST_SQS_DECODE_H */
