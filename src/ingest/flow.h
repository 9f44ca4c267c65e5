/*-------------------------------------------------------------------------
 *
 * flow.h
 *	  The message flow, receive -> store -> delete, shared by the background
 *	  worker and sqs_ingest_drain().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_FLOW_H
#define SQS_INGEST_FLOW_H

#include "access/xlogdefs.h"
#include "sink.h"
#include "sqs_client.h"

struct IngestSlot;

typedef struct FlowOptions
{
	int			wait_time_seconds;	/* long poll of each receive */
	bool		stop_when_empty;	/* finish once a receive comes back empty */
	int64		max_messages;	/* receive at most this many; -1 = no limit */
	int			batch_size;		/* store when this many are waiting */
	int64		batch_bytes;	/* or when their bodies take this many bytes */
	int			batch_timeout_ms;	/* or when the oldest waited this long */
	int			delete_log_level;	/* level of delete failure reports */
	int			max_attempts;	/* of a receive or delete call failing
								 * transiently */
	int			delete_after;	/* DeleteAfter: what deletes wait for */
	bool		end_on_failed_deletes;	/* a drain: a delete call given up for
										 * good stops receiving, and
										 * runner_finish() raises an error */
} FlowOptions;

typedef enum FlowEvent
{
	FLOW_BATCH_READY,		/* store the batch now */
	FLOW_IDLE,				/* timeout or latch: look at your flags */
	FLOW_DONE,				/* stop_when_empty and nothing left */
	FLOW_FAILED				/* a receive failed for good: see
								 * flow->error */
} FlowEvent;

typedef struct MessageFlow
{
	SqsConfig  *config;
	FlowOptions options;
	SinkTarget *sink;			/* what batches are stored by */
	SqsClient  *client;
	struct IngestSlot *slot;	/* shared statistics, or NULL */

	/* the batch being filled; its memory is reset once it is handed off */
	MemoryContext batch_context;
	SqsMessage *batch;
	TimestampTz *visible_since; /* per message: when its visibility timeout
								 * last started (receive or extension) */
	int			nbatch;
	int			batch_capacity;
	int64		nbatch_bytes;	/* of the batch's bodies */
	TimestampTz batch_started;
	TimestampTz extension_due;	/* earliest visibility extension due */

	/*
	 * The batch being stored, handed over from the one above when its store
	 * began, in a memory context of its own: receives answered during the
	 * store fill the next batch meanwhile.
	 */
	MemoryContext store_context;
	SqsMessage *stored;
	TimestampTz *stored_visible_since;
	int			nstored;
	TimestampTz looked_at;		/* last look at the network during a store */

	int			reserved;		/* messages asked for by receives in flight */
	int64		received;
	int64		receives_ok;	/* receives answered without error */
	bool		saw_empty;
	SqsError   *error;			/* a receive failed for good */
	bool		receiving_stopped;	/* the owner finishes: no receive starts,
									 * not even during its last stores */

	/*
	 * Receives started whose result has not been taken yet (a completed
	 * request leaves the client's count before its result is read), and
	 * failed receives waiting for their backoff to end: together at most
	 * max_inflight.
	 */
	int			receives_pending;
	struct ReceiveRetry *retries;
	int			nretries;

	/*
	 * Receipt handles of stored messages, each waiting until the commit that
	 * stored it is flushed to disk, then for a free connection.
	 */
	MemoryContext delete_context;
	struct PendingDelete *delete_queue;
	int			ndelete_queue;
	int			delete_queue_capacity;

	/*
	 * DeleteMessageBatch calls in flight or waiting out a backoff after a
	 * transient failure (max_inflight slots; a call owns its handles until
	 * it is answered for good).
	 */
	struct DeleteCall *delete_calls;
	int			ndelete_calls;
	int64		deleted;
	int64		delete_failures;
	TimestampTz deletes_urgent_at;	/* when a queued delete's message has
									 * used a quarter of its visibility */

	/*
	 * SQS refusing deletes for good (access denied, queue gone): receiving
	 * stops, and the refused calls keep their handles and are sent again,
	 * one at a time, after a backoff that grows with each refusal and ends
	 * with the first delete that succeeds.
	 */
	int			delete_refusals;	/* consecutive refusals; 0 = none */
	TimestampTz refused_at;		/* when the last one came */
	TimestampTz refused_until;	/* end of its backoff */

	/* with end_on_failed_deletes, the failure of the call given up */
	SqsError   *delete_error;
	bool		finishing;		/* flushing deletes before the flow goes */
} MessageFlow;

extern MessageFlow *flow_create(SqsConfig *config, const FlowOptions *options,
								 struct IngestSlot *slot);
extern void flow_destroy(MessageFlow *flow);
extern FlowEvent flow_wait(MessageFlow *flow, long timeout_ms);
extern void flow_prepare_store(MessageFlow *flow);
extern void flow_store(MessageFlow *flow, BatchCounts *counts);
extern void flow_queue_batch_deletes(MessageFlow *flow, XLogRecPtr durable_at);
extern void flow_reset_batch(MessageFlow *flow);
extern void flow_flush_deletes(MessageFlow *flow);
extern void flow_report_undeleted(const SqsError *error, int64 count,
									  int64 stored);
extern long flow_backoff_ms(int failures, long cap_ms);
extern int	flow_store_lock_timeout_ms(const SqsConfig *config);

#endif							/* SQS_INGEST_FLOW_H */
