/*-------------------------------------------------------------------------
 *
 * sqs_client.c
 *	  Asynchronous Amazon SQS client: AWS JSON 1.0 requests over a libcurl
 *	  multi handle, signed with libcurl's SigV4, waited on through a
 *	  PostgreSQL WaitEventSet.
 *
 * Many requests are in flight at once (receives long-polling while the
 * deletes of the previous batch go out), over kept-alive connections.
 * Waiting goes through a WaitEventSet holding the process latch and
 * libcurl's sockets, so a signal (SIGTERM, SIGHUP, query cancel) is seen at
 * once even in the middle of a 20-second long poll.
 *
 * libcurl tells which sockets it wants watched through callbacks.  The
 * callbacks only record what changed, in arrays allocated up front: they
 * run inside libcurl, where an ereport() would longjmp across C frames that
 * are not ours.  The WaitEventSet is brought up to date just before each
 * wait: ModifyWaitEvent() when a known socket changes interest, a rebuild
 * only when a socket is opened or closed, which kept-alive connections make
 * rare.  Sockets are opened and closed through our own callbacks so that a
 * descriptor number reused by a new connection can never be mistaken for
 * an old one still registered in the set, and so that each counts against
 * the server's file descriptor budget (AcquireExternalFD()), as libpq's
 * connections in postgres_fdw do: past it, the connection fails like a
 * refused one, with EMFILE.
 *
 * A request's timeout is kept here, not by libcurl: libcurl's own
 * (CURLOPT_TIMEOUT) runs on the wall clock, so a response that came in
 * while the process was busy storing a batch would be thrown away as a
 * timeout once libcurl is driven again, though SQS answered (and, for a
 * receive, hid the messages for a visibility timeout).  Only the time spent
 * driving libcurl counts against a request's deadline; what came in
 * meanwhile is read before any deadline is looked at.
 *
 * SQS starts a received message's visibility timeout when it answers, and
 * the pipeline counts it from the earliest moment the answer can have come
 * in: since the sockets were last found with nothing to read, stamped when
 * the first piece of the response is read, so that neither a store nor
 * a response read in several pieces makes a message look younger than it
 * is.  A wait that blocks first looks, without waiting, at what already
 * came in, and blocks at most WATCH_WINDOW_MS at a time: a response that
 * wakes it can have come in at any moment of the wait.
 *
 * Responses are decoded by the pure decoders of sqs_decode.c; what they
 * find wrong becomes a protocol error of the request.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "aws_credentials.h"
#include "compat.h"
#include "redact.h"
#include "secrets.h"
#include "sqs_client.h"
#include "sqs_decode.h"
#include "sqs_ingest.h"
#include "version.h"
#include "wait_events.h"

/* biggest response accepted: ten 256 KiB-1 MiB messages plus framing */
#define MAX_RESPONSE_BYTES (16 * 1024 * 1024)

/*
 * Longest a wait blocks on the sockets at a time: a response that wakes it
 * is counted as answered from the wait's start (see the file header).
 */
#define WATCH_WINDOW_MS 1000

#define NUM_ACTIONS 4

/* the two wire protocols a request can go out in */
#define WIRE_JSON 0
#define WIRE_QUERY 1
#define NUM_WIRES 2

#define QUERY_API_VERSION "2012-11-05"
#define NUM_DEPTH_ATTRIBUTES 3

static const char *const action_names[NUM_ACTIONS] = {
	"ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch",
	"GetQueueAttributes"
};

static const char *const queue_depth_attributes[NUM_DEPTH_ATTRIBUTES] = {
	"ApproximateNumberOfMessages",
	"ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed"
};

/* one request in flight or completed */
typedef struct SqsRequest
{
	dlist_node	node;			/* in the client's inflight or done list */
	SqsAction	action;
	TimestampTz started_at;
	TimestampTz answered_after; /* earliest the response can have come;
								 * 0 until its response begins to come in */
	TimestampTz deadline;		/* when it times out, moved on by the time
								 * nobody drove libcurl */
	int			requested;
	int			tag;
	CURL	   *easy;
	struct curl_slist *headers; /* with its session token, or NULL */
	long		timeout_ms;
	int			wire;			/* WIRE_JSON or WIRE_QUERY */
	char	   *body;			/* request body; libcurl reads it in place */
	char	   *query_body;		/* the same in the Query protocol, while the
								 * endpoint may turn out not to speak JSON */
	char	   *response;		/* malloc'd: filled inside libcurl */
	size_t		response_len;
	size_t		response_cap;
	bool		response_too_big;
	CURLcode	curl_result;
	long		http_status;
	char		curl_error[CURL_ERROR_SIZE];
} SqsRequest;

/* a socket libcurl uses */
typedef struct SqsSocket
{
	curl_socket_t fd;
	int			curl_what;		/* CURL_POLL_*, CURL_POLL_REMOVE = unwatched */
	bool		ours;			/* opened by open_socket(), closed by close_socket() */
	bool		changed;		/* curl_what changed since the set was updated */
	int			pos;			/* position in the wait event set, or -1 */
	ino_t		ino;			/* the socket's inode, to tell a reused number */
} SqsSocket;

/* endpoint this process found to speak only the Query protocol, or NULL */
static char *query_only_endpoint = NULL;

struct SqsClient
{
	MemoryContext context;
	SqsConfig	config;
	CURLM	   *multi;
	struct curl_slist *headers[NUM_WIRES][NUM_ACTIONS];
	int			wire;			/* protocol new requests go out in */
	bool		probing;		/* auto: JSON, until the endpoint shows it
								 * does not speak it */
	char	   *sigv4;

	dlist_head	inflight;		/* requests libcurl is running */
	int			ninflight[NUM_ACTIONS];
	dlist_head	done;			/* completed, oldest first */

	/* sockets, kept in step by the libcurl callbacks */
	SqsSocket  *sockets;
	int			nsockets;
	int			max_sockets;
	bool		sockets_dirty;	/* set needs rebuilding */
	bool		sockets_overflow;
	bool		out_of_descriptors; /* a socket was refused for the budget */
	bool		descriptors_reported;

	TimestampTz unwatched_since;	/* end of the last wait on the sockets */
	TimestampTz checked_at;		/* start of the last look at the sockets:
								 * what they have to read came in since */
	long		timer_ms;		/* libcurl's timeout, -1 = none */
	TimestampTz timer_set_at;	/* when libcurl set it */
	WaitEventSet *wait_set;
	WaitEvent  *occurred;
	int			max_occurred;
	bool		destroyed;
	MemoryContextCallback cleanup;
};

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
	if (strncmp(queue_url, "http://", 7) != 0 &&
		strncmp(queue_url, "https://", 8) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqs_ingest.queue_url must start with http:// or https://")));

	config->queue_url = pstrdup(queue_url);
	if (endpoint[0] != '\0')
	{
		size_t		len = strlen(endpoint);

		if (strncmp(endpoint, "http://", 7) != 0 &&
			strncmp(endpoint, "https://", 8) != 0)
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
 * libcurl callbacks: no palloc, no ereport
 * ---------------------------------------------------------------------
 */

static size_t
write_response(char *data, size_t size, size_t nmemb, void *userdata)
{
	SqsRequest *request = userdata;
	size_t		n = size * nmemb;

	if (request->response_len + n + 1 > request->response_cap)
	{
		size_t		cap = Max(request->response_cap * 2, 8192);
		char	   *grown;

		while (cap < request->response_len + n + 1)
			cap *= 2;
		if (cap > MAX_RESPONSE_BYTES)
		{
			request->response_too_big = true;
			return 0;			/* aborts the transfer */
		}
		grown = realloc(request->response, cap);
		if (grown == NULL)
			return 0;
		request->response = grown;
		request->response_cap = cap;
	}
	memcpy(request->response + request->response_len, data, n);
	request->response_len += n;
	request->response[request->response_len] = '\0';
	return n;
}

static SqsSocket *
find_socket(SqsClient *client, curl_socket_t fd)
{
	for (int i = 0; i < client->nsockets; i++)
		if (client->sockets[i].fd == fd)
			return &client->sockets[i];
	return NULL;
}

/* the inode of an open descriptor, or 0 if it is not open */
static ino_t
socket_inode(curl_socket_t fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static SqsSocket *
add_socket(SqsClient *client, curl_socket_t fd, bool ours)
{
	SqsSocket  *sock;

	if (client->nsockets >= client->max_sockets)
	{
		client->sockets_overflow = true;
		return NULL;
	}
	sock = &client->sockets[client->nsockets++];
	sock->fd = fd;
	sock->curl_what = CURL_POLL_REMOVE;
	sock->ours = ours;
	sock->changed = false;
	sock->pos = -1;
	sock->ino = socket_inode(fd);
	client->sockets_dirty = true;
	return sock;
}

static void
forget_socket(SqsClient *client, SqsSocket *sock)
{
	*sock = client->sockets[--client->nsockets];
	client->sockets_dirty = true;
}

/*
 * Is the socket we know still open, and the same socket?  libcurl 7.88
 * closes a socket that fails while connecting without calling
 * close_socket() (fixed in 8.2), and the kernel may then hand its number to
 * the next socket or file: an entry left for it must not be watched,
 * modified or matched again.
 */
static bool
socket_is_current(const SqsSocket *sock)
{
	return socket_inode(sock->fd) == sock->ino && sock->ino != 0;
}

/*
 * Drop an entry whose socket was closed behind our back, giving back the
 * descriptor budget close_socket() would have given back.
 */
static void
forget_stale_socket(SqsClient *client, SqsSocket *sock)
{
	if (sock->ours)
		ReleaseExternalFD();
	forget_socket(client, sock);
}

/* forget every entry whose socket is gone */
static void
forget_stale_sockets(SqsClient *client)
{
	for (int i = client->nsockets - 1; i >= 0; i--)
		if (!socket_is_current(&client->sockets[i]))
			forget_stale_socket(client, &client->sockets[i]);
}

static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	SqsClient  *client = clientp;
	curl_socket_t fd;
	SqsSocket  *stale;

	if (client->nsockets >= client->max_sockets)
		forget_stale_sockets(client);
	if (client->nsockets >= client->max_sockets)
	{
		client->sockets_overflow = true;
		return CURL_SOCKET_BAD;
	}
	/*
	 * Within the server's descriptor budget (what sockets closed behind our
	 * back held is given back first); refused, errno says EMFILE.
	 */
	if (!AcquireExternalFD())
	{
		forget_stale_sockets(client);
		if (!AcquireExternalFD())
		{
			client->out_of_descriptors = true;
			return CURL_SOCKET_BAD;
		}
	}
	fd = socket(address->family, address->socktype, address->protocol);
	if (fd == CURL_SOCKET_BAD)
	{
		ReleaseExternalFD();
		return fd;
	}
	/* a number still listed is one whose socket was closed behind our back */
	if ((stale = find_socket(client, fd)) != NULL)
		forget_stale_socket(client, stale);
	add_socket(client, fd, true);
	return fd;
}

static int
close_socket(void *clientp, curl_socket_t fd)
{
	SqsClient  *client = clientp;
	SqsSocket  *sock = find_socket(client, fd);
	int			rc;

	if (sock)
		forget_socket(client, sock);
	rc = close(fd);
	ReleaseExternalFD();
	return rc;
}

static int
watch_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	SqsClient  *client = userp;
	SqsSocket  *sock = find_socket(client, fd);

	/* an entry watched anew: the same socket, not a reused number? */
	if (sock != NULL && sock->curl_what != what &&
		what != CURL_POLL_REMOVE && !socket_is_current(sock))
	{
		forget_stale_socket(client, sock);
		sock = NULL;
	}
	if (sock == NULL)
	{
		if (what == CURL_POLL_REMOVE)
			return 0;
		/* a socket libcurl made itself, such as its resolver's wakeup pipe */
		sock = add_socket(client, fd, false);
		if (sock == NULL)
			return -1;
	}
	if (what == CURL_POLL_REMOVE && !sock->ours)
	{
		/* we will not hear when it is closed: drop it now */
		forget_socket(client, sock);
		return 0;
	}
	if (sock->curl_what != what)
	{
		sock->curl_what = what;
		sock->changed = true;
	}
	return 0;
}

static int
set_timer(CURLM *multi, long timeout_ms, void *userp)
{
	SqsClient  *client = userp;

	client->timer_ms = timeout_ms;
	client->timer_set_at = GetCurrentTimestamp();
	return 0;
}

/* ---------------------------------------------------------------------
 * client lifetime
 * ---------------------------------------------------------------------
 */

/* free a list of header lines, wiping them: one may hold a session token */
static void
free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

static void
free_request(SqsRequest *request)
{
	if (request->easy)
		curl_easy_cleanup(request->easy);
	free_headers(request->headers);
	free(request->response);
	pfree(request->body);
	if (request->query_body)
		pfree(request->query_body);
	pfree(request);
}

static void
release_client(SqsClient *client)
{
	if (client->destroyed)
		return;
	client->destroyed = true;

	while (!dlist_is_empty(&client->inflight))
	{
		SqsRequest *request = dlist_container(SqsRequest, node,
											  dlist_pop_head_node(&client->inflight));

		curl_multi_remove_handle(client->multi, request->easy);
		free_request(request);
	}
	while (!dlist_is_empty(&client->done))
		free_request(dlist_container(SqsRequest, node,
									 dlist_pop_head_node(&client->done)));
	/* closes pooled connections through close_socket(), so before the rest */
	if (client->multi)
		curl_multi_cleanup(client->multi);
	client->multi = NULL;
	for (int w = 0; w < NUM_WIRES; w++)
		for (int i = 0; i < NUM_ACTIONS; i++)
			curl_slist_free_all(client->headers[w][i]);
	if (client->wait_set)
		FreeWaitEventSet(client->wait_set);
	client->wait_set = NULL;
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

/* the headers of an action's requests in one wire protocol */
static struct curl_slist *
make_headers(SqsAction action, int wire)
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
				 action_names[action]);
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
	client->sigv4 = psprintf("aws:amz:%s:sqs", config->region);
	client->timer_ms = -1;
	client->unwatched_since = GetCurrentTimestamp();
	client->checked_at = client->unwatched_since;
	dlist_init(&client->inflight);
	dlist_init(&client->done);

	/* room for every connection plus libcurl's own descriptors */
	client->max_sockets = connections + 16;
	client->sockets = palloc0(sizeof(SqsSocket) * client->max_sockets);
	client->max_occurred = client->max_sockets + 2;
	client->occurred = palloc0(sizeof(WaitEvent) * client->max_occurred);
	client->sockets_dirty = true;

	client->cleanup.func = client_context_gone;
	client->cleanup.arg = client;
	MemoryContextRegisterResetCallback(context, &client->cleanup);

	for (int w = 0; w < NUM_WIRES; w++)
		for (int i = 0; i < NUM_ACTIONS; i++)
			client->headers[w][i] = make_headers((SqsAction) i, w);
	client->wire = config->protocol == SQS_PROTOCOL_QUERY ? WIRE_QUERY : WIRE_JSON;
	client->probing = config->protocol == SQS_PROTOCOL_AUTO;
	if (client->probing && sqs_speaks_only_query(config->endpoint))
	{
		/* this process already found that the endpoint speaks only Query */
		client->wire = WIRE_QUERY;
		client->probing = false;
	}

	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, watch_socket);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, set_timer);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	/* a hard cap on descriptors whatever the number of requests queued */
	curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) connections);
	curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, (long) connections);

	/*
	 * The wait set's own descriptor is taken before any socket, from the
	 * same budget, so that the sockets cannot leave it none: each rebuild
	 * (update_wait_set) gives it back and takes it again at once.
	 */
	client->wait_set = compat_create_wait_event_set(context, 2);

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

/*
 * A request's own header list: the action's, plus the session token of the
 * credentials it is signed with.  NULL when there is no token.
 */
static struct curl_slist *
headers_with_token(const struct curl_slist *base, const char *session_token)
{
	struct curl_slist *headers = NULL;
	char	   *line;
	bool		failed = false;

	if (session_token == NULL)
		return NULL;
	for (const struct curl_slist *h = base; h && !failed; h = h->next)
	{
		struct curl_slist *next = curl_slist_append(headers, h->data);

		failed = (next == NULL);
		if (next)
			headers = next;
	}
	line = secret_header_line("X-Amz-Security-Token", session_token);
	if (!failed)
	{
		struct curl_slist *next = curl_slist_append(headers, line);

		failed = (next == NULL);
		if (next)
			headers = next;
	}
	explicit_bzero(line, strlen(line));
	pfree(line);
	if (failed)
	{
		free_headers(headers);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	return headers;
}

/* hand a request to libcurl: a new easy handle, in the request's protocol */
static void
launch_request(SqsClient *client, SqsRequest *request)
{
	CURL	   *easy;
	CURLMcode	mrc;
	const char *access_key_id = client->config.access_key_id;
	const char *secret_access_key = client->config.secret_access_key;
	const char *session_token = client->config.session_token;

	/*
	 * Without credential settings, each request takes the chain's current
	 * credentials (refreshed as they near expiry); libcurl copies the key
	 * pair and the request owns its header list, so a refresh never touches
	 * a request in flight.
	 */
	if (access_key_id == NULL)
	{
		AwsChainScope scope = {client->config.region, client->config.ca_file};
		const AwsCredentials *creds = aws_credentials_current(&scope);

		access_key_id = creds->access_key_id;
		secret_access_key = creds->secret_access_key;
		session_token = creds->session_token;
	}

	/* a request sent again (in the Query protocol) gets its headers anew */
	free_headers(request->headers);
	request->headers = headers_with_token(client->headers[request->wire][request->action],
										  session_token);

	easy = curl_easy_init();
	if (easy == NULL)
	{
		free_request(request);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}
	request->easy = easy;

	curl_easy_setopt(easy, CURLOPT_URL, client->config.endpoint);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (client->config.ca_file)
	{
		/* the bundle replaces the system's, as AWS_CA_BUNDLE does for the SDKs */
		curl_easy_setopt(easy, CURLOPT_CAINFO, client->config.ca_file);
		curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) client->config.connect_timeout_ms);
	/* the request's timeout is its deadline, kept by wait_once() */
	curl_easy_setopt(easy, CURLOPT_USERAGENT, SQS_INGEST_USER_AGENT);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER,
					 request->headers ? request->headers :
					 client->headers[request->wire][request->action]);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(request->body));
	curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, client->sigv4);
	curl_easy_setopt(easy, CURLOPT_USERNAME, access_key_id);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, secret_access_key);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_response);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->curl_error);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, client);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, client);

	mrc = curl_multi_add_handle(client->multi, easy);
	if (mrc != CURLM_OK)
	{
		free_request(request);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start an SQS request: %s", curl_multi_strerror(mrc))));
	}
	request->started_at = GetCurrentTimestamp();
	request->deadline = TimestampTzPlusMilliseconds(request->started_at,
													request->timeout_ms);
	dlist_push_tail(&client->inflight, &request->node);
	client->ninflight[request->action]++;
}

/*
 * A request body in both wire protocols at once: AWS JSON 1.0 and the
 * Query protocol's form encoding.
 */
typedef struct RequestBody
{
	StringInfoData json;
	StringInfoData query;
} RequestBody;

/* append a form-encoded (RFC 3986 percent-encoded) value */
static void
append_form_value(StringInfo buf, const char *value)
{
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
			*p == '~')
			appendStringInfoChar(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

static void
body_begin(RequestBody *b, SqsClient *client, SqsAction action)
{
	initStringInfo(&b->json);
	initStringInfo(&b->query);
	appendStringInfoString(&b->json, "{\"QueueUrl\":");
	escape_json(&b->json, client->config.queue_url);
	appendStringInfo(&b->query, "Action=%s&Version=%s&QueueUrl=",
					 action_names[action], QUERY_API_VERSION);
	append_form_value(&b->query, client->config.queue_url);
}

static void
body_int(RequestBody *b, const char *name, int value)
{
	appendStringInfo(&b->json, ",\"%s\":%d", name, value);
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
	const char *prefix = action_names[action];

	appendStringInfoString(&b->json, ",\"Entries\":[");
	for (int i = 0; i < count; i++)
	{
		appendStringInfo(&b->json, "%s{\"Id\":\"%d\",\"ReceiptHandle\":",
						 i > 0 ? "," : "", i);
		escape_json(&b->json, receipt_handles[i]);
		appendStringInfo(&b->query, "&%sRequestEntry.%d.Id=%d&%sRequestEntry.%d.ReceiptHandle=",
						 prefix, i + 1, i, prefix, i + 1);
		append_form_value(&b->query, receipt_handles[i]);
		if (extra_name)
		{
			appendStringInfo(&b->json, ",\"%s\":%d", extra_name, extra_value);
			appendStringInfo(&b->query, "&%sRequestEntry.%d.%s=%d",
							 prefix, i + 1, extra_name, extra_value);
		}
		appendStringInfoChar(&b->json, '}');
	}
	appendStringInfoChar(&b->json, ']');
}

/*
 * Start a request with the body in the client's protocol; while probing,
 * the Query form is kept to send again should the endpoint not speak JSON.
 */
static SqsRequest *
start_request(SqsClient *client, SqsAction action, RequestBody *b,
			  int requested, long timeout_ms)
{
	SqsRequest *request = MemoryContextAllocZero(client->context, sizeof(SqsRequest));

	appendStringInfoChar(&b->json, '}');
	request->action = action;
	request->requested = requested;
	request->timeout_ms = timeout_ms;
	request->wire = client->wire;
	request->body = MemoryContextStrdup(client->context,
										client->wire == WIRE_JSON ? b->json.data : b->query.data);
	if (client->probing)
		request->query_body = MemoryContextStrdup(client->context, b->query.data);
	pfree(b->json.data);
	pfree(b->query.data);
	launch_request(client, request);
	return request;
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
	static const char *const attributes[] = {"SentTimestamp", "ApproximateReceiveCount"};
	static const char *const all[] = {"All"};
	RequestBody b;
	SqsRequest *request;

	Assert(max_messages >= 1 && max_messages <= 10);
	body_begin(&b, client, SQS_RECEIVE);
	body_int(&b, "MaxNumberOfMessages", max_messages);
	body_int(&b, "VisibilityTimeout", client->config.visibility_timeout);
	body_int(&b, "WaitTimeSeconds", wait_seconds);
	body_names(&b, "AttributeNames", "AttributeName", attributes, lengthof(attributes));
	/* the Query protocol has no separate list of system attributes */
	appendStringInfoString(&b.json,
						   ",\"MessageSystemAttributeNames\":[\"SentTimestamp\",\"ApproximateReceiveCount\"]");
	body_names(&b, "MessageAttributeNames", "MessageAttributeName", all, lengthof(all));
	request = start_request(client, SQS_RECEIVE, &b, max_messages,
							wait_seconds * 1000L + client->config.request_timeout_ms);
	request->tag = tag;
}

/*
 * Start a batch action on 1..10 receipt handles: the entries get Ids "0",
 * "1", ... and each carries the integer member extra_name (if not NULL).
 * tag comes back with the result.
 */
static void
start_batch(SqsClient *client, SqsAction action, char **receipt_handles,
			int count, const char *extra_name, int extra_value, int tag)
{
	RequestBody b;
	SqsRequest *request;

	Assert(count >= 1 && count <= 10);
	body_begin(&b, client, action);
	body_entries(&b, action, receipt_handles, count, extra_name, extra_value);
	request = start_request(client, action, &b, count,
							client->config.request_timeout_ms);
	request->tag = tag;
}

/* Start a DeleteMessageBatch for 1..10 receipt handles; tag comes back. */
void
sqs_start_delete(SqsClient *client, char **receipt_handles, int count, int tag)
{
	start_batch(client, SQS_DELETE_BATCH, receipt_handles, count, NULL, 0, tag);
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
				"VisibilityTimeout", timeout_seconds, 0);
}

/* Start a GetQueueAttributes for the approximate message counts. */
void
sqs_start_get_attributes(SqsClient *client)
{
	RequestBody b;

	body_begin(&b, client, SQS_GET_ATTRIBUTES);
	body_names(&b, "AttributeNames", "AttributeName", queue_depth_attributes,
			   NUM_DEPTH_ATTRIBUTES);
	start_request(client, SQS_GET_ATTRIBUTES, &b, 0,
				  client->config.request_timeout_ms);
}

int
sqs_inflight(SqsClient *client, SqsAction action)
{
	return client->ninflight[action];
}

/* ---------------------------------------------------------------------
 * waiting
 * ---------------------------------------------------------------------
 */

static uint32
wait_events_for(int curl_what)
{
	switch (curl_what)
	{
		case CURL_POLL_IN:
			return WL_SOCKET_READABLE;
		case CURL_POLL_OUT:
			return WL_SOCKET_WRITEABLE;
		case CURL_POLL_INOUT:
			return WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE;
		default:

			/*
			 * An idle kept-alive connection: only its closing can make it
			 * ready, and then it is dropped from the set (see wait_once).
			 */
			return WL_SOCKET_READABLE;
	}
}

/*
 * Say once per client that connections were refused for want of file
 * descriptors: the requests themselves fail as refused connections do.
 */
static void
report_descriptor_shortage(SqsClient *client)
{
	if (!client->out_of_descriptors || client->descriptors_reported)
		return;
	client->descriptors_reported = true;
	ereport(LOG,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("sqs_ingest could not open a connection to SQS: the server's file descriptor budget is used up"),
			 errdetail("Connections to SQS count against max_files_per_process, of which a third may be held outside data files."),
			 errhint("Lower sqs_ingest.max_inflight (or the pipeline's max_inflight option), or raise max_files_per_process.")));
}

/* bring the wait event set in line with what libcurl wants watched */
static void
update_wait_set(SqsClient *client)
{
	report_descriptor_shortage(client);
	if (client->sockets_overflow)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("sqs_ingest opened more sockets than it allows (%d)",
						client->max_sockets)));

	if (!client->sockets_dirty)
	{
		for (int i = 0; i < client->nsockets; i++)
		{
			SqsSocket  *sock = &client->sockets[i];

			if (!sock->changed)
				continue;
			if (sock->pos < 0)
			{
				/* not in the set yet: only a rebuild can add it */
				client->sockets_dirty = true;
				break;
			}
			if (sock->curl_what == CURL_POLL_REMOVE && !socket_is_current(sock))
			{
				/* closed behind our back: the kernel dropped it already */
				forget_stale_socket(client, sock);
				break;
			}
			ModifyWaitEvent(client->wait_set, sock->pos,
							wait_events_for(sock->curl_what), NULL);
			sock->changed = false;
		}
	}
	if (!client->sockets_dirty)
		return;

	if (client->wait_set)
		FreeWaitEventSet(client->wait_set);
	client->wait_set = NULL;
	client->wait_set = compat_create_wait_event_set(client->context,
													client->nsockets + 2);
	AddWaitEventToSet(client->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(client->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	forget_stale_sockets(client);
	for (int i = 0; i < client->nsockets; i++)
	{
		SqsSocket  *sock = &client->sockets[i];

		sock->changed = false;
		sock->pos = -1;
		if (sock->curl_what == CURL_POLL_REMOVE)
			continue;			/* idle: added back when libcurl uses it */
		sock->pos = AddWaitEventToSet(client->wait_set,
									  wait_events_for(sock->curl_what),
									  sock->fd, NULL, NULL);
	}
	client->sockets_dirty = false;
}

/* move a request libcurl is done with to the completed list */
static void
complete_request(SqsClient *client, SqsRequest *request, CURLcode result)
{
	request->curl_result = result;
	curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &request->http_status);
	curl_multi_remove_handle(client->multi, request->easy);
	curl_easy_cleanup(request->easy);
	request->easy = NULL;

	dlist_delete(&request->node);
	client->ninflight[request->action]--;
	dlist_push_tail(&client->done, &request->node);
}

/*
 * The requests in flight whose response began to come in by the last
 * action on libcurl were answered, at the earliest, when the sockets were
 * last found with nothing to read (since): SQS hides a received message
 * from then on, and the pipeline counts its visibility timeout from there.
 * Only the first piece counts, however many reads the response takes.
 */
static void
note_answered(SqsClient *client, TimestampTz since)
{
	dlist_iter	iter;

	dlist_foreach(iter, &client->inflight)
	{
		SqsRequest *request = dlist_container(SqsRequest, node, iter.cur);
		long		header_bytes = 0;

		if (request->answered_after != 0)
			continue;
		if (curl_easy_getinfo(request->easy, CURLINFO_HEADER_SIZE, &header_bytes) == CURLE_OK &&
			header_bytes > 0)
			request->answered_after = Max(request->started_at, since);
	}
}

/*
 * Move every transfer libcurl has finished to the completed list.  One
 * that ended without a response was answered since the sockets were last
 * looked at, at the earliest.
 */
static void
collect_completed(SqsClient *client, TimestampTz answered_after)
{
	CURLMsg    *msg;
	int			pending;

	while ((msg = curl_multi_info_read(client->multi, &pending)) != NULL)
	{
		SqsRequest *request = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &request);
		if (request->answered_after == 0)
			request->answered_after = Max(request->started_at, answered_after);
		complete_request(client, request, msg->data.result);
	}
}

/*
 * Time nobody drove libcurl since the end of the last wait (a store, say)
 * does not count against the requests in flight: their deadlines move on
 * by as much of it as each has seen.
 */
static void
credit_undriven_time(SqsClient *client)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_iter	iter;

	dlist_foreach(iter, &client->inflight)
	{
		SqsRequest *request = dlist_container(SqsRequest, node, iter.cur);
		TimestampTz since = Max(client->unwatched_since, request->started_at);

		if (now > since)
			request->deadline += now - since;
	}
}

/* the earliest deadline of a request in flight, or 0 if none is */
static TimestampTz
next_deadline(SqsClient *client)
{
	TimestampTz earliest = 0;
	dlist_iter	iter;

	dlist_foreach(iter, &client->inflight)
	{
		SqsRequest *request = dlist_container(SqsRequest, node, iter.cur);

		if (earliest == 0 || request->deadline < earliest)
			earliest = request->deadline;
	}
	return earliest;
}

/*
 * End the requests in flight past their deadline as timed out, as libcurl
 * would have: what was read of their responses is dropped.
 */
static void
expire_requests(SqsClient *client)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &client->inflight)
	{
		SqsRequest *request = dlist_container(SqsRequest, node, iter.cur);

		if (request->deadline > now)
			continue;
		snprintf(request->curl_error, sizeof(request->curl_error),
				 "Operation timed out after %ld milliseconds with %zu bytes received",
				 request->timeout_ms, request->response_len);
		request->answered_after = now;
		complete_request(client, request, CURLE_OPERATION_TIMEDOUT);
	}
}

static void
socket_action(SqsClient *client, curl_socket_t fd, int mask)
{
	int			running;
	CURLMcode	mrc = curl_multi_socket_action(client->multi, fd, mask, &running);

	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("libcurl failed: %s", curl_multi_strerror(mrc))));
}

/*
 * What pg_stat_activity shows while requests are in flight: deletes first,
 * since a stored batch waits on them, and a long poll only when nothing
 * else is pending.
 */
static uint32
wait_event_for(SqsClient *client)
{
	if (client->ninflight[SQS_DELETE_BATCH] > 0)
		return sqs_wait_event(SQS_WAIT_DELETE);
	if (client->ninflight[SQS_CHANGE_VISIBILITY_BATCH] > 0)
		return sqs_wait_event(SQS_WAIT_CHANGE_VISIBILITY);
	if (client->ninflight[SQS_GET_ATTRIBUTES] > 0)
		return sqs_wait_event(SQS_WAIT_GET_ATTRIBUTES);
	return sqs_wait_event(SQS_WAIT_RECEIVE);
}

/*
 * Milliseconds until libcurl's timer is due, rounded up: 0 if it is, -1 if
 * none is set.  Fired early, it would do nothing, and libcurl, whose timer
 * would not have changed, would not set it again.
 */
static long
timer_left_ms(SqsClient *client)
{
	int64		left_us;

	if (client->timer_ms <= 0)
		return client->timer_ms;
	left_us = client->timer_ms * INT64CONST(1000) -
		(GetCurrentTimestamp() - client->timer_set_at);
	return left_us <= 0 ? 0 : (long) ((left_us + 999) / 1000);
}

/*
 * Wait once, at most timeout_ms, for sockets, libcurl's timer or the latch,
 * and let libcurl act on what happened.  Returns true if the latch was set.
 */
static bool
wait_once(SqsClient *client, long timeout_ms)
{
	int			nevents;
	bool		latch_set = false;
	TimestampTz answered_after = client->checked_at;
	TimestampTz deadline;
	long		timer_left;

	credit_undriven_time(client);

	/* libcurl asked to be called at once, or its timer is due */
	timer_left = timer_left_ms(client);
	if (timer_left == 0)
	{
		client->timer_ms = -1;
		socket_action(client, CURL_SOCKET_TIMEOUT, 0);
		note_answered(client, answered_after);
		collect_completed(client, answered_after);
		client->unwatched_since = GetCurrentTimestamp();
		return false;
	}

	update_wait_set(client);
	if (timer_left > 0 && (timeout_ms < 0 || timer_left < timeout_ms))
		timeout_ms = timer_left;
	deadline = next_deadline(client);
	if (deadline != 0)
	{
		long		until_deadline = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	 deadline);

		if (timeout_ms < 0 || until_deadline < timeout_ms)
			timeout_ms = until_deadline;
	}

	if (timeout_ms < 0 || timeout_ms > WATCH_WINDOW_MS)
		timeout_ms = WATCH_WINDOW_MS;

	/*
	 * What is ready at once may have come in at any time since the sockets
	 * were last looked at (before a store, say).  Only when nothing is does
	 * the wait block, and what wakes it came in since the look.
	 */
	client->checked_at = GetCurrentTimestamp();
	nevents = WaitEventSetWait(client->wait_set, 0, client->occurred,
							   client->max_occurred, wait_event_for(client));
	if (nevents == 0 && timeout_ms > 0)
	{
		answered_after = client->checked_at;
		client->checked_at = GetCurrentTimestamp();
		nevents = WaitEventSetWait(client->wait_set, timeout_ms, client->occurred,
								   client->max_occurred, wait_event_for(client));
	}
	/*
	 * A wait that ends before libcurl's timer is due (the caller's timeout,
	 * a look without waiting) leaves it set, for the same moment.
	 */
	if (nevents == 0 && timeout_ms > 0 && timer_left_ms(client) <= 0)
	{
		client->timer_ms = -1;
		socket_action(client, CURL_SOCKET_TIMEOUT, 0);
	}
	for (int i = 0; i < nevents; i++)
	{
		WaitEvent  *event = &client->occurred[i];
		int			mask = 0;
		SqsSocket  *sock;

		if (event->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			latch_set = true;
			continue;
		}
		sock = find_socket(client, event->fd);
		if (sock == NULL || sock->pos != event->pos)
			continue;			/* closed by an earlier action of this loop */
		if (sock->curl_what == CURL_POLL_REMOVE)
		{
			/* an idle connection closed by the server: stop watching it */
			client->sockets_dirty = true;
			continue;
		}
		if (event->events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (event->events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		socket_action(client, event->fd, mask);
	}
	note_answered(client, answered_after);
	collect_completed(client, answered_after);
	/* only now: what came in before the deadline has been read */
	expire_requests(client);
	client->unwatched_since = GetCurrentTimestamp();
	return latch_set;
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
		error->hint = "Check sqs_ingest.queue_url and sqs_ingest.region: the queue must exist in that region and account.";
	}
	else if (strstr(type, "Signature") || strstr(type, "ClientToken") ||
			 strstr(type, "UnrecognizedClient") ||
			 strstr(type, "MissingAuthenticationToken") ||
			 strstr(type, "ExpiredToken") || strstr(type, "InvalidSecurity"))
	{
		error->transient = false;
		error->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		error->hint = "Check the credentials (sqs_ingest.stats shows their source: the settings or the AWS credential chain) and sqs_ingest.region.";
	}
	else if (strstr(type, "AccessDenied"))
	{
		error->transient = false;
		error->sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
		error->hint = "Grant the credentials sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes on the queue.";
	}
	else if (strstr(type, "Throttl") || strstr(type, "RequestThrottled") ||
			 strstr(type, "OverLimit") || strstr(type, "ServiceUnavailable") ||
			 strstr(type, "InternalError") || strstr(type, "InternalFailure"))
	{
		error->transient = true;
		error->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		if (strstr(type, "Throttl") || strstr(type, "OverLimit"))
			error->hint = "Lower sqs_ingest.max_inflight or raise the account's SQS quotas.";
	}
	else if (error->transient)
		error->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
}

/* build the error of a failed request, or NULL if it succeeded */
static SqsError *
request_error(SqsRequest *request)
{
	SqsError   *error;
	SqsErrorDocument document;

	if (request->curl_result == CURLE_OK && request->http_status == 200)
		return NULL;

	error = palloc0(sizeof(SqsError));
	error->action = action_names[request->action];
	error->http_status = request->http_status;

	if (request->curl_result != CURLE_OK)
	{
		CURLcode	rc = request->curl_result;

		error->too_large = request->response_too_big;
		error->message = psprintf("%s",
								  request->response_too_big ? "response too large" :
								  request->curl_error[0] ? request->curl_error :
								  curl_easy_strerror(rc));
		switch (rc)
		{
			case CURLE_PEER_FAILED_VERIFICATION:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
				error->message = psprintf("TLS verification of the endpoint failed: %s",
										  error->message);
				error->hint = "If a private CA issued the endpoint's certificate, set sqs_ingest.ca_file to a PEM file of its CA certificates; verification cannot be turned off.";
				break;
			case CURLE_SSL_CACERT_BADFILE:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
				error->message = psprintf("could not load the CA certificates: %s",
										  error->message);
				error->hint = "Set sqs_ingest.ca_file to a PEM file of CA certificates, or to an empty string for the system's.";
				break;
			case CURLE_UNSUPPORTED_PROTOCOL:
			case CURLE_URL_MALFORMAT:
			case CURLE_SSL_CERTPROBLEM:
				error->transient = false;
				error->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
				error->hint = "Check sqs_ingest.queue_url and sqs_ingest.endpoint; TLS peers are always verified.";
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
	if (sqs_decode_json_error(request->response, request->response_len, &document) ||
		sqs_decode_xml_error(request->response, request->response_len, &document))
	{
		/* the code is the endpoint's text as much as the message is */
		error->aws_type = redact_aws_text(document.code);
		error->message = redact_aws_text(document.message);
	}
	if (error->message == NULL)
		error->message = psprintf("HTTP status %ld", request->http_status);
	classify_aws_error(error);
	return error;
}

/* the error of a response the decoder could not read */
static SqsError *
protocol_error(SqsRequest *request, const char *what)
{
	SqsError   *error = palloc0(sizeof(SqsError));

	error->action = action_names[request->action];
	error->http_status = request->http_status;
	error->sqlerrcode = ERRCODE_PROTOCOL_VIOLATION;
	error->message = psprintf("unexpected response: %s", what);
	error->hint = "Check that sqs_ingest.queue_url and sqs_ingest.endpoint point at Amazon SQS or a faithful emulator.";
	return error;
}

/* decode a successful response into the result, or return its error */
static SqsError *
decode_response(SqsRequest *request, SqsResult *result)
{
	char	   *error = NULL;
	SqsReceiveResponse receive;
	SqsBatchResponse batch;

	bool		json = (request->wire == WIRE_JSON);

	switch (request->action)
	{
		case SQS_RECEIVE:
			error = json ?
				sqs_decode_json_receive(request->response, request->response_len,
										request->requested, &receive) :
				sqs_decode_xml_receive(request->response, request->response_len,
									   request->requested, &receive);
			if (error == NULL)
			{
				result->nmessages = receive.nmessages;
				result->messages = receive.messages;
				result->nskipped = receive.nskipped;
				for (int i = 0; i < receive.nmessages; i++)
					receive.messages[i].received_at = request->answered_after;
			}
			break;
		case SQS_DELETE_BATCH:
		case SQS_CHANGE_VISIBILITY_BATCH:
			error = json ?
				sqs_decode_json_batch(request->response, request->response_len,
									  request->requested, &batch) :
				sqs_decode_xml_batch(request->response, request->response_len,
									 action_names[request->action],
									 request->requested, &batch);
			if (error == NULL)
			{
				result->nfailed = batch.nfailed;
				result->failed = batch.failed;
				result->failure = redact_aws_text(batch.failure);
			}
			break;
		case SQS_GET_ATTRIBUTES:
			error = json ?
				sqs_decode_json_attributes(request->response, request->response_len,
										   queue_depth_attributes,
										   NUM_DEPTH_ATTRIBUTES, result->attributes) :
				sqs_decode_xml_attributes(request->response, request->response_len,
										  queue_depth_attributes,
										  NUM_DEPTH_ATTRIBUTES, result->attributes);
			break;
	}
	return error ? protocol_error(request, error) : NULL;
}

/*
 * Has a JSON request's answer shown that the endpoint speaks only the Query
 * protocol?  An SQS XML document (in a 2xx or 4xx answer), or an error code
 * saying the operation or action is unknown.  A bare 404, a 5xx, a timeout
 * or a reset say nothing about it: a missing page or a failing server is
 * not a protocol, and switching on one would be silent and lasting.
 */
static bool
answer_shows_query_only(SqsRequest *request)
{
	long		status = request->http_status;
	const char *p = request->response;
	const char *end = request->response + request->response_len;
	SqsErrorDocument document;

	if (request->curl_result != CURLE_OK || status < 200 || status >= 500)
		return false;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	if (p < end && *p == '<')
	{
		/* an SQS answer in XML, not any markup (a proxy's HTML page) */
		char	   *root = psprintf("<%sResponse", action_names[request->action]);
		bool		sqs_xml = memmem(p, end - p, root, strlen(root)) != NULL ||
			sqs_decode_xml_error(request->response, request->response_len, &document);

		pfree(root);
		return sqs_xml;
	}
	if (status == 200 ||
		!sqs_decode_json_error(request->response, request->response_len, &document))
		return false;
	return document.code &&
		(strstr(document.code, "UnknownOperation") ||
		 strstr(document.code, "InvalidAction") ||
		 strstr(document.code, "MissingAction"));
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
	if (!answer_shows_query_only(request))
	{
		if (request->curl_result == CURLE_OK && request->http_status == 200)
			client->probing = false;	/* it speaks JSON */
		return false;
	}
	if (client->wire == WIRE_JSON)
	{
		ereport(LOG,
				(errmsg("SQS endpoint %s does not speak the AWS JSON protocol: switching to the Query protocol",
						client->config.endpoint),
				 errdetail("It answered %s with HTTP status %ld.",
						   action_names[request->action], request->http_status),
				 errhint("Set sqs_ingest.protocol to query to start with it.")));
		client->wire = WIRE_QUERY;
		client->probing = false;
		sqs_remember_only_query(client->config.endpoint);
	}
	pfree(request->body);
	request->body = request->query_body;
	request->query_body = NULL;
	request->wire = WIRE_QUERY;
	free(request->response);
	request->response = NULL;
	request->response_len = request->response_cap = 0;
	request->response_too_big = false;
	request->curl_result = CURLE_OK;
	request->http_status = 0;
	request->curl_error[0] = '\0';
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

	for (int i = 0; i < NUM_DEPTH_ATTRIBUTES; i++)
		result->attributes[i] = -1;

	PG_TRY();
	{
		result->error = request_error(request);
		if (result->error == NULL)
			result->error = decode_response(request, result);
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
		while (dlist_is_empty(&client->done))
		{
			long		remaining = -1;

			if (dlist_is_empty(&client->inflight) && timeout_ms < 0)
				return NULL;	/* nothing will ever complete */
			if (timeout_ms >= 0)
			{
				remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
				if (remaining <= 0 && (timeout_ms > 0 || looked))
					return NULL;
				remaining = Max(remaining, 0);
			}
			looked = true;
			if (wait_once(client, remaining) && dlist_is_empty(&client->done))
				return NULL;
		}
		request = dlist_container(SqsRequest, node, dlist_pop_head_node(&client->done));
	} while (retry_in_query_protocol(client, request));

	return result_of(request);
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
			 error->hint ? errhint("%s", error->hint) : 0));
}
