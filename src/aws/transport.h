/*-------------------------------------------------------------------------
 *
 * transport.h
 *	  HTTP over libcurl for SQS and the credential services: the hardening
 *	  every handle gets, form encoding, the one check of a URL's scheme, and
 *	  many requests in flight on a multi handle waited on through a
 *	  WaitEventSet.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_TRANSPORT_H
#define SQS_INGEST_TRANSPORT_H

#include <curl/curl.h>

#include "datatype/timestamp.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"

/*
 * One request in flight or completed: what the transport knows of it.  It
 * is the first member of its owner's request, which the transport hands
 * back as it is.
 */
typedef struct TransportRequest
{
	dlist_node	node;			/* in the transport's inflight or done list */
	TimestampTz started_at;
	TimestampTz answered_after; /* earliest the response can have come;
								 * 0 until its response begins to come in */
	TimestampTz deadline;		/* when it times out, moved on by the time
								 * nobody drove libcurl */
	CURL	   *easy;
	struct curl_slist *headers; /* its own header list (wiped when freed),
								 * or NULL */
	long		timeout_ms;
	char	   *response;		/* malloc'd: filled inside libcurl */
	size_t		response_len;
	size_t		response_cap;
	bool		response_too_big;
	CURLcode	curl_result;
	long		http_status;
	char		curl_error[CURL_ERROR_SIZE];
} TransportRequest;

typedef struct Transport Transport;

/* called as a request leaves the requests in flight, arg as given */
typedef void (*TransportCompleted) (TransportRequest *request, void *arg);

extern void transport_global_init(void);
extern int	transport_http_prefix(const char *url, bool any_case);
extern void transport_harden(CURL *easy, const char *ca_file,
							 long connect_timeout_ms);
extern void transport_form_bytes(StringInfo buf, const char *bytes, size_t len);
extern void transport_form_value(StringInfo buf, const char *value);
extern void transport_form_append(StringInfo form, const char *name,
								  const char *value);
extern void transport_free_headers(struct curl_slist *headers);
extern void transport_count_sockets(CURL *easy, bool *out_of_descriptors);

extern Transport *transport_create(MemoryContext context, int connections,
								   TransportCompleted completed, void *arg);
extern CURL *transport_easy(Transport *transport);
extern CURLMcode transport_start(Transport *transport, TransportRequest *request);
extern void transport_free_request(TransportRequest *request);
extern void transport_send_started(Transport *transport);
extern bool transport_wait(Transport *transport, long timeout_ms,
						   uint32 wait_event);
extern bool transport_idle(Transport *transport);
extern bool transport_has_done(Transport *transport);
extern TransportRequest *transport_next_done(Transport *transport);

#endif							/* SQS_INGEST_TRANSPORT_H */
