/*-------------------------------------------------------------------------
 *
 * flow.c
 *	  Keep receives in flight, gather their messages into batches, and send
 *	  the deletes of stored batches, on one SQS client.
 *
 * The flow never opens a transaction: flow_wait() only talks to
 * SQS, and flow_store() runs in whatever transaction the caller has
 * open.  The caller commits, and only then queues the batch's deletes, so
 * a message leaves SQS only once its row, dead letter or ledger entry is
 * durable.
 *
 * A store hands its batch over and looks at the network now and then
 * (look_during_store(), called by the sink between the messages it maps and
 * between its parts): answers are taken in, receives' messages filling the
 * next batch, and receives and the deletes of flushed commits are started,
 * never waiting, so that the network stays busy while the process stores.
 * No transaction waits on the network: a look only takes what already came.
 *
 * A message received but not yet stored is hidden from other consumers for
 * the visibility timeout only.  Once a quarter of it has passed, the
 * flow sets it again to the whole timeout (ChangeMessageVisibilityBatch)
 * and waits for SQS to confirm before the batch goes to a store, since a
 * store's inserts keep the process from talking to SQS; for the same
 * reason, the deletes of stored messages that have used that quarter too
 * are sent and answered before the next store begins.  A store waits for a lock at
 * most another quarter (flow_store_lock_timeout_ms()), so that a message
 * is always stored and deleted before SQS could hand it to anyone else.
 *
 * With sqs_ingest.delete_after = standby_flush, a delete also waits until
 * the standbys have flushed the commit (standby.c), polled like the local
 * flush.  Meanwhile the stored messages' visibility may run out: SQS then
 * delivers them again, the ledger skips them as duplicates, and their
 * deletes join the queue, whose length pauses receiving.  A flush of the
 * deletes (a drain's end) waits for the standbys at most a visibility
 * timeout after the last batch was stored, then leaves the rest to SQS's
 * redelivery.
 *
 * Deletes that fail bound what is held, not only what is received: while
 * stored messages wait to be deleted past a cap, receiving pauses.  A delete
 * SQS refuses for good (access denied, queue gone) stops receiving until a
 * delete succeeds: the refused calls are sent again, one at a time, after a
 * backoff growing to a minute, and each step is logged once.  A drain
 * instead stops receiving at the first delete given up (refused, or
 * unanswered through its attempts), sends no more, and ends with an error
 * saying how many stored messages were not deleted: its time is bounded by
 * the request timeouts, not by the backlog.  Either way a message not
 * deleted comes back after the visibility timeout, to be skipped as a
 * duplicate and deleted then.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "common/pg_prng.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "flow.h"
#include "setting_values.h"
#include "standby.h"
#include "stats.h"

/* messages a DeleteMessageBatch call carries at most */
#define DELETE_BATCH_MAX 10

/* messages a ReceiveMessage call returns at most */
#define RECEIVE_BATCH_MAX 10

/* messages a ChangeMessageVisibilityBatch call carries at most */
#define CHANGE_VISIBILITY_BATCH_MAX 10

/*
 * How long a delete waits for the WAL writer to flush the commit that
 * stored its message before the flow flushes it itself, and how often
 * it looks meanwhile.
 */
#define DELETE_FLUSH_WAIT_MS 50
#define DELETE_FLUSH_POLL_MS 10

/*
 * How often a store looks at the network: answers taken in, receives and
 * deletes started (look_during_store()).
 */
#define STORE_LOOK_INTERVAL_MS 1

/*
 * Backoff of a failed request: the first retry after about a second,
 * doubling with each failure, at most RETRY_BACKOFF_MAX_MS for a receive
 * or a delete (the AWS SDKs' figures).
 */
#define BACKOFF_INITIAL_MS 1000
#define RETRY_BACKOFF_MAX_MS (20 * 1000)

/* longest wait before a refused delete is tried again */
#define REFUSED_BACKOFF_MAX_MS (60 * 1000)

/* a failed receive, to be started again when its backoff is over */
typedef struct ReceiveRetry
{
	TimestampTz due;
	int			attempt;		/* the attempt it will be */
	int			max_messages;
} ReceiveRetry;

/* a DeleteMessageBatch call, in flight or waiting to be sent again */
typedef struct DeleteCall
{
	int			count;			/* handles; 0 = a free slot */
	char	   *handles[DELETE_BATCH_MAX];
	int			attempt;
	bool		waiting;		/* failed, to be sent again at due */
	TimestampTz due;
	TimestampTz sent_at;		/* when its last attempt went out */
} DeleteCall;

/* a receipt handle waiting to be deleted */
typedef struct PendingDelete
{
	char	   *receipt_handle;
	XLogRecPtr	durable_at;		/* WAL position that must be on disk first */
	TimestampTz queued_at;
} PendingDelete;

MessageFlow *
flow_create(SqsConfig *config, const FlowOptions *options,
				struct IngestSlot *slot)
{
	MessageFlow *flow = palloc0(sizeof(MessageFlow));

	flow->config = config;
	flow->options = *options;
	flow->slot = slot;
	stats_set_credential_source(slot, sqs_credential_source(config));
	flow->client = sqs_client_create(config);
	flow->batch_context = AllocSetContextCreate(CurrentMemoryContext,
												"sqs_ingest batch",
												ALLOCSET_DEFAULT_SIZES);
	flow->store_context = AllocSetContextCreate(CurrentMemoryContext,
												"sqs_ingest batch being stored",
												ALLOCSET_DEFAULT_SIZES);
	flow->delete_context = AllocSetContextCreate(CurrentMemoryContext,
												 "sqs_ingest deletes",
												 ALLOCSET_DEFAULT_SIZES);
	if (flow->options.max_attempts < 1)
		flow->options.max_attempts = 1;
	flow->retries = MemoryContextAlloc(flow->delete_context,
										   sizeof(ReceiveRetry) * Max(config->max_inflight, 1));
	flow->deletes_urgent_at = DT_NOEND;
	flow->delete_calls = MemoryContextAllocZero(flow->delete_context,
													sizeof(DeleteCall) * Max(config->max_inflight, 1));
	return flow;
}

/*
 * How long to wait after the given number of consecutive failures:
 * exponential from BACKOFF_INITIAL_MS up to cap_ms, with jitter in the
 * upper half so that workers and receive slots do not retry in step.
 */
long
flow_backoff_ms(int failures, long cap_ms)
{
	int			shift = Min(Max(failures, 1) - 1, 20);
	long		delay_ms = Min((long) BACKOFF_INITIAL_MS << shift, cap_ms);

	return delay_ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (delay_ms / 2));
}

/* stored messages not deleted yet: queued, or in a delete call */
static int
held_deletes(MessageFlow *flow)
{
	int			held = flow->ndelete_queue;

	for (int i = 0; i < flow->config->max_inflight; i++)
		held += flow->delete_calls[i].count;
	return held;
}

/*
 * Receives pause while this many stored messages wait to be deleted, so
 * that memory, and what a drain holds when deletes get no answer, stay
 * bounded when deletes fall behind.
 */
static int
held_deletes_cap(MessageFlow *flow)
{
	return Max(2 * flow->options.batch_size,
			   DELETE_BATCH_MAX * flow->config->max_inflight);
}

static bool
deletes_behind(MessageFlow *flow)
{
	return held_deletes(flow) >= held_deletes_cap(flow);
}

/*
 * No receive starts while deletes are behind, refused, or (in a drain)
 * given up, nor once a receive failed for good or the owner finishes.
 */
static bool
receiving_paused(MessageFlow *flow)
{
	return deletes_behind(flow) || flow->delete_refusals > 0 ||
		flow->delete_error != NULL || flow->error != NULL ||
		flow->receiving_stopped;
}

void
flow_destroy(MessageFlow *flow)
{
	sqs_client_destroy(flow->client);
	MemoryContextDelete(flow->batch_context);
	MemoryContextDelete(flow->store_context);
	MemoryContextDelete(flow->delete_context);
	pfree(flow);
}

/* is the batch ready to be stored, by count or by the bytes of its bodies? */
static bool
batch_full(MessageFlow *flow)
{
	return flow->nbatch >= flow->options.batch_size ||
		flow->nbatch_bytes >= flow->options.batch_bytes;
}

/*
 * Start the failed receives whose backoff is over, then as many new ones as
 * the limits allow.
 */
static void
issue_receives(MessageFlow *flow)
{
	const FlowOptions *options = &flow->options;
	TimestampTz now;

	if (receiving_paused(flow))
		return;

	now = GetCurrentTimestamp();
	for (int i = 0; i < flow->nretries;)
	{
		ReceiveRetry *retry = &flow->retries[i];

		if (retry->due > now)
		{
			i++;
			continue;
		}
		/* its messages are still counted in flow->reserved */
		sqs_start_receive(flow->client, retry->max_messages,
						  options->wait_time_seconds, retry->attempt);
		flow->receives_pending++;
		*retry = flow->retries[--flow->nretries];
	}

	while (flow->receives_pending + flow->nretries <
		   flow->config->max_inflight)
	{
		int			want = RECEIVE_BATCH_MAX;

		if (options->stop_when_empty && flow->saw_empty)
			break;
		if (options->max_messages >= 0)
		{
			int64		left = options->max_messages - flow->received - flow->reserved;

			if (left <= 0)
				break;
			want = (int) Min(left, RECEIVE_BATCH_MAX);
		}
		/*
		 * Do not let unstored messages pile up beyond two batches, the one
		 * being stored and the next, or beyond a batch and what the receives
		 * in flight bring if that is more (so that they can all be in flight
		 * during a store).
		 */
		if (flow->nbatch + flow->nstored + flow->reserved >=
			options->batch_size +
			Max(options->batch_size,
				RECEIVE_BATCH_MAX * flow->config->max_inflight))
			break;
		/* nor past a full batch's bytes: what is in flight goes to the next */
		if (batch_full(flow))
			break;
		sqs_start_receive(flow->client, want, options->wait_time_seconds,
						  1 /* first attempt */ );
		flow->receives_pending++;
		flow->reserved += want;
	}
}

/*
 * How far the WAL must be on disk for a delete to go out: flushed here
 * (flushed), and with delete_after = standby_flush on the standbys too,
 * so that no failover loses a message SQS has forgotten.
 */
static XLogRecPtr
deletable_upto(MessageFlow *flow, XLogRecPtr flushed)
{
	if (flow->options.delete_after == DELETE_AFTER_STANDBY_FLUSH)
		return Min(flushed, standby_flushed_upto());
	return flushed;
}

/* does the head of the delete queue wait for a flush, here or on a standby? */
static bool
deletes_wait_for_flush(MessageFlow *flow)
{
	return flow->ndelete_queue > 0 &&
		flow->delete_queue[0].durable_at >
		deletable_upto(flow, GetFlushRecPtr(NULL));
}

/* a free slot for a delete call, or -1 if max_inflight are taken */
static int
free_delete_call(MessageFlow *flow)
{
	if (flow->ndelete_calls >= flow->config->max_inflight)
		return -1;
	for (int i = 0; i < flow->config->max_inflight; i++)
		if (flow->delete_calls[i].count == 0)
			return i;
	return -1;
}

/* end a delete call for good: its handles and its slot are freed */
static void
release_delete_call(MessageFlow *flow, DeleteCall *call)
{
	for (int i = 0; i < call->count; i++)
		pfree(call->handles[i]);
	call->count = 0;
	flow->ndelete_calls--;
}

/* (again) send the delete call in the given slot */
static void
send_delete_call(MessageFlow *flow, int slot)
{
	DeleteCall *call = &flow->delete_calls[slot];

	call->waiting = false;
	call->sent_at = GetCurrentTimestamp();
	sqs_start_delete(flow->client, call->handles, call->count, slot);
}

/* is a delete call on the wire? */
static bool
delete_call_in_flight(MessageFlow *flow)
{
	for (int i = 0; i < flow->config->max_inflight; i++)
		if (flow->delete_calls[i].count > 0 && !flow->delete_calls[i].waiting)
			return true;
	return false;
}

/* remove the first count receipt handles (taken or freed) from the queue */
static void
consume_delete_queue(MessageFlow *flow, int count)
{
	if (count == 0)
		return;
	flow->ndelete_queue -= count;
	if (flow->ndelete_queue > 0)
		memmove(flow->delete_queue, flow->delete_queue + count,
				sizeof(PendingDelete) * flow->ndelete_queue);
	else
	{
		/* the queue's array can go too */
		pfree(flow->delete_queue);
		flow->delete_queue = NULL;
		flow->delete_queue_capacity = 0;
	}
}

/*
 * Give up the deletes not sent yet and the calls waiting to be sent again:
 * their messages were stored, and come back after the visibility timeout,
 * to be skipped as duplicates and deleted then.
 */
static void
give_up_held_deletes(MessageFlow *flow)
{
	int			failed = flow->ndelete_queue;

	for (int i = 0; i < flow->ndelete_queue; i++)
		pfree(flow->delete_queue[i].receipt_handle);
	consume_delete_queue(flow, flow->ndelete_queue);
	for (int i = 0; i < flow->config->max_inflight; i++)
	{
		DeleteCall *call = &flow->delete_calls[i];

		if (call->count > 0 && call->waiting)
		{
			failed += call->count;
			release_delete_call(flow, call);
		}
	}
	if (failed == 0)
		return;
	flow->delete_failures += failed;
	stats_count_deletes(flow->slot, 0, failed);
}

/*
 * While SQS refuses deletes, send one refused call again once its backoff
 * is over, and nothing else until it is answered.
 */
static void
probe_refused_deletes(MessageFlow *flow)
{
	TimestampTz now = GetCurrentTimestamp();

	if (delete_call_in_flight(flow))
		return;
	for (int i = 0; i < flow->config->max_inflight; i++)
	{
		DeleteCall *call = &flow->delete_calls[i];

		if (call->count > 0 && call->due <= now)
		{
			send_delete_call(flow, i);
			return;
		}
	}
}

/*
 * Send again the failed delete calls whose backoff is over, then start
 * calls for queued receipt handles whose commit is on disk, as slots
 * allow.  A commit the WAL writer has not flushed after a short while, or
 * at once when deletes are behind (receiving then waits for them), is
 * flushed here: the receives are in flight meanwhile.
 */
static void
issue_deletes(MessageFlow *flow)
{
	XLogRecPtr	flushed;
	XLogRecPtr	deletable;
	TimestampTz now = GetCurrentTimestamp();
	int			start = 0;
	int			slot;

	if (flow->delete_error)
	{
		/* a drain whose deletes failed for good sends no more */
		give_up_held_deletes(flow);
		return;
	}
	if (flow->delete_refusals > 0 && flow->ndelete_calls > 0)
	{
		probe_refused_deletes(flow);
		return;
	}
	/* the refused calls are gone (given up): a queued one goes instead */
	if (flow->delete_refusals > 0 && flow->refused_until > now)
		return;

	for (int i = 0; i < flow->config->max_inflight; i++)
	{
		DeleteCall *call = &flow->delete_calls[i];

		if (call->count > 0 && call->waiting && call->due <= now)
			send_delete_call(flow, i);
	}

	flushed = GetFlushRecPtr(NULL);

	while (flow->ndelete_queue - start > 0 &&
		   (slot = free_delete_call(flow)) >= 0)
	{
		PendingDelete *head = &flow->delete_queue[start];
		DeleteCall *call = &flow->delete_calls[slot];
		int			n = 0;

		if (head->durable_at > flushed)
		{
			/*
			 * While deletes are behind, receiving waits for them: a wait for
			 * the WAL writer would leave the process idle.  One flush serves
			 * every commit queued.
			 */
			if (!deletes_behind(flow) &&
				!TimestampDifferenceExceeds(head->queued_at, GetCurrentTimestamp(),
											DELETE_FLUSH_WAIT_MS))
				break;
			XLogFlush(flow->delete_queue[flow->ndelete_queue - 1].durable_at);
			flushed = GetFlushRecPtr(NULL);
		}
		deletable = deletable_upto(flow, flushed);
		if (head->durable_at > deletable)
			break;
		/* the call takes the handles over from the queue */
		while (n < DELETE_BATCH_MAX && start < flow->ndelete_queue &&
			   flow->delete_queue[start].durable_at <= deletable)
			call->handles[n++] = flow->delete_queue[start++].receipt_handle;
		call->count = n;
		call->attempt = 1;
		flow->ndelete_calls++;
		send_delete_call(flow, slot);
		/* while SQS refuses deletes, one call finds out if it still does */
		if (flow->delete_refusals > 0)
			break;
	}
	consume_delete_queue(flow, start);
}

/*
 * When the next failed request waiting out its backoff is due to be sent
 * again, or 0 if none waits: a delete call, or, with_receives, a receive
 * (unless receiving is paused, which would leave it waiting anyway).
 */
static TimestampTz
next_retry_due(MessageFlow *flow, bool with_receives)
{
	TimestampTz due = 0;

	if (with_receives && !receiving_paused(flow))
		for (int i = 0; i < flow->nretries; i++)
			if (due == 0 || flow->retries[i].due < due)
				due = flow->retries[i].due;
	/* refused deletes go again one at a time (probe_refused_deletes) */
	if (flow->delete_refusals > 0 && delete_call_in_flight(flow))
		return due;
	if (flow->delete_refusals > 0 && flow->ndelete_calls == 0 &&
		flow->ndelete_queue > 0 && (due == 0 || flow->refused_until < due))
		due = flow->refused_until;
	for (int i = 0; i < flow->config->max_inflight; i++)
	{
		DeleteCall *call = &flow->delete_calls[i];

		if (call->count > 0 && call->waiting && (due == 0 || call->due < due))
			due = call->due;
	}
	return due;
}

/* milliseconds until due (at least 1), for a wait */
static long
ms_until(TimestampTz due)
{
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due), 1);
}

/*
 * A failed receive is tried again alone while the other receives go on:
 * after a backoff if it failed transiently (throttling, 5xx, timeout,
 * connection) and has attempts left, at once with half as many messages
 * if the response was too large for the cap.  Any other failure is the
 * flow's: returns false.
 */
static bool
retry_receive(MessageFlow *flow, SqsResult *result)
{
	SqsError   *error = result->error;
	int			attempt = result->tag;	/* receives are tagged so */
	ReceiveRetry *retry;

	stats_record_error(flow->slot, error->message, true);
	/* it was pending: its place is free for the retry */
	Assert(flow->receives_pending + flow->nretries < flow->config->max_inflight);
	if (error->too_large && result->requested > 1)
	{
		retry = &flow->retries[flow->nretries++];
		retry->due = 0;
		retry->attempt = attempt;
		retry->max_messages = result->requested / 2;
		flow->reserved -= result->requested - retry->max_messages;
	}
	else if (error->transient && !error->too_large &&
			 attempt < flow->options.max_attempts)
	{
		retry = &flow->retries[flow->nretries++];
		retry->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 flow_backoff_ms(attempt,
																	 RETRY_BACKOFF_MAX_MS));
		retry->attempt = attempt + 1;
		retry->max_messages = result->requested;
	}
	else
		return false;

	elog(DEBUG1, "sqs_ingest: SQS ReceiveMessage failed (attempt %d), retrying: %s",
		 attempt, error->message);
	return true;
}

/*
 * Messages left out of a receive's answer because their ReceiptHandle is
 * longer than SQS's: they cannot be deleted, so they cannot be stored
 * either (they would come back as duplicates forever).  Counted as errors
 * in the stats; SQS's redrive policy, if the queue has one, moves them to
 * its dead-letter queue.
 */
static void
skipped_messages(MessageFlow *flow, int nskipped)
{
	char	   *message = psprintf(ngettext("SQS returned %d message whose ReceiptHandle is longer than %d characters",
											"SQS returned %d messages whose ReceiptHandle is longer than %d characters",
											nskipped),
								   nskipped, SQS_MAX_RECEIPT_HANDLE_CHARS);

	stats_record_error(flow->slot, message, true);
	/* translated above, for the stats too */
	ereport(flow->options.delete_log_level,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg_internal("%s", message),
			 errdetail_plural("It cannot be deleted, so it was left in the queue, neither stored nor dead-lettered; the queue's redrive policy decides what becomes of it.",
							  "They cannot be deleted, so they were left in the queue, neither stored nor dead-lettered; the queue's redrive policy decides what becomes of them.",
							  nskipped)));
}

/* how long a received message waits before its visibility is extended */
static long
extend_after_ms(MessageFlow *flow)
{
	return flow->config->visibility_timeout * 1000L / 4;
}

/*
 * How long a store may wait for a lock: a quarter of the visibility
 * timeout, at least a second.  A store holds the process, so nothing can be
 * extended meanwhile; with a quarter used before the last extension and a
 * quarter at most waiting for each lock, the batch commits and its deletes
 * go out well before SQS could deliver its messages again.
 */
int
flow_store_lock_timeout_ms(const SqsConfig *config)
{
	return Max(config->visibility_timeout * 1000 / 4, 1000);
}

static void
append_messages(MessageFlow *flow, SqsResult *result)
{
	if (result->nmessages == 0)
		return;
	if (flow->nbatch + result->nmessages > flow->batch_capacity)
	{
		int			capacity = Max(flow->batch_capacity * 2,
								   flow->nbatch + result->nmessages);

		capacity = Max(capacity, 64);
		flow->batch = flow->batch ?
			repalloc(flow->batch, sizeof(SqsMessage) * capacity) :
			MemoryContextAlloc(flow->batch_context, sizeof(SqsMessage) * capacity);
		flow->visible_since = flow->visible_since ?
			repalloc(flow->visible_since, sizeof(TimestampTz) * capacity) :
			MemoryContextAlloc(flow->batch_context, sizeof(TimestampTz) * capacity);
		flow->batch_capacity = capacity;
	}
	if (flow->nbatch == 0)
	{
		flow->batch_started = GetCurrentTimestamp();
		flow->extension_due = DT_NOEND;
	}
	memcpy(flow->batch + flow->nbatch, result->messages,
		   sizeof(SqsMessage) * result->nmessages);
	for (int i = 0; i < result->nmessages; i++)
	{
		TimestampTz since = result->messages[i].received_at;

		flow->nbatch_bytes += result->messages[i].body_len;
		flow->visible_since[flow->nbatch + i] = since;
		flow->extension_due = Min(flow->extension_due,
									  TimestampTzPlusMilliseconds(since, extend_after_ms(flow)));
	}
	flow->nbatch += result->nmessages;
}

/*
 * Extend the visibility of the batch's messages that have used a quarter of
 * it, and return when the next extension is due (DT_NOEND: none).
 */
static TimestampTz
extend_visibility(MessageFlow *flow)
{
	TimestampTz now;
	long		after_ms = extend_after_ms(flow);
	char	   *handles[CHANGE_VISIBILITY_BATCH_MAX];
	int			n = 0;

	if (flow->nbatch == 0)
		return DT_NOEND;
	now = GetCurrentTimestamp();
	if (flow->extension_due > now)
		return flow->extension_due;

	flow->extension_due = DT_NOEND;
	for (int i = 0; i < flow->nbatch; i++)
	{
		TimestampTz due = TimestampTzPlusMilliseconds(flow->visible_since[i], after_ms);

		if (due > now)
		{
			flow->extension_due = Min(flow->extension_due, due);
			continue;
		}
		handles[n++] = flow->batch[i].receipt_handle;
		flow->visible_since[i] = now;
		if (n == CHANGE_VISIBILITY_BATCH_MAX)
		{
			sqs_start_change_visibility(flow->client, handles, n,
										flow->config->visibility_timeout);
			flow->extension_due = Min(flow->extension_due,
										  TimestampTzPlusMilliseconds(now, after_ms));
			n = 0;
		}
	}
	if (n > 0)
	{
		sqs_start_change_visibility(flow->client, handles, n,
									flow->config->visibility_timeout);
		flow->extension_due = Min(flow->extension_due,
									  TimestampTzPlusMilliseconds(now, after_ms));
	}
	return flow->extension_due;
}

static void
handle_extension_result(MessageFlow *flow, SqsResult *result)
{
	int			failed = result->error ? result->requested : result->nfailed;

	if (failed == 0)
		return;
	ereport(flow->options.delete_log_level,
			(errcode(result->error ? result->error->sqlerrcode :
					 ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg_plural("could not extend the visibility of %d received message: %s",
						   "could not extend the visibility of %d received messages: %s",
						   failed, failed,
						   result->error ? result->error->message :
						   result->failure ? result->failure : "unknown error"),
			 errdetail("SQS may deliver them again before they are stored; they will then be skipped as duplicates.")));
}

/* has SQS refused a delete for good: access denied, or no such queue? */
static bool
delete_refused(const SqsError *error)
{
	return error->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ||
		error->sqlerrcode == ERRCODE_UNDEFINED_OBJECT;
}

/* what to do about a delete that failed for good, or NULL */
static const char *
delete_failure_hint(const SqsError *error)
{
	if (error->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		return _("Grant the credentials sqs:DeleteMessage on the queue.");
	return error->hint ? _(error->hint) : NULL;
}

/*
 * A delete refused for good, in a worker: the call keeps its handles and
 * waits, and receiving stops, until the backoff of this refusal is over.
 * Calls sent before the last refusal was seen belong to its step; a call
 * sent after it (the one sent again) starts the next, longer one, which is
 * logged once.
 */
static void
hold_refused_call(MessageFlow *flow, DeleteCall *call, const SqsError *error)
{
	TimestampTz now = GetCurrentTimestamp();
	long		delay_ms;
	int			held;

	call->waiting = true;
	call->due = flow->refused_until;
	if (flow->delete_refusals > 0 && call->sent_at < flow->refused_at)
		return;

	flow->delete_refusals++;
	delay_ms = flow_backoff_ms(flow->delete_refusals, REFUSED_BACKOFF_MAX_MS);
	flow->refused_at = now;
	flow->refused_until = TimestampTzPlusMilliseconds(now, delay_ms);
	for (int i = 0; i < flow->config->max_inflight; i++)
	{
		DeleteCall *held_call = &flow->delete_calls[i];

		if (held_call->count > 0 && held_call->waiting)
			held_call->due = Max(held_call->due, flow->refused_until);
	}
	held = held_deletes(flow);
	ereport(flow->options.delete_log_level,
			(errcode(error->sqlerrcode),
			 errmsg("SQS refused to delete stored messages: %s", error->message),
			 errdetail_plural("Receiving is paused; the delete is tried again in %ld ms. %d stored message waits to be deleted.",
							  "Receiving is paused; the delete is tried again in %ld ms. %d stored messages wait to be deleted.",
							  held, delay_ms, held),
			 delete_failure_hint(error) ?
			 errhint("%s", delete_failure_hint(error)) : 0));
}

/*
 * A delete call answered: a call that failed transiently is sent again
 * after a backoff, up to max_attempts attempts; a call refused for good
 * waits in a worker (hold_refused_call()); otherwise it is counted and its
 * handles freed.  Each failed attempt shows in the stats, as a receive's
 * does, a refusal with what to grant.
 */
static void
handle_delete_result(MessageFlow *flow, SqsResult *result)
{
	DeleteCall *call = &flow->delete_calls[result->tag];
	int			failed = result->error ? result->requested : result->nfailed;

	/* what to do first: the statistics keep only the start of the text */
	if (result->error && delete_refused(result->error) &&
		delete_failure_hint(result->error))
	{
		char	   *text = psprintf(_("SQS refused to delete stored messages. %s SQS said: %s"),
									delete_failure_hint(result->error),
									result->error->message);

		stats_record_error(flow->slot, text, true);
		pfree(text);
	}
	else if (result->error)
		stats_record_error(flow->slot, result->error->message, true);
	if (result->error && delete_refused(result->error) &&
		!flow->options.end_on_failed_deletes && !flow->finishing)
	{
		hold_refused_call(flow, call, result->error);
		return;
	}
	if (result->error && result->error->transient &&
		call->attempt < flow->options.max_attempts &&
		flow->delete_error == NULL)
	{
		call->waiting = true;
		call->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												flow_backoff_ms(call->attempt,
																	RETRY_BACKOFF_MAX_MS));
		call->attempt++;
		elog(DEBUG1, "sqs_ingest: SQS DeleteMessageBatch failed (attempt %d), retrying: %s",
			 call->attempt - 1, result->error->message);
		return;
	}
	release_delete_call(flow, call);
	if (result->error == NULL && flow->delete_refusals > 0)
	{
		ereport(flow->options.delete_log_level,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_plural("SQS accepts deletes again after %d refusal: receiving resumes",
							   "SQS accepts deletes again after %d refusals: receiving resumes",
							   flow->delete_refusals, flow->delete_refusals)));
		flow->delete_refusals = 0;
	}

	/*
	 * A drain ends once deletes are refused or go unanswered through their
	 * attempts; a garbled answer to one call stays that call's.
	 */
	if (result->error && flow->options.end_on_failed_deletes &&
		flow->delete_error == NULL &&
		(result->error->transient || delete_refused(result->error)))
		flow->delete_error = sqs_copy_error(flow->delete_context,
												result->error);

	flow->deleted += result->requested - failed;
	flow->delete_failures += failed;
	stats_count_deletes(flow->slot, result->requested - failed, failed);
	if (failed == 0)
		return;

	/* the messages come back after the visibility timeout, as duplicates */
	if (result->error)
		ereport(flow->options.delete_log_level,
				(errcode(result->error->sqlerrcode),
				 errmsg_plural("could not delete %d stored message from SQS: %s",
							   "could not delete %d stored messages from SQS: %s",
							   failed, failed, result->error->message),
				 errdetail("They were stored; when SQS delivers them again they will be skipped as duplicates and deleted.")));
	else
		ereport(flow->options.delete_log_level,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg_plural("could not delete %d of %d stored message from SQS: %s",
							   "could not delete %d of %d stored messages from SQS: %s",
							   result->requested,
							   failed, result->requested,
							   result->failure ? result->failure : "unknown error"),
				 errdetail("They were stored; when SQS delivers them again they will be skipped as duplicates and deleted.")));
}

/*
 * Have queued or unanswered deletes been waiting so long that they must go
 * out before the next store?  Then the WAL they wait for is flushed now.
 */
static bool
deletes_urgent(MessageFlow *flow)
{
	/* refused deletes will not go out by waiting for them */
	if (flow->delete_refusals > 0)
		return false;
	if (flow->ndelete_queue == 0 &&
		flow->ndelete_calls == 0)
	{
		flow->deletes_urgent_at = DT_NOEND;
		return false;
	}
	if (flow->deletes_urgent_at > GetCurrentTimestamp())
		return false;
	if (flow->ndelete_queue > 0)
	{
		XLogFlush(flow->delete_queue[flow->ndelete_queue - 1].durable_at);
		issue_deletes(flow);
	}
	/* deletes held back for the standbys cannot go first: they hold up nothing */
	return flow->ndelete_calls > 0 || !deletes_wait_for_flush(flow);
}

/* has the drain received all it will? */
static bool
finished_receiving(MessageFlow *flow)
{
	const FlowOptions *options = &flow->options;

	if (!options->stop_when_empty || flow->receives_pending > 0)
		return false;
	/* failed receives waiting to go again are not sent once deletes fail */
	if (flow->delete_error)
		return true;
	if (flow->nretries > 0)
		return false;
	return flow->saw_empty ||
		(options->max_messages >= 0 && flow->received >= options->max_messages);
}

/*
 * Take an answer in: a receive's messages join the batch (a receive that
 * failed is tried again, or its error becomes the flow's), a delete's
 * or an extension's outcome is counted.
 */
static void
handle_result(MessageFlow *flow, SqsResult *result)
{
	switch (result->action)
	{
		case SQS_RECEIVE:
			flow->receives_pending--;
			if (result->error && retry_receive(flow, result))
				break;
			flow->reserved -= result->requested;
			if (result->error)
			{
				flow->error = result->error;
				break;
			}
			flow->receives_ok++;
			if (result->nskipped > 0)
				skipped_messages(flow, result->nskipped);
			if (result->nmessages == 0 && result->nskipped == 0)
				flow->saw_empty = true;
			flow->received += result->nmessages;
			stats_count_received(flow->slot, result->nmessages);
			append_messages(flow, result);
			break;
		case SQS_DELETE_BATCH:
			handle_delete_result(flow, result);
			break;
		case SQS_CHANGE_VISIBILITY_BATCH:
			handle_extension_result(flow, result);
			break;
		case SQS_GET_ATTRIBUTES:
			break;
	}
}

/*
 * Drive the client until there is something for the caller to do: a batch
 * to store, the drain's end, a failed receive, or (after timeout_ms, or
 * when the latch is set) nothing at all.
 */
FlowEvent
flow_wait(MessageFlow *flow, long timeout_ms)
{
	TimestampTz deadline = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	/* a receive failed for good while the last batch was stored */
	if (flow->error)
		return FLOW_FAILED;

	for (;;)
	{
		long		wait_ms = -1;
		SqsResult  *result;
		MemoryContext old;
		TimestampTz extension_due;
		bool		extending;

		issue_deletes(flow);
		issue_receives(flow);
		sqs_send_started(flow->client);
		extension_due = extend_visibility(flow);

		/*
		 * A store holds the process: extensions, and deletes whose messages
		 * could come back during the store, must be answered first.
		 */
		extending = sqs_inflight(flow->client, SQS_CHANGE_VISIBILITY_BATCH) > 0 ||
			deletes_urgent(flow);

		if (!extending)
		{
			if (batch_full(flow))
				return FLOW_BATCH_READY;
			if (finished_receiving(flow))
				return flow->nbatch > 0 ? FLOW_BATCH_READY : FLOW_DONE;
		}

		if (flow->nbatch > 0 && !extending)
		{
			TimestampTz due = TimestampTzPlusMilliseconds(flow->batch_started,
														  flow->options.batch_timeout_ms);

			wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
			if (wait_ms <= 0)
				return FLOW_BATCH_READY;
		}
		if (extension_due != DT_NOEND)
		{
			long		extend_ms = Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																		extension_due), 1);

			wait_ms = wait_ms < 0 ? extend_ms : Min(wait_ms, extend_ms);
		}
		if (timeout_ms >= 0)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

			if (left <= 0)
				return FLOW_IDLE;
			wait_ms = wait_ms < 0 ? left : Min(wait_ms, left);
		}
		if (deletes_wait_for_flush(flow))
			wait_ms = wait_ms < 0 ? DELETE_FLUSH_POLL_MS : Min(wait_ms, DELETE_FLUSH_POLL_MS);
		if (next_retry_due(flow, true) != 0)
		{
			long		until_retry = ms_until(next_retry_due(flow, true));

			wait_ms = wait_ms < 0 ? until_retry : Min(wait_ms, until_retry);
		}

		/* while every receive waits out a backoff, the stats say so */
		stats_set_state(flow->slot,
						(flow->receives_pending == 0 && flow->nretries > 0) ||
						flow->delete_refusals > 0 ?
						INGEST_BACKING_OFF : INGEST_POLLING);

		/*
		 * The next batch's commit would put the deletes behind (receiving
		 * would pause): the process flushes the WAL now rather than wait
		 * for the WAL writer, even with answers to take in, which keep
		 * coming when many receives are in flight.
		 */
		if (flow->ndelete_queue > 0 &&
			flow->delete_queue[0].durable_at > GetFlushRecPtr(NULL) &&
			held_deletes(flow) + flow->options.batch_size >=
			held_deletes_cap(flow))
		{
			XLogFlush(flow->delete_queue[flow->ndelete_queue - 1].durable_at);
			issue_deletes(flow);
			sqs_send_started(flow->client);
		}

		/* results, and the bodies they point into, belong to the batch */
		old = MemoryContextSwitchTo(flow->batch_context);
		result = sqs_next_result(flow->client, 0);
		MemoryContextSwitchTo(old);

		if (result == NULL && wait_ms != 0)
		{
			old = MemoryContextSwitchTo(flow->batch_context);
			result = sqs_next_result(flow->client, wait_ms);
			MemoryContextSwitchTo(old);
		}

		if (result == NULL)
		{
			/* a filling batch, a delete or a retry may be due: the loop decides */
			if (flow->nbatch > 0 || deletes_wait_for_flush(flow) ||
				next_retry_due(flow, true) != 0)
				continue;
			return FLOW_IDLE;
		}

		handle_result(flow, result);
		if (flow->error)
			return FLOW_FAILED;
		if (flow->nbatch == 0)
			MemoryContextReset(flow->batch_context);
	}
}

/*
 * Called by the sink now and then while a batch is stored, at most every
 * STORE_LOOK_INTERVAL_MS: the answers that came in are taken (a receive's
 * messages into the next batch, until it is full: the rest wait for the
 * batch after), and receives, and the deletes of commits already flushed,
 * are started, all without waiting, so that requests stay in flight while
 * the process stores.  A receive failing for good ends the flow after
 * the store (flow_wait()).
 */
static void
look_during_store(void *arg)
{
	MessageFlow *flow = arg;
	MemoryContext old;
	SqsResult  *result;

	if (!TimestampDifferenceExceeds(flow->looked_at, GetCurrentTimestamp(),
									STORE_LOOK_INTERVAL_MS))
		return;
	old = MemoryContextSwitchTo(flow->batch_context);
	while (!batch_full(flow) &&
		   (result = sqs_next_result(flow->client, 0)) != NULL)
		handle_result(flow, result);
	issue_deletes(flow);
	issue_receives(flow);
	/* out now, not after the rest of the store */
	sqs_send_started(flow->client);
	MemoryContextSwitchTo(old);
	flow->looked_at = GetCurrentTimestamp();
}

/*
 * Store the current batch in the caller's transaction.  The batch is handed
 * over first, with its memory, so that what comes in during the store fills
 * the next one.  The caller commits and then calls
 * flow_queue_batch_deletes().
 */
void
flow_store(MessageFlow *flow, BatchCounts *counts)
{
	MemoryContext filled = flow->batch_context;
	MemoryContext old;

	Assert(flow->nstored == 0);
	flow->batch_context = flow->store_context;
	flow->store_context = filled;
	flow->stored = flow->batch;
	flow->stored_visible_since = flow->visible_since;
	flow->nstored = flow->nbatch;
	flow->batch = NULL;
	flow->visible_since = NULL;
	flow->nbatch = 0;
	flow->batch_capacity = 0;
	flow->nbatch_bytes = 0;
	flow->looked_at = GetCurrentTimestamp();

	old = MemoryContextSwitchTo(flow->store_context);
	stats_set_state(flow->slot, INGEST_STORING);
	sink_store_batch(flow->sink, flow->stored, flow->nstored,
					 flow->config->queue_url, counts,
					 look_during_store, flow);
	stats_count_batch(flow->slot, counts);
	MemoryContextSwitchTo(old);
}

/*
 * Queue receipt handles for deletion once WAL is flushed up to durable_at
 * (the end of the commit that stored them).  The handles are copied.
 */
static void
queue_deletes(MessageFlow *flow, char **receipt_handles, int count,
			  XLogRecPtr durable_at)
{
	TimestampTz now = GetCurrentTimestamp();

	if (count == 0)
		return;
	if (flow->ndelete_queue + count > flow->delete_queue_capacity)
	{
		int			capacity = Max(flow->delete_queue_capacity * 2,
								   flow->ndelete_queue + count);

		flow->delete_queue = flow->delete_queue ?
			repalloc(flow->delete_queue, sizeof(PendingDelete) * capacity) :
			MemoryContextAlloc(flow->delete_context, sizeof(PendingDelete) * capacity);
		flow->delete_queue_capacity = capacity;
	}
	for (int i = 0; i < count; i++)
	{
		PendingDelete *entry = &flow->delete_queue[flow->ndelete_queue++];

		entry->receipt_handle = MemoryContextStrdup(flow->delete_context,
													receipt_handles[i]);
		entry->durable_at = durable_at;
		entry->queued_at = now;
	}
}

/* queue the deletes of the batch just committed */
void
flow_queue_batch_deletes(MessageFlow *flow, XLogRecPtr durable_at)
{
	char	  **handles = palloc(sizeof(char *) * Max(flow->nstored, 1));

	for (int i = 0; i < flow->nstored; i++)
	{
		handles[i] = flow->stored[i].receipt_handle;
		flow->deletes_urgent_at =
			Min(flow->deletes_urgent_at,
				TimestampTzPlusMilliseconds(flow->stored_visible_since[i],
											extend_after_ms(flow)));
	}
	queue_deletes(flow, handles, flow->nstored, durable_at);
	pfree(handles);
}

/* forget the batch stored and the memory of the results behind it */
void
flow_reset_batch(MessageFlow *flow)
{
	flow->stored = NULL;
	flow->stored_visible_since = NULL;
	flow->nstored = 0;
	MemoryContextReset(flow->store_context);
}

/*
 * In a flush, deletes waiting for the standbys are looked at again every
 * DELETE_FLUSH_POLL_MS: returns how long the flush may wait for an answer
 * (wait_ms if no delete waits).  Once the visibility timeout of the last
 * batch queued has passed, they are given up: SQS delivers their messages
 * again, and the ledger skips them as duplicates.
 */
static long
standby_wait_in_flush(MessageFlow *flow, long wait_ms)
{
	PendingDelete *last;
	XLogRecPtr	deletable;
	int			keep = 0;
	int			dropped;

	if (!deletes_wait_for_flush(flow))
		return wait_ms;
	last = &flow->delete_queue[flow->ndelete_queue - 1];
	if (!TimestampDifferenceExceeds(last->queued_at, GetCurrentTimestamp(),
									flow->config->visibility_timeout * 1000))
		return wait_ms < 0 ? DELETE_FLUSH_POLL_MS : Min(wait_ms, DELETE_FLUSH_POLL_MS);

	/* the queue is in commit order: what still waits is its tail */
	deletable = deletable_upto(flow, GetFlushRecPtr(NULL));
	while (keep < flow->ndelete_queue &&
		   flow->delete_queue[keep].durable_at <= deletable)
		keep++;
	dropped = flow->ndelete_queue - keep;
	for (int i = keep; i < flow->ndelete_queue; i++)
		pfree(flow->delete_queue[i].receipt_handle);
	flow->ndelete_queue = keep;
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg_plural("%d stored message was not deleted from SQS: no standby flushed its commit within the visibility timeout",
						   "%d stored messages were not deleted from SQS: no standby flushed their commit within the visibility timeout",
						   dropped, dropped),
			 errdetail("sqs_ingest.delete_after is \"standby_flush\"; SQS will deliver them again, and they will then be skipped as duplicates and deleted.")));
	return wait_ms;
}

/*
 * A result taken outside flow_wait(), while the flow finishes or
 * prepares a store: a receive still in flight brings its messages to the
 * batch, failed or not it asks for nothing more.
 */
static void
take_result(MessageFlow *flow, SqsResult *result)
{
	if (result->action == SQS_DELETE_BATCH)
		handle_delete_result(flow, result);
	else if (result->action == SQS_CHANGE_VISIBILITY_BATCH)
		handle_extension_result(flow, result);
	else if (result->action == SQS_RECEIVE)
	{
		flow->receives_pending--;
		flow->reserved -= result->requested;
		if (result->error == NULL)
		{
			flow->received += result->nmessages;
			stats_count_received(flow->slot, result->nmessages);
			append_messages(flow, result);
		}
	}
}

/*
 * Before a store that flow_wait() did not ask for (the batch left when
 * the flow finishes, or stored before a failed receive's error): the
 * messages that have used a quarter of their visibility are extended, and
 * SQS has confirmed, before the store begins, as flow_wait() does.
 */
void
flow_prepare_store(MessageFlow *flow)
{
	for (;;)
	{
		SqsResult  *result;
		MemoryContext old;

		(void) extend_visibility(flow);
		if (sqs_inflight(flow->client, SQS_CHANGE_VISIBILITY_BATCH) == 0)
			return;
		old = MemoryContextSwitchTo(flow->batch_context);
		result = sqs_next_result(flow->client, -1);
		MemoryContextSwitchTo(old);
		if (result != NULL)
			take_result(flow, result);
	}
}

/*
 * Wait until every queued delete has been sent and answered, before the
 * flow goes.  Deletes SQS refuses are not waited for: they are given
 * up.
 */
void
flow_flush_deletes(MessageFlow *flow)
{
	stats_set_state(flow->slot, INGEST_DELETING);
	flow->finishing = true;
	if (flow->delete_refusals > 0)
		give_up_held_deletes(flow);
	if (flow->ndelete_queue > 0)
		XLogFlush(flow->delete_queue[flow->ndelete_queue - 1].durable_at);
	while (flow->ndelete_queue > 0 || flow->ndelete_calls > 0)
	{
		SqsResult  *result;
		MemoryContext old;
		TimestampTz due;

		issue_deletes(flow);
		due = next_retry_due(flow, false);
		old = MemoryContextSwitchTo(flow->batch_context);
		result = sqs_next_result(flow->client,
								 standby_wait_in_flush(flow, due ? ms_until(due) : -1));
		MemoryContextSwitchTo(old);
		/* a receive still in flight: its messages are kept for a batch */
		if (result != NULL)
			take_result(flow, result);
	}
}

/*
 * End a drain whose deletes failed for good: count stored messages were
 * not deleted, of stored received and committed.
 */
void
flow_report_undeleted(const SqsError *error, int64 count, int64 stored)
{
	const char *hint = delete_failure_hint(error);

	ereport(ERROR,
			(errcode(error->sqlerrcode),
			 errmsg_plural("could not delete %lld stored message from SQS",
						   "could not delete %lld stored messages from SQS",
						   count, (long long) count),
			 errdetail_plural("The drain stopped receiving after SQS %s failed: %s. It stored and committed %lld message; those not deleted come back after the visibility timeout, to be skipped as duplicates and deleted then.",
							  "The drain stopped receiving after SQS %s failed: %s. It stored and committed %lld messages; those not deleted come back after the visibility timeout, to be skipped as duplicates and deleted then.",
							  stored, error->action, error->message, (long long) stored),
			 hint ? errhint("%s", hint) : 0));
}
