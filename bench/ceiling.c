/*
 * ceiling.c - the fastest a single client can move messages through an SQS
 * endpoint, with no database: N ReceiveMessage long polls in flight, and a
 * DeleteMessageBatch for every non-empty receive, issued concurrently.
 *
 * It gives the upper bound that the sqs_ingest worker is compared against.
 * AWS JSON 1.0 protocol, SigV4 signed by libcurl (CURLOPT_AWS_SIGV4).
 *
 * usage: ceiling --queue-url URL [--endpoint URL] [--inflight N]
 *                [--expect N] [--wait S] [--region R] [--max-seconds S]
 *                [--cafile PEM] [--unsigned]
 * --cafile: the CA an https endpoint's certificate is verified against (as
 * sqs_ingest.ca_file); verification is always on.
 * --unsigned: send the requests without SigV4 and without credentials, for
 * an endpoint that does not check signatures (bench/sqs_standin.c): the
 * network floor, since libcurl's signer costs most of a message's CPU here
 * (it derives the key and fetches each digest anew for every request).
 * Credentials: SQS_TEST_ACCESS_KEY_ID / SQS_TEST_SECRET_ACCESS_KEY.
 *
 * Stops when --expect messages were deleted, or (without --expect) once every
 * receive slot has come back empty.  Prints one line of key=value pairs;
 * seconds runs from the first request to the delete that completed the work,
 * so the trailing empty long poll is not counted.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_INFLIGHT 256
#define MAX_BATCH 10
#define MAX_ERRORS 100

typedef enum
{
	REQ_RECEIVE,
	REQ_DELETE
} ReqKind;

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

typedef struct Req
{
	ReqKind		kind;
	CURL	   *easy;
	struct curl_slist *headers;
	Buf			body;			/* request body (kept alive for POSTFIELDS) */
	Buf			resp;			/* response body */
	int			nentries;		/* delete: entries sent */
	struct Req *next;			/* free list */
} Req;

static const char *queue_url;
static const char *cafile;
static char endpoint[1024];
static char sigv4[128];
static char userpwd[512];
static int	wait_seconds = 1;
static int	inflight = 8;
static long expect = -1;
static int	max_seconds = 600;
static int	unsigned_requests;
static int	timed_out;

static long received;
static long deleted;
static long receives_sent;
static long empty_receives;
static long errors;
static int	receives_active;
static int	deletes_active;
static double t_start;
static double t_done;
static Req *free_list;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *msg)
{
	fprintf(stderr, "ceiling: %s\n", msg);
	exit(1);
}

static void
buf_reserve(Buf *b, size_t extra)
{
	if (b->len + extra + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 1024;

		while (b->len + extra + 1 > cap)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (!b->data)
			die("out of memory");
		b->cap = cap;
	}
}

static void
buf_append(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_puts(Buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Buf		   *b = userdata;

	buf_append(b, ptr, size * nmemb);
	return size * nmemb;
}

/* JSON-escape s into b (the queue URL is the only caller-supplied string). */
static void
buf_put_json_string(Buf *b, const char *s)
{
	buf_puts(b, "\"");
	for (; *s; s++)
	{
		char		esc[8];

		if (*s == '"' || *s == '\\')
		{
			esc[0] = '\\';
			esc[1] = *s;
			buf_append(b, esc, 2);
		}
		else if ((unsigned char) *s < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char) *s);
			buf_puts(b, esc);
		}
		else
			buf_append(b, s, 1);
	}
	buf_puts(b, "\"");
}

/*
 * Find the next string value of "key" at or after *pos; returns a
 * pointer to its first character (still JSON-escaped) and its length.
 */
static const char *
scan_string_value(const char *key, const char **pos, size_t *len)
{
	char		pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(*pos, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p != '"')
		return NULL;
	p++;
	{
		const char *start = p;

		while (*p && *p != '"')
		{
			if (*p == '\\' && p[1])
				p++;
			p++;
		}
		*len = (size_t) (p - start);
		*pos = *p ? p + 1 : p;
		return start;
	}
}

static Req *
req_get(ReqKind kind)
{
	Req		   *r = free_list;

	if (r)
		free_list = r->next;
	else
	{
		r = calloc(1, sizeof(Req));
		if (!r)
			die("out of memory");
		r->easy = curl_easy_init();
		if (!r->easy)
			die("curl_easy_init failed");
	}
	r->kind = kind;
	buf_reserve(&r->body, 0);
	buf_reserve(&r->resp, 0);
	r->body.len = 0;
	r->body.data[0] = '\0';
	r->resp.len = 0;
	r->resp.data[0] = '\0';	/* an empty reply never calls on_write */
	r->nentries = 0;
	r->next = NULL;
	return r;
}

static void
req_put(Req *r)
{
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	r->next = free_list;
	free_list = r;
}

static void
req_start(CURLM *multi, Req *r, const char *action)
{
	char		target[128];

	snprintf(target, sizeof(target), "X-Amz-Target: AmazonSQS.%s", action);
	r->headers = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
	r->headers = curl_slist_append(r->headers, target);

	curl_easy_reset(r->easy);
	curl_easy_setopt(r->easy, CURLOPT_URL, endpoint);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body.data);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long) r->body.len);
	if (!unsigned_requests)
	{
		curl_easy_setopt(r->easy, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(r->easy, CURLOPT_USERPWD, userpwd);
	}
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->resp);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, (long) (wait_seconds + 30));
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	if (cafile)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, cafile);
	if (curl_multi_add_handle(multi, r->easy) != CURLM_OK)
		die("curl_multi_add_handle failed");
}

static void
start_receive(CURLM *multi)
{
	Req		   *r = req_get(REQ_RECEIVE);
	char		tail[128];

	buf_puts(&r->body, "{\"QueueUrl\":");
	buf_put_json_string(&r->body, queue_url);
	snprintf(tail, sizeof(tail),
			 ",\"MaxNumberOfMessages\":%d,\"WaitTimeSeconds\":%d}",
			 MAX_BATCH, wait_seconds);
	buf_puts(&r->body, tail);
	receives_active++;
	receives_sent++;
	req_start(multi, r, "ReceiveMessage");
}

/* Issue a DeleteMessageBatch for the receipt handles in a receive response. */
static int
start_delete(CURLM *multi, const char *resp)
{
	Req		   *r = req_get(REQ_DELETE);
	const char *pos = resp;
	const char *h;
	size_t		len;
	int			n = 0;

	buf_puts(&r->body, "{\"QueueUrl\":");
	buf_put_json_string(&r->body, queue_url);
	buf_puts(&r->body, ",\"Entries\":[");
	while (n < MAX_BATCH && (h = scan_string_value("ReceiptHandle", &pos, &len)) != NULL)
	{
		char		id[48];

		snprintf(id, sizeof(id), "%s{\"Id\":\"m%d\",\"ReceiptHandle\":\"", n ? "," : "", n);
		buf_puts(&r->body, id);
		buf_append(&r->body, h, len);	/* still escaped: valid JSON as is */
		buf_puts(&r->body, "\"}");
		n++;
	}
	buf_puts(&r->body, "]}");
	if (n == 0)
	{
		req_put(r);
		return 0;
	}
	r->nentries = n;
	deletes_active++;
	req_start(multi, r, "DeleteMessageBatch");
	return n;
}

/* Count the entries of the "Successful" array of a DeleteMessageBatch reply. */
static int
count_successful(const char *resp)
{
	const char *p = strstr(resp, "\"Successful\"");
	const char *end;
	int			n = 0;

	if (!p)
		return 0;
	end = strchr(p, ']');
	while ((p = strstr(p, "\"Id\"")) != NULL && (!end || p < end))
	{
		n++;
		p += 4;
	}
	return n;
}

static int
want_more_receives(void)
{
	if (expect >= 0)
		return received < expect;
	return 1;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: ceiling --queue-url URL [--endpoint URL] [--inflight N] [--expect N]\n"
			"               [--wait SECONDS] [--region REGION] [--max-seconds S]\n"
			"               [--cafile PEM] [--unsigned]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *region = "us-east-1";
	const char *ep = NULL;
	const char *key = getenv("SQS_TEST_ACCESS_KEY_ID");
	const char *secret = getenv("SQS_TEST_SECRET_ACCESS_KEY");
	CURLM	   *multi;
	struct rusage ru;
	int			i;

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];

		if (strcmp(a, "--unsigned") == 0)
		{
			unsigned_requests = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--queue-url") == 0)
			queue_url = argv[++i];
		else if (strcmp(a, "--endpoint") == 0)
			ep = argv[++i];
		else if (strcmp(a, "--inflight") == 0)
			inflight = atoi(argv[++i]);
		else if (strcmp(a, "--expect") == 0)
			expect = atol(argv[++i]);
		else if (strcmp(a, "--wait") == 0)
			wait_seconds = atoi(argv[++i]);
		else if (strcmp(a, "--region") == 0)
			region = argv[++i];
		else if (strcmp(a, "--max-seconds") == 0)
			max_seconds = atoi(argv[++i]);
		else if (strcmp(a, "--cafile") == 0)
			cafile = argv[++i];
		else
			usage();
	}
	if (!queue_url || inflight < 1 || inflight > MAX_INFLIGHT ||
		wait_seconds < 0 || wait_seconds > 20)
		usage();
	if (!key || !*key)
		key = "AKIDSQSINGESTTEST";
	if (!secret || !*secret)
		secret = "sqs-ingest-test-secret";

	if (ep)
		snprintf(endpoint, sizeof(endpoint), "%s", ep);
	else
	{
		/* scheme://host[:port]/ of the queue URL */
		const char *p = strstr(queue_url, "://");
		const char *slash = p ? strchr(p + 3, '/') : NULL;
		size_t		n = slash ? (size_t) (slash - queue_url) : strlen(queue_url);

		if (n >= sizeof(endpoint) - 1)
			die("queue URL too long");
		memcpy(endpoint, queue_url, n);
		endpoint[n] = '/';
		endpoint[n + 1] = '\0';
	}
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:sqs", region);
	snprintf(userpwd, sizeof(userpwd), "%s:%s", key, secret);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("curl_global_init failed");
	multi = curl_multi_init();
	if (!multi)
		die("curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) (2 * inflight + 4));

	t_start = now();
	t_done = 0;
	for (i = 0; i < inflight && want_more_receives(); i++)
		start_receive(multi);

	for (;;)
	{
		int			running;
		int			msgs;
		CURLMsg    *m;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			die("curl_multi_perform failed");
		while ((m = curl_multi_info_read(multi, &msgs)) != NULL)
		{
			Req		   *r;
			long		status = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &r);
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			curl_multi_remove_handle(multi, m->easy_handle);

			if (m->data.result != CURLE_OK || status != 200)
			{
				errors++;
				fprintf(stderr, "ceiling: %s failed: %s, HTTP %ld: %.300s\n",
						r->kind == REQ_RECEIVE ? "ReceiveMessage" : "DeleteMessageBatch",
						curl_easy_strerror(m->data.result), status,
						r->resp.data ? r->resp.data : "");
				if (errors > MAX_ERRORS)
					die("too many errors");
				if (m->data.result != CURLE_OK)
				{
					struct timespec pause = {0, 50 * 1000 * 1000};

					nanosleep(&pause, NULL);
				}
				if (r->kind == REQ_RECEIVE)
				{
					receives_active--;
					req_put(r);
					if (want_more_receives())
						start_receive(multi);
				}
				else
				{
					deletes_active--;
					req_put(r);	/* messages reappear after the visibility timeout */
				}
				continue;
			}

			if (r->kind == REQ_RECEIVE)
			{
				int			n;

				receives_active--;
				n = start_delete(multi, r->resp.data ? r->resp.data : "");
				received += n;
				req_put(r);
				if (n == 0)
				{
					empty_receives++;
					if (expect < 0)
						continue;	/* queue looks empty: retire this slot */
				}
				if (want_more_receives())
					start_receive(multi);
			}
			else
			{
				int			ok = count_successful(r->resp.data ? r->resp.data : "");

				if (ok < r->nentries)
				{
					errors += r->nentries - ok;
					fprintf(stderr, "ceiling: %d of %d deletes failed: %.300s\n",
							r->nentries - ok, r->nentries, r->resp.data);
				}
				deleted += ok;
				deletes_active--;
				t_done = now();
				req_put(r);
			}
		}

		if (expect >= 0 && deleted >= expect)
			break;
		if (receives_active == 0 && deletes_active == 0)
		{
			if (expect < 0 || !want_more_receives())
				break;
			start_receive(multi);	/* every receive failed: try again */
		}
		if (max_seconds > 0 && now() - t_start > max_seconds)
		{
			fprintf(stderr, "ceiling: gave up after %d s (deleted %ld)\n",
					max_seconds, deleted);
			timed_out = 1;
			break;
		}
		if (curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			die("curl_multi_poll failed");
	}

	if (t_done == 0)
		t_done = now();
	getrusage(RUSAGE_SELF, &ru);
	{
		double		secs = t_done - t_start;
		double		cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

		printf("ceiling signed=%d inflight=%d received=%ld deleted=%ld receives=%ld empty=%ld "
			   "errors=%ld seconds=%.3f msgs_per_s=%.1f cpu_s=%.3f maxrss_kb=%ld\n",
			   !unsigned_requests, inflight, received, deleted, receives_sent, empty_receives, errors,
			   secs, secs > 0 ? deleted / secs : 0.0, cpu, ru.ru_maxrss);
	}
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return (timed_out || (errors > 0 && deleted == 0)) ? 1 : 0;
}
