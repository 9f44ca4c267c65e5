/*-------------------------------------------------------------------------
 *
 * decode_test.c
 *	  Known answers of the SQS response decoders: documents that must
 *	  decode to given values, documents that must fail with a given reason.
 *	  Built as frontend code by fuzz/build.sh and run by t/303_decoders.pl;
 *	  prints TAP and exits non-zero if any case fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "arena.h"
#include "decoders.h"
#include "invariants.h"

static int	ntests = 0;
static int	nfailed = 0;

static void
ok(bool condition, const char *name)
{
	ntests++;
	if (!condition)
		nfailed++;
	printf("%sok %d - %s\n", condition ? "" : "not ", ntests, name);
}

static bool
contains(const char *s, const char *part)
{
	return s != NULL && strstr(s, part) != NULL;
}

static bool
equals(const char *s, const char *expected)
{
	return s != NULL && strcmp(s, expected) == 0;
}

/* a document that must fail to decode as a receive, naming what is wrong */
static void
receive_fails(const Decoders *d, const char *doc, int len, int max, const char *reason,
			  const char *name)
{
	SqsReceiveResponse r;
	char	   *error = d->receive(doc, len < 0 ? strlen(doc) : (size_t) len, max, &r);

	if (!contains(error, reason))
		printf("# got: %s\n# expected: ...%s...\n", error ? error : "(success)", reason);
	ok(contains(error, reason), name);
	check_error_text(error);
}

static const char *const depth_names[] = {
	"ApproximateNumberOfMessages",
	"ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed"
};

/* a document literal and its length */
#define DOC(literal) (literal), strlen(literal)

#define HELLO_MD5 "5d41402abc4b2a76b9719d911017c592"

/* decode a receive of a NUL-terminated document */
static char *
receive(const Decoders *d, const char *doc, int max, SqsReceiveResponse *r)
{
	char	   *error = d->receive(doc, strlen(doc), max, r);

	check_error_text(error);
	if (error == NULL)
		check_receive(r, max);
	else
		printf("# %s\n", error);
	return error;
}

static void
json_receive_cases(void)
{
	const Decoders *d = &json_decoders;
	SqsReceiveResponse r;
	SqsMessage *m = NULL;
	char	   *error;
	char		doc[4096];

	ok(receive(d, "", 10, &r) == NULL && r.nmessages == 0,
	   "json: an empty body is an empty receive");
	ok(receive(d, "{\"Messages\":[]}", 10, &r) == NULL && r.nmessages == 0,
	   "json: an empty Messages array is an empty receive");

	error = receive(d, "{\"Messages\":[{\"Body\":\"hello\",\"MD5OfBody\":\"" HELLO_MD5 "\","
					"\"MessageId\":\"m-1\",\"ReceiptHandle\":\"rh-1\",\"Unknown\":[1,{}],"
					"\"Attributes\":{\"ApproximateReceiveCount\":\"3\",\"SentTimestamp\":\"1700000000123\"},"
					"\"MessageAttributes\":{\"trace\":{\"StringValue\":\"t-1\",\"DataType\":\"String\"}}}]}",
					10, &r);
	if (error == NULL && r.nmessages == 1)
		m = &r.messages[0];
	ok(m != NULL, "json: one message decoded");
	ok(m && equals(m->message_id, "m-1") && equals(m->receipt_handle, "rh-1"),
	   "json: MessageId and ReceiptHandle");
	ok(m && equals(m->body, "hello") && m->body_len == 5, "json: Body");
	ok(m && m->sent_timestamp_ms == INT64CONST(1700000000123) && m->receive_count == 3 &&
	   m->defect == NULL, "json: SentTimestamp and ApproximateReceiveCount");
	ok(m && m->nattributes == 1 && equals(m->attributes[0].name, "trace") &&
	   equals(m->attributes[0].string_value, "t-1") &&
	   equals(m->attributes[0].data_type, "String"), "json: a message attribute");

	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\","
					"\"Body\":{\"a\": [1, 2.5e3, null]}},"
					"{\"MessageId\":\"n\",\"ReceiptHandle\":\"s\",\"Body\":42}]}", 10, &r);
	ok(error == NULL && r.nmessages == 2 && equals(r.messages[0].body, "{\"a\": [1, 2.5e3, null]}") &&
	   equals(r.messages[1].body, "42"), "json: a non-string Body is kept as its JSON text");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Body\":\"a\\u00e9\\n\"}]}",
					10, &r);
	ok(error == NULL && r.nmessages == 1 && equals(r.messages[0].body, "a\xc3\xa9\n"),
	   "json: escapes in a Body are decoded");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\"}]}", 10, &r);
	ok(error == NULL && r.nmessages == 1 && equals(r.messages[0].body, "") &&
	   r.messages[0].sent_timestamp_ms == -1 && r.messages[0].receive_count == 0,
	   "json: no Body, no attributes: empty body, values unknown");

	error = receive(d, "{\"Messages\":[{\"Body\":\"hello\",\"MD5OfBody\":\"00000000000000000000000000000000\","
					"\"MessageId\":\"m\",\"ReceiptHandle\":\"r\"}]}", 10, &r);
	ok(error == NULL && r.nmessages == 1 && r.nskipped == 0 &&
	   contains(r.messages[0].defect, "body does not match its MD5OfBody \"00000000000000000000000000000000\""),
	   "json: a body that does not match its MD5 is a defect that names it");

	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":"
					"{\"SentTimestamp\":\"9223372036854775807\",\"ApproximateReceiveCount\":\"9223372036854775807\"}}]}",
					10, &r);
	ok(error == NULL && r.nmessages == 1 && r.messages[0].sent_timestamp_ms == -1 &&
	   r.messages[0].receive_count == -1, "json: out-of-range values become unknown");
	ok(error == NULL && contains(r.messages[0].defect, "SentTimestamp 9223372036854775807 is outside the range 1970 to 9999") &&
	   contains(r.messages[0].defect, "ApproximateReceiveCount 9223372036854775807 is outside the range 0 to 2147483647"),
	   "json: and a defect names both");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":"
					"{\"SentTimestamp\":\"99999999999999999999\",\"ApproximateReceiveCount\":\"2147483647\"}}]}",
					10, &r);
	ok(error == NULL && r.messages[0].receive_count == PG_INT32_MAX &&
	   contains(r.messages[0].defect, "SentTimestamp 99999999999999999999 is outside"),
	   "json: past int64 is out of range; the largest int32 count is fine");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":"
					"{\"SentTimestamp\":\"12e3\",\"ApproximateReceiveCount\":{}}}]}", 10, &r);
	ok(error == NULL && contains(r.messages[0].defect, "SentTimestamp \"12e3\" is not an integer") &&
	   contains(r.messages[0].defect, "ApproximateReceiveCount is not an integer"),
	   "json: values that are not integers are defects");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":"
					"{\"SentTimestamp\":\"-1\",\"ApproximateReceiveCount\":\"-1\"}}]}", 10, &r);
	ok(error == NULL && r.messages[0].sent_timestamp_ms == -1 && r.messages[0].defect != NULL,
	   "json: negative values are defects");
	error = receive(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":"
					"{\"SentTimestamp\":253402300799999}}]}", 10, &r);
	ok(error == NULL && r.messages[0].sent_timestamp_ms == INT64CONST(253402300799999) &&
	   r.messages[0].defect == NULL, "json: the last millisecond of 9999, as a number, is fine");

	receive_fails(d, "null", -1, 10, "the response is null, not a JSON object", "json: null");
	receive_fails(d, "[]", -1, 10, "the response is an array, not a JSON object", "json: []");
	receive_fails(d, "\"x\"", -1, 10, "the response is a string, not a JSON object", "json: a string");
	receive_fails(d, "{\"Messages\":\"x\"}", -1, 10, "\"Messages\" is a string, not an array", "json: Messages a string");
	receive_fails(d, "{\"Messages\":1}", -1, 10, "\"Messages\" is a number, not an array", "json: Messages a number");
	receive_fails(d, "{\"Messages\":null}", -1, 10, "\"Messages\" is null, not an array", "json: Messages null");
	receive_fails(d, "{\"Messages\":{}}", -1, 10, "\"Messages\" is an object, not an array", "json: Messages an object");
	receive_fails(d, "{\"Messages\":[[]]}", -1, 10, "message 1 is an array, not an object", "json: a message not an object");
	receive_fails(d, "{\"Messages\":[{\"ReceiptHandle\":\"r\"}]}", -1, 10, "message 1 has no MessageId", "json: no MessageId");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"\",\"ReceiptHandle\":\"r\"}]}", -1, 10, "message 1 has no MessageId", "json: empty MessageId");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"m\"}]}", -1, 10, "message 1 has no ReceiptHandle", "json: no ReceiptHandle");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":7,\"ReceiptHandle\":\"r\"}]}", -1, 10,
				  "the MessageId of message 1 is a number, not a string", "json: MessageId a number");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Attributes\":[]}]}", -1, 10,
				  "the Attributes of message 1 is an array, not an object", "json: Attributes an array");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\"},{\"MessageId\":\"n\",\"ReceiptHandle\":\"s\"}]}",
				  -1, 1, "more than the 1 messages asked for", "json: more messages than asked for");
	snprintf(doc, sizeof(doc), "{\"Messages\":[{\"MessageId\":\"%0101d\",\"ReceiptHandle\":\"r\"},"
			 "{\"MessageId\":\"n\",\"ReceiptHandle\":\"s\"}]}", 0);
	error = receive(d, doc, 10, &r);
	ok(error == NULL && r.nmessages == 2 &&
	   contains(r.messages[0].defect, "MessageId is 101 characters long, more than the 100") &&
	   r.messages[1].defect == NULL,
	   "json: a MessageId of 101 characters is that message's defect, not the answer's");
	snprintf(doc, sizeof(doc), "{\"Messages\":[{\"MessageId\":\"%0100d\",\"ReceiptHandle\":\"%01025d\"},"
			 "{\"MessageId\":\"n\",\"ReceiptHandle\":\"s\"}]}", 0, 0);
	error = receive(d, doc, 10, &r);
	ok(error == NULL && r.nmessages == 1 && r.nskipped == 1 && equals(r.messages[0].message_id, "n"),
	   "json: a message whose ReceiptHandle has 1025 characters is left out and counted");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"m\",\"ReceiptHandle\":\"r\",\"Body\":\"\xc3\x28\"}]}", -1, 10,
				  "not valid UTF-8", "json: invalid UTF-8");
	receive_fails(d, "{\"Messages\":[]}\0", 16, 10, "NUL byte", "json: a NUL byte");
	receive_fails(d, "{\"Messages\":[{\"MessageId\":\"m\\u0000\",\"ReceiptHandle\":\"r\"}]}", -1, 10,
				  "not valid JSON", "json: an escaped NUL");
	receive_fails(d, "{\"Messages\":[", -1, 10, "not valid JSON", "json: truncated");
	receive_fails(d, "<html/>", -1, 10, "not valid JSON", "json: not JSON");
	memset(doc, '[', 65);
	memset(doc + 65, ']', 65);
	doc[130] = '\0';
	receive_fails(d, doc, -1, 10, "nests deeper than 64 levels", "json: 65 levels");
	memset(doc, '[', 64);
	memset(doc + 64, ']', 64);
	doc[128] = '\0';
	receive_fails(d, doc, -1, 10, "the response is an array", "json: 64 levels are parsed");
}

static void
json_other_cases(void)
{
	const Decoders *d = &json_decoders;
	SqsBatchResponse b;
	SqsErrorDocument e;
	int64		v[3];
	char	   *error;

	error = d->batch(DOC("{\"Successful\":[{\"Id\":\"0\"},{\"Id\":\"2\"}],\"Failed\":[{\"Id\":\"1\","
						 "\"Code\":\"ReceiptHandleIsInvalid\",\"Message\":\"bad handle\",\"SenderFault\":true}]}"),
					 3, &b);
	ok(error == NULL && b.nfailed == 1 && b.failed[1] && !b.failed[0] && !b.failed[2] &&
	   equals(b.failure, "ReceiptHandleIsInvalid: bad handle"), "json batch: successful and failed entries");
	error = d->batch(DOC("{\"Successful\":[{\"Id\":\"0\"}]}"), 1, &b);
	ok(error == NULL && b.nfailed == 0 && b.failure == NULL, "json batch: all successful, no Failed list");
	error = d->batch(DOC(""), 2, &b);
	ok(contains(error, "2 of its 2 entries are neither successful nor failed"), "json batch: an empty body accounts for nothing");
	error = d->batch(DOC("{\"Successful\":[{\"Id\":\"01\"}]}"), 2, &b);
	ok(contains(error, "entry Id \"01\" was not in the request"), "json batch: an Id not sent");
	error = d->batch(DOC("{\"Successful\":[{\"Id\":\"0\"}],\"Failed\":[{\"Id\":\"0\"}]}"), 1, &b);
	ok(contains(error, "entry 0 is reported twice"), "json batch: an entry reported twice");
	error = d->batch(DOC("{\"Failed\":\"x\"}"), 1, &b);
	ok(contains(error, "\"Failed\" is a string, not an array"), "json batch: Failed a string");
	error = d->batch(DOC("{\"Successful\":[{\"Id\":0}]}"), 1, &b);
	ok(contains(error, "the Id of an entry is a number, not a string"), "json batch: an Id that is a number");

	error = d->attributes(DOC("{\"Attributes\":{\"ApproximateNumberOfMessages\":\"5\",\"Other\":[]}}"), depth_names, 3, v);
	ok(error == NULL && v[0] == 5 && v[1] == -1 && v[2] == -1, "json attributes: a count, the others unknown");
	error = d->attributes(DOC(""), depth_names, 3, v);
	ok(error == NULL && v[0] == -1, "json attributes: an empty body says nothing");
	error = d->attributes(DOC("{\"Attributes\":{\"ApproximateNumberOfMessages\":\"-5\"}}"), depth_names, 3, v);
	ok(contains(error, "attribute ApproximateNumberOfMessages is not a count of messages"),
	   "json attributes: a negative count");
	error = d->attributes(DOC("{\"Attributes\":[]}"), depth_names, 3, v);
	ok(contains(error, "\"Attributes\" is an array, not an object"), "json attributes: Attributes an array");

	ok(d->error(DOC("{\"__type\":\"com.amazonaws.sqs#QueueDoesNotExist\",\"message\":\"gone\"}"), &e) &&
	   equals(e.code, "QueueDoesNotExist") && equals(e.message, "gone"), "json error: code after '#' and message");
	ok(d->error(DOC("{\"code\":\"Throttling\",\"Message\":\"slow down\"}"), &e) &&
	   equals(e.code, "Throttling") && equals(e.message, "slow down"), "json error: code and Message");
	ok(!d->error(DOC("<html>busy</html>"), &e), "json error: not a JSON error document");
	ok(!d->error(DOC(""), &e), "json error: an empty body is no error document");
}

static void
xml_cases(void)
{
	const Decoders *d = &xml_decoders;
	SqsReceiveResponse r;
	SqsBatchResponse b;
	SqsErrorDocument e;
	int64		v[3];
	char	   *error;
	const char *batch;
	char		doc[1024];

	error = receive(d, "<?xml version=\"1.0\"?><ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">"
					"<ReceiveMessageResult><Message><MessageId>m-1</MessageId><ReceiptHandle>rh-1</ReceiptHandle>"
					"<MD5OfBody>" HELLO_MD5 "</MD5OfBody><Body>hel<![CDATA[l]]>o</Body>"
					"<Attribute><Name>SentTimestamp</Name><Value>1700000000123</Value></Attribute>"
					"<Attribute><Name>ApproximateReceiveCount</Name><Value>2</Value></Attribute>"
					"<MessageAttribute><Name>trace</Name><Value><StringValue>t&amp;1</StringValue>"
					"<DataType>String</DataType></Value></MessageAttribute>"
					"</Message></ReceiveMessageResult></ReceiveMessageResponse>", 10, &r);
	ok(error == NULL && r.nmessages == 1 && equals(r.messages[0].message_id, "m-1") &&
	   equals(r.messages[0].receipt_handle, "rh-1") && equals(r.messages[0].body, "hello") &&
	   r.messages[0].sent_timestamp_ms == INT64CONST(1700000000123) && r.messages[0].receive_count == 2,
	   "xml: one message decoded, MD5 checked");
	ok(error == NULL && r.messages[0].nattributes == 1 &&
	   equals(r.messages[0].attributes[0].string_value, "t&1"), "xml: a message attribute");
	ok(receive(d, "", 10, &r) == NULL && r.nmessages == 0, "xml: an empty body is an empty receive");
	ok(receive(d, "<ReceiveMessageResponse><ReceiveMessageResult/></ReceiveMessageResponse>", 10, &r) == NULL &&
	   r.nmessages == 0, "xml: no Message element is an empty receive");
	error = receive(d, "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId>"
					"<ReceiptHandle>r</ReceiptHandle><Attribute><Name>SentTimestamp</Name><Value>1e3</Value></Attribute>"
					"</Message></ReceiveMessageResult></ReceiveMessageResponse>", 10, &r);
	ok(error == NULL && r.nmessages == 1 && contains(r.messages[0].defect, "SentTimestamp \"1e3\" is not an integer"),
	   "xml: a SentTimestamp that is not an integer is a defect");

	receive_fails(d, "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]>"
				  "<ReceiveMessageResponse>&b;</ReceiveMessageResponse>", -1, 10,
				  "declares a DTD or entities", "xml: internal entities refused");
	receive_fails(d, "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><ReceiveMessageResponse/>", -1, 10,
				  "declares a DTD or entities", "xml: an external DTD refused");
	receive_fails(d, "<ReceiveMessageResponse>&x;</ReceiveMessageResponse>", -1, 10,
				  "not well-formed XML", "xml: an undeclared entity");
	receive_fails(d, "<ReceiveMessageResponse>&#0;</ReceiveMessageResponse>", -1, 10,
				  "not well-formed XML", "xml: a NUL character reference");
	receive_fails(d, "<ReceiveMessageResponse><a>", -1, 10, "not well-formed XML", "xml: truncated");
	receive_fails(d, "<ErrorResponse/>", -1, 10, "the response is <ErrorResponse>, not <ReceiveMessageResponse>",
				  "xml: the wrong root element");
	receive_fails(d, "<ReceiveMessageResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
				  "</ReceiveMessageResponse>", -1, 10, "the response has no <ReceiveMessageResult>",
				  "xml: no result element is no empty receive");
	receive_fails(d, "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId>"
				  "</Message></ReceiveMessageResult></ReceiveMessageResponse>", -1, 10,
				  "message 1 has no ReceiptHandle", "xml: no ReceiptHandle");
	receive_fails(d, "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m<x/></MessageId>"
				  "<ReceiptHandle>r</ReceiptHandle></Message></ReceiveMessageResult></ReceiveMessageResponse>", -1, 10,
				  "a MessageId holds elements, not text", "xml: an element where text belongs");
	receive_fails(d, "<ReceiveMessageResponse><ReceiveMessageResult>"
				  "<Message><MessageId>m</MessageId><ReceiptHandle>r</ReceiptHandle></Message>"
				  "<Message><MessageId>n</MessageId><ReceiptHandle>s</ReceiptHandle></Message>"
				  "</ReceiveMessageResult></ReceiveMessageResponse>", -1, 1,
				  "more than the 1 messages asked for", "xml: more messages than asked for");
	/* the root and 32 levels of <a> inside it: 33 */
	strcpy(doc, "<ReceiveMessageResponse>");
	for (int i = 0; i < 32; i++)
		strcat(doc, "<a>");
	for (int i = 0; i < 32; i++)
		strcat(doc, "</a>");
	strcat(doc, "</ReceiveMessageResponse>");
	receive_fails(d, doc, -1, 10, "nests deeper than 32 levels", "xml: 33 levels");

	batch = "<DeleteMessageBatchResponse><DeleteMessageBatchResult>"
		"<DeleteMessageBatchResultEntry><Id>0</Id></DeleteMessageBatchResultEntry>"
		"<BatchResultErrorEntry><Id>1</Id><Code>ReceiptHandleIsInvalid</Code><Message>bad &quot;x&quot;</Message>"
		"<SenderFault>true</SenderFault></BatchResultErrorEntry>"
		"</DeleteMessageBatchResult></DeleteMessageBatchResponse>";
	error = d->batch(batch, strlen(batch), 2, &b);
	ok(error == NULL && b.nfailed == 1 && b.failed[1] && equals(b.failure, "ReceiptHandleIsInvalid: bad \"x\""),
	   "xml batch: successful and failed entries");
	error = d->batch(batch, strlen(batch), 3, &b);
	ok(contains(error, "1 of its 3 entries are neither successful nor failed"), "xml batch: an entry missing");

	error = d->attributes(DOC("<GetQueueAttributesResponse><GetQueueAttributesResult><Attribute><Name>"
						  "ApproximateNumberOfMessagesDelayed</Name><Value>7</Value></Attribute>"
						  "</GetQueueAttributesResult></GetQueueAttributesResponse>"), depth_names, 3, v);
	ok(error == NULL && v[0] == -1 && v[2] == 7, "xml attributes: a count");
	error = d->attributes(DOC("<GetQueueAttributesResponse><ResponseMetadata/></GetQueueAttributesResponse>"),
						  depth_names, 3, v);
	ok(contains(error, "the response has no <GetQueueAttributesResult>"),
	   "xml attributes: no result element is no answer");
	error = d->batch(DOC("<DeleteMessageBatchResponse/>"), 1, &b);
	ok(contains(error, "the response has no <DeleteMessageBatchResult>"), "xml batch: no result element");

	ok(d->error(DOC("<ErrorResponse><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>"
				"<Message>gone</Message></Error></ErrorResponse>"), &e) &&
	   equals(e.code, "NonExistentQueue") && equals(e.message, "gone"), "xml error: code and message");
	ok(!d->error(DOC("{\"__type\":\"x\"}"), &e), "xml error: not an XML error document");
}

int
main(void)
{
	json_receive_cases();
	json_other_cases();
	xml_cases();
	printf("1..%d\n", ntests);
	printf("# %d passed, %d failed\n", ntests - nfailed, nfailed);
	arena_reset();
	return nfailed > 0 ? 1 : 0;
}
