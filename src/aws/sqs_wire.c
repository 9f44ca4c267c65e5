/*-------------------------------------------------------------------------
 *
 * sqs_wire.c
 *	  SQS on the wire: the request bodies of each action in AWS JSON 1.0 and
 *	  in the Query protocol, their headers, what a response says (an error,
 *	  classified, or a result through the pure decoders of sqs_decode.c and
 *	  sqs_decode_xml.c), and whether an answer shows that the endpoint speaks
 *	  only the Query protocol.
 *
 * The SQS actions are one table, sqs_actions[]: a row says an action's
 * name, its wait event, how its request body is built and which decoder
 * reads its response in each protocol.  Nothing here touches the network:
 * the client (sqs_client.c) sends what is built here through the transport
 * (transport.c) and hands back what is decoded here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "redact.h"
#include "sqs_client.h"
#include "sqs_decode.h"
#include "sqs_wire.h"
#include "transport.h"

#define QUERY_API_VERSION "2012-11-05"
#define NUM_DEPTH_ATTRIBUTES 3

static const char *const queue_depth_attributes[NUM_DEPTH_ATTRIBUTES] = {
	"ApproximateNumberOfMessages",
	"ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed"
};

static void build_receive(RequestBody *b, SqsAction action, const SqsCall *call);
static void build_delete(RequestBody *b, SqsAction action, const SqsCall *call);
static void build_change_visibility(RequestBody *b, SqsAction action,
									const SqsCall *call);
static void build_get_attributes(RequestBody *b, SqsAction action,
								 const SqsCall *call);
static char *receive_json(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);
static char *receive_xml(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);
static char *batch_json(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);
static char *batch_xml(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);
static char *attributes_json(SqsRequest *request, SqsDecoded *decoded,
							 SqsResult *result);
static char *attributes_xml(SqsRequest *request, SqsDecoded *decoded,
							SqsResult *result);
static void take_receive(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);
static void take_batch(SqsRequest *request, SqsDecoded *decoded, SqsResult *result);

/* the SQS actions, in the order of SqsAction */
const SqsActionDef sqs_actions[SQS_NUM_ACTIONS] = {
	[SQS_RECEIVE] = {
		"ReceiveMessage", "SqsReceive", true,
		build_receive, receive_json, receive_xml, take_receive
	},
	[SQS_DELETE_BATCH] = {
		"DeleteMessageBatch", "SqsDelete", false,
		build_delete, batch_json, batch_xml, take_batch
	},
	[SQS_CHANGE_VISIBILITY_BATCH] = {
		"ChangeMessageVisibilityBatch", "SqsChangeVisibility", false,
		build_change_visibility, batch_json, batch_xml, take_batch
	},
	[SQS_GET_ATTRIBUTES] = {
		"GetQueueAttributes", "SqsGetQueueAttributes", false,
		build_get_attributes, attributes_json, attributes_xml, NULL
	},
};

/* ---------------------------------------------------------------------
 * requests
 * ---------------------------------------------------------------------
 */

/* the headers of an action's requests in one wire protocol */
struct curl_slist *
sqs_wire_headers(SqsAction action, int wire)
{
	struct curl_slist *headers = NULL;
	struct curl_slist *next;
	char		target[64];

	if (wire == WIRE_QUERY)
		headers = curl_slist_append(headers,
									"Content-Type: application/x-www-form-urlencoded; charset=utf-8");
	else
	{
		snprintf(target, sizeof(target), "X-Amz-Target: AmazonSQS.%s",
				 sqs_actions[action].name);
		headers = curl_slist_append(headers, "Content-Type: application/x-amz-json-1.0");
		if (headers && (next = curl_slist_append(headers, target)) != NULL)
			headers = next;
		else
			headers = NULL;
	}
	if (headers == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return headers;
}

/* the start of a request body: the action and the queue */
static void
body_begin(RequestBody *b, SqsAction action, const char *queue_url)
{
	initStringInfo(&b->json);
	appendStringInfoString(&b->json, "{\"QueueUrl\":");
	escape_json(&b->json, queue_url);
	if (!b->with_query)
		return;
	initStringInfo(&b->query);
	appendStringInfo(&b->query, "Action=%s&Version=%s&QueueUrl=",
					 sqs_actions[action].name, QUERY_API_VERSION);
	transport_form_value(&b->query, queue_url);
}

static void
body_int(RequestBody *b, const char *name, int value)
{
	appendStringInfo(&b->json, ",\"%s\":%d", name, value);
	if (b->with_query)
		appendStringInfo(&b->query, "&%s=%d", name, value);
}

/* a list of names: "json_name":[...] in JSON, query_name.N=... in Query */
static void
body_names(RequestBody *b, const char *json_name, const char *query_name,
		   const char *const *names, int count)
{
	appendStringInfo(&b->json, ",\"%s\":[", json_name);
	for (int i = 0; i < count; i++)
	{
		appendStringInfo(&b->json, "%s\"%s\"", i > 0 ? "," : "", names[i]);
		if (b->with_query)
			appendStringInfo(&b->query, "&%s.%d=%s", query_name, i + 1, names[i]);
	}
	appendStringInfoChar(&b->json, ']');
}

/*
 * The entries of a batch action on receipt handles, with Ids "0" ..
 * count-1, and an integer member extra_name (if not NULL) in each.
 */
static void
body_entries(RequestBody *b, SqsAction action, char **receipt_handles,
			 int count, const char *extra_name, int extra_value)
{
	const char *prefix = sqs_actions[action].name;

	appendStringInfoString(&b->json, ",\"Entries\":[");
	for (int i = 0; i < count; i++)
	{
		appendStringInfo(&b->json, "%s{\"Id\":\"%d\",\"ReceiptHandle\":",
						 i > 0 ? "," : "", i);
		escape_json(&b->json, receipt_handles[i]);
		if (extra_name)
			appendStringInfo(&b->json, ",\"%s\":%d", extra_name, extra_value);
		if (b->with_query)
		{
			appendStringInfo(&b->query, "&%sRequestEntry.%d.Id=%d&%sRequestEntry.%d.ReceiptHandle=",
							 prefix, i + 1, i, prefix, i + 1);
			transport_form_value(&b->query, receipt_handles[i]);
			if (extra_name)
				appendStringInfo(&b->query, "&%sRequestEntry.%d.%s=%d",
								 prefix, i + 1, extra_name, extra_value);
		}
		appendStringInfoChar(&b->json, '}');
	}
	appendStringInfoChar(&b->json, ']');
}


/*
 * ReceiveMessage for up to max_messages messages, asking for the
 * attributes the mapping uses.
 */
static void
build_receive(RequestBody *b, SqsAction action, const SqsCall *call)
{
	static const char *const attributes[] = {"SentTimestamp", "ApproximateReceiveCount"};
	static const char *const all[] = {"All"};

	body_int(b, "MaxNumberOfMessages", call->max_messages);
	body_int(b, "VisibilityTimeout", call->visibility_timeout);
	body_int(b, "WaitTimeSeconds", call->wait_seconds);
	body_names(b, "AttributeNames", "AttributeName", attributes, lengthof(attributes));
	/* the Query protocol has no separate list of system attributes */
	appendStringInfoString(&b->json,
						   ",\"MessageSystemAttributeNames\":[\"SentTimestamp\",\"ApproximateReceiveCount\"]");
	body_names(b, "MessageAttributeNames", "MessageAttributeName", all, lengthof(all));
}

/* DeleteMessageBatch of the receipt handles */
static void
build_delete(RequestBody *b, SqsAction action, const SqsCall *call)
{
	body_entries(b, action, call->receipt_handles, call->count, NULL, 0);
}

/* ChangeMessageVisibilityBatch: hide the messages for visibility_timeout */
static void
build_change_visibility(RequestBody *b, SqsAction action, const SqsCall *call)
{
	body_entries(b, action, call->receipt_handles, call->count,
				 "VisibilityTimeout", call->visibility_timeout);
}

/* GetQueueAttributes for the approximate message counts */
static void
build_get_attributes(RequestBody *b, SqsAction action, const SqsCall *call)
{
	body_names(b, "AttributeNames", "AttributeName", queue_depth_attributes,
			   NUM_DEPTH_ATTRIBUTES);
}

/*
 * The body of an action's request on the queue, in JSON and, with
 * with_query, in the Query protocol's form too, palloc'd in the current
 * memory context.
 */
void
sqs_wire_body(RequestBody *b, bool with_query, SqsAction action,
			  const char *queue_url, const SqsCall *call)
{
	b->with_query = with_query;
	body_begin(b, action, queue_url);
	sqs_actions[action].build(b, action, call);
	appendStringInfoChar(&b->json, '}');
}

/* ---------------------------------------------------------------------
 * responses
 * ---------------------------------------------------------------------
 */

/* classify an AWS error code (the part of __type after any '#') */
static void
classify_aws_error(SqsError *error)
{
	const char *type = error->aws_type ? error->aws_type : "";

	error->transient = error->http_status >= 500 || error->http_status == 429;
	error->sqlerrcode = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;

	if (strstr(type, "QueueDoesNotExist") || strstr(type, "NonExistentQueue"))
	{
		error->transient = false;
		error->sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		error->hint = gettext_noop("Check sqs_ingest.queue_url and sqs_ingest.region: the queue must exist in that region and account.");
	}
	else if (strstr(type, "Signature") || strstr(type, "ClientToken") ||
			 strstr(type, "UnrecognizedClient") ||
			 strstr(type, "MissingAuthenticationToken") ||
			 strstr(type, "ExpiredToken") || strstr(type, "InvalidSecurity"))
	{
		error->transient = false;
		error->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		error->hint = gettext_noop("Check the credentials (sqs_ingest.stats shows their source: the settings or the AWS credential chain) and sqs_ingest.region.");
	}
	else if (strstr(type, "AccessDenied"))
	{
		error->transient = false;
		error->sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
		error->hint = gettext_noop("Grant the credentials sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes on the queue.");
	}
	else if (strstr(type, "Throttl") || strstr(type, "RequestThrottled") ||
			 strstr(type, "OverLimit") || strstr(type, "ServiceUnavailable") ||
			 strstr(type, "InternalError") || strstr(type, "InternalFailure"))
	{
		error->transient = true;
		error->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		if (strstr(type, "Throttl") || strstr(type, "OverLimit"))
			error->hint = gettext_noop("Lower sqs_ingest.max_inflight or raise the account's SQS quotas.");
	}
	else if (error->transient)
		error->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
}

/* the error of a failed request, or NULL if it succeeded */
SqsError *
sqs_wire_error(SqsRequest *request)
{
	SqsError   *error;
	SqsErrorDocument document;

	if (request->http.curl_result == CURLE_OK && request->http.http_status == 200)
		return NULL;

	error = palloc0(sizeof(SqsError));
	error->action = sqs_actions[request->action].name;
	error->http_status = request->http.http_status;

	if (request->http.curl_result != CURLE_OK)
	{
		CURLcode	rc = request->http.curl_result;

		error->too_large = request->http.response_too_big;
		error->message = psprintf("%s",
								  request->http.response_too_big ? "response too large" :
								  request->http.curl_error[0] ? request->http.curl_error :
								  curl_easy_strerror(rc));
		switch (rc)
		{
			case CURLE_PEER_FAILED_VERIFICATION:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
				error->message = psprintf("TLS verification of the endpoint failed: %s",
										  error->message);
				error->hint = gettext_noop("If a private CA issued the endpoint's certificate, set sqs_ingest.ca_file to a PEM file of its CA certificates; verification cannot be turned off.");
				break;
			case CURLE_SSL_CACERT_BADFILE:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
				error->message = psprintf("could not load the CA certificates: %s",
										  error->message);
				error->hint = gettext_noop("Set sqs_ingest.ca_file to a PEM file of CA certificates, or to an empty string for the system's.");
				break;
			case CURLE_UNSUPPORTED_PROTOCOL:
			case CURLE_URL_MALFORMAT:
			case CURLE_SSL_CERTPROBLEM:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
				error->hint = gettext_noop("Check sqs_ingest.queue_url and sqs_ingest.endpoint; TLS peers are always verified.");
				break;
			default:
				error->transient = true;
				error->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
				break;
		}
		return error;
	}

	/*
	 * An AWS error: {"__type": "...#Code", "message": "..."} in JSON,
	 * <ErrorResponse><Error><Code>... in the Query protocol.  Fronts and
	 * proxies do not always answer in the protocol asked: try both.
	 */
	if (sqs_decode_json_error(request->http.response, request->http.response_len, &document) ||
		sqs_decode_xml_error(request->http.response, request->http.response_len, &document))
	{
		/* the code is the endpoint's text as much as the message is */
		error->aws_type = redact_aws_text(document.code);
		error->message = redact_aws_text(document.message);
	}
	if (error->message == NULL)
		error->message = psprintf("HTTP status %ld", request->http.http_status);
	classify_aws_error(error);
	return error;
}

/* the error of a response the decoder could not read */
static SqsError *
protocol_error(SqsRequest *request, const char *what)
{
	SqsError   *error = palloc0(sizeof(SqsError));

	error->action = sqs_actions[request->action].name;
	error->http_status = request->http.http_status;
	error->sqlerrcode = ERRCODE_PROTOCOL_VIOLATION;
	error->message = psprintf("unexpected response: %s", what);
	error->hint = gettext_noop("Check that sqs_ingest.queue_url and sqs_ingest.endpoint point at Amazon SQS or a faithful emulator.");
	return error;
}


/*
 * Each action's decoder in each protocol: the pure decoder of its
 * response, what it reads left in decoded (or, for the queue's depth,
 * written in the result at once).
 */
static char *
receive_json(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_json_receive(request->http.response, request->http.response_len,
								   request->requested, &decoded->receive);
}

static char *
receive_xml(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_xml_receive(request->http.response, request->http.response_len,
								  request->requested, &decoded->receive);
}

static char *
batch_json(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_json_batch(request->http.response, request->http.response_len,
								 request->requested, &decoded->batch);
}

static char *
batch_xml(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_xml_batch(request->http.response, request->http.response_len,
								sqs_actions[request->action].name,
								request->requested, &decoded->batch);
}

static char *
attributes_json(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_json_attributes(request->http.response, request->http.response_len,
									  queue_depth_attributes,
									  NUM_DEPTH_ATTRIBUTES, result->attributes);
}

static char *
attributes_xml(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	return sqs_decode_xml_attributes(request->http.response, request->http.response_len,
									 queue_depth_attributes,
									 NUM_DEPTH_ATTRIBUTES, result->attributes);
}

/* a decoded ReceiveMessage, each message stamped with when it was answered */
static void
take_receive(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	SqsReceiveResponse *receive = &decoded->receive;

	result->nmessages = receive->nmessages;
	result->messages = receive->messages;
	result->nskipped = receive->nskipped;
	for (int i = 0; i < receive->nmessages; i++)
		receive->messages[i].received_at = request->http.answered_after;
}

/* a decoded batch action: which entries failed, the first one's text */
static void
take_batch(SqsRequest *request, SqsDecoded *decoded, SqsResult *result)
{
	result->nfailed = decoded->batch.nfailed;
	result->failed = decoded->batch.failed;
	result->failure = redact_aws_text(decoded->batch.failure);
}

/*
 * Decode a successful response into the result with its action's decoder
 * in the protocol it came in, or return its error.
 */
SqsError *
sqs_wire_decode(SqsRequest *request, SqsResult *result)
{
	const SqsActionDef *action = &sqs_actions[request->action];
	SqsDecoded	decoded;
	char	   *error;

	error = request->wire == WIRE_JSON ?
		action->decode_json(request, &decoded, result) :
		action->decode_xml(request, &decoded, result);
	if (error)
		return protocol_error(request, error);
	if (action->take)
		action->take(request, &decoded, result);
	return NULL;
}

/*
 * Has a JSON request's answer shown that the endpoint speaks only the Query
 * protocol?  An SQS XML document (in a 2xx or 4xx answer), or an error code
 * saying the operation or action is unknown.  A bare 404, a 5xx, a timeout
 * or a reset say nothing about it: a missing page or a failing server is
 * not a protocol, and switching on one would be silent and lasting.
 */
bool
sqs_wire_shows_query_only(SqsRequest *request)
{
	long		status = request->http.http_status;
	const char *p = request->http.response;
	const char *end = request->http.response + request->http.response_len;
	SqsErrorDocument document;

	if (request->http.curl_result != CURLE_OK || status < 200 || status >= 500)
		return false;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	if (p < end && *p == '<')
	{
		/* an SQS answer in XML, not any markup (a proxy's HTML page) */
		char	   *root = psprintf("<%sResponse", sqs_actions[request->action].name);
		bool		sqs_xml = memmem(p, end - p, root, strlen(root)) != NULL ||
			sqs_decode_xml_error(request->http.response, request->http.response_len, &document);

		pfree(root);
		return sqs_xml;
	}
	if (status == 200 ||
		!sqs_decode_json_error(request->http.response, request->http.response_len, &document))
		return false;
	return document.code &&
		(strstr(document.code, "UnknownOperation") ||
		 strstr(document.code, "InvalidAction") ||
		 strstr(document.code, "MissingAction"));
}
