/*-------------------------------------------------------------------------
 *
 * sqs_wire.h
 *	  What SQS requests and responses look like on the wire, in AWS JSON 1.0
 *	  and in the Query protocol, and the SQS actions as one table.  Private
 *	  to the SQS client (sqs_client.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SQS_WIRE_H
#define SQS_INGEST_SQS_WIRE_H

#include <curl/curl.h>

#include "lib/stringinfo.h"

#include "sqs_client.h"
#include "sqs_decode.h"
#include "transport.h"

/* the two wire protocols a request can go out in */
#define WIRE_JSON 0
#define WIRE_QUERY 1
#define NUM_WIRES 2

/* one SQS request in flight or completed */
typedef struct SqsRequest
{
	TransportRequest http;		/* first: the transport hands it back */
	SqsAction	action;
	int			requested;
	int			tag;
	int			wire;			/* WIRE_JSON or WIRE_QUERY */
	char	   *body;			/* request body; libcurl reads it in place */
	char	   *query_body;		/* the same in the Query protocol, while the
								 * endpoint may turn out not to speak JSON */
} SqsRequest;

/* what an action's request carries besides the queue URL */
typedef struct SqsCall
{
	int			max_messages;	/* ReceiveMessage: 1..10 */
	int			wait_seconds;	/* ReceiveMessage: the long poll */
	int			visibility_timeout; /* ReceiveMessage,
									 * ChangeMessageVisibilityBatch */
	char	  **receipt_handles;	/* the batch actions: 1..10 entries */
	int			count;
} SqsCall;

/*
 * A request body in AWS JSON 1.0 and, when asked for, in the Query
 * protocol's form encoding too.  The form is built only when it is sent or
 * kept to be sent (while probing): percent-encoding every receipt handle of
 * a delete a character at a time, for nothing, cost more than the JSON body.
 */
typedef struct RequestBody
{
	StringInfoData json;
	StringInfoData query;		/* built if with_query */
	bool		with_query;
} RequestBody;

/* an action's members of a request body, in both protocols */
typedef void (*SqsBuilder) (RequestBody *b, SqsAction action, const SqsCall *call);

/* what a decoder reads out of a response, before the result takes it */
typedef union SqsDecoded
{
	SqsReceiveResponse receive;
	SqsBatchResponse batch;
} SqsDecoded;

/*
 * A successful response decoded, into decoded or the result: NULL, or what
 * is wrong with the response.
 */
typedef char *(*SqsDecoder) (SqsRequest *request, SqsDecoded *decoded,
							 SqsResult *result);

/* the result takes what was decoded */
typedef void (*SqsTake) (SqsRequest *request, SqsDecoded *decoded,
						 SqsResult *result);

/*
 * One SQS action.  A new action is an SqsAction, a row of sqs_actions[]
 * and its two decoders (pure ones in sqs_decode.c and sqs_decode_xml.c,
 * called from sqs_wire.c); a sqs_start_* function of the client starts it.
 */
typedef struct SqsActionDef
{
	const char *name;			/* "ReceiveMessage": X-Amz-Target, Action= */
	const char *wait_event;		/* shown in pg_stat_activity while in flight */
	bool		long_poll;		/* shown only when nothing else is in flight */
	SqsBuilder	build;
	SqsDecoder	decode_json;
	SqsDecoder	decode_xml;
	SqsTake		take;			/* NULL: the decoders fill the result */
} SqsActionDef;

extern const SqsActionDef sqs_actions[SQS_NUM_ACTIONS];

extern struct curl_slist *sqs_wire_headers(SqsAction action, int wire);
extern void sqs_wire_body(RequestBody *b, bool with_query, SqsAction action,
						  const char *queue_url, const SqsCall *call);
extern SqsError *sqs_wire_error(SqsRequest *request);
extern SqsError *sqs_wire_decode(SqsRequest *request, SqsResult *result);
extern bool sqs_wire_shows_query_only(SqsRequest *request);

#endif							/* SQS_INGEST_SQS_WIRE_H */
