/*-------------------------------------------------------------------------
 *
 * invariants.c
 *	  What every decoder result must satisfy, whatever the input: strings
 *	  valid UTF-8, counts within bounds, values the database can hold.  A
 *	  violation aborts, which the fuzzer reports as a crash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "mb/pg_wchar.h"

#include "invariants.h"

/* abort, which the fuzzer reports as a crash, unless condition holds */
void
require(bool condition, const char *what)
{
	if (!condition)
	{
		fprintf(stderr, "invariant violated: %s\n", what);
		abort();
	}
}

static void
check_text(const char *s, const char *what)
{
	if (s)
		require(pg_encoding_verifymbstr(PG_UTF8, s, strlen(s)) == (int) strlen(s), what);
}

void
check_error_text(const char *error)
{
	if (error)
	{
		check_text(error, "error text is valid UTF-8");
		require(strlen(error) < 2048, "error text is short");
	}
}

void
check_receive(const SqsReceiveResponse *r, int max_messages)
{
	require(r->nmessages >= 0 && r->nskipped >= 0, "counts not negative");
	require(r->nmessages + r->nskipped <= max_messages, "no more messages than asked for");
	for (int i = 0; i < r->nmessages; i++)
	{
		const SqsMessage *m = &r->messages[i];

		require(m->message_id && m->message_id[0], "a MessageId");
		require(m->receipt_handle && m->receipt_handle[0], "a ReceiptHandle");
		require(strlen(m->message_id) <= 4 * SQS_MAX_MESSAGE_ID_CHARS || m->defect,
				"a MessageId longer than SQS's is a defect");
		require(strlen(m->receipt_handle) <= 4 * SQS_MAX_RECEIPT_HANDLE_CHARS, "ReceiptHandle length");
		require(m->body != NULL && (int) strlen(m->body) == m->body_len, "body and its length");
		check_text(m->message_id, "MessageId is UTF-8");
		check_text(m->body, "body is UTF-8");
		check_text(m->defect, "defect is UTF-8");
		require(m->sent_timestamp_ms >= -1 &&
				m->sent_timestamp_ms <= INT64CONST(253402300799999), "SentTimestamp range");
		require(m->receive_count >= -1, "receive count range");
		for (int a = 0; a < m->nattributes; a++)
		{
			require(m->attributes[a].name != NULL, "attribute name");
			check_text(m->attributes[a].string_value, "attribute value is UTF-8");
		}
	}
}

void
check_batch(const SqsBatchResponse *b, int entries)
{
	int			failed = 0;

	for (int i = 0; i < entries; i++)
		failed += b->failed[i] ? 1 : 0;
	require(failed == b->nfailed, "failed entries counted");
	require((b->nfailed > 0) == (b->failure != NULL), "a failure text when something failed");
	check_text(b->failure, "failure text is UTF-8");
}

void
check_error_document(const SqsErrorDocument *e)
{
	check_text(e->code, "error code is UTF-8");
	check_text(e->message, "error message is UTF-8");
}

void
check_sts(const StsAnswer *a)
{
	check_text(a->access_key_id, "AccessKeyId is UTF-8");
	check_text(a->secret_access_key, "SecretAccessKey is UTF-8");
	check_text(a->session_token, "SessionToken is UTF-8");
	check_text(a->expiration, "Expiration is UTF-8");
	check_text(a->code, "STS error code is UTF-8");
	check_text(a->message, "STS error message is UTF-8");
}
