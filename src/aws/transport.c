/*-------------------------------------------------------------------------
 *
 * transport.c
 *	  HTTP over libcurl: the options every handle gets, form encoding, the
 *	  check of a URL's scheme, and many requests in flight on a libcurl
 *	  multi handle, waited on through a PostgreSQL WaitEventSet.
 *
 * The SQS client keeps many requests in flight at once (receives
 * long-polling while the deletes of the previous batch go out), over
 * kept-alive connections.  Waiting goes through a WaitEventSet holding the
 * process latch and libcurl's sockets, so a signal (SIGTERM, SIGHUP, query
 * cancel) is seen at once even in the middle of a 20-second long poll.
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
 * The blocking calls to the credential services (credential_http.c) share
 * the hardening, the form encoding and the check of a URL's scheme.
 * libcurl is initialised here too, with allocators that wipe what they free.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "transport.h"
#include "version.h"

/* biggest response accepted: ten 256 KiB-1 MiB messages plus framing */
#define MAX_RESPONSE_BYTES (16 * 1024 * 1024)

/*
 * Longest a wait blocks on the sockets at a time: a response that wakes it
 * is counted as answered from the wait's start (see the file header).
 */
#define WATCH_WINDOW_MS 1000

/* a socket libcurl uses */
typedef struct TransportSocket
{
	curl_socket_t fd;
	int			curl_what;		/* CURL_POLL_*, CURL_POLL_REMOVE = unwatched */
	bool		ours;			/* opened by open_socket(), closed by close_socket() */
	bool		changed;		/* curl_what changed since the set was updated */
	int			pos;			/* position in the wait event set, or -1 */
	ino_t		ino;			/* the socket's inode, to tell a reused number */
} TransportSocket;

struct Transport
{
	MemoryContext context;
	CURLM	   *multi;
	TransportCompleted completed;
	void	   *completed_arg;

	dlist_head	inflight;		/* requests libcurl is running */
	dlist_head	done;			/* completed, oldest first */

	/* sockets, kept in step by the libcurl callbacks */
	TransportSocket *sockets;
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

	/* easy handles of completed requests, for the next ones */
	CURL	  **idle_easy;
	int			nidle_easy;
	int			max_idle_easy;
	MemoryContextCallback cleanup;
};

/* ---------------------------------------------------------------------
 * libcurl's heap: every block wiped when freed
 * ---------------------------------------------------------------------
 */

static void
wiping_free(void *ptr)
{
	if (ptr == NULL)
		return;
	explicit_bzero(ptr, malloc_usable_size(ptr));
	free(ptr);
}

static void *
wiping_realloc(void *ptr, size_t size)
{
	void	   *moved;
	size_t		old_size;

	if (ptr == NULL)
		return malloc(size);
	old_size = malloc_usable_size(ptr);
	if (size <= old_size)
		return ptr;
	moved = malloc(size);
	if (moved == NULL)
		return NULL;
	memcpy(moved, ptr, old_size);
	wiping_free(ptr);
	return moved;
}

static char *
wiping_strdup(const char *str)
{
	size_t		len = strlen(str) + 1;
	char	   *copy = malloc(len);

	if (copy)
		memcpy(copy, str, len);
	return copy;
}

/*
 * Initialise libcurl, once a process, with allocators that wipe what they
 * free: libcurl keeps copies of the credentials (user name, password, the
 * signed Authorization and X-Amz-Security-Token headers) that no option
 * clears.
 */
void
transport_global_init(void)
{
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wiping_free,
							 wiping_realloc, wiping_strdup, calloc) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not initialise libcurl")));
}

/* ---------------------------------------------------------------------
 * what every libcurl handle gets
 * ---------------------------------------------------------------------
 */

/*
 * The length of url's "http://" or "https://" (7 or 8), or 0 if it starts
 * with neither: the only schemes sqs_ingest hands to libcurl.  The one
 * place that checks a URL's scheme: settings, options and the AWS
 * variables in lower case, as written (any_case false); a queue URL
 * identified as SQS does, whatever the case of its scheme (any_case true).
 */
int
transport_http_prefix(const char *url, bool any_case)
{
	int			(*compare) (const char *, const char *, size_t) =
		any_case ? pg_strncasecmp : strncmp;

	if (compare(url, "http://", 7) == 0)
		return 7;
	if (compare(url, "https://", 8) == 0)
		return 8;
	return 0;
}

/*
 * The options that make a handle safe to point at an endpoint we do not
 * trust: http and https only, no redirects, the peer and its host name
 * always verified, against ca_file alone when it is set (it replaces the
 * system's bundle, as AWS_CA_BUNDLE does for the SDKs), no signals, a
 * bounded connect, and our user agent.
 */
void
transport_harden(CURL *easy, const char *ca_file, long connect_timeout_ms)
{
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file)
	{
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
		curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, SQS_INGEST_USER_AGENT);
}

/*
 * Append len bytes RFC 3986 percent-encoded: all but the unreserved
 * characters, as forms and SigV4's canonical URIs and queries want them.
 */
void
transport_form_bytes(StringInfo buf, const char *bytes, size_t len)
{
	for (const unsigned char *p = (const unsigned char *) bytes;
		 p < (const unsigned char *) bytes + len; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
			*p == '~')
			appendStringInfoCharMacro(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

/* append a form-encoded value */
void
transport_form_value(StringInfo buf, const char *value)
{
	transport_form_bytes(buf, value, strlen(value));
}

/* append name=value to an application/x-www-form-urlencoded body */
void
transport_form_append(StringInfo form, const char *name, const char *value)
{
	if (form->len > 0)
		appendStringInfoChar(form, '&');
	appendStringInfo(form, "%s=", name);
	transport_form_value(form, value);
}

/* free a list of header lines, wiping them: one may hold a session token */
void
transport_free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

/* ---------------------------------------------------------------------
 * libcurl callbacks: no palloc, no ereport
 * ---------------------------------------------------------------------
 */

static size_t
write_response(char *data, size_t size, size_t nmemb, void *userdata)
{
	TransportRequest *request = userdata;
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

static TransportSocket *
find_socket(Transport *transport, curl_socket_t fd)
{
	for (int i = 0; i < transport->nsockets; i++)
		if (transport->sockets[i].fd == fd)
			return &transport->sockets[i];
	return NULL;
}

/* the inode of an open descriptor, or 0 if it is not open */
static ino_t
socket_inode(curl_socket_t fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static TransportSocket *
add_socket(Transport *transport, curl_socket_t fd, bool ours)
{
	TransportSocket *sock;

	if (transport->nsockets >= transport->max_sockets)
	{
		transport->sockets_overflow = true;
		return NULL;
	}
	sock = &transport->sockets[transport->nsockets++];
	sock->fd = fd;
	sock->curl_what = CURL_POLL_REMOVE;
	sock->ours = ours;
	sock->changed = false;
	sock->pos = -1;
	sock->ino = socket_inode(fd);
	transport->sockets_dirty = true;
	return sock;
}

static void
forget_socket(Transport *transport, TransportSocket *sock)
{
	*sock = transport->sockets[--transport->nsockets];
	transport->sockets_dirty = true;
}

/*
 * Is the socket we know still open, and the same socket?  libcurl 7.88
 * closes a socket that fails while connecting without calling
 * close_socket() (fixed in 8.2), and the kernel may then hand its number to
 * the next socket or file: an entry left for it must not be watched,
 * modified or matched again.
 */
static bool
socket_is_current(const TransportSocket *sock)
{
	return socket_inode(sock->fd) == sock->ino && sock->ino != 0;
}

/*
 * Drop an entry whose socket was closed behind our back, giving back the
 * descriptor budget close_socket() would have given back.
 */
static void
forget_stale_socket(Transport *transport, TransportSocket *sock)
{
	if (sock->ours)
		ReleaseExternalFD();
	forget_socket(transport, sock);
}

/* forget every entry whose socket is gone */
static void
forget_stale_sockets(Transport *transport)
{
	for (int i = transport->nsockets - 1; i >= 0; i--)
		if (!socket_is_current(&transport->sockets[i]))
			forget_stale_socket(transport, &transport->sockets[i]);
}

static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Transport  *transport = clientp;
	curl_socket_t fd;
	TransportSocket *stale;

	if (transport->nsockets >= transport->max_sockets)
		forget_stale_sockets(transport);
	if (transport->nsockets >= transport->max_sockets)
	{
		transport->sockets_overflow = true;
		return CURL_SOCKET_BAD;
	}
	/*
	 * Within the server's descriptor budget (what sockets closed behind our
	 * back held is given back first); refused, errno says EMFILE.
	 */
	if (!AcquireExternalFD())
	{
		forget_stale_sockets(transport);
		if (!AcquireExternalFD())
		{
			transport->out_of_descriptors = true;
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
	if ((stale = find_socket(transport, fd)) != NULL)
		forget_stale_socket(transport, stale);
	add_socket(transport, fd, true);
	return fd;
}

static int
close_socket(void *clientp, curl_socket_t fd)
{
	Transport  *transport = clientp;
	TransportSocket *sock = find_socket(transport, fd);
	int			rc;

	if (sock)
		forget_socket(transport, sock);
	rc = close(fd);
	ReleaseExternalFD();
	return rc;
}

static int
watch_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	Transport  *transport = userp;
	TransportSocket *sock = find_socket(transport, fd);

	/* an entry watched anew: the same socket, not a reused number? */
	if (sock != NULL && sock->curl_what != what &&
		what != CURL_POLL_REMOVE && !socket_is_current(sock))
	{
		forget_stale_socket(transport, sock);
		sock = NULL;
	}
	if (sock == NULL)
	{
		if (what == CURL_POLL_REMOVE)
			return 0;
		/* a socket libcurl made itself, such as its resolver's wakeup pipe */
		sock = add_socket(transport, fd, false);
		if (sock == NULL)
			return -1;
	}
	if (what == CURL_POLL_REMOVE && !sock->ours)
	{
		/* we will not hear when it is closed: drop it now */
		forget_socket(transport, sock);
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
	Transport  *transport = userp;

	transport->timer_ms = timeout_ms;
	transport->timer_set_at = GetCurrentTimestamp();
	return 0;
}

/*
 * The sockets of a blocking call, in no multi handle: opened within the
 * server's file descriptor budget (AcquireExternalFD()); past it the
 * connection fails, and *(bool *) clientp says why.
 */
static curl_socket_t
open_counted_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	curl_socket_t fd;

	if (!AcquireExternalFD())
	{
		*(bool *) clientp = true;
		return CURL_SOCKET_BAD;
	}
	fd = socket(address->family, address->socktype, address->protocol);
	if (fd == CURL_SOCKET_BAD)
		ReleaseExternalFD();
	return fd;
}

static int
close_counted_socket(void *clientp, curl_socket_t fd)
{
	int			rc = close(fd);

	ReleaseExternalFD();
	return rc;
}

/*
 * A handle of a blocking call (credential_http.c) opens its sockets within
 * the server's file descriptor budget too; *out_of_descriptors is set if
 * one was refused for it.
 */
void
transport_count_sockets(CURL *easy, bool *out_of_descriptors)
{
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_counted_socket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, out_of_descriptors);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_counted_socket);
}

/* ---------------------------------------------------------------------
 * lifetime
 * ---------------------------------------------------------------------
 */

/*
 * Free what libcurl holds of a request that is in no multi handle: its
 * easy handle, header list and response.  The rest is its owner's.
 */
void
transport_free_request(TransportRequest *request)
{
	if (request->easy)
		curl_easy_cleanup(request->easy);
	transport_free_headers(request->headers);
	free(request->response);
}

/*
 * Runs when the transport's memory context goes, including on error
 * cleanup: the requests in flight or not yet collected, the connections
 * and the wait event set go with it.
 */
static void
transport_context_gone(void *arg)
{
	Transport  *transport = arg;

	while (!dlist_is_empty(&transport->inflight))
	{
		TransportRequest *request = dlist_container(TransportRequest, node,
													dlist_pop_head_node(&transport->inflight));

		curl_multi_remove_handle(transport->multi, request->easy);
		transport_free_request(request);
	}
	while (!dlist_is_empty(&transport->done))
		transport_free_request(dlist_container(TransportRequest, node,
											   dlist_pop_head_node(&transport->done)));
	while (transport->nidle_easy > 0)
		curl_easy_cleanup(transport->idle_easy[--transport->nidle_easy]);
	/* closes pooled connections through close_socket(), so before the rest */
	if (transport->multi)
		curl_multi_cleanup(transport->multi);
	transport->multi = NULL;
	if (transport->wait_set)
		FreeWaitEventSet(transport->wait_set);
	transport->wait_set = NULL;
}

/*
 * Create a transport of at most connections connections in the given
 * memory context; deleting the context (including on error) releases every
 * libcurl resource.  completed(request, arg) is called as each request
 * leaves the requests in flight.
 */
Transport *
transport_create(MemoryContext context, int connections,
				 TransportCompleted completed, void *arg)
{
	Transport  *transport = MemoryContextAllocZero(context, sizeof(Transport));
	MemoryContext old = MemoryContextSwitchTo(context);

	transport->context = context;
	transport->completed = completed;
	transport->completed_arg = arg;
	transport->timer_ms = -1;
	transport->unwatched_since = GetCurrentTimestamp();
	transport->checked_at = transport->unwatched_since;
	dlist_init(&transport->inflight);
	dlist_init(&transport->done);

	/* room for every connection plus libcurl's own descriptors */
	transport->max_sockets = connections + 16;
	transport->sockets = palloc0(sizeof(TransportSocket) * transport->max_sockets);
	transport->max_occurred = transport->max_sockets + 2;
	transport->occurred = palloc0(sizeof(WaitEvent) * transport->max_occurred);
	transport->sockets_dirty = true;
	transport->max_idle_easy = transport->max_sockets;
	transport->idle_easy = palloc0(sizeof(CURL *) * transport->max_idle_easy);

	transport->cleanup.func = transport_context_gone;
	transport->cleanup.arg = transport;
	MemoryContextRegisterResetCallback(context, &transport->cleanup);

	transport->multi = curl_multi_init();
	if (transport->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(transport->multi, CURLMOPT_SOCKETFUNCTION, watch_socket);
	curl_multi_setopt(transport->multi, CURLMOPT_SOCKETDATA, transport);
	curl_multi_setopt(transport->multi, CURLMOPT_TIMERFUNCTION, set_timer);
	curl_multi_setopt(transport->multi, CURLMOPT_TIMERDATA, transport);
	/* a hard cap on descriptors whatever the number of requests queued */
	curl_multi_setopt(transport->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) connections);
	curl_multi_setopt(transport->multi, CURLMOPT_MAXCONNECTS, (long) connections);

	/*
	 * The wait set's own descriptor is taken before any socket, from the
	 * same budget, so that the sockets cannot leave it none: each rebuild
	 * (update_wait_set) gives it back and takes it again at once.
	 */
	transport->wait_set = compat_create_wait_event_set(context, 2);

	MemoryContextSwitchTo(old);
	return transport;
}

/*
 * An easy handle for a new request, NULL if out of memory: one a completed
 * request left, if any, which saves setting up a new one (libcurl's own
 * advice).  The caller sets every option its requests use, as on a new
 * handle: they are the same for every request of a transport but the
 * header list, the body and what transport_start() sets.
 */
CURL *
transport_easy(Transport *transport)
{
	if (transport->nidle_easy > 0)
		return transport->idle_easy[--transport->nidle_easy];
	return curl_easy_init();
}

/*
 * Hand a request to libcurl: its easy handle, hardened and given its URL,
 * headers and body by the caller, gets the transport's callbacks and is
 * added to the multi handle.  Its deadline is timeout_ms from now.  On a
 * failure, what libcurl said is returned and the request is not started.
 */
CURLMcode
transport_start(Transport *transport, TransportRequest *request)
{
	CURL	   *easy = request->easy;
	CURLMcode	mrc;

	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	/* the request's timeout is its deadline, kept by transport_wait() */
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_response);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->curl_error);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, transport);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, transport);

	mrc = curl_multi_add_handle(transport->multi, easy);
	if (mrc != CURLM_OK)
		return mrc;
	request->started_at = GetCurrentTimestamp();
	request->deadline = TimestampTzPlusMilliseconds(request->started_at,
													request->timeout_ms);
	dlist_push_tail(&transport->inflight, &request->node);
	return CURLM_OK;
}

/* are no requests in flight? */
bool
transport_idle(Transport *transport)
{
	return dlist_is_empty(&transport->inflight);
}

/* is a completed request waiting to be collected? */
bool
transport_has_done(Transport *transport)
{
	return !dlist_is_empty(&transport->done);
}

/* the oldest completed request, taken off the transport's lists */
TransportRequest *
transport_next_done(Transport *transport)
{
	Assert(!dlist_is_empty(&transport->done));
	return dlist_container(TransportRequest, node,
						   dlist_pop_head_node(&transport->done));
}

/* ---------------------------------------------------------------------
 * waiting
 * ---------------------------------------------------------------------
 */

static uint32
socket_wait_events(int curl_what)
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
			 * ready, and then it is dropped from the set (see transport_wait).
			 */
			return WL_SOCKET_READABLE;
	}
}

/*
 * Say once per transport that connections were refused for want of file
 * descriptors: the requests themselves fail as refused connections do.
 */
static void
report_descriptor_shortage(Transport *transport)
{
	if (!transport->out_of_descriptors || transport->descriptors_reported)
		return;
	transport->descriptors_reported = true;
	ereport(LOG,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("sqs_ingest could not open a connection to SQS: the server's file descriptor budget is used up"),
			 errdetail("Connections to SQS count against max_files_per_process, of which a third may be held outside data files."),
			 errhint("Lower sqs_ingest.max_inflight (or the pipeline's max_inflight option), or raise max_files_per_process.")));
}

/* bring the wait event set in line with what libcurl wants watched */
static void
update_wait_set(Transport *transport)
{
	report_descriptor_shortage(transport);
	if (transport->sockets_overflow)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("sqs_ingest opened more sockets than it allows (%d)",
						transport->max_sockets)));

	if (!transport->sockets_dirty)
	{
		for (int i = 0; i < transport->nsockets; i++)
		{
			TransportSocket *sock = &transport->sockets[i];

			if (!sock->changed)
				continue;
			if (sock->pos < 0)
			{
				/* not in the set yet: only a rebuild can add it */
				transport->sockets_dirty = true;
				break;
			}
			if (sock->curl_what == CURL_POLL_REMOVE && !socket_is_current(sock))
			{
				/* closed behind our back: the kernel dropped it already */
				forget_stale_socket(transport, sock);
				break;
			}
			ModifyWaitEvent(transport->wait_set, sock->pos,
							socket_wait_events(sock->curl_what), NULL);
			sock->changed = false;
		}
	}
	if (!transport->sockets_dirty)
		return;

	if (transport->wait_set)
		FreeWaitEventSet(transport->wait_set);
	transport->wait_set = NULL;
	transport->wait_set = compat_create_wait_event_set(transport->context,
													transport->nsockets + 2);
	AddWaitEventToSet(transport->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(transport->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	forget_stale_sockets(transport);
	for (int i = 0; i < transport->nsockets; i++)
	{
		TransportSocket *sock = &transport->sockets[i];

		sock->changed = false;
		sock->pos = -1;
		if (sock->curl_what == CURL_POLL_REMOVE)
			continue;			/* idle: added back when libcurl uses it */
		sock->pos = AddWaitEventToSet(transport->wait_set,
									  socket_wait_events(sock->curl_what),
									  sock->fd, NULL, NULL);
	}
	transport->sockets_dirty = false;
}

/* move a request libcurl is done with to the completed list */
static void
complete_request(Transport *transport, TransportRequest *request, CURLcode result)
{
	request->curl_result = result;
	curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &request->http_status);
	curl_multi_remove_handle(transport->multi, request->easy);
	if (transport->nidle_easy < transport->max_idle_easy)
	{
		/* nothing in an idle handle points into the request, freed soon */
		curl_easy_setopt(request->easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(request->easy, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(request->easy, CURLOPT_WRITEDATA, NULL);
		curl_easy_setopt(request->easy, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(request->easy, CURLOPT_PRIVATE, NULL);
		transport->idle_easy[transport->nidle_easy++] = request->easy;
	}
	else
		curl_easy_cleanup(request->easy);
	request->easy = NULL;

	dlist_delete(&request->node);
	transport->completed(request, transport->completed_arg);
	dlist_push_tail(&transport->done, &request->node);
}

/*
 * The requests in flight whose response began to come in by the last
 * action on libcurl were answered, at the earliest, when the sockets were
 * last found with nothing to read (since): SQS hides a received message
 * from then on, and the pipeline counts its visibility timeout from there.
 * Only the first piece counts, however many reads the response takes.
 */
static void
note_answered(Transport *transport, TimestampTz since)
{
	dlist_iter	iter;

	dlist_foreach(iter, &transport->inflight)
	{
		TransportRequest *request = dlist_container(TransportRequest, node, iter.cur);
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
collect_completed(Transport *transport, TimestampTz answered_after)
{
	CURLMsg    *msg;
	int			pending;

	while ((msg = curl_multi_info_read(transport->multi, &pending)) != NULL)
	{
		TransportRequest *request = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &request);
		if (request->answered_after == 0)
			request->answered_after = Max(request->started_at, answered_after);
		complete_request(transport, request, msg->data.result);
	}
}

/*
 * Time nobody drove libcurl since the end of the last wait (a store, say)
 * does not count against the requests in flight: their deadlines move on
 * by as much of it as each has seen.
 */
static void
credit_undriven_time(Transport *transport)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_iter	iter;

	dlist_foreach(iter, &transport->inflight)
	{
		TransportRequest *request = dlist_container(TransportRequest, node, iter.cur);
		TimestampTz since = Max(transport->unwatched_since, request->started_at);

		if (now > since)
			request->deadline += now - since;
	}
}

/* the earliest deadline of a request in flight, or 0 if none is */
static TimestampTz
next_deadline(Transport *transport)
{
	TimestampTz earliest = 0;
	dlist_iter	iter;

	dlist_foreach(iter, &transport->inflight)
	{
		TransportRequest *request = dlist_container(TransportRequest, node, iter.cur);

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
expire_requests(Transport *transport)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &transport->inflight)
	{
		TransportRequest *request = dlist_container(TransportRequest, node, iter.cur);

		if (request->deadline > now)
			continue;
		snprintf(request->curl_error, sizeof(request->curl_error),
				 "Operation timed out after %ld milliseconds with %zu bytes received",
				 request->timeout_ms, request->response_len);
		request->answered_after = now;
		complete_request(transport, request, CURLE_OPERATION_TIMEDOUT);
	}
}

static void
socket_action(Transport *transport, curl_socket_t fd, int mask)
{
	int			running;
	CURLMcode	mrc = curl_multi_socket_action(transport->multi, fd, mask, &running);

	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("libcurl failed: %s", curl_multi_strerror(mrc))));
}
/*
 * Milliseconds until libcurl's timer is due, rounded up: 0 if it is, -1 if
 * none is set.  Fired early, it would do nothing, and libcurl, whose timer
 * would not have changed, would not set it again.
 */
static long
timer_left_ms(Transport *transport)
{
	int64		left_us;

	if (transport->timer_ms <= 0)
		return transport->timer_ms;
	left_us = transport->timer_ms * INT64CONST(1000) -
		(GetCurrentTimestamp() - transport->timer_set_at);
	return left_us <= 0 ? 0 : (long) ((left_us + 999) / 1000);
}

/* let libcurl act on its timer, which is due, and collect what completed */
static void
run_due_timer(Transport *transport, TimestampTz answered_after)
{
	transport->timer_ms = -1;
	socket_action(transport, CURL_SOCKET_TIMEOUT, 0);
	note_answered(transport, answered_after);
	collect_completed(transport, answered_after);
}

/*
 * Send the requests started since libcurl was last driven, without
 * waiting and without looking at the sockets: libcurl sends a new request
 * when its timer, set to 0 by curl_multi_add_handle(), is run.  Otherwise
 * a request started while completed ones are still being handed out, or
 * just before a store, would wait for the next wait to go out.
 */
void
transport_send_started(Transport *transport)
{
	if (timer_left_ms(transport) == 0)
		run_due_timer(transport, transport->checked_at);
}

/*
 * Wait once, at most timeout_ms, for sockets, libcurl's timer or the latch,
 * and let libcurl act on what happened.  Returns true if the latch was set.
 */
bool
transport_wait(Transport *transport, long timeout_ms, uint32 wait_event)
{
	int			nevents;
	bool		latch_set = false;
	TimestampTz answered_after = transport->checked_at;
	TimestampTz deadline;
	long		timer_left;

	credit_undriven_time(transport);

	/* libcurl asked to be called at once, or its timer is due */
	timer_left = timer_left_ms(transport);
	if (timer_left == 0)
	{
		run_due_timer(transport, answered_after);
		transport->unwatched_since = GetCurrentTimestamp();
		return false;
	}

	update_wait_set(transport);
	if (timer_left > 0 && (timeout_ms < 0 || timer_left < timeout_ms))
		timeout_ms = timer_left;
	deadline = next_deadline(transport);
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
	transport->checked_at = GetCurrentTimestamp();
	nevents = WaitEventSetWait(transport->wait_set, 0, transport->occurred,
							   transport->max_occurred, wait_event);
	if (nevents == 0 && timeout_ms > 0)
	{
		answered_after = transport->checked_at;
		transport->checked_at = GetCurrentTimestamp();
		nevents = WaitEventSetWait(transport->wait_set, timeout_ms, transport->occurred,
								   transport->max_occurred, wait_event);
	}

	/*
	 * A wait that ends before libcurl's timer is due (the caller's timeout,
	 * a look without waiting) leaves it set, for the same moment.
	 */
	if (nevents == 0 && timeout_ms > 0 && timer_left_ms(transport) <= 0)
	{
		transport->timer_ms = -1;
		socket_action(transport, CURL_SOCKET_TIMEOUT, 0);
	}
	for (int i = 0; i < nevents; i++)
	{
		WaitEvent  *event = &transport->occurred[i];
		int			mask = 0;
		TransportSocket *sock;

		if (event->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			latch_set = true;
			continue;
		}
		sock = find_socket(transport, event->fd);
		if (sock == NULL || sock->pos != event->pos)
			continue;			/* closed by an earlier action of this loop */
		if (sock->curl_what == CURL_POLL_REMOVE)
		{
			/* an idle connection closed by the server: stop watching it */
			transport->sockets_dirty = true;
			continue;
		}
		if (event->events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (event->events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		socket_action(transport, event->fd, mask);
	}
	note_answered(transport, answered_after);
	collect_completed(transport, answered_after);
	/* only now: what came in before the deadline has been read */
	expire_requests(transport);
	transport->unwatched_since = GetCurrentTimestamp();
	return latch_set;
}