/*
 * sqs_standin.c - a native SQS stand-in for the benchmark.
 *
 * One process, one thread, epoll, HTTP/1.1 keep-alive, the AWS JSON 1.0
 * protocol (X-Amz-Target: AmazonSQS.<Action>), fast enough that it never
 * sets the pace of what it serves: the benchmark measures the client, not
 * this.  It listens on 127.0.0.1 only.
 *
 * Actions: ReceiveMessage (long polling up to WaitTimeSeconds, visibility
 * timeouts, SentTimestamp and ApproximateReceiveCount), DeleteMessageBatch,
 * DeleteMessage, ChangeMessageVisibilityBatch, ChangeMessageVisibility,
 * GetQueueAttributes, SendMessage, SendMessageBatch, CreateQueue,
 * GetQueueUrl, DeleteQueue, PurgeQueue, ListQueues.  MD5OfBody is the real
 * MD5 of each body.  Two actions of its own: SqsStandin.Generate
 * {"QueueUrl", "Count", "Seed"} adds Count generated login events to a queue,
 * SqsStandin.Configure {"DelayMs"} holds every response for DelayMs before
 * writing it (a stand-in for the round trip to AWS).
 *
 * What it does NOT do: it accepts SigV4-signed requests without verifying
 * the signature (any Authorization header, or none, is accepted); no
 * DelaySeconds, FIFO queues, dead-letter redrive, MD5OfMessageAttributes or
 * Query protocol.  A receipt handle names the message and its receive; a
 * handle from an earlier receive of a message is refused
 * (ReceiptHandleIsInvalid), so a client that deletes late is seen.
 *
 * usage: sqs_standin [--port P] [--delay-ms D] [--max-seconds S]
 *                    [--queue NAME [--visibility-timeout S]
 *                     [--preload N [--seed S] | --preload-file FILE]]
 *                    [--exit-with-parent]
 * Prints "READY <port>" on stdout once it listens.  Exits after
 * --max-seconds (default 3600), on SIGTERM/SIGINT, or when its parent exits
 * (--exit-with-parent); prints its counters on stderr when it exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 2048
#define MAX_REQUEST (2 * 1024 * 1024)	/* bytes of headers + body */
#define MAX_QUEUES 256
#define MAX_QUEUE_MESSAGES (50 * 1000 * 1000)
#define MAX_GENERATE (10 * 1000 * 1000)
#define MAX_JSON_NODES 8192
#define MAX_JSON_DEPTH 32
#define MAX_BATCH 10
#define MAX_WAIT_SECONDS 20
#define MAX_VISIBILITY 43200
#define HEADER_ROOM 256			/* reserved in front of each response body */

/* ---------- small helpers ---------- */

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fputs("sqs_standin: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_reserve(Buf *b, size_t extra)
{
	if (b->len + extra + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 4096;

		while (b->len + extra + 1 > cap)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
}

static void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_puts(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	buf_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t) n >= b->cap - b->len)
	{
		buf_reserve(b, (size_t) n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t) n;
}

/* s as the contents of a JSON string (no quotes) */
static void
buf_json_escape(Buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	buf_reserve(b, n);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
		{
			char		e[2] = {'\\', (char) c};

			buf_add(b, e, 2);
		}
		else if (c < 0x20)
		{
			char		e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			buf_add(b, e, 6);
		}
		else
		{
			b->data[b->len++] = (char) c;
			b->data[b->len] = '\0';
		}
	}
}

static void
md5_hex(const char *s, size_t n, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (!EVP_Digest(s, n, d, &dlen, EVP_md5(), NULL) || dlen != 16)
		die("MD5 failed");
	for (int i = 0; i < 16; i++)
	{
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[32] = '\0';
}

/* ---------- a small JSON reader: a tree of nodes over the request body ---------- */

typedef enum
{
	J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ
} JType;

typedef struct JNode
{
	JType		type;
	const char *key;			/* member name (escaped), in an object */
	int			keylen;
	const char *s;				/* string contents (escaped), number text, or the raw text of an array/object */
	int			slen;
	int			first;			/* first child, -1 if none */
	int			next;			/* next sibling, -1 if none */
} JNode;

typedef struct JDoc
{
	JNode		nodes[MAX_JSON_NODES];
	int			n;
	const char *p;
	const char *end;
	const char *error;
} JDoc;

static void
j_ws(JDoc *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

/* scan a string starting at the opening quote; contents into *s / *len */
static int
j_string(JDoc *d, const char **s, int *len)
{
	const char *start;

	if (d->p >= d->end || *d->p != '"')
		return 0;
	start = ++d->p;
	while (d->p < d->end && *d->p != '"')
	{
		if ((unsigned char) *d->p < 0x20)
			return 0;
		if (*d->p == '\\')
			d->p++;
		d->p++;
	}
	if (d->p >= d->end)
		return 0;
	*s = start;
	*len = (int) (d->p - start);
	d->p++;
	return 1;
}

static int
j_value(JDoc *d, int depth)
{
	int			idx;
	JNode	   *n;
	const char *start;

	j_ws(d);
	if (d->p >= d->end || depth > MAX_JSON_DEPTH || d->n >= MAX_JSON_NODES)
	{
		d->error = "the request body is not JSON the stand-in reads (too deep, too large or cut short)";
		return -1;
	}
	idx = d->n++;
	n = &d->nodes[idx];
	memset(n, 0, sizeof(*n));
	n->first = n->next = -1;
	start = d->p;
	if (*d->p == '"')
	{
		n->type = J_STR;
		if (!j_string(d, &n->s, &n->slen))
			goto bad;
		return idx;
	}
	if (*d->p == '{' || *d->p == '[')
	{
		int			obj = (*d->p == '{');
		int			prev = -1;

		n->type = obj ? J_OBJ : J_ARR;
		d->p++;
		j_ws(d);
		if (d->p < d->end && *d->p == (obj ? '}' : ']'))
		{
			d->p++;
			n = &d->nodes[idx];
			n->s = start;
			n->slen = (int) (d->p - start);
			return idx;
		}
		for (;;)
		{
			const char *key = NULL;
			int			keylen = 0;
			int			child;

			j_ws(d);
			if (obj)
			{
				if (!j_string(d, &key, &keylen))
					goto bad;
				j_ws(d);
				if (d->p >= d->end || *d->p != ':')
					goto bad;
				d->p++;
			}
			child = j_value(d, depth + 1);
			if (child < 0)
				return -1;
			d->nodes[child].key = key;
			d->nodes[child].keylen = keylen;
			if (prev < 0)
				d->nodes[idx].first = child;
			else
				d->nodes[prev].next = child;
			prev = child;
			j_ws(d);
			if (d->p < d->end && *d->p == ',')
			{
				d->p++;
				continue;
			}
			if (d->p < d->end && *d->p == (obj ? '}' : ']'))
			{
				d->p++;
				break;
			}
			goto bad;
		}
		n = &d->nodes[idx];
		n->s = start;
		n->slen = (int) (d->p - start);
		return idx;
	}
	if (d->end - d->p >= 4 && strncmp(d->p, "null", 4) == 0)
	{
		n->type = J_NULL;
		d->p += 4;
		return idx;
	}
	if (d->end - d->p >= 4 && strncmp(d->p, "true", 4) == 0)
	{
		n->type = J_BOOL;
		n->s = d->p;
		n->slen = 4;
		d->p += 4;
		return idx;
	}
	if (d->end - d->p >= 5 && strncmp(d->p, "false", 5) == 0)
	{
		n->type = J_BOOL;
		n->s = d->p;
		n->slen = 5;
		d->p += 5;
		return idx;
	}
	if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
	{
		n->type = J_NUM;
		n->s = d->p;
		while (d->p < d->end && strchr("+-.eE0123456789", *d->p))
			d->p++;
		n->slen = (int) (d->p - n->s);
		return idx;
	}
bad:
	d->error = "the request body is not valid JSON";
	return -1;
}

static int
j_parse(JDoc *d, const char *s, size_t len)
{
	int			root;

	d->n = 0;
	d->p = s;
	d->end = s + len;
	d->error = NULL;
	root = j_value(d, 0);
	if (root < 0)
		return -1;
	j_ws(d);
	if (d->p != d->end)
	{
		d->error = "the request body has trailing data after its JSON";
		return -1;
	}
	return root;
}

/* member of an object by (unescaped, plain ASCII) name; -1 if absent */
static int
j_get(JDoc *d, int obj, const char *name)
{
	size_t		nl = strlen(name);

	if (obj < 0 || d->nodes[obj].type != J_OBJ)
		return -1;
	for (int c = d->nodes[obj].first; c >= 0; c = d->nodes[c].next)
		if ((size_t) d->nodes[c].keylen == nl && memcmp(d->nodes[c].key, name, nl) == 0)
			return c;
	return -1;
}

/* an integer member (a JSON number or a numeric string, as SQS takes); dflt if absent, -2 if malformed */
static long
j_get_int(JDoc *d, int obj, const char *name, long dflt)
{
	int			c = j_get(d, obj, name);
	char		tmp[32];
	char	   *endp;
	long		v;

	if (c < 0 || d->nodes[c].type == J_NULL)
		return dflt;
	if ((d->nodes[c].type != J_NUM && d->nodes[c].type != J_STR) ||
		d->nodes[c].slen == 0 || d->nodes[c].slen >= (int) sizeof(tmp))
		return -2;
	memcpy(tmp, d->nodes[c].s, (size_t) d->nodes[c].slen);
	tmp[d->nodes[c].slen] = '\0';
	errno = 0;
	v = strtol(tmp, &endp, 10);
	if (errno || *endp || v < 0)
		return -2;
	return v;
}

/* a string member's escaped contents; NULL if absent or not a string */
static const char *
j_get_str(JDoc *d, int obj, const char *name, int *len)
{
	int			c = j_get(d, obj, name);

	if (c < 0 || d->nodes[c].type != J_STR)
		return NULL;
	*len = d->nodes[c].slen;
	return d->nodes[c].s;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
put_utf8(Buf *b, unsigned cp)
{
	char		u[4];
	size_t		n;

	if (cp < 0x80)
	{
		u[0] = (char) cp;
		n = 1;
	}
	else if (cp < 0x800)
	{
		u[0] = (char) (0xc0 | (cp >> 6));
		u[1] = (char) (0x80 | (cp & 0x3f));
		n = 2;
	}
	else if (cp < 0x10000)
	{
		u[0] = (char) (0xe0 | (cp >> 12));
		u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char) (0x80 | (cp & 0x3f));
		n = 3;
	}
	else
	{
		u[0] = (char) (0xf0 | (cp >> 18));
		u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char) (0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_add(b, u, n);
}

static int
read_u4(const char *s, const char *end, unsigned *cp)
{
	*cp = 0;
	if (end - s < 4)
		return 0;
	for (int i = 0; i < 4; i++)
	{
		int			h = hexval(s[i]);

		if (h < 0)
			return 0;
		*cp = *cp * 16 + (unsigned) h;
	}
	return 1;
}

/* the escaped contents of a JSON string, unescaped into b; 0 if malformed */
static int
json_unescape(const char *s, int len, Buf *b)
{
	const char *end = s + len;

	b->len = 0;
	buf_reserve(b, (size_t) len);
	while (s < end)
	{
		unsigned	cp;

		if (*s != '\\')
		{
			const char *q = memchr(s, '\\', (size_t) (end - s));

			if (!q)
				q = end;
			buf_add(b, s, (size_t) (q - s));
			s = q;
			continue;
		}
		if (++s >= end)
			return 0;
		switch (*s++)
		{
			case '"':
				buf_add(b, "\"", 1);
				break;
			case '\\':
				buf_add(b, "\\", 1);
				break;
			case '/':
				buf_add(b, "/", 1);
				break;
			case 'b':
				buf_add(b, "\b", 1);
				break;
			case 'f':
				buf_add(b, "\f", 1);
				break;
			case 'n':
				buf_add(b, "\n", 1);
				break;
			case 'r':
				buf_add(b, "\r", 1);
				break;
			case 't':
				buf_add(b, "\t", 1);
				break;
			case 'u':
				if (!read_u4(s, end, &cp))
					return 0;
				s += 4;
				if (cp >= 0xd800 && cp < 0xdc00)
				{
					unsigned	lo;

					if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || !read_u4(s + 2, end, &lo) ||
						lo < 0xdc00 || lo > 0xdfff)
						return 0;
					s += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				else if (cp >= 0xdc00 && cp < 0xe000)
					return 0;
				put_utf8(b, cp);
				break;
			default:
				return 0;
		}
	}
	return 1;
}

/* ---------- queues and messages ---------- */

enum
{
	M_VISIBLE, M_INFLIGHT, M_DELETED
};

typedef struct Msg
{
	char	   *body;			/* escaped: the contents of a JSON string */
	char	   *attrs;			/* MessageAttributes object text, or NULL */
	int64_t		sent_ms;
	int64_t		visible_at;		/* monotonic ms, while in flight */
	uint32_t	body_len;
	uint32_t	gen;			/* which receive: part of the receipt handle */
	int32_t		receive_count;
	int8_t		state;
	char		md5[33];
	char		id[37];
} Msg;

typedef struct Conn Conn;

typedef struct Queue
{
	char		name[81];
	int			live;
	int			vt;				/* default visibility timeout, seconds */
	uint32_t	uid;			/* tells a recreated queue's handles apart */
	Msg		   *msgs;
	size_t		nmsgs;
	size_t		cap;
	uint32_t   *ring;			/* visible message numbers, oldest first */
	size_t		ring_head;
	size_t		ring_len;
	size_t		ring_cap;
	size_t		n_visible;
	size_t		n_inflight;
	Conn	   *wait_head;		/* long polls on this queue, oldest first */
	Conn	   *wait_tail;
} Queue;

static Queue queues[MAX_QUEUES];
static uint32_t queue_uid_seq;

typedef struct Expiry
{
	int64_t		at;
	uint32_t	q;
	uint32_t	idx;
	uint32_t	gen;
	uint32_t	uid;
} Expiry;

static Expiry *heap;
static size_t heap_len, heap_cap;

static void
heap_push(Expiry e)
{
	size_t		i;

	if (heap_len == heap_cap)
	{
		heap_cap = heap_cap ? heap_cap * 2 : 4096;
		heap = xrealloc(heap, heap_cap * sizeof(Expiry));
	}
	i = heap_len++;
	while (i > 0 && heap[(i - 1) / 2].at > e.at)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = e;
}

static Expiry
heap_pop(void)
{
	Expiry		top = heap[0];
	Expiry		last = heap[--heap_len];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= heap_len)
			break;
		if (c + 1 < heap_len && heap[c + 1].at < heap[c].at)
			c++;
		if (heap[c].at >= last.at)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (heap_len > 0)
		heap[i] = last;
	return top;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static Queue *
queue_find(const char *name, size_t len)
{
	for (int i = 0; i < MAX_QUEUES; i++)
		if (queues[i].live && strlen(queues[i].name) == len && memcmp(queues[i].name, name, len) == 0)
			return &queues[i];
	return NULL;
}

/* the queue a QueueUrl names: its last path segment */
static Queue *
queue_by_url(const char *url, int len)
{
	const char *slash = NULL;

	for (int i = 0; i < len; i++)
		if (url[i] == '/')
			slash = url + i;
	if (!slash)
		return queue_find(url, (size_t) len);
	return queue_find(slash + 1, (size_t) (url + len - slash - 1));
}

static void
queue_free(Queue *q)
{
	for (size_t i = 0; i < q->nmsgs; i++)
	{
		free(q->msgs[i].body);
		free(q->msgs[i].attrs);
	}
	free(q->msgs);
	free(q->ring);
	memset(q, 0, sizeof(*q));
}

static Queue *
queue_create(const char *name, size_t len, int vt)
{
	Queue	   *q = queue_find(name, len);

	if (q)
		return q;
	for (int i = 0; i < MAX_QUEUES; i++)
		if (!queues[i].live)
		{
			q = &queues[i];
			queue_free(q);
			memcpy(q->name, name, len);
			q->name[len] = '\0';
			q->live = 1;
			q->vt = vt;
			q->uid = ++queue_uid_seq;
			return q;
		}
	return NULL;
}

static void
ring_push(Queue *q, uint32_t idx)
{
	if (q->ring_len == q->ring_cap)
	{
		size_t		ncap = q->ring_cap ? q->ring_cap * 2 : 1024;
		uint32_t   *nr = xrealloc(NULL, ncap * sizeof(uint32_t));

		for (size_t i = 0; i < q->ring_len; i++)
			nr[i] = q->ring[(q->ring_head + i) % q->ring_cap];
		free(q->ring);
		q->ring = nr;
		q->ring_cap = ncap;
		q->ring_head = 0;
	}
	q->ring[(q->ring_head + q->ring_len) % q->ring_cap] = idx;
	q->ring_len++;
}

/* next visible message number, or -1 (skips entries deleted while visible) */
static long
ring_pop(Queue *q)
{
	while (q->ring_len > 0)
	{
		uint32_t	idx = q->ring[q->ring_head];

		q->ring_head = (q->ring_head + 1) % q->ring_cap;
		q->ring_len--;
		if (q->msgs[idx].state == M_VISIBLE)
			return idx;
	}
	return -1;
}

/* add one message; body_esc is the escaped body, md5 over the raw one */
static Msg *
queue_add(Queue *q, const char *body_esc, size_t esc_len, const char *raw, size_t raw_len,
		  const char *attrs, size_t attrs_len)
{
	Msg		   *m;
	uint64_t	a = rng_next(&rng_state),
				b = rng_next(&rng_state);

	if (q->nmsgs >= MAX_QUEUE_MESSAGES)
		return NULL;
	if (q->nmsgs == q->cap)
	{
		q->cap = q->cap ? q->cap * 2 : 1024;
		q->msgs = xrealloc(q->msgs, q->cap * sizeof(Msg));
	}
	m = &q->msgs[q->nmsgs];
	memset(m, 0, sizeof(*m));
	m->body = xrealloc(NULL, esc_len + 1);
	memcpy(m->body, body_esc, esc_len);
	m->body[esc_len] = '\0';
	m->body_len = (uint32_t) esc_len;
	if (attrs)
	{
		m->attrs = xrealloc(NULL, attrs_len + 1);
		memcpy(m->attrs, attrs, attrs_len);
		m->attrs[attrs_len] = '\0';
	}
	md5_hex(raw, raw_len, m->md5);
	snprintf(m->id, sizeof(m->id), "%08x-%04x-4%03x-%04x-%012llx",
			 (unsigned) (a >> 32), (unsigned) (a >> 16) & 0xffff, (unsigned) a & 0xfff,
			 (unsigned) (0x8000 | ((b >> 48) & 0x3fff)), (unsigned long long) (b & 0xffffffffffffULL));
	m->sent_ms = wall_ms();
	m->state = M_VISIBLE;
	ring_push(q, (uint32_t) q->nmsgs);
	q->nmsgs++;
	q->n_visible++;
	return m;
}

/* one generated login event, shaped as test/sqs-tool.js generates them */
static void
gen_event(uint64_t *s, Buf *out)
{
	static const char *const locales[] = {"RU", "PH", "ID", "FR", "PT", "US", "DE", "BR", "IN", "JP", "CN", "MX", "NG", "GB"};
	uint64_t	r1 = rng_next(s),
				r2 = rng_next(s),
				r3 = rng_next(s);
	char		ver[16];
	char		loc[8];

	if (r3 & 1)
		snprintf(ver, sizeof(ver), "%u.%u.%u", (unsigned) (r3 >> 8) % 10, (unsigned) (r3 >> 16) % 10,
				 (unsigned) (r3 >> 24) % 10);
	else
		snprintf(ver, sizeof(ver), "%u.%02u", (unsigned) (r3 >> 8) % 10, (unsigned) (r3 >> 16) % 100);
	if ((r3 >> 32) % 10 < 3)
		snprintf(loc, sizeof(loc), "null");
	else
		snprintf(loc, sizeof(loc), "\"%s\"", locales[(r3 >> 40) % 14]);
	out->len = 0;
	buf_printf(out,
			   "{\"user_id\":\"%08x-%04x-4%03x-%c%03x-%012llx\",\"app_version\":\"%s\","
			   "\"device_type\":\"%s\",\"ip\":\"%u.%u.%u.%u\",\"locale\":%s,"
			   "\"device_id\":\"%03u-%02u-%04u\"}",
			   (unsigned) (r1 >> 32), (unsigned) (r1 >> 16) & 0xffff, (unsigned) r1 & 0xfff,
			   "89ab"[(r2 >> 62) & 3], (unsigned) (r2 >> 48) & 0xfff,
			   (unsigned long long) (r2 & 0xffffffffffffULL), ver,
			   (r3 >> 60) & 1 ? "android" : "ios",
			   1 + (unsigned) (r2 >> 8) % 254, (unsigned) (r2 >> 16) % 256, (unsigned) (r2 >> 24) % 256,
			   1 + (unsigned) (r2 >> 32) % 254, loc,
			   (unsigned) (r1 >> 8) % 1000, (unsigned) (r1 >> 20) % 100, (unsigned) (r1 >> 28) % 10000);
}

static size_t
queue_generate(Queue *q, long count, uint64_t seed)
{
	Buf			raw = {0},
				esc = {0};
	size_t		added = 0;

	for (long i = 0; i < count; i++)
	{
		gen_event(&seed, &raw);
		esc.len = 0;
		buf_json_escape(&esc, raw.data, raw.len);
		if (!queue_add(q, esc.data, esc.len, raw.data, raw.len, NULL, 0))
			break;
		added++;
	}
	free(raw.data);
	free(esc.data);
	return added;
}

/* ---------- connections ---------- */

struct Conn
{
	int			fd;
	Buf			in;
	Buf			out;			/* HEADER_ROOM bytes, then the response body */
	size_t		out_start;		/* where the response starts in out */
	size_t		out_sent;
	size_t		req_len;		/* bytes of in taken by the request being served */
	int			busy;			/* a request is being served: no further reads parsed */
	int			close_after;
	int			continue_sent;
	int			want_out;		/* EPOLLOUT registered */
	/* long poll */
	Queue	   *wait_q;
	int64_t		wait_deadline;
	int			wait_max;
	int			wait_vt;
	int			wait_attrs;
	int			wait_msg_attrs;
	Conn	   *qnext,
			   *qprev;			/* in the queue's waiters */
	Conn	   *tnext,
			   *tprev;			/* in the deadline list (long polls) or the delay list */
	int64_t		send_at;		/* delayed response: monotonic ms */
	int			delayed;
	int			dead;			/* closed; freed at the end of the loop's pass */
	int			pending;		/* in the pending list */
	Conn	   *pnext;			/* in the pending or the dead list */
};

static int epfd;
static int delay_ms;
static int port;
static Conn *wait_list_head, *wait_list_tail;	/* long polls, by deadline */
static Conn *delay_head, *delay_tail;	/* held responses, by send_at */
static int nconns;
static Conn *pending_head;		/* a request may be buffered: parse it */
static Conn *dead_head;			/* closed, to free */
static volatile sig_atomic_t stop_flag;

static struct
{
	uint64_t	requests;
	uint64_t	received;
	uint64_t	deleted;
	uint64_t	sent;
	uint64_t	expired;
	uint64_t	empty_receives;
	uint64_t	errors;
}			stats;

/* sorted insert from the tail: deadlines mostly arrive in order */
static void
tlist_insert(Conn **head, Conn **tail, Conn *c, int64_t key, int64_t (*keyof) (Conn *))
{
	Conn	   *p = *tail;

	while (p && keyof(p) > key)
		p = p->tprev;
	c->tprev = p;
	c->tnext = p ? p->tnext : *head;
	if (c->tnext)
		c->tnext->tprev = c;
	else
		*tail = c;
	if (p)
		p->tnext = c;
	else
		*head = c;
}

static void
tlist_remove(Conn **head, Conn **tail, Conn *c)
{
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		*head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		*tail = c->tprev;
	c->tnext = c->tprev = NULL;
}

static int64_t
key_deadline(Conn *c)
{
	return c->wait_deadline;
}

static int64_t
key_send_at(Conn *c)
{
	return c->send_at;
}

static void
waiter_remove(Conn *c)
{
	Queue	   *q = c->wait_q;

	if (!q)
		return;
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		q->wait_head = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		q->wait_tail = c->qprev;
	c->qnext = c->qprev = NULL;
	tlist_remove(&wait_list_head, &wait_list_tail, c);
	c->wait_q = NULL;
}

/*
 * Close a connection.  Its memory is freed at the end of the loop's pass, so
 * that an event or a list still naming it in this pass finds it dead.
 */
static void
conn_close(Conn *c)
{
	if (c->dead)
		return;
	waiter_remove(c);
	if (c->delayed)
		tlist_remove(&delay_head, &delay_tail, c);
	c->delayed = 0;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->dead = 1;
	if (!c->pending)
	{
		c->pnext = dead_head;
		dead_head = c;
	}
	nconns--;
}

/* start a response body: HEADER_ROOM bytes left free in front of it */
static Buf *
resp_begin(Conn *c)
{
	c->out.len = 0;
	buf_reserve(&c->out, HEADER_ROOM + 4096);
	c->out.len = HEADER_ROOM;
	return &c->out;
}

static void conn_flush(Conn *c);

/* put the status line and headers in front of the body, then send (or hold) it */
static void
resp_finish(Conn *c, int status)
{
	char		hdr[HEADER_ROOM];
	size_t		body_len = c->out.len - HEADER_ROOM;
	int			n;

	n = snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
				 "Content-Length: %zu\r\n%s\r\n",
				 status, status == 200 ? "OK" : status == 413 ? "Payload Too Large" : "Bad Request",
				 body_len, c->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || n >= HEADER_ROOM)
		die("response header too long");
	memcpy(c->out.data + HEADER_ROOM - n, hdr, (size_t) n);
	c->out_start = HEADER_ROOM - (size_t) n;
	c->out_sent = 0;
	if (delay_ms > 0)
	{
		c->send_at = mono_ms() + delay_ms;
		c->delayed = 1;
		tlist_insert(&delay_head, &delay_tail, c, c->send_at, key_send_at);
		return;
	}
	conn_flush(c);
}

static void
resp_error(Conn *c, int status, const char *type, const char *message)
{
	Buf		   *b = resp_begin(c);

	stats.errors++;
	buf_puts(b, "{\"__type\":\"com.amazonaws.sqs#");
	buf_puts(b, type);
	buf_puts(b, "\",\"message\":\"");
	buf_json_escape(b, message, strlen(message));
	buf_puts(b, "\"}");
	resp_finish(c, status);
}

/*
 * The response was written: the next request, if one is buffered, is parsed
 * by the main loop (never from inside another request's handler).
 */
static void
conn_done(Conn *c)
{
	if (c->close_after)
	{
		conn_close(c);
		return;
	}
	memmove(c->in.data, c->in.data + c->req_len, c->in.len - c->req_len);
	c->in.len -= c->req_len;
	c->req_len = 0;
	c->busy = 0;
	c->continue_sent = 0;
	c->out.len = 0;
	if (c->in.len > 0 && !c->pending)
	{
		c->pending = 1;
		c->pnext = pending_head;
		pending_head = c;
	}
}

static void
set_want_out(Conn *c, int want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),.data.ptr = c};

	if (c->want_out == want)
		return;
	c->want_out = want;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_flush(Conn *c)
{
	if (c->dead)
		return;
	while (c->out_start + c->out_sent < c->out.len)
	{
		ssize_t		n = send(c->fd, c->out.data + c->out_start + c->out_sent,
							 c->out.len - c->out_start - c->out_sent, MSG_NOSIGNAL);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
			{
				set_want_out(c, 1);
				return;
			}
			conn_close(c);
			return;
		}
		c->out_sent += (size_t) n;
	}
	set_want_out(c, 0);
	conn_done(c);
}

/* ---------- actions ---------- */

typedef struct Req
{
	Conn	   *c;
	JDoc	   *doc;
	int			root;
	Queue	   *q;
} Req;

static JDoc jdoc;
static Buf scratch;

/*
 * Does the array member list ask for name ("All" asks for every one; name
 * "*" matches any name asked for)?
 */
static int
names_include(JDoc *d, int root, const char *list, const char *name)
{
	int			a = j_get(d, root, list);

	if (a < 0 || d->nodes[a].type != J_ARR)
		return 0;
	for (int c = d->nodes[a].first; c >= 0; c = d->nodes[c].next)
	{
		JNode	   *n = &d->nodes[c];

		if (n->type != J_STR)
			continue;
		if ((n->slen == 3 && memcmp(n->s, "All", 3) == 0) ||
			((size_t) n->slen == strlen(name) && memcmp(n->s, name, (size_t) n->slen) == 0) ||
			(strcmp(name, "*") == 0 && n->slen > 0))
			return 1;
	}
	return 0;
}

/* answer a receive with up to max visible messages (possibly none) */
static void
serve_receive(Conn *c, Queue *q, int max, int vt, int attrs, int msg_attrs)
{
	Buf		   *b = resp_begin(c);
	int64_t		now = mono_ms();
	int			n = 0;
	long		idx;

	buf_puts(b, "{\"Messages\":[");
	while (n < max && (idx = ring_pop(q)) >= 0)
	{
		Msg		   *m = &q->msgs[idx];
		Expiry		e;

		m->state = M_INFLIGHT;
		m->gen++;
		m->receive_count++;
		m->visible_at = now + (int64_t) vt * 1000;
		q->n_visible--;
		q->n_inflight++;
		e.at = m->visible_at;
		e.q = (uint32_t) (q - queues);
		e.idx = (uint32_t) idx;
		e.gen = m->gen;
		e.uid = q->uid;
		heap_push(e);
		buf_reserve(b, m->body_len + 400);
		b->len += (size_t) snprintf(b->data + b->len, b->cap - b->len,
									"%s{\"MessageId\":\"%s\",\"ReceiptHandle\":\"q%u.%ld.%u\","
									"\"MD5OfBody\":\"%s\",\"Body\":\"",
									n ? "," : "", m->id, q->uid, idx, m->gen, m->md5);
		memcpy(b->data + b->len, m->body, m->body_len);
		b->len += m->body_len;
		b->data[b->len] = '\0';
		buf_puts(b, "\"");
		if (attrs)
			buf_printf(b, ",\"Attributes\":{\"SentTimestamp\":\"%lld\",\"ApproximateReceiveCount\":\"%d\"}",
					   (long long) m->sent_ms, m->receive_count);
		if (msg_attrs && m->attrs)
		{
			buf_puts(b, ",\"MessageAttributes\":");
			buf_puts(b, m->attrs);
		}
		buf_puts(b, "}");
		n++;
	}
	if (n == 0)
	{
		/* as SQS answers an empty receive in JSON 1.0 */
		b->len = HEADER_ROOM;
		buf_puts(b, "{}");
		stats.empty_receives++;
	}
	else
		buf_puts(b, "]}");
	stats.received += (uint64_t) n;
	resp_finish(c, 200);
}

/* messages became visible in q: answer the long polls waiting there */
static void
wake_waiters(Queue *q)
{
	while (q->wait_head && q->n_visible > 0)
	{
		Conn	   *c = q->wait_head;
		Queue	   *wq = c->wait_q;

		waiter_remove(c);
		serve_receive(c, wq, c->wait_max, c->wait_vt, c->wait_attrs, c->wait_msg_attrs);
	}
}

static void
act_receive(Req *r)
{
	JDoc	   *d = r->doc;
	long		max = j_get_int(d, r->root, "MaxNumberOfMessages", 1);
	long		wait = j_get_int(d, r->root, "WaitTimeSeconds", 0);
	long		vt = j_get_int(d, r->root, "VisibilityTimeout", r->q->vt);
	int			attrs = names_include(d, r->root, "AttributeNames", "SentTimestamp") ||
		names_include(d, r->root, "AttributeNames", "ApproximateReceiveCount") ||
		names_include(d, r->root, "MessageSystemAttributeNames", "SentTimestamp") ||
		names_include(d, r->root, "MessageSystemAttributeNames", "ApproximateReceiveCount");
	int			msg_attrs = names_include(d, r->root, "MessageAttributeNames", "*");

	if (max < 1 || max > MAX_BATCH)
		return resp_error(r->c, 400, "InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10");
	if (wait < 0 || wait > MAX_WAIT_SECONDS)
		return resp_error(r->c, 400, "InvalidParameterValue", "WaitTimeSeconds must be 0 to 20");
	if (vt < 0 || vt > MAX_VISIBILITY)
		return resp_error(r->c, 400, "InvalidParameterValue", "VisibilityTimeout must be 0 to 43200");
	if (r->q->n_visible == 0 && wait > 0)
	{
		Conn	   *c = r->c;
		Queue	   *q = r->q;

		c->wait_q = q;
		c->wait_deadline = mono_ms() + wait * 1000;
		c->wait_max = (int) max;
		c->wait_vt = (int) vt;
		c->wait_attrs = attrs;
		c->wait_msg_attrs = msg_attrs;
		c->qnext = NULL;
		c->qprev = q->wait_tail;
		if (q->wait_tail)
			q->wait_tail->qnext = c;
		else
			q->wait_head = c;
		q->wait_tail = c;
		tlist_insert(&wait_list_head, &wait_list_tail, c, c->wait_deadline, key_deadline);
		return;
	}
	serve_receive(r->c, r->q, (int) max, (int) vt, attrs, msg_attrs);
}

/* the message a receipt handle names, if that handle is its latest receive */
static Msg *
msg_by_handle(Queue *q, const char *h, int len)
{
	char		tmp[64];
	unsigned	uid,
				gen;
	unsigned long idx;
	char		extra;

	if (len <= 0 || len >= (int) sizeof(tmp))
		return NULL;
	memcpy(tmp, h, (size_t) len);
	tmp[len] = '\0';
	if (sscanf(tmp, "q%u.%lu.%u%c", &uid, &idx, &gen, &extra) != 3)
		return NULL;
	if (uid != q->uid || idx >= q->nmsgs || q->msgs[idx].gen != gen)
		return NULL;
	return &q->msgs[idx];
}

static int
msg_delete(Queue *q, Msg *m)
{
	if (m->state == M_INFLIGHT)
		q->n_inflight--;
	else if (m->state == M_VISIBLE)
		q->n_visible--;
	if (m->state != M_DELETED)
	{
		stats.deleted++;
		m->state = M_DELETED;
		free(m->body);
		m->body = NULL;
	}
	return 1;
}

/* hide an in-flight message for vt more seconds; 0 if it is not in flight */
static int
msg_change_visibility(Queue *q, Msg *m, long vt)
{
	Expiry		e;

	if (m->state != M_INFLIGHT)
		return 0;
	m->visible_at = mono_ms() + vt * 1000;
	if (vt == 0)
	{
		m->state = M_VISIBLE;
		q->n_inflight--;
		q->n_visible++;
		ring_push(q, (uint32_t) (m - q->msgs));
		return 1;
	}
	e.at = m->visible_at;
	e.q = (uint32_t) (q - queues);
	e.idx = (uint32_t) (m - q->msgs);
	e.gen = m->gen;
	e.uid = q->uid;
	heap_push(e);
	return 1;
}

static void
entry_failed(Buf *f, JDoc *d, int entry, const char *code, const char *msg)
{
	int			idlen = 0;
	const char *id = j_get_str(d, entry, "Id", &idlen);

	buf_puts(f, f->len ? ",{\"Id\":\"" : "{\"Id\":\"");
	if (id)
		buf_add(f, id, (size_t) idlen);
	buf_printf(f, "\",\"Code\":\"%s\",\"Message\":\"%s\",\"SenderFault\":true}", code, msg);
}

/* DeleteMessageBatch, or ChangeMessageVisibilityBatch when change */
static void
act_batch(Req *r, int change)
{
	JDoc	   *d = r->doc;
	int			entries = j_get(d, r->root, "Entries");
	Buf		   *b;
	int			n = 0;
	int			woken = 0;
	static Buf	failed;

	if (entries < 0 || d->nodes[entries].type != J_ARR || d->nodes[entries].first < 0)
		return resp_error(r->c, 400, "EmptyBatchRequest", "Entries must hold 1 to 10 entries");
	for (int e = d->nodes[entries].first; e >= 0; e = d->nodes[e].next)
		n++;
	if (n > MAX_BATCH)
		return resp_error(r->c, 400, "TooManyEntriesInBatchRequest", "at most 10 entries");
	b = resp_begin(r->c);
	failed.len = 0;
	buf_reserve(&failed, 0);
	buf_puts(b, "{\"Successful\":[");
	n = 0;
	for (int e = d->nodes[entries].first; e >= 0; e = d->nodes[e].next)
	{
		int			hlen = 0,
					idlen = 0;
		const char *h = j_get_str(d, e, "ReceiptHandle", &hlen);
		const char *id = j_get_str(d, e, "Id", &idlen);
		Msg		   *m = h ? msg_by_handle(r->q, h, hlen) : NULL;
		long		vt = change ? j_get_int(d, e, "VisibilityTimeout", -2) : 0;

		if (!id)
		{
			entry_failed(&failed, d, e, "MissingParameter", "the entry has no Id");
			continue;
		}
		if (!m)
		{
			entry_failed(&failed, d, e, "ReceiptHandleIsInvalid", "the receipt handle is not valid (or not the latest)");
			continue;
		}
		if (change)
		{
			if (vt < 0 || vt > MAX_VISIBILITY)
			{
				entry_failed(&failed, d, e, "InvalidParameterValue", "VisibilityTimeout must be 0 to 43200");
				continue;
			}
			if (vt == 0 && m->state == M_INFLIGHT)
				woken = 1;
			if (!msg_change_visibility(r->q, m, vt))
			{
				entry_failed(&failed, d, e, "MessageNotInflight", "the message is not in flight");
				continue;
			}
		}
		else
			msg_delete(r->q, m);
		buf_puts(b, n ? ",{\"Id\":\"" : "{\"Id\":\"");
		buf_add(b, id, (size_t) idlen);
		buf_puts(b, "\"}");
		n++;
	}
	buf_puts(b, "],\"Failed\":[");
	if (failed.len)
		buf_add(b, failed.data, failed.len);
	buf_puts(b, "]}");
	resp_finish(r->c, 200);
	if (woken)
		wake_waiters(r->q);
}

static void
act_single(Req *r, int change)
{
	JDoc	   *d = r->doc;
	int			hlen = 0;
	const char *h = j_get_str(d, r->root, "ReceiptHandle", &hlen);
	Msg		   *m = h ? msg_by_handle(r->q, h, hlen) : NULL;

	if (!m)
		return resp_error(r->c, 400, "ReceiptHandleIsInvalid", "the receipt handle is not valid (or not the latest)");
	if (change)
	{
		long		vt = j_get_int(d, r->root, "VisibilityTimeout", -2);

		if (vt < 0 || vt > MAX_VISIBILITY)
			return resp_error(r->c, 400, "InvalidParameterValue", "VisibilityTimeout must be 0 to 43200");
		if (!msg_change_visibility(r->q, m, vt))
			return resp_error(r->c, 400, "MessageNotInflight", "the message is not in flight");
	}
	else
		msg_delete(r->q, m);
	buf_puts(resp_begin(r->c), "{}");
	resp_finish(r->c, 200);
	if (change)
		wake_waiters(r->q);
}

/* add one SendMessage(Batch) entry; writes its result members into b */
static int
send_one(Req *r, int entry, Buf *b, const char **err)
{
	JDoc	   *d = r->doc;
	int			blen = 0;
	const char *body = j_get_str(d, entry, "MessageBody", &blen);
	int			ma = j_get(d, entry, "MessageAttributes");
	Msg		   *m;

	if (!body || blen == 0)
	{
		*err = "MessageBody is required and must not be empty";
		return 0;
	}
	if (!json_unescape(body, blen, &scratch))
	{
		*err = "MessageBody is not a valid JSON string";
		return 0;
	}
	if (ma >= 0 && d->nodes[ma].type != J_OBJ)
	{
		*err = "MessageAttributes must be an object";
		return 0;
	}
	m = queue_add(r->q, body, (size_t) blen, scratch.data, scratch.len,
				  ma >= 0 ? d->nodes[ma].s : NULL, ma >= 0 ? (size_t) d->nodes[ma].slen : 0);
	if (!m)
	{
		*err = "the queue is full";
		return 0;
	}
	stats.sent++;
	buf_printf(b, "\"MessageId\":\"%s\",\"MD5OfMessageBody\":\"%s\"", m->id, m->md5);
	return 1;
}

static void
act_send(Req *r, int batch)
{
	JDoc	   *d = r->doc;
	Buf		   *b;
	const char *err = NULL;
	static Buf	failed;

	if (!batch)
	{
		b = resp_begin(r->c);
		buf_puts(b, "{");
		if (!send_one(r, r->root, b, &err))
			return resp_error(r->c, 400, "InvalidParameterValue", err);
		buf_puts(b, "}");
		resp_finish(r->c, 200);
		wake_waiters(r->q);
		return;
	}
	{
		int			entries = j_get(d, r->root, "Entries");
		int			n = 0;

		if (entries < 0 || d->nodes[entries].type != J_ARR || d->nodes[entries].first < 0)
			return resp_error(r->c, 400, "EmptyBatchRequest", "Entries must hold 1 to 10 entries");
		for (int e = d->nodes[entries].first; e >= 0; e = d->nodes[e].next)
			n++;
		if (n > MAX_BATCH)
			return resp_error(r->c, 400, "TooManyEntriesInBatchRequest", "at most 10 entries");
		b = resp_begin(r->c);
		failed.len = 0;
		buf_reserve(&failed, 0);
		buf_puts(b, "{\"Successful\":[");
		n = 0;
		for (int e = d->nodes[entries].first; e >= 0; e = d->nodes[e].next)
		{
			int			idlen = 0;
			const char *id = j_get_str(d, e, "Id", &idlen);
			size_t		mark = b->len;

			buf_puts(b, n ? ",{\"Id\":\"" : "{\"Id\":\"");
			if (id)
				buf_add(b, id, (size_t) idlen);
			buf_puts(b, "\",");
			if (!id || !send_one(r, e, b, &err))
			{
				b->len = mark;
				entry_failed(&failed, d, e, "InvalidParameterValue", id ? err : "the entry has no Id");
				continue;
			}
			buf_puts(b, "}");
			n++;
		}
		buf_puts(b, "],\"Failed\":[");
		if (failed.len)
			buf_add(b, failed.data, failed.len);
		buf_puts(b, "]}");
		resp_finish(r->c, 200);
		wake_waiters(r->q);
	}
}

static void
act_attributes(Req *r)
{
	Buf		   *b = resp_begin(r->c);

	buf_printf(b, "{\"Attributes\":{\"ApproximateNumberOfMessages\":\"%zu\","
			   "\"ApproximateNumberOfMessagesNotVisible\":\"%zu\","
			   "\"ApproximateNumberOfMessagesDelayed\":\"0\",\"VisibilityTimeout\":\"%d\","
			   "\"QueueArn\":\"arn:aws:sqs:us-east-1:000000000000:%s\"}}",
			   r->q->n_visible, r->q->n_inflight, r->q->vt, r->q->name);
	resp_finish(r->c, 200);
}

static void
put_queue_url(Buf *b, Queue *q)
{
	buf_printf(b, "\"http://127.0.0.1:%d/000000000000/%s\"", port, q->name);
}

static int
valid_queue_name(const char *s, int len)
{
	if (len < 1 || len > 80)
		return 0;
	for (int i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			  (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

static void
act_create_queue(Req *r)
{
	JDoc	   *d = r->doc;
	int			len = 0;
	const char *name = j_get_str(d, r->root, "QueueName", &len);
	int			attrs = j_get(d, r->root, "Attributes");
	long		vt = j_get_int(d, attrs, "VisibilityTimeout", 30);
	Queue	   *q;
	Buf		   *b;

	if (!name || !valid_queue_name(name, len))
		return resp_error(r->c, 400, "InvalidParameterValue", "QueueName must be 1 to 80 of [A-Za-z0-9_-]");
	if (vt < 0 || vt > MAX_VISIBILITY)
		return resp_error(r->c, 400, "InvalidAttributeValue", "VisibilityTimeout must be 0 to 43200");
	q = queue_create(name, (size_t) len, (int) vt);
	if (!q)
		return resp_error(r->c, 400, "OverLimit", "too many queues");
	b = resp_begin(r->c);
	buf_puts(b, "{\"QueueUrl\":");
	put_queue_url(b, q);
	buf_puts(b, "}");
	resp_finish(r->c, 200);
}

static void
act_delete_queue(Req *r)
{
	Queue	   *q = r->q;

	/* its long polls get an empty answer first */
	while (q->wait_head)
	{
		Conn	   *c = q->wait_head;
		Queue	   *wq = c->wait_q;

		waiter_remove(c);
		serve_receive(c, wq, 1, 0, 0, 0);
	}
	queue_free(q);
	buf_puts(resp_begin(r->c), "{}");
	resp_finish(r->c, 200);
}

static void
act_purge(Req *r)
{
	Queue	   *q = r->q;

	for (size_t i = 0; i < q->nmsgs; i++)
		if (q->msgs[i].state != M_DELETED)
		{
			q->msgs[i].state = M_DELETED;
			free(q->msgs[i].body);
			q->msgs[i].body = NULL;
		}
	q->n_visible = q->n_inflight = 0;
	q->ring_len = 0;
	buf_puts(resp_begin(r->c), "{}");
	resp_finish(r->c, 200);
}

static void
act_list_queues(Req *r)
{
	Buf		   *b = resp_begin(r->c);
	int			n = 0;

	buf_puts(b, "{\"QueueUrls\":[");
	for (int i = 0; i < MAX_QUEUES; i++)
		if (queues[i].live)
		{
			if (n++)
				buf_puts(b, ",");
			put_queue_url(b, &queues[i]);
		}
	buf_puts(b, "]}");
	resp_finish(r->c, 200);
}

static void
act_get_queue_url(Req *r)
{
	int			len = 0;
	const char *name = j_get_str(r->doc, r->root, "QueueName", &len);
	Queue	   *q = name ? queue_find(name, (size_t) len) : NULL;
	Buf		   *b;

	if (!q)
		return resp_error(r->c, 400, "QueueDoesNotExist", "The specified queue does not exist.");
	b = resp_begin(r->c);
	buf_puts(b, "{\"QueueUrl\":");
	put_queue_url(b, q);
	buf_puts(b, "}");
	resp_finish(r->c, 200);
}

static void
act_generate(Req *r)
{
	long		count = j_get_int(r->doc, r->root, "Count", -2);
	long		seed = j_get_int(r->doc, r->root, "Seed", 1);
	size_t		added;

	if (count < 0 || count > MAX_GENERATE || seed < 0)
		return resp_error(r->c, 400, "InvalidParameterValue", "Count must be 0 to 10000000, Seed >= 0");
	added = queue_generate(r->q, count, (uint64_t) seed);
	buf_printf(resp_begin(r->c), "{\"Added\":%zu}", added);
	resp_finish(r->c, 200);
	wake_waiters(r->q);
}

static void
act_configure(Req *r)
{
	long		d = j_get_int(r->doc, r->root, "DelayMs", -2);

	if (d < 0 || d > 10000)
		return resp_error(r->c, 400, "InvalidParameterValue", "DelayMs must be 0 to 10000");
	delay_ms = (int) d;
	buf_printf(resp_begin(r->c), "{\"DelayMs\":%d}", delay_ms);
	resp_finish(r->c, 200);
}

/* an action: one of fn (no argument) and fn_arg (called with arg) */
typedef struct Action
{
	const char *target;
	int			needs_queue;
	void		(*fn) (Req *r);
	void		(*fn_arg) (Req *r, int arg);
	int			arg;
} Action;

static const Action actions[] = {
	{"AmazonSQS.ReceiveMessage", 1, act_receive, NULL, 0},
	{"AmazonSQS.DeleteMessageBatch", 1, NULL, act_batch, 0},
	{"AmazonSQS.ChangeMessageVisibilityBatch", 1, NULL, act_batch, 1},
	{"AmazonSQS.DeleteMessage", 1, NULL, act_single, 0},
	{"AmazonSQS.ChangeMessageVisibility", 1, NULL, act_single, 1},
	{"AmazonSQS.GetQueueAttributes", 1, act_attributes, NULL, 0},
	{"AmazonSQS.SendMessage", 1, NULL, act_send, 0},
	{"AmazonSQS.SendMessageBatch", 1, NULL, act_send, 1},
	{"AmazonSQS.CreateQueue", 0, act_create_queue, NULL, 0},
	{"AmazonSQS.GetQueueUrl", 0, act_get_queue_url, NULL, 0},
	{"AmazonSQS.DeleteQueue", 1, act_delete_queue, NULL, 0},
	{"AmazonSQS.PurgeQueue", 1, act_purge, NULL, 0},
	{"AmazonSQS.ListQueues", 0, act_list_queues, NULL, 0},
	{"SqsStandin.Generate", 1, act_generate, NULL, 0},
	{"SqsStandin.Configure", 0, act_configure, NULL, 0},
};

static void
handle_request(Conn *c, const char *target, size_t tlen, const char *body, size_t blen)
{
	Req			r = {.c = c,.doc = &jdoc};
	const Action *a = NULL;

	stats.requests++;
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strlen(actions[i].target) == tlen && memcmp(actions[i].target, target, tlen) == 0)
		{
			a = &actions[i];
			break;
		}
	if (!a)
		return resp_error(c, 400, "UnknownOperationException", "unknown or missing X-Amz-Target");
	r.root = j_parse(&jdoc, blen ? body : "{}", blen ? blen : 2);
	if (r.root < 0 || jdoc.nodes[r.root].type != J_OBJ)
		return resp_error(c, 400, "SerializationException",
						  jdoc.error ? jdoc.error : "the request body is not a JSON object");
	if (a->needs_queue)
	{
		int			ulen = 0;
		const char *url = j_get_str(&jdoc, r.root, "QueueUrl", &ulen);

		r.q = url ? queue_by_url(url, ulen) : NULL;
		if (!r.q)
			return resp_error(c, 400, "QueueDoesNotExist", "The specified queue does not exist.");
	}
	if (a->fn_arg)
		a->fn_arg(&r, a->arg);
	else
		a->fn(&r);
}

/* ---------- HTTP ---------- */

/* a header's value in [h, end) of the header block; NULL if absent */
static const char *
find_header(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t		nl = strlen(name);

	while (h < end)
	{
		const char *eol = memmem(h, (size_t) (end - h), "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t) (eol - h) > nl && h[nl] == ':' && strncasecmp(h, name, nl) == 0)
		{
			const char *v = h + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t) (eol - v);
			while (*vlen > 0 && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return v;
		}
		h = eol + 2;
	}
	return NULL;
}

static void
conn_process(Conn *c)
{
	const char *hdr_end;
	const char *line_end;
	const char *v;
	size_t		vlen;
	size_t		hlen;
	long		clen = 0;

	if (c->busy || c->dead)
		return;
	hdr_end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
	if (!hdr_end)
	{
		if (c->in.len > 64 * 1024)
		{
			c->busy = 1;
			c->close_after = 1;
			resp_error(c, 400, "InvalidRequest", "request headers too long");
		}
		return;
	}
	hlen = (size_t) (hdr_end - c->in.data) + 4;
	line_end = memmem(c->in.data, hlen, "\r\n", 2);
	if ((v = find_header(line_end + 2, hdr_end + 2, "Content-Length", &vlen)) != NULL)
	{
		char		tmp[24];

		if (vlen == 0 || vlen >= sizeof(tmp))
			clen = -1;
		else
		{
			memcpy(tmp, v, vlen);
			tmp[vlen] = '\0';
			clen = strspn(tmp, "0123456789") == vlen ? atol(tmp) : -1;
		}
	}
	if (find_header(line_end + 2, hdr_end + 2, "Transfer-Encoding", &vlen) || clen < 0 ||
		(size_t) clen + hlen > MAX_REQUEST)
	{
		c->busy = 1;
		c->close_after = 1;
		resp_error(c, clen + hlen > MAX_REQUEST ? 413 : 400, "InvalidRequest",
				   "a request needs a Content-Length of at most 2 MiB (no chunked bodies)");
		return;
	}
	if (c->in.len < hlen + (size_t) clen)
	{
		if (!c->continue_sent && find_header(line_end + 2, hdr_end + 2, "Expect", &vlen))
		{
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			/* small: fits the socket buffer of a fresh exchange */
			if (send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
				conn_close(c);
			else
				c->continue_sent = 1;
		}
		return;
	}
	c->busy = 1;
	c->req_len = hlen + (size_t) clen;
	if ((v = find_header(line_end + 2, hdr_end + 2, "Connection", &vlen)) != NULL &&
		vlen == 5 && strncasecmp(v, "close", 5) == 0)
		c->close_after = 1;
	if (memmem(c->in.data, (size_t) (line_end - c->in.data), "HTTP/1.0", 8))
		c->close_after = 1;
	if (strncmp(c->in.data, "POST ", 5) != 0)
	{
		resp_error(c, 400, "InvalidRequest", "the stand-in answers POST requests of the AWS JSON 1.0 protocol only");
		return;
	}
	v = find_header(line_end + 2, hdr_end + 2, "X-Amz-Target", &vlen);
	handle_request(c, v ? v : "", v ? vlen : 0, c->in.data + hlen, (size_t) clen);
}

static void
conn_read(Conn *c)
{
	for (;;)
	{
		ssize_t		n;

		buf_reserve(&c->in, 16384);
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
		if (n > 0)
		{
			c->in.len += (size_t) n;
			c->in.data[c->in.len] = '\0';
			if (c->in.len > MAX_REQUEST + 65536)
			{
				conn_close(c);
				return;
			}
			continue;
		}
		if (n == 0)
		{
			conn_close(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			break;
		conn_close(c);
		return;
	}
	conn_process(c);
}

/* ---------- timers ---------- */

static void
run_timers(void)
{
	int64_t		now = mono_ms();

	while (heap_len > 0 && heap[0].at <= now)
	{
		Expiry		e = heap_pop();
		Queue	   *q = &queues[e.q];
		Msg		   *m;

		if (!q->live || q->uid != e.uid || e.idx >= q->nmsgs)
			continue;
		m = &q->msgs[e.idx];
		if (m->state != M_INFLIGHT || m->gen != e.gen || m->visible_at != e.at)
			continue;
		m->state = M_VISIBLE;
		q->n_inflight--;
		q->n_visible++;
		stats.expired++;
		ring_push(q, e.idx);
		wake_waiters(q);
	}
	while (wait_list_head && wait_list_head->wait_deadline <= now)
	{
		Conn	   *c = wait_list_head;
		Queue	   *q = c->wait_q;

		waiter_remove(c);
		serve_receive(c, q, c->wait_max, c->wait_vt, c->wait_attrs, c->wait_msg_attrs);
	}
	while (delay_head && delay_head->send_at <= now)
	{
		Conn	   *c = delay_head;

		tlist_remove(&delay_head, &delay_tail, c);
		c->delayed = 0;
		conn_flush(c);
	}
}

static int
next_timeout(int64_t deadline_end)
{
	int64_t		now = mono_ms();
	int64_t		t = now + 1000;

	if (heap_len > 0 && heap[0].at < t)
		t = heap[0].at;
	if (wait_list_head && wait_list_head->wait_deadline < t)
		t = wait_list_head->wait_deadline;
	if (delay_head && delay_head->send_at < t)
		t = delay_head->send_at;
	if (deadline_end < t)
		t = deadline_end;
	return t <= now ? 0 : (int) (t - now);
}

static void
on_signal(int sig)
{
	(void) sig;
	stop_flag = 1;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: sqs_standin [--port P] [--delay-ms D] [--max-seconds S]\n"
			"                   [--queue NAME [--visibility-timeout S]\n"
			"                    [--preload N [--seed S] | --preload-file FILE]]\n"
			"                   [--exit-with-parent]\n");
	exit(2);
}

static long
int_arg(const char *s, long lo, long hi)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	const char *queue_name = NULL;
	const char *preload_file = NULL;
	long		preload = 0;
	long		seed = 1;
	long		vt = 30;
	long		max_seconds = 3600;
	int			exit_with_parent = 0;
	int			lfd;
	int			one = 1;
	struct sockaddr_in sa;
	socklen_t	salen = sizeof(sa);
	struct epoll_event ev;
	int64_t		end_at;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];

		if (strcmp(a, "--exit-with-parent") == 0)
		{
			exit_with_parent = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--port") == 0)
			port = (int) int_arg(argv[++i], 0, 65535);
		else if (strcmp(a, "--delay-ms") == 0)
			delay_ms = (int) int_arg(argv[++i], 0, 10000);
		else if (strcmp(a, "--max-seconds") == 0)
			max_seconds = int_arg(argv[++i], 1, 86400);
		else if (strcmp(a, "--queue") == 0)
			queue_name = argv[++i];
		else if (strcmp(a, "--visibility-timeout") == 0)
			vt = int_arg(argv[++i], 0, MAX_VISIBILITY);
		else if (strcmp(a, "--preload") == 0)
			preload = int_arg(argv[++i], 0, MAX_GENERATE);
		else if (strcmp(a, "--seed") == 0)
			seed = int_arg(argv[++i], 0, 1L << 40);
		else if (strcmp(a, "--preload-file") == 0)
			preload_file = argv[++i];
		else
			usage();
	}
	if ((preload || preload_file) && !queue_name)
		usage();
	if (exit_with_parent)
	{
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			exit(0);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	rng_state ^= (uint64_t) wall_ms() ^ ((uint64_t) getpid() << 32);

	if (queue_name)
	{
		Queue	   *q;

		if (!valid_queue_name(queue_name, (int) strlen(queue_name)))
			die("--queue: 1 to 80 of [A-Za-z0-9_-]");
		q = queue_create(queue_name, strlen(queue_name), (int) vt);
		if (preload)
			queue_generate(q, preload, (uint64_t) seed);
		if (preload_file)
		{
			FILE	   *f = fopen(preload_file, "r");
			char	   *line = NULL;
			size_t		cap = 0;
			ssize_t		n;
			Buf			esc = {0};

			if (!f)
				die("cannot open %s: %s", preload_file, strerror(errno));
			while ((n = getline(&line, &cap, f)) > 0)
			{
				while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
					n--;
				if (n == 0)
					continue;	/* SQS bodies are never empty */
				esc.len = 0;
				buf_json_escape(&esc, line, (size_t) n);
				if (!queue_add(q, esc.data, esc.len, line, (size_t) n, NULL, 0))
					die("%s: more than %d messages", preload_file, MAX_QUEUE_MESSAGES);
			}
			free(line);
			free(esc.data);
			fclose(f);
		}
	}

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);	/* loopback only */
	sa.sin_port = htons((uint16_t) port);
	if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0)
		die("cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
	getsockname(lfd, (struct sockaddr *) &sa, &salen);
	port = ntohs(sa.sin_port);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	printf("READY %d\n", port);
	fflush(stdout);
	end_at = mono_ms() + max_seconds * 1000;

	while (!stop_flag && mono_ms() < end_at)
	{
		struct epoll_event evs[128];
		int			n = epoll_wait(epfd, evs, 128, next_timeout(end_at));

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
		{
			Conn	   *c = evs[i].data.ptr;

			if (c == NULL)
			{
				for (int k = 0; k < 64; k++)
				{
					int			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct epoll_event cev;

					if (fd < 0)
						break;
					if (nconns >= MAX_CONNS)
					{
						close(fd);
						continue;
					}
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c = calloc(1, sizeof(Conn));
					if (!c)
						die("out of memory");
					c->fd = fd;
					cev.events = EPOLLIN;
					cev.data.ptr = c;
					epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
					nconns++;
				}
				continue;
			}
			if (c->dead)
				continue;
			if (evs[i].events & EPOLLOUT)
			{
				if (!c->delayed)
					conn_flush(c);
				continue;		/* a read still waiting shows again */
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(c);
		}
		run_timers();
		/* requests that were buffered behind an answered one */
		while (pending_head)
		{
			Conn	   *c = pending_head;

			pending_head = c->pnext;
			c->pending = 0;
			if (c->dead)
			{
				c->pnext = dead_head;
				dead_head = c;
				continue;
			}
			conn_process(c);
		}
		while (dead_head)
		{
			Conn	   *c = dead_head;

			dead_head = c->pnext;
			free(c->in.data);
			free(c->out.data);
			free(c);
		}
	}
	fprintf(stderr, "sqs_standin: requests=%llu received=%llu deleted=%llu sent=%llu "
			"expired=%llu empty_receives=%llu errors=%llu\n",
			(unsigned long long) stats.requests, (unsigned long long) stats.received,
			(unsigned long long) stats.deleted, (unsigned long long) stats.sent,
			(unsigned long long) stats.expired, (unsigned long long) stats.empty_receives,
			(unsigned long long) stats.errors);
	return 0;
}
