/*-------------------------------------------------------------------------
 *
 * sqs_decode_xml.c
 *	  Pure decoders of SQS's Query protocol (XML) responses, and of STS's
 *	  answers, which the credential chain reads.
 *
 * The same rules as for JSON (sqs_decode.c) apply, and XML adds its own
 * dangers.  libxml2 is asked for the least it can do: no DTD is loaded,
 * no entity is substituted, no network is touched (XML_PARSE_NONET), its
 * own depth and size limits stay on (no XML_PARSE_HUGE), and it reports
 * nothing on stderr.  A document that declares a DTD at all is refused
 * before parsing, so no entity declaration is ever read; nesting is capped
 * far below libxml2's own limit.  Elements are matched by local name,
 * whatever their namespace; elements SQS may add later are skipped.
 *
 * libxml2 allocates with malloc: the tree is freed before returning, and
 * what the caller keeps is copied with palloc first.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "lib/stringinfo.h"

#include "sqs_decode.h"

/* deepest element nesting accepted (SQS's documents nest 5 deep) */
#define XML_MAX_DEPTH 32

#define XML_PARSE_OPTIONS \
	(XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

/* is the element named name (local name, any namespace)? */
static bool
is_element(const xmlNode *node, const char *name)
{
	return node->type == XML_ELEMENT_NODE &&
		strcmp((const char *) node->name, name) == 0;
}

/* does the tree under root nest deeper than limit?  Walked without recursion */
static bool
nests_deeper_than(xmlNode *root, int limit)
{
	xmlNode    *node = root;
	int			depth = 1;

	if (root->children == NULL)
		return false;
	for (;;)
	{
		if (node->type == XML_ELEMENT_NODE && node->children)
		{
			if (++depth > limit)
				return true;
			node = node->children;
			continue;
		}
		while (node->next == NULL)
		{
			node = node->parent;
			depth--;
			if (node == root)
				return false;
		}
		node = node->next;
	}
}

/*
 * Parse a response into a tree whose root is an element named root_name
 * (any element when root_name is NULL).  Returns NULL and sets *error if
 * the bytes are not such a document; *doc is NULL for an empty document.
 */
static xmlNode *
parse_document(const char *data, size_t len, const char *root_name,
			   xmlDoc **doc, char **error)
{
	xmlNode    *root;

	*doc = NULL;
	*error = sqs_decode_check_text(data, len);
	if (*error || len == 0)
		return NULL;
	if (memmem(data, len, "<!DOCTYPE", 9) != NULL ||
		memmem(data, len, "<!ENTITY", 8) != NULL)
	{
		*error = psprintf("the response declares a DTD or entities");
		return NULL;
	}
	xmlInitParser();
	*doc = xmlReadMemory(data, (int) len, NULL, "UTF-8", XML_PARSE_OPTIONS);
	if (*doc == NULL)
	{
		const xmlError *e = xmlGetLastError();

		*error = psprintf("the response is not well-formed XML%s%s",
						  e && e->message ? ": " : "",
						  e && e->message ? sqs_decode_clip(e->message, SQS_DECODE_MAX_TEXT_CHARS) : "");
		/* drop the trailing newline libxml2 puts on its messages */
		if ((*error)[strlen(*error) - 1] == '\n')
			(*error)[strlen(*error) - 1] = '\0';
		return NULL;
	}
	root = xmlDocGetRootElement(*doc);
	if ((*doc)->intSubset || (*doc)->extSubset)
		*error = psprintf("the response declares a DTD or entities");
	else if (root == NULL)
		*error = psprintf("the response has no root element");
	else if (nests_deeper_than(root, XML_MAX_DEPTH))
		*error = psprintf("the response nests deeper than %d levels", XML_MAX_DEPTH);
	else if (root_name != NULL && !is_element(root, root_name))
		*error = psprintf("the response is <%s>, not <%s>",
						  sqs_decode_clip((const char *) root->name, SQS_DECODE_MAX_TEXT_CHARS),
						  root_name);
	return *error ? NULL : root;
}

/* the first child element of node named name, or NULL */
static xmlNode *
child(const xmlNode *node, const char *name)
{
	for (xmlNode *c = node ? node->children : NULL; c; c = c->next)
		if (is_element(c, name))
			return c;
	return NULL;
}

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
	result = child(root, name);
	if (result == NULL)
		*error = psprintf("the response has no <%s>", name);
	return result;
}

/*
 * The text of an element as a palloc'd string, or NULL (and *error set)
 * if it holds elements.  NULL without error when node is NULL.  The string
 * is allocated at its final size, so that no copy of a secret is left
 * behind in memory given back.
 */
static char *
text_of(const xmlNode *node, const char *what, char **error)
{
	size_t		len = 0;
	char	   *text;

	if (node == NULL)
		return NULL;
	for (xmlNode *c = node->children; c; c = c->next)
	{
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
			len += strlen((const char *) c->content);
		else if (c->type == XML_ELEMENT_NODE)
		{
			*error = psprintf("%s holds elements, not text", what);
			return NULL;
		}
	}
	text = palloc(len + 1);
	len = 0;
	for (xmlNode *c = node->children; c; c = c->next)
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
		{
			size_t		n = strlen((const char *) c->content);

			memcpy(text + len, c->content, n);
			len += n;
		}
	text[len] = '\0';
	return text;
}

/*
 * Free a parsed document, first wiping the text it holds (but not the
 * strings libxml2 shares through its dictionary, which other documents
 * may use): for documents that carry secrets.
 */
static void
wipe_and_free(xmlDoc *doc)
{
	xmlNode    *root = xmlDocGetRootElement(doc);
	xmlNode    *node = root;

	/* a walk without recursion, as in nests_deeper_than() */
	while (node)
	{
		if ((node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) &&
			node->content && !xmlDictOwns(doc->dict, node->content))
			explicit_bzero(node->content, strlen((const char *) node->content));
		if (node->type == XML_ELEMENT_NODE && node->children)
		{
			node = node->children;
			continue;
		}
		while (node != root && node->next == NULL)
			node = node->parent;
		if (node == root)
			break;
		node = node->next;
	}
	xmlFreeDoc(doc);
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

		if (!is_element(c, "Attribute") && !is_element(c, "MessageAttribute"))
			continue;
		name = text_of(child(c, "Name"), "an attribute's Name", &error);
		if (error)
			break;
		if (name == NULL)
			return psprintf("an attribute of message %d has no Name", index);
		if (is_element(c, "Attribute"))
		{
			char	   *value = text_of(child(c, "Value"), "an attribute's Value", &error);

			if (strcmp(name, "SentTimestamp") == 0)
				sqs_decode_sent_timestamp(m, value);
			else if (strcmp(name, "ApproximateReceiveCount") == 0)
				sqs_decode_receive_count(m, value);
		}
		else
		{
			xmlNode    *value = child(c, "Value");
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
			a->string_value = text_of(child(value, "StringValue"),
									  "a StringValue", &error);
			a->data_type = text_of(child(value, "DataType"), "a DataType", &error);
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
	xmlNode    *root = parse_document(data, len, "ReceiveMessageResponse", &doc, &error);
	xmlNode    *list = result_element(root, "ReceiveMessageResult", &error);
	int			seen = 0;

	memset(result, 0, sizeof(SqsReceiveResponse));
	result->messages = palloc0(sizeof(SqsMessage) * Max(max_messages, 1));
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		SqsMessage *m = &result->messages[result->nmessages];
		char	   *md5;
		bool		skipped;

		if (!is_element(c, "Message"))
			continue;
		if (++seen > max_messages)
		{
			error = psprintf("it holds more than the %d messages asked for",
							 max_messages);
			break;
		}
		memset(m, 0, sizeof(SqsMessage));
		m->sent_timestamp_ms = -1;
		m->message_id = text_of(child(c, "MessageId"), "a MessageId", &error);
		m->receipt_handle = text_of(child(c, "ReceiptHandle"), "a ReceiptHandle", &error);
		m->body = text_of(child(c, "Body"), "a Body", &error);
		md5 = text_of(child(c, "MD5OfBody"), "an MD5OfBody", &error);
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
	xmlNode    *root = parse_document(data, len, response, &doc, &error);
	xmlNode    *list = result_element(root, result_name, &error);
	bool	   *reported = palloc0(sizeof(bool) * Max(entries, 1));

	memset(result, 0, sizeof(SqsBatchResponse));
	result->failed = palloc0(sizeof(bool) * Max(entries, 1));
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		bool		failed = is_element(c, "BatchResultErrorEntry");
		char	   *id;
		char	   *code;
		char	   *message;

		if (!failed && !is_element(c, entry_name))
			continue;
		id = text_of(child(c, "Id"), "an entry's Id", &error);
		code = text_of(child(c, "Code"), "an entry's Code", &error);
		message = text_of(child(c, "Message"), "an entry's Message", &error);
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
	xmlNode    *root = parse_document(data, len, "GetQueueAttributesResponse", &doc, &error);
	xmlNode    *list = result_element(root, "GetQueueAttributesResult", &error);

	for (int i = 0; i < count; i++)
		values[i] = -1;
	for (xmlNode *c = list ? list->children : NULL; c && !error; c = c->next)
	{
		char	   *name;
		char	   *value;

		if (!is_element(c, "Attribute"))
			continue;
		name = text_of(child(c, "Name"), "an attribute's Name", &error);
		value = text_of(child(c, "Value"), "an attribute's Value", &error);
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
	xmlNode    *root = parse_document(data, len, "ErrorResponse", &doc, &error);
	xmlNode    *e = child(root, "Error");
	char	   *code = text_of(child(e, "Code"), "Code", &error);
	char	   *message = text_of(child(e, "Message"), "Message", &error);

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

/* ---------------------------------------------------------------------
 * STS
 * ---------------------------------------------------------------------
 */

/*
 * Decode an STS answer: <AssumeRoleResponse> or
 * <AssumeRoleWithWebIdentityResponse> with its Credentials, or an
 * <ErrorResponse>.  The parsed tree is wiped before it is freed: it holds
 * the credentials.
 */
char *
sqs_decode_xml_sts(const char *data, size_t len, SqsStsAnswer *result)
{
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = parse_document(data, len, NULL, &doc, &error);

	memset(result, 0, sizeof(SqsStsAnswer));
	if (root && is_element(root, "ErrorResponse"))
	{
		xmlNode    *e = child(root, "Error");
		char	   *code = text_of(child(e, "Code"), "Code", &error);
		char	   *message = text_of(child(e, "Message"), "Message", &error);

		if (code)
			result->code = sqs_decode_clip(code, SQS_DECODE_MAX_TEXT_CHARS);
		if (message)
			result->message = sqs_decode_clip(message, SQS_DECODE_MAX_TEXT_CHARS);
	}
	else if (root && (is_element(root, "AssumeRoleResponse") ||
					  is_element(root, "AssumeRoleWithWebIdentityResponse")))
	{
		/* <ActionResponse><ActionResult><Credentials> */
		const char *name = (const char *) root->name;
		char	   *result_name = psprintf("%.*sResult",
										   (int) (strlen(name) - strlen("Response")), name);
		xmlNode    *credentials = child(child(root, result_name), "Credentials");

		result->access_key_id = text_of(child(credentials, "AccessKeyId"),
										"AccessKeyId", &error);
		result->secret_access_key = text_of(child(credentials, "SecretAccessKey"),
											"SecretAccessKey", &error);
		result->session_token = text_of(child(credentials, "SessionToken"),
										"SessionToken", &error);
		result->expiration = text_of(child(credentials, "Expiration"),
									 "Expiration", &error);
	}
	else if (root)
		error = psprintf("the response is <%s>, not an STS answer",
						 sqs_decode_clip((const char *) root->name, SQS_DECODE_MAX_TEXT_CHARS));
	if (doc)
		wipe_and_free(doc);
	return error;
}
