/*-------------------------------------------------------------------------
 *
 * sqs_client.c
 *	  Asynchronous Amazon SQS client: what the pipeline sees of SQS.  A
 *	  client holds a configuration snapshot, starts requests of the SQS
 *	  actions (sqs_wire.c builds them, in AWS JSON 1.0 or the Query
 *	  protocol), signs them (sigv4.c), sends them through a
 *	  transport (transport.c: a libcurl multi handle waited on through a
 *	  WaitEventSet) and hands back each completed request as a result.
 *
 * With sqs_ingest.protocol = auto, requests go out in JSON until an answer
 * shows that the endpoint speaks only the Query protocol; the request is
 * then sent again in Query, which this process speaks to that endpoint
 * from then on.
 *
 * Responses are decoded by the pure decoders of sqs_decode.c and
 * sqs_decode_xml.c; what they find wrong becomes a protocol error of the
 * request.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "aws_credentials.h"
#include "compat.h"
#include "secrets.h"
#include "sigv4.h"
#include "sqs_client.h"
#include "setting_values.h"
#include "sqs_wire.h"
#include "transport.h"
#include "wait_events.h"

/* endpoint this process found to speak only the Query protocol, or NULL */
static char *query_only_endpoint = NULL;

struct SqsClient
{
	MemoryContext context;
	SqsConfig	config;
	Transport  *transport;
	struct curl_slist *headers[NUM_WIRES][SQS_NUM_ACTIONS];
	int			wire;			/* protocol new requests go out in */
	bool		probing;		/* auto: JSON, until the endpoint shows it
								 * does not speak it */
	SigV4Signer *signer;

	int			ninflight[SQS_NUM_ACTIONS];	/* requests in flight */
	bool		destroyed;
	MemoryContextCallback cleanup;
};

/* this process's wait event of each action, 0 until first used */
static uint32 action_wait_events[SQS_NUM_ACTIONS];

/*
 * The connection configuration of a resolved pipeline.  Credentials come
 * from the superuser-only settings; when those are empty the configuration
 * holds none, and each request takes the AWS credential chain's (see
 * sqs_credential_source).
 */
SqsConfig *
sqs_config_from_definition(const ResolvedPipeline *resolved)
{
	SqsConfig  *config = palloc0(sizeof(SqsConfig));
	const char *queue_url = resolved->queue_url;
	const char *endpoint = resolved->endpoint;
	char	   *access_key;

	if (queue_url[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqs_ingest.queue_url is not set"),
				 errhint("Set sqs_ingest.queue_url to the queue's URL, for example https://sqs.us-east-1.amazonaws.com/123456789012/login-queue.")));
	if (!transport_http_prefix(queue_url, false))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqs_ingest.queue_url must start with http:// or https://")));

	config->queue_url = pstrdup(queue_url);
	if (endpoint[0] != '\0')
	{
		size_t		len = strlen(endpoint);

		if (!transport_http_prefix(endpoint, false))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sqs_ingest.endpoint must start with http:// or https://")));
		config->endpoint = psprintf("%s%s", endpoint,
									endpoint[len - 1] == '/' ? "" : "/");
	}
	else
	{
		/* scheme://host[:port]/ of the queue URL */
		const char *host = strstr(queue_url, "://") + 3;
		const char *slash = strchr(host, '/');
		int			len = slash ? (int) (slash - queue_url) : (int) strlen(queue_url);

		config->endpoint = psprintf("%.*s/", len, queue_url);
	}
	config->region = pstrdup(resolved->region[0] ? resolved->region : "us-east-1");

	access_key = secret_value(SECRET_ACCESS_KEY_ID);
	if (access_key != NULL)
	{
		char	   *secret_key = secret_value(SECRET_SECRET_ACCESS_KEY);

		if (secret_key == NULL)
		{
			secret_free(access_key);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("sqs_ingest.access_key_id is set but sqs_ingest.secret_access_key is not"),
					 errhint("Set both (or their _file forms), or neither to use the AWS credential chain.")));
		}
		config->access_key_id = access_key;
		config->secret_access_key = secret_key;
		config->session_token = secret_value(SECRET_SESSION_TOKEN);
	}

	if (resolved->ca_file[0] != '\0')
	{
		/* a missing bundle is a setting to fix, not a failure to retry */
		if (access(resolved->ca_file, R_OK) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read sqs_ingest.ca_file \"%s\": %m",
							resolved->ca_file),
					 errhint("Set sqs_ingest.ca_file to a PEM file of CA certificates the server can read, or to an empty string for the system's.")));
		config->ca_file = pstrdup(resolved->ca_file);
	}
	config->visibility_timeout = resolved->visibility_timeout;
	config->connect_timeout_ms = resolved->connect_timeout_ms;
	config->request_timeout_ms = resolved->request_timeout_ms;
	config->max_inflight = Min(resolved->max_inflight, SQS_INGEST_MAX_INFLIGHT_CAP);
	config->protocol = resolved->protocol;
	return config;
}

static char *
pstrdup_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/* a copy of a configuration snapshot, in the current memory context */
SqsConfig *
sqs_config_copy(const SqsConfig *config)
{
	SqsConfig  *copy = palloc(sizeof(SqsConfig));

	*copy = *config;
	copy->queue_url = pstrdup(config->queue_url);
	copy->endpoint = pstrdup(config->endpoint);
	copy->region = pstrdup(config->region);
	copy->access_key_id = pstrdup_or_null(config->access_key_id);
	copy->secret_access_key = pstrdup_or_null(config->secret_access_key);
	copy->session_token = pstrdup_or_null(config->session_token);
	copy->ca_file = pstrdup_or_null(config->ca_file);
	return copy;
}

/* free a configuration snapshot, wiping its credentials */
void
sqs_config_free(SqsConfig *config)
{
	pfree(config->queue_url);
	pfree(config->endpoint);
	pfree(config->region);
	secret_free(config->access_key_id);
	secret_free(config->secret_access_key);
	secret_free(config->session_token);
	if (config->ca_file)
		pfree(config->ca_file);
	pfree(config);
}

/*
 * Where requests made with this configuration take their credentials from:
 * "settings", or the AWS credential chain's source ("environment",
 * "profile:NAME", ...), which this resolves now, so that a missing
 * credential fails before anything is received.
 */
const char *
sqs_credential_source(const SqsConfig *config)
{
	AwsChainScope scope = {config->region, config->ca_file};

	if (config->access_key_id)
		return "settings";
	return aws_credentials_current(&scope)->source;
}

/* ---------------------------------------------------------------------
 * client lifetime
 * ---------------------------------------------------------------------
 */

/* free a request, wiping its header list */
static void
free_request(SqsRequest *request)
{
	transport_free_request(&request->http);
	pfree(request->body);
	if (request->query_body)
		pfree(request->query_body);
	pfree(request);
}

/*
 * Wipe the client's credentials and free its header lists; its requests
 * and connections go with its transport.
 */
static void
release_client(SqsClient *client)
{
	if (client->destroyed)
		return;
	client->destroyed = true;

	for (int w = 0; w < NUM_WIRES; w++)
		for (int i = 0; i < SQS_NUM_ACTIONS; i++)
			curl_slist_free_all(client->headers[w][i]);
	if (client->config.access_key_id)
		explicit_bzero(client->config.access_key_id,
					   strlen(client->config.access_key_id));
	if (client->config.secret_access_key)
		explicit_bzero(client->config.secret_access_key,
					   strlen(client->config.secret_access_key));
	if (client->config.session_token)
		explicit_bzero(client->config.session_token,
					   strlen(client->config.session_token));
}

/* runs when the client's memory context goes, including on error cleanup */
static void
client_context_gone(void *arg)
{
	release_client((SqsClient *) arg);
}

/* a request leaves the requests in flight */
static void
request_completed(TransportRequest *request, void *arg)
{
	SqsClient  *client = arg;

	client->ninflight[((SqsRequest *) request)->action]--;
}

/*
 * Create a client for the given configuration in a child of the current
 * memory context.  Deleting that context (including on error) releases
 * every libcurl resource.
 */
SqsClient *
sqs_client_create(const SqsConfig *config)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "sqs_ingest client",
												  ALLOCSET_DEFAULT_SIZES);
	SqsClient  *client = MemoryContextAllocZero(context, sizeof(SqsClient));
	MemoryContext old = MemoryContextSwitchTo(context);
	int			connections = Max(config->max_inflight, 1) * 2;

	client->context = context;
	client->config = *sqs_config_copy(config);
	client->signer = sigv4_signer_create(config->endpoint, config->region, "sqs");

	client->cleanup.func = client_context_gone;
	client->cleanup.arg = client;
	MemoryContextRegisterResetCallback(context, &client->cleanup);

	for (int w = 0; w < NUM_WIRES; w++)
		for (int i = 0; i < SQS_NUM_ACTIONS; i++)
			client->headers[w][i] = sqs_wire_headers((SqsAction) i, w);
	client->wire = config->protocol == SQS_PROTOCOL_QUERY ? WIRE_QUERY : WIRE_JSON;
	client->probing = config->protocol == SQS_PROTOCOL_AUTO;
	if (client->probing && sqs_speaks_only_query(config->endpoint))
	{
		/* this process already found that the endpoint speaks only Query */
		client->wire = WIRE_QUERY;
		client->probing = false;
	}

	client->transport = transport_create(context, connections,
										 request_completed, client);

	MemoryContextSwitchTo(old);
	return client;
}

void
sqs_client_destroy(SqsClient *client)
{
	MemoryContextDelete(client->context);
}

/* ---------------------------------------------------------------------
 * starting requests
 * ---------------------------------------------------------------------
 */

/* hand a request to libcurl, in the request's protocol */
static void
launch_request(SqsClient *client, SqsRequest *request)
{
	CURL	   *easy;
	CURLMcode	mrc;
	SigV4Credentials credentials = {
		client->config.access_key_id,
		client->config.secret_access_key,
		client->config.session_token
	};

	/*
	 * Without credential settings, each request takes the chain's current
	 * credentials (refreshed as they near expiry); it is signed now and owns
	 * its header list, so a refresh never touches a request in flight.
	 */
	if (credentials.access_key_id == NULL)
	{
		AwsChainScope scope = {client->config.region, client->config.ca_file};
		const AwsCredentials *creds = aws_credentials_current(&scope);

		credentials.access_key_id = creds->access_key_id;
		credentials.secret_access_key = creds->secret_access_key;
		credentials.session_token = creds->session_token;
	}

	/* a request sent again (in the Query protocol) is signed anew */
	transport_free_headers(request->http.headers);
	request->http.headers = NULL;
	request->http.headers = sigv4_sign(client->signer, "POST",
										client->headers[request->wire][request->action],
										request->body, strlen(request->body),
										&credentials, time(NULL));

	easy = transport_easy(client->transport);
	if (easy == NULL)
	{
		free_request(request);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}
	request->http.easy = easy;

	curl_easy_setopt(easy, CURLOPT_URL, client->config.endpoint);
	transport_harden(easy, client->config.ca_file,
					 (long) client->config.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->http.headers);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(request->body));

	mrc = transport_start(client->transport, &request->http);
	if (mrc != CURLM_OK)
	{
		free_request(request);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start an SQS request: %s", curl_multi_strerror(mrc))));
	}
	client->ninflight[request->action]++;
}

/*
 * Start a request of an action on the client's queue, with the body in the
 * client's protocol; while probing, the Query form is kept to send again
 * should the endpoint not speak JSON.  tag comes back with the result.
 */
static void
start_request(SqsClient *client, SqsAction action, const SqsCall *call,
			  int requested, long timeout_ms, int tag)
{
	SqsRequest *request = MemoryContextAllocZero(client->context, sizeof(SqsRequest));
	RequestBody b;

	sqs_wire_body(&b, client->wire == WIRE_QUERY || client->probing, action,
				  client->config.queue_url, call);
	request->action = action;
	request->requested = requested;
	request->tag = tag;
	request->http.timeout_ms = timeout_ms;
	request->wire = client->wire;
	request->body = MemoryContextStrdup(client->context,
										client->wire == WIRE_JSON ? b.json.data : b.query.data);
	if (client->probing)
		request->query_body = MemoryContextStrdup(client->context, b.query.data);
	pfree(b.json.data);
	if (b.with_query)
		pfree(b.query.data);
	launch_request(client, request);
}

/*
 * Start a ReceiveMessage long poll for up to max_messages (1..10) messages,
 * asking for the attributes the mapping uses.  tag comes back with the
 * result.
 */
void
sqs_start_receive(SqsClient *client, int max_messages, int wait_seconds,
				  int tag)
{
	SqsCall		call = {0};

	Assert(max_messages >= 1 && max_messages <= 10);
	call.max_messages = max_messages;
	call.wait_seconds = wait_seconds;
	call.visibility_timeout = client->config.visibility_timeout;
	start_request(client, SQS_RECEIVE, &call, max_messages,
				  wait_seconds * 1000L + client->config.request_timeout_ms, tag);
}

/*
 * Start a batch action on 1..10 receipt handles: the entries get Ids "0",
 * "1", ...  tag comes back with the result.
 */
static void
start_batch(SqsClient *client, SqsAction action, char **receipt_handles,
			int count, int visibility_timeout, int tag)
{
	SqsCall		call = {0};

	Assert(count >= 1 && count <= 10);
	call.receipt_handles = receipt_handles;
	call.count = count;
	call.visibility_timeout = visibility_timeout;
	start_request(client, action, &call, count,
				  client->config.request_timeout_ms, tag);
}

/* Start a DeleteMessageBatch for 1..10 receipt handles; tag comes back. */
void
sqs_start_delete(SqsClient *client, char **receipt_handles, int count, int tag)
{
	start_batch(client, SQS_DELETE_BATCH, receipt_handles, count, 0, tag);
}

/*
 * Start a ChangeMessageVisibilityBatch that hides 1..10 received messages
 * for another timeout_seconds from now.
 */
void
sqs_start_change_visibility(SqsClient *client, char **receipt_handles,
							int count, int timeout_seconds)
{
	start_batch(client, SQS_CHANGE_VISIBILITY_BATCH, receipt_handles, count,
				timeout_seconds, 0);
}

/* Start a GetQueueAttributes for the approximate message counts. */
void
sqs_start_get_attributes(SqsClient *client)
{
	SqsCall		call = {0};

	start_request(client, SQS_GET_ATTRIBUTES, &call, 0,
				  client->config.request_timeout_ms, 0);
}

int
sqs_inflight(SqsClient *client, SqsAction action)
{
	return client->ninflight[action];
}

/*
 * What pg_stat_activity shows while requests are in flight: deletes first,
 * since a stored batch waits on them, and a long poll only when nothing
 * else is pending.
 */
static uint32
wait_event_for(SqsClient *client)
{
	SqsAction	shown = SQS_RECEIVE;

	for (int i = 0; i < SQS_NUM_ACTIONS; i++)
		if (!sqs_actions[i].long_poll && client->ninflight[i] > 0)
		{
			shown = (SqsAction) i;
			break;
		}
	return sqs_named_wait_event(sqs_actions[shown].wait_event,
								&action_wait_events[shown]);
}

/*
 * Has this process found that the endpoint speaks only the Query protocol
 * (sqs_ingest.protocol = auto)?
 */
bool
sqs_speaks_only_query(const char *endpoint)
{
	return query_only_endpoint != NULL && strcmp(query_only_endpoint, endpoint) == 0;
}

/*
 * Remember for this process that the endpoint speaks only the Query
 * protocol: found by a client, or by an earlier drain of the backend that
 * started this drain worker.
 */
void
sqs_remember_only_query(const char *endpoint)
{
	if (query_only_endpoint)
		pfree(query_only_endpoint);
	query_only_endpoint = MemoryContextStrdup(TopMemoryContext, endpoint);
}

/*
 * sqs_ingest.protocol = auto: a JSON request the endpoint did not
 * understand goes out again in the Query protocol, which the client (and,
 * for the same endpoint, every later client of this process) speaks from
 * then on.  Returns true if the request was sent again.
 */
static bool
retry_in_query_protocol(SqsClient *client, SqsRequest *request)
{
	if (request->wire != WIRE_JSON || request->query_body == NULL)
		return false;
	if (!sqs_wire_shows_query_only(request))
	{
		if (request->http.curl_result == CURLE_OK && request->http.http_status == 200)
			client->probing = false;	/* it speaks JSON */
		return false;
	}
	if (client->wire == WIRE_JSON)
	{
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("SQS endpoint %s does not speak the AWS JSON protocol: switching to the Query protocol",
						client->config.endpoint),
				 errdetail("It answered %s with HTTP status %ld.",
						   sqs_actions[request->action].name, request->http.http_status),
				 errhint("Set sqs_ingest.protocol to query to start with it.")));
		client->wire = WIRE_QUERY;
		client->probing = false;
		sqs_remember_only_query(client->config.endpoint);
	}
	pfree(request->body);
	request->body = request->query_body;
	request->query_body = NULL;
	request->wire = WIRE_QUERY;
	free(request->http.response);
	request->http.response = NULL;
	request->http.response_len = request->http.response_cap = 0;
	request->http.response_too_big = false;
	request->http.curl_result = CURLE_OK;
	request->http.http_status = 0;
	request->http.curl_error[0] = '\0';
	launch_request(client, request);
	return true;
}

/* the result of a completed request, which is freed */
static SqsResult *
result_of(SqsRequest *request)
{
	SqsResult  *result = palloc0(sizeof(SqsResult));

	result->action = request->action;
	result->requested = request->requested;
	result->tag = request->tag;

	for (int i = 0; i < (int) lengthof(result->attributes); i++)
		result->attributes[i] = -1;

	PG_TRY();
	{
		result->error = sqs_wire_error(request);
		if (result->error == NULL)
			result->error = sqs_wire_decode(request, result);
	}
	PG_FINALLY();
	{
		free_request(request);
	}
	PG_END_TRY();

	return result;
}

/*
 * Return the next completed request, parsed in the current memory context,
 * waiting at most timeout_ms (-1: no limit) for one; 0 looks once at what
 * came in without waiting.  Returns NULL on timeout, or when the latch was
 * set so that the caller can look at its flags (configuration reload).
 * Interrupts are serviced while waiting.
 */
SqsResult *
sqs_next_result(SqsClient *client, long timeout_ms)
{
	TimestampTz deadline = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	bool		looked = false;
	SqsRequest *request;

	do
	{
		while (!transport_has_done(client->transport))
		{
			long		remaining = -1;

			if (transport_idle(client->transport) && timeout_ms < 0)
				return NULL;	/* nothing will ever complete */
			if (timeout_ms >= 0)
			{
				remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
				if (remaining <= 0 && (timeout_ms > 0 || looked))
					return NULL;
				remaining = Max(remaining, 0);
			}
			looked = true;
			if (transport_wait(client->transport, remaining, wait_event_for(client)) &&
				!transport_has_done(client->transport))
				return NULL;
		}
		request = (SqsRequest *) transport_next_done(client->transport);
	} while (retry_in_query_protocol(client, request));

	return result_of(request);
}

/*
 * Send the requests started since the client last waited, at once (see
 * transport_send_started()).
 */
void
sqs_send_started(SqsClient *client)
{
	transport_send_started(client->transport);
}

/* a copy of an error that outlives the memory of the result it came with */
SqsError *
sqs_copy_error(MemoryContext context, const SqsError *error)
{
	SqsError   *copy = MemoryContextAlloc(context, sizeof(SqsError));

	*copy = *error;
	copy->aws_type = error->aws_type ? MemoryContextStrdup(context, error->aws_type) : NULL;
	copy->message = MemoryContextStrdup(context, error->message);
	return copy;
}

/* ereport an SQS failure at the given level, with its AWS error code */
void
sqs_report_error(const SqsError *error, int elevel)
{
	ereport(elevel,
			(errcode(error->sqlerrcode),
			 errmsg("SQS %s failed: %s", error->action, error->message),
			 error->aws_type ?
			 errdetail("AWS error code: %s; HTTP status %ld.", error->aws_type,
					   error->http_status) :
			 error->http_status ?
			 errdetail("HTTP status %ld.", error->http_status) : 0,
			 error->hint ? errhint("%s", _(error->hint)) : 0));
}
