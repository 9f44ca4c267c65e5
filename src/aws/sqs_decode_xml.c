/*-------------------------------------------------------------------------
 *
 * sqs_decode_xml.c
 *	  Pure decoders of SQS's Query protocol (XML) responses.
 *
 * The same rules as for JSON (sqs_decode.c) apply; the documents are read
 * through the hardened libxml2 of aws_xml.c.  Elements SQS may add later
 * are skipped.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <libxml/tree.h>

#include "lib/stringinfo.h"

#include "aws_xml.h"
#include "sqs_decode.h"

/*
 * The result element (such as <ReceiveMessageResult>) of a parsed
 * response, or NULL.  SQS always sends it, empty when there is nothing to
 * report, so a document without it is the wrong shape (*error is set):
 * read as "nothing", it would make a broken answer look like an empty
 * queue.  An empty document (root NULL) has none and is no error.
 */
static xmlNode *
result_element(const xmlNode *root, const char *name, char **error)
{
	xmlNode    *result;

	if (root == NULL)
		return NULL;
	result = aws_xml_child(root, name);
	if (result == NULL)
		*error = psprintf("the response has no <%s>", name);
	return result;
}

/* ---------------------------------------------------------------------
 * ReceiveMessage
 * ---------------------------------------------------------------------
 */

/* the Attribute and MessageAttribute children of a message */
static char *
decode_message_attributes(xmlNode *message, SqsMessage *m, int index)
{
	char	   *error = NULL;
	int			capacity = 0;

	for (xmlNode *c = message->children; c && !error; c = c->next)
	{
		char	   *name;

		if (!aws_xml_is_element(c, "Attribute") && !aws_xml_is_element(c, "MessageAttribute"))
			continue;
		name = aws_xml_text(aws_xml_child(c, "Name"), "an attribute's Name", &error);
		if (error)
			break;
		if (name == NULL)
			return psprintf("an attribute of message %d has no Name", index);
		if (aws_xml_is_element(c, "Attribute"))
		{
			char	   *value = aws_xml_text(aws_xml_child(c, "Value"), "an attribute's Value", &error);

			if (strcmp(name, "SentTimestamp") == 0)
				sqs_decode_sent_timestamp(m, value);
			else if (strcmp(name, "ApproximateReceiveCount") == 0)
				sqs_decode_receive_count(m, value);
		}
		else
		{
			xmlNode    *value = aws_xml_child(c, "Value");
			SqsMessageAttribute *a;

			if (m->nattributes == capacity)
			{
				capacity = Max(4, capacity * 2);
				m->attributes = m->attributes ?
					repalloc(m->attributes, sizeof(SqsMessageAttribute) * capacity) :
					palloc(sizeof(SqsMessageAttribute) * capacity);
			}
			a = &m->attributes[m->nattributes++];
			a->name = name;
			a->string_value = aws_xml_text(aws_xml_child(value, "StringValue"),
									  "a StringValue", &error);
			a->data_type = aws_xml_text(aws_xml_child(value, "DataType"), "a DataType", &error);
		}
	}
	return error;
}

/* Decode a Query-protocol ReceiveMessage response. */
char *
sqs_decode_xml_receive(const char *data, size_t len, int max_messages,
					   SqsReceiveResponse *result)
{
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = aws_xml_parse(data, len, "ReceiveMessageResponse", &doc, &error);
	xmlNode    *list = result_element(root, "ReceiveMessageResult", &error);
	int			seen = 0;

	memset(result, 0, sizeof(SqsReceiveResponse));
	result->messages = palloc0(sizeof(SqsMessage) * Max(max_messages, 1));
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		SqsMessage *m = &result->messages[result->nmessages];
		char	   *md5;
		bool		skipped;

		if (!aws_xml_is_element(c, "Message"))
			continue;
		if (++seen > max_messages)
		{
			error = psprintf("it holds more than the %d messages asked for",
							 max_messages);
			break;
		}
		memset(m, 0, sizeof(SqsMessage));
		m->sent_timestamp_ms = -1;
		m->message_id = aws_xml_text(aws_xml_child(c, "MessageId"), "a MessageId", &error);
		m->receipt_handle = aws_xml_text(aws_xml_child(c, "ReceiptHandle"), "a ReceiptHandle", &error);
		m->body = aws_xml_text(aws_xml_child(c, "Body"), "a Body", &error);
		md5 = aws_xml_text(aws_xml_child(c, "MD5OfBody"), "an MD5OfBody", &error);
		if (error == NULL)
			error = decode_message_attributes(c, m, seen);
		if (error == NULL)
			error = sqs_decode_finish_message(m, seen, md5, &skipped);
		if (error == NULL && skipped)
			result->nskipped++;
		else if (error == NULL)
			result->nmessages++;
	}
	if (doc)
		xmlFreeDoc(doc);
	return error;
}

/* ---------------------------------------------------------------------
 * DeleteMessageBatch, ChangeMessageVisibilityBatch
 * ---------------------------------------------------------------------
 */

/*
 * Decode the Query-protocol response to a batch action (its name, such as
 * "DeleteMessageBatch") of entries with Ids "0" .. entries-1.
 */
char *
sqs_decode_xml_batch(const char *data, size_t len, const char *action,
					 int entries, SqsBatchResponse *result)
{
	char	   *response = psprintf("%sResponse", action);
	char	   *result_name = psprintf("%sResult", action);
	char	   *entry_name = psprintf("%sResultEntry", action);
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = aws_xml_parse(data, len, response, &doc, &error);
	xmlNode    *list = result_element(root, result_name, &error);
	bool	   *reported = palloc0(sizeof(bool) * Max(entries, 1));

	memset(result, 0, sizeof(SqsBatchResponse));
	result->failed = palloc0(sizeof(bool) * Max(entries, 1));
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		bool		failed = aws_xml_is_element(c, "BatchResultErrorEntry");
		char	   *id;
		char	   *code;
		char	   *message;

		if (!failed && !aws_xml_is_element(c, entry_name))
			continue;
		id = aws_xml_text(aws_xml_child(c, "Id"), "an entry's Id", &error);
		code = aws_xml_text(aws_xml_child(c, "Code"), "an entry's Code", &error);
		message = aws_xml_text(aws_xml_child(c, "Message"), "an entry's Message", &error);
		if (error == NULL)
			error = sqs_decode_batch_entry(result, reported, entries, id,
										   failed, code, message);
	}
	if (doc)
		xmlFreeDoc(doc);
	if (error == NULL)
		error = sqs_decode_batch_missing(reported, entries);
	return error;
}

/* ---------------------------------------------------------------------
 * GetQueueAttributes
 * ---------------------------------------------------------------------
 */

/*
 * Decode a Query-protocol GetQueueAttributes response: values[i] is the
 * count named names[i], or -1 if the response does not have it.
 */
char *
sqs_decode_xml_attributes(const char *data, size_t len,
						  const char *const *names, int count, int64 *values)
{
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = aws_xml_parse(data, len, "GetQueueAttributesResponse", &doc, &error);
	xmlNode    *list = result_element(root, "GetQueueAttributesResult", &error);

	for (int i = 0; i < count; i++)
		values[i] = -1;
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		char	   *name;
		char	   *value;

		if (!aws_xml_is_element(c, "Attribute"))
			continue;
		name = aws_xml_text(aws_xml_child(c, "Name"), "an attribute's Name", &error);
		value = aws_xml_text(aws_xml_child(c, "Value"), "an attribute's Value", &error);
		for (int i = 0; i < count && name && !error; i++)
		{
			if (strcmp(name, names[i]) != 0)
				continue;
			if (value == NULL || !sqs_decode_count(value, &values[i]))
			{
				values[i] = -1;
				error = psprintf("attribute %s is not a count of messages", names[i]);
			}
		}
	}
	if (doc)
		xmlFreeDoc(doc);
	return error;
}

/* ---------------------------------------------------------------------
 * error documents
 * ---------------------------------------------------------------------
 */

/*
 * Read a Query-protocol error document (<ErrorResponse><Error><Code>...).
 * Returns false if the bytes are not one.
 */
bool
sqs_decode_xml_error(const char *data, size_t len, SqsErrorDocument *result)
{
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = aws_xml_parse(data, len, "ErrorResponse", &doc, &error);
	xmlNode    *e = aws_xml_child(root, "Error");
	char	   *code = aws_xml_text(aws_xml_child(e, "Code"), "Code", &error);
	char	   *message = aws_xml_text(aws_xml_child(e, "Message"), "Message", &error);

	memset(result, 0, sizeof(SqsErrorDocument));
	if (doc)
		xmlFreeDoc(doc);
	if (error)
		return false;
	if (code)
	{
		/* AWS.SimpleQueueService.NonExistentQueue: the last part is the code */
		const char *dot = strrchr(code, '.');

		result->code = sqs_decode_clip(dot ? dot + 1 : code, SQS_DECODE_MAX_TEXT_CHARS);
	}
	if (message)
		result->message = sqs_decode_clip(message, SQS_DECODE_MAX_TEXT_CHARS);
	return code != NULL || message != NULL;
}
