/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *	  Keep receives in flight, gather their messages into batches, and send
 *	  the deletes of stored batches, on one SQS client.
 *
 * The pipeline never opens a transaction: pipeline_wait() only talks to
 * SQS, and pipeline_store() runs in whatever transaction the caller has
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
 * pipeline sets it again to the whole timeout (ChangeMessageVisibilityBatch)
 * and waits for SQS to confirm before the batch goes to a store, since a
 * store's inserts keep the process from talking to SQS; for the same
 * reason, the deletes of stored messages that have used that quarter too
 * are sent and answered before the next store begins.  A store waits for a lock at
 * most another quarter (pipeline_store_lock_timeout_ms()), so that a message
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

#include "pipeline.h"
#include "sqs_ingest.h"
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
 * stored its message before the pipeline flushes it itself, and how often
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

Pipeline *
pipeline_create(SqsConfig *config, const PipelineOptions *options,
				struct IngestSlot *slot)
{
	Pipeline   *pipeline = palloc0(sizeof(Pipeline));

	pipeline->config = config;
	pipeline->options = *options;
	pipeline->slot = slot;
	stats_set_credential_source(slot, sqs_credential_source(config));
	pipeline->client = sqs_client_create(config);
	pipeline->batch_context = AllocSetContextCreate(CurrentMemoryContext,
													"sqs_ingest batch",
													ALLOCSET_DEFAULT_SIZES);
	pipeline->store_context = AllocSetContextCreate(CurrentMemoryContext,
													"sqs_ingest batch",
													ALLOCSET_DEFAULT_SIZES);
	pipeline->delete_context = AllocSetContextCreate(CurrentMemoryContext,
													 "sqs_ingest deletes",
													 ALLOCSET_DEFAULT_SIZES);
	if (pipeline->options.max_attempts < 1)
		pipeline->options.max_attempts = 1;
	pipeline->retries = MemoryContextAlloc(pipeline->delete_context,
										   sizeof(ReceiveRetry) * Max(config->max_inflight, 1));
	pipeline->deletes_urgent_at = DT_NOEND;
	pipeline->delete_calls = MemoryContextAllocZero(pipeline->delete_context,
													sizeof(DeleteCall) * Max(config->max_inflight, 1));
	return pipeline;
}

/*
 * How long to wait after the given number of consecutive failures:
 * exponential from BACKOFF_INITIAL_MS up to cap_ms, with jitter in the
 * upper half so that workers and receive slots do not retry in step.
 */
long
pipeline_backoff_ms(int failures, long cap_ms)
{
	int			shift = Min(Max(failures, 1) - 1, 20);
	long		delay_ms = Min((long) BACKOFF_INITIAL_MS << shift, cap_ms);

	return delay_ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (delay_ms / 2));
}

/* stored messages not deleted yet: queued, or in a delete call */
static int
held_deletes(Pipeline *pipeline)
{
	int			held = pipeline->ndelete_queue;

	for (int i = 0; i < pipeline->config->max_inflight; i++)
		held += pipeline->delete_calls[i].count;
	return held;
}

/*
 * Receives pause while this many stored messages wait to be deleted, so
 * that memory, and what a drain holds when deletes get no answer, stay
 * bounded when deletes fall behind.
 */
static int
held_deletes_cap(Pipeline *pipeline)
{
	return Max(2 * pipeline->options.batch_size,
			   DELETE_BATCH_MAX * pipeline->config->max_inflight);
}

static bool
deletes_behind(Pipeline *pipeline)
{
	return held_deletes(pipeline) >= held_deletes_cap(pipeline);
}

/*
 * No receive starts while deletes are behind, refused, or (in a drain)
 * given up, nor once a receive failed for good or the owner finishes.
 */
static bool
receiving_paused(Pipeline *pipeline)
{
	return deletes_behind(pipeline) || pipeline->delete_refusals > 0 ||
		pipeline->delete_error != NULL || pipeline->error != NULL ||
		pipeline->receiving_stopped;
}

void
pipeline_destroy(Pipeline *pipeline)
{
	sqs_client_destroy(pipeline->client);
	MemoryContextDelete(pipeline->batch_context);
	MemoryContextDelete(pipeline->store_context);
	MemoryContextDelete(pipeline->delete_context);
	pfree(pipeline);
}

/* is the batch ready to be stored, by count or by the bytes of its bodies? */
static bool
batch_full(Pipeline *pipeline)
{
	return pipeline->nbatch >= pipeline->options.batch_size ||
		pipeline->nbatch_bytes >= pipeline->options.batch_bytes;
}

/*
 * Start the failed receives whose backoff is over, then as many new ones as
 * the limits allow.
 */
static void
issue_receives(Pipeline *pipeline)
{
	const PipelineOptions *options = &pipeline->options;
	TimestampTz now;

	if (receiving_paused(pipeline))
		return;

	now = GetCurrentTimestamp();
	for (int i = 0; i < pipeline->nretries;)
	{
		ReceiveRetry *retry = &pipeline->retries[i];

		if (retry->due > now)
		{
			i++;
			continue;
		}
		/* its messages are still counted in pipeline->reserved */
		sqs_start_receive(pipeline->client, retry->max_messages,
						  options->wait_time_seconds, retry->attempt);
		pipeline->receives_pending++;
		*retry = pipeline->retries[--pipeline->nretries];
	}

	while (pipeline->receives_pending + pipeline->nretries <
		   pipeline->config->max_inflight)
	{
		int			want = RECEIVE_BATCH_MAX;

		if (options->stop_when_empty && pipeline->saw_empty)
			break;
		if (options->max_messages >= 0)
		{
			int64		left = options->max_messages - pipeline->received - pipeline->reserved;

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
		if (pipeline->nbatch + pipeline->nstored + pipeline->reserved >=
			options->batch_size +
			Max(options->batch_size,
				RECEIVE_BATCH_MAX * pipeline->config->max_inflight))
			break;
		/* nor past a full batch's bytes: what is in flight goes to the next */
		if (batch_full(pipeline))
			break;
		sqs_start_receive(pipeline->client, want, options->wait_time_seconds,
						  1 /* first attempt */ );
		pipeline->receives_pending++;
		pipeline->reserved += want;
	}
}

/*
 * How far the WAL must be on disk for a delete to go out: flushed here
 * (flushed), and with delete_after = standby_flush on the standbys too,
 * so that no failover loses a message SQS has forgotten.
 */
static XLogRecPtr
deletable_upto(Pipeline *pipeline, XLogRecPtr flushed)
{
	if (pipeline->options.delete_after == DELETE_AFTER_STANDBY_FLUSH)
		return Min(flushed, standby_flushed_upto());
	return flushed;
}

/* does the head of the delete queue wait for a flush, here or on a standby? */
static bool
deletes_wait_for_flush(Pipeline *pipeline)
{
	return pipeline->ndelete_queue > 0 &&
		pipeline->delete_queue[0].durable_at >
		deletable_upto(pipeline, GetFlushRecPtr(NULL));
}

/* a free slot for a delete call, or -1 if max_inflight are taken */
static int
free_delete_call(Pipeline *pipeline)
{
	if (pipeline->ndelete_calls >= pipeline->config->max_inflight)
		return -1;
	for (int i = 0; i < pipeline->config->max_inflight; i++)
		if (pipeline->delete_calls[i].count == 0)
			return i;
	return -1;
}

/* end a delete call for good: its handles and its slot are freed */
static void
release_delete_call(Pipeline *pipeline, DeleteCall *call)
{
	for (int i = 0; i < call->count; i++)
		pfree(call->handles[i]);
	call->count = 0;
	pipeline->ndelete_calls--;
}

/* (again) send the delete call in the given slot */
static void
send_delete_call(Pipeline *pipeline, int slot)
{
	DeleteCall *call = &pipeline->delete_calls[slot];

	call->waiting = false;
	call->sent_at = GetCurrentTimestamp();
	sqs_start_delete(pipeline->client, call->handles, call->count, slot);
}

/* is a delete call on the wire? */
static bool
delete_call_in_flight(Pipeline *pipeline)
{
	for (int i = 0; i < pipeline->config->max_inflight; i++)
		if (pipeline->delete_calls[i].count > 0 && !pipeline->delete_calls[i].waiting)
			return true;
	return false;
}

/* remove the first count receipt handles (taken or freed) from the queue */
static void
consume_delete_queue(Pipeline *pipeline, int count)
{
	if (count == 0)
		return;
	pipeline->ndelete_queue -= count;
	if (pipeline->ndelete_queue > 0)
		memmove(pipeline->delete_queue, pipeline->delete_queue + count,
				sizeof(PendingDelete) * pipeline->ndelete_queue);
	else
	{
		/* the queue's array can go too */
		pfree(pipeline->delete_queue);
		pipeline->delete_queue = NULL;
		pipeline->delete_queue_capacity = 0;
	}
}

/*
 * Give up the deletes not sent yet and the calls waiting to be sent again:
 * their messages were stored, and come back after the visibility timeout,
 * to be skipped as duplicates and deleted then.
 */
static void
give_up_held_deletes(Pipeline *pipeline)
{
	int			failed = pipeline->ndelete_queue;

	for (int i = 0; i < pipeline->ndelete_queue; i++)
		pfree(pipeline->delete_queue[i].receipt_handle);
	consume_delete_queue(pipeline, pipeline->ndelete_queue);
	for (int i = 0; i < pipeline->config->max_inflight; i++)
	{
		DeleteCall *call = &pipeline->delete_calls[i];

		if (call->count > 0 && call->waiting)
		{
			failed += call->count;
			release_delete_call(pipeline, call);
		}
	}
	if (failed == 0)
		return;
	pipeline->delete_failures += failed;
	stats_count_deletes(pipeline->slot, 0, failed);
}

/*
 * While SQS refuses deletes, send one refused call again once its backoff
 * is over, and nothing else until it is answered.
 */
static void
probe_refused_deletes(Pipeline *pipeline)
{
	TimestampTz now = GetCurrentTimestamp();

	if (delete_call_in_flight(pipeline))
		return;
	for (int i = 0; i < pipeline->config->max_inflight; i++)
	{
		DeleteCall *call = &pipeline->delete_calls[i];

		if (call->count > 0 && call->due <= now)
		{
			send_delete_call(pipeline, i);
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
issue_deletes(Pipeline *pipeline)
{
	XLogRecPtr	flushed;
	XLogRecPtr	deletable;
	TimestampTz now = GetCurrentTimestamp();
	int			start = 0;
	int			slot;

	if (pipeline->delete_error)
	{
		/* a drain whose deletes failed for good sends no more */
		give_up_held_deletes(pipeline);
		return;
	}
	if (pipeline->delete_refusals > 0 && pipeline->ndelete_calls > 0)
	{
		probe_refused_deletes(pipeline);
		return;
	}
	/* the refused calls are gone (given up): a queued one goes instead */
	if (pipeline->delete_refusals > 0 && pipeline->refused_until > now)
		return;

	for (int i = 0; i < pipeline->config->max_inflight; i++)
	{
		DeleteCall *call = &pipeline->delete_calls[i];

		if (call->count > 0 && call->waiting && call->due <= now)
			send_delete_call(pipeline, i);
	}

	flushed = GetFlushRecPtr(NULL);

	while (pipeline->ndelete_queue - start > 0 &&
		   (slot = free_delete_call(pipeline)) >= 0)
	{
		PendingDelete *head = &pipeline->delete_queue[start];
		DeleteCall *call = &pipeline->delete_calls[slot];
		int			n = 0;

		if (head->durable_at > flushed)
		{
			/*
			 * While deletes are behind, receiving waits for them: a wait for
			 * the WAL writer would leave the process idle.  One flush serves
			 * every commit queued.
			 */
			if (!deletes_behind(pipeline) &&
				!TimestampDifferenceExceeds(head->queued_at, GetCurrentTimestamp(),
											DELETE_FLUSH_WAIT_MS))
				break;
			XLogFlush(pipeline->delete_queue[pipeline->ndelete_queue - 1].durable_at);
			flushed = GetFlushRecPtr(NULL);
		}
		deletable = deletable_upto(pipeline, flushed);
		if (head->durable_at > deletable)
			break;
		/* the call takes the handles over from the queue */
		while (n < DELETE_BATCH_MAX && start < pipeline->ndelete_queue &&
			   pipeline->delete_queue[start].durable_at <= deletable)
			call->handles[n++] = pipeline->delete_queue[start++].receipt_handle;
		call->count = n;
		call->attempt = 1;
		pipeline->ndelete_calls++;
		send_delete_call(pipeline, slot);
		/* while SQS refuses deletes, one call finds out if it still does */
		if (pipeline->delete_refusals > 0)
			break;
	}
	consume_delete_queue(pipeline, start);
}

/*
 * When the next failed request waiting out its backoff is due to be sent
 * again, or 0 if none waits: a delete call, or, with_receives, a receive
 * (unless receiving is paused, which would leave it waiting anyway).
 */
static TimestampTz
next_retry_due(Pipeline *pipeline, bool with_receives)
{
	TimestampTz due = 0;

	if (with_receives && !receiving_paused(pipeline))
		for (int i = 0; i < pipeline->nretries; i++)
			if (due == 0 || pipeline->retries[i].due < due)
				due = pipeline->retries[i].due;
	/* refused deletes go again one at a time (probe_refused_deletes) */
	if (pipeline->delete_refusals > 0 && delete_call_in_flight(pipeline))
		return due;
	if (pipeline->delete_refusals > 0 && pipeline->ndelete_calls == 0 &&
		pipeline->ndelete_queue > 0 && (due == 0 || pipeline->refused_until < due))
		due = pipeline->refused_until;
	for (int i = 0; i < pipeline->config->max_inflight; i++)
	{
		DeleteCall *call = &pipeline->delete_calls[i];

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
 * pipeline's: returns false.
 */
static bool
retry_receive(Pipeline *pipeline, SqsResult *result)
{
	SqsError   *error = result->error;
	int			attempt = result->tag;	/* receives are tagged so */
	ReceiveRetry *retry;

	stats_record_error(pipeline->slot, error->message, true);
	/* it was pending: its place is free for the retry */
	Assert(pipeline->receives_pending + pipeline->nretries < pipeline->config->max_inflight);
	if (error->too_large && result->requested > 1)
	{
		retry = &pipeline->retries[pipeline->nretries++];
		retry->due = 0;
		retry->attempt = attempt;
		retry->max_messages = result->requested / 2;
		pipeline->reserved -= result->requested - retry->max_messages;
	}
	else if (error->transient && !error->too_large &&
			 attempt < pipeline->options.max_attempts)
	{
		retry = &pipeline->retries[pipeline->nretries++];
		retry->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 pipeline_backoff_ms(attempt,
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
skipped_messages(Pipeline *pipeline, int nskipped)
{
	char	   *message = psprintf(ngettext("SQS returned %d message whose ReceiptHandle is longer than %d characters",
											"SQS returned %d messages whose ReceiptHandle is longer than %d characters",
											nskipped),
								   nskipped, SQS_MAX_RECEIPT_HANDLE_CHARS);

	stats_record_error(pipeline->slot, message, true);
	/* translated above, for the stats too */
	ereport(pipeline->options.delete_log_level,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg_internal("%s", message),
			 errdetail_plural("It cannot be deleted, so it was left in the queue, neither stored nor dead-lettered; the queue's redrive policy decides what becomes of it.",
							  "They cannot be deleted, so they were left in the queue, neither stored nor dead-lettered; the queue's redrive policy decides what becomes of them.",
							  nskipped)));
}

/* how long a received message waits before its visibility is extended */
static long
extend_after_ms(Pipeline *pipeline)
{
	return pipeline->config->visibility_timeout * 1000L / 4;
}

/*
 * How long a store may wait for a lock: a quarter of the visibility
 * timeout, at least a second.  A store holds the process, so nothing can be
 * extended meanwhile; with a quarter used before the last extension and a
 * quarter at most waiting for each lock, the batch commits and its deletes
 * go out well before SQS could deliver its messages again.
 */
int
pipeline_store_lock_timeout_ms(const SqsConfig *config)
{
	return Max(config->visibility_timeout * 1000 / 4, 1000);
}

static void
append_messages(Pipeline *pipeline, SqsResult *result)
{
	if (result->nmessages == 0)
		return;
	if (pipeline->nbatch + result->nmessages > pipeline->batch_capacity)
	{
		int			capacity = Max(pipeline->batch_capacity * 2,
								   pipeline->nbatch + result->nmessages);

		capacity = Max(capacity, 64);
		pipeline->batch = pipeline->batch ?
			repalloc(pipeline->batch, sizeof(SqsMessage) * capacity) :
			MemoryContextAlloc(pipeline->batch_context, sizeof(SqsMessage) * capacity);
		pipeline->visible_since = pipeline->visible_since ?
			repalloc(pipeline->visible_since, sizeof(TimestampTz) * capacity) :
			MemoryContextAlloc(pipeline->batch_context, sizeof(TimestampTz) * capacity);
		pipeline->batch_capacity = capacity;
	}
	if (pipeline->nbatch == 0)
	{
		pipeline->batch_started = GetCurrentTimestamp();
		pipeline->extension_due = DT_NOEND;
	}
	memcpy(pipeline->batch + pipeline->nbatch, result->messages,
		   sizeof(SqsMessage) * result->nmessages);
	for (int i = 0; i < result->nmessages; i++)
	{
		TimestampTz since = result->messages[i].received_at;

		pipeline->nbatch_bytes += result->messages[i].body_len;
		pipeline->visible_since[pipeline->nbatch + i] = since;
		pipeline->extension_due = Min(pipeline->extension_due,
									  TimestampTzPlusMilliseconds(since, extend_after_ms(pipeline)));
	}
	pipeline->nbatch += result->nmessages;
}

/*
 * Extend the visibility of the batch's messages that have used a quarter of
 * it, and return when the next extension is due (DT_NOEND: none).
 */
static TimestampTz
extend_visibility(Pipeline *pipeline)
{
	TimestampTz now;
	long		after_ms = extend_after_ms(pipeline);
	char	   *handles[CHANGE_VISIBILITY_BATCH_MAX];
	int			n = 0;

	if (pipeline->nbatch == 0)
		return DT_NOEND;
	now = GetCurrentTimestamp();
	if (pipeline->extension_due > now)
		return pipeline->extension_due;

	pipeline->extension_due = DT_NOEND;
	for (int i = 0; i < pipeline->nbatch; i++)
	{
		TimestampTz due = TimestampTzPlusMilliseconds(pipeline->visible_since[i], after_ms);

		if (due > now)
		{
			pipeline->extension_due = Min(pipeline->extension_due, due);
			continue;
		}
		handles[n++] = pipeline->batch[i].receipt_handle;
		pipeline->visible_since[i] = now;
		if (n == CHANGE_VISIBILITY_BATCH_MAX)
		{
			sqs_start_change_visibility(pipeline->client, handles, n,
										pipeline->config->visibility_timeout);
			pipeline->extension_due = Min(pipeline->extension_due,
										  TimestampTzPlusMilliseconds(now, after_ms));
			n = 0;
		}
	}
	if (n > 0)
	{
		sqs_start_change_visibility(pipeline->client, handles, n,
									pipeline->config->visibility_timeout);
		pipeline->extension_due = Min(pipeline->extension_due,
									  TimestampTzPlusMilliseconds(now, after_ms));
	}
	return pipeline->extension_due;
}

static void
handle_extension_result(Pipeline *pipeline, SqsResult *result)
{
	int			failed = result->error ? result->requested : result->nfailed;

	if (failed == 0)
		return;
	ereport(pipeline->options.delete_log_level,
			(result->error ? errcode(result->error->sqlerrcode) : 0,
			 errmsg("could not extend the visibility of %d received messages: %s",
					failed,
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
	return error->hint;
}

/*
 * A delete refused for good, in a worker: the call keeps its handles and
 * waits, and receiving stops, until the backoff of this refusal is over.
 * Calls sent before the last refusal was seen belong to its step; a call
 * sent after it (the one sent again) starts the next, longer one, which is
 * logged once.
 */
static void
hold_refused_call(Pipeline *pipeline, DeleteCall *call, const SqsError *error)
{
	TimestampTz now = GetCurrentTimestamp();
	long		delay_ms;
	int			held;

	call->waiting = true;
	call->due = pipeline->refused_until;
	if (pipeline->delete_refusals > 0 && call->sent_at < pipeline->refused_at)
		return;

	pipeline->delete_refusals++;
	delay_ms = pipeline_backoff_ms(pipeline->delete_refusals, REFUSED_BACKOFF_MAX_MS);
	pipeline->refused_at = now;
	pipeline->refused_until = TimestampTzPlusMilliseconds(now, delay_ms);
	for (int i = 0; i < pipeline->config->max_inflight; i++)
	{
		DeleteCall *held_call = &pipeline->delete_calls[i];

		if (held_call->count > 0 && held_call->waiting)
			held_call->due = Max(held_call->due, pipeline->refused_until);
	}
	held = held_deletes(pipeline);
	ereport(pipeline->options.delete_log_level,
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
handle_delete_result(Pipeline *pipeline, SqsResult *result)
{
	DeleteCall *call = &pipeline->delete_calls[result->tag];
	int			failed = result->error ? result->requested : result->nfailed;

	/* what to do first: the statistics keep only the start of the text */
	if (result->error && delete_refused(result->error) &&
		delete_failure_hint(result->error))
	{
		char	   *text = psprintf(_("SQS refused to delete stored messages. %s SQS said: %s"),
									delete_failure_hint(result->error),
									result->error->message);

		stats_record_error(pipeline->slot, text, true);
		pfree(text);
	}
	else if (result->error)
		stats_record_error(pipeline->slot, result->error->message, true);
	if (result->error && delete_refused(result->error) &&
		!pipeline->options.end_on_failed_deletes && !pipeline->finishing)
	{
		hold_refused_call(pipeline, call, result->error);
		return;
	}
	if (result->error && result->error->transient &&
		call->attempt < pipeline->options.max_attempts &&
		pipeline->delete_error == NULL)
	{
		call->waiting = true;
		call->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												pipeline_backoff_ms(call->attempt,
																	RETRY_BACKOFF_MAX_MS));
		call->attempt++;
		elog(DEBUG1, "sqs_ingest: SQS DeleteMessageBatch failed (attempt %d), retrying: %s",
			 call->attempt - 1, result->error->message);
		return;
	}
	release_delete_call(pipeline, call);
	if (result->error == NULL && pipeline->delete_refusals > 0)
	{
		ereport(pipeline->options.delete_log_level,
				(errmsg("SQS accepts deletes again after %d refusals: receiving resumes",
						pipeline->delete_refusals)));
		pipeline->delete_refusals = 0;
	}

	/*
	 * A drain ends once deletes are refused or go unanswered through their
	 * attempts; a garbled answer to one call stays that call's.
	 */
	if (result->error && pipeline->options.end_on_failed_deletes &&
		pipeline->delete_error == NULL &&
		(result->error->transient || delete_refused(result->error)))
		pipeline->delete_error = sqs_copy_error(pipeline->delete_context,
												result->error);

	pipeline->deleted += result->requested - failed;
	pipeline->delete_failures += failed;
	stats_count_deletes(pipeline->slot, result->requested - failed, failed);
	if (failed == 0)
		return;

	/* the messages come back after the visibility timeout, as duplicates */
	if (result->error)
		ereport(pipeline->options.delete_log_level,
				(errcode(result->error->sqlerrcode),
				 errmsg("could not delete %d stored messages from SQS: %s",
						failed, result->error->message),
				 errdetail("They were stored; when SQS delivers them again they will be skipped as duplicates and deleted.")));
	else
		ereport(pipeline->options.delete_log_level,
				(errmsg("could not delete %d of %d stored messages from SQS: %s",
						failed, result->requested,
						result->failure ? result->failure : "unknown error"),
				 errdetail("They were stored; when SQS delivers them again they will be skipped as duplicates and deleted.")));
}

/*
 * Have queued or unanswered deletes been waiting so long that they must go
 * out before the next store?  Then the WAL they wait for is flushed now.
 */
static bool
deletes_urgent(Pipeline *pipeline)
{
	/* refused deletes will not go out by waiting for them */
	if (pipeline->delete_refusals > 0)
		return false;
	if (pipeline->ndelete_queue == 0 &&
		pipeline->ndelete_calls == 0)
	{
		pipeline->deletes_urgent_at = DT_NOEND;
		return false;
	}
	if (pipeline->deletes_urgent_at > GetCurrentTimestamp())
		return false;
	if (pipeline->ndelete_queue > 0)
	{
		XLogFlush(pipeline->delete_queue[pipeline->ndelete_queue - 1].durable_at);
		issue_deletes(pipeline);
	}
	/* deletes held back for the standbys cannot go first: they hold up nothing */
	return pipeline->ndelete_calls > 0 || !deletes_wait_for_flush(pipeline);
}

/* has the drain received all it will? */
static bool
finished_receiving(Pipeline *pipeline)
{
	const PipelineOptions *options = &pipeline->options;

	if (!options->stop_when_empty || pipeline->receives_pending > 0)
		return false;
	/* failed receives waiting to go again are not sent once deletes fail */
	if (pipeline->delete_error)
		return true;
	if (pipeline->nretries > 0)
		return false;
	return pipeline->saw_empty ||
		(options->max_messages >= 0 && pipeline->received >= options->max_messages);
}

/*
 * Take an answer in: a receive's messages join the batch (a receive that
 * failed is tried again, or its error becomes the pipeline's), a delete's
 * or an extension's outcome is counted.
 */
static void
handle_result(Pipeline *pipeline, SqsResult *result)
{
	switch (result->action)
	{
		case SQS_RECEIVE:
			pipeline->receives_pending--;
			if (result->error && retry_receive(pipeline, result))
				break;
			pipeline->reserved -= result->requested;
			if (result->error)
			{
				pipeline->error = result->error;
				break;
			}
			pipeline->receives_ok++;
			if (result->nskipped > 0)
				skipped_messages(pipeline, result->nskipped);
			if (result->nmessages == 0 && result->nskipped == 0)
				pipeline->saw_empty = true;
			pipeline->received += result->nmessages;
			stats_count_received(pipeline->slot, result->nmessages);
			append_messages(pipeline, result);
			break;
		case SQS_DELETE_BATCH:
			handle_delete_result(pipeline, result);
			break;
		case SQS_CHANGE_VISIBILITY_BATCH:
			handle_extension_result(pipeline, result);
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
PipelineEvent
pipeline_wait(Pipeline *pipeline, long timeout_ms)
{
	TimestampTz deadline = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	/* a receive failed for good while the last batch was stored */
	if (pipeline->error)
		return PIPELINE_FAILED;

	for (;;)
	{
		long		wait_ms = -1;
		SqsResult  *result;
		MemoryContext old;
		TimestampTz extension_due;
		bool		extending;

		issue_deletes(pipeline);
		issue_receives(pipeline);
		extension_due = extend_visibility(pipeline);

		/*
		 * A store holds the process: extensions, and deletes whose messages
		 * could come back during the store, must be answered first.
		 */
		extending = sqs_inflight(pipeline->client, SQS_CHANGE_VISIBILITY_BATCH) > 0 ||
			deletes_urgent(pipeline);

		if (!extending)
		{
			if (batch_full(pipeline))
				return PIPELINE_BATCH_READY;
			if (finished_receiving(pipeline))
				return pipeline->nbatch > 0 ? PIPELINE_BATCH_READY : PIPELINE_DONE;
		}

		if (pipeline->nbatch > 0 && !extending)
		{
			TimestampTz due = TimestampTzPlusMilliseconds(pipeline->batch_started,
														  pipeline->options.batch_timeout_ms);

			wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
			if (wait_ms <= 0)
				return PIPELINE_BATCH_READY;
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
				return PIPELINE_IDLE;
			wait_ms = wait_ms < 0 ? left : Min(wait_ms, left);
		}
		if (deletes_wait_for_flush(pipeline))
			wait_ms = wait_ms < 0 ? DELETE_FLUSH_POLL_MS : Min(wait_ms, DELETE_FLUSH_POLL_MS);
		if (next_retry_due(pipeline, true) != 0)
		{
			long		until_retry = ms_until(next_retry_due(pipeline, true));

			wait_ms = wait_ms < 0 ? until_retry : Min(wait_ms, until_retry);
		}

		/* while every receive waits out a backoff, the stats say so */
		stats_set_state(pipeline->slot,
						(pipeline->receives_pending == 0 && pipeline->nretries > 0) ||
						pipeline->delete_refusals > 0 ?
						INGEST_BACKING_OFF : INGEST_POLLING);

		/* results, and the bodies they point into, belong to the batch */
		old = MemoryContextSwitchTo(pipeline->batch_context);
		result = sqs_next_result(pipeline->client, 0);
		MemoryContextSwitchTo(old);

		/*
		 * Nothing came, and the next batch's commit would put the deletes
		 * behind (receiving would pause): the process flushes the WAL now,
		 * in time it would spend waiting, rather than after the WAL writer.
		 */
		if (result == NULL && pipeline->ndelete_queue > 0 &&
			pipeline->delete_queue[0].durable_at > GetFlushRecPtr(NULL) &&
			held_deletes(pipeline) + pipeline->options.batch_size >=
			held_deletes_cap(pipeline))
		{
			XLogFlush(pipeline->delete_queue[pipeline->ndelete_queue - 1].durable_at);
			issue_deletes(pipeline);
			continue;
		}
		if (result == NULL && wait_ms != 0)
		{
			old = MemoryContextSwitchTo(pipeline->batch_context);
			result = sqs_next_result(pipeline->client, wait_ms);
			MemoryContextSwitchTo(old);
		}

		if (result == NULL)
		{
			/* a filling batch, a delete or a retry may be due: the loop decides */
			if (pipeline->nbatch > 0 || deletes_wait_for_flush(pipeline) ||
				next_retry_due(pipeline, true) != 0)
				continue;
			return PIPELINE_IDLE;
		}

		handle_result(pipeline, result);
		if (pipeline->error)
			return PIPELINE_FAILED;
		if (pipeline->nbatch == 0)
			MemoryContextReset(pipeline->batch_context);
	}
}

/*
 * Called by the sink now and then while a batch is stored, at most every
 * STORE_LOOK_INTERVAL_MS: the answers that came in are taken (a receive's
 * messages into the next batch, until it is full: the rest wait for the
 * batch after), and receives, and the deletes of commits already flushed,
 * are started, all without waiting, so that requests stay in flight while
 * the process stores.  A receive failing for good ends the pipeline after
 * the store (pipeline_wait()).
 */
static void
look_during_store(void *arg)
{
	Pipeline   *pipeline = arg;
	MemoryContext old;
	SqsResult  *result;

	if (!TimestampDifferenceExceeds(pipeline->looked_at, GetCurrentTimestamp(),
									STORE_LOOK_INTERVAL_MS))
		return;
	old = MemoryContextSwitchTo(pipeline->batch_context);
	while (!batch_full(pipeline) &&
		   (result = sqs_next_result(pipeline->client, 0)) != NULL)
		handle_result(pipeline, result);
	issue_deletes(pipeline);
	issue_receives(pipeline);
	MemoryContextSwitchTo(old);
	pipeline->looked_at = GetCurrentTimestamp();
}

/*
 * Store the current batch in the caller's transaction.  The batch is handed
 * over first, with its memory, so that what comes in during the store fills
 * the next one.  The caller commits and then calls
 * pipeline_queue_batch_deletes().
 */
void
pipeline_store(Pipeline *pipeline, BatchCounts *counts)
{
	MemoryContext filled = pipeline->batch_context;
	MemoryContext old;

	Assert(pipeline->nstored == 0);
	pipeline->batch_context = pipeline->store_context;
	pipeline->store_context = filled;
	pipeline->stored = pipeline->batch;
	pipeline->stored_visible_since = pipeline->visible_since;
	pipeline->nstored = pipeline->nbatch;
	pipeline->batch = NULL;
	pipeline->visible_since = NULL;
	pipeline->nbatch = 0;
	pipeline->batch_capacity = 0;
	pipeline->nbatch_bytes = 0;
	pipeline->looked_at = GetCurrentTimestamp();

	old = MemoryContextSwitchTo(pipeline->store_context);
	stats_set_state(pipeline->slot, INGEST_STORING);
	sink_store_batch(pipeline->sink, pipeline->stored, pipeline->nstored,
					 pipeline->config->queue_url, counts,
					 look_during_store, pipeline);
	stats_count_batch(pipeline->slot, counts);
	MemoryContextSwitchTo(old);
}

/*
 * Queue receipt handles for deletion once WAL is flushed up to durable_at
 * (the end of the commit that stored them).  The handles are copied.
 */
static void
queue_deletes(Pipeline *pipeline, char **receipt_handles, int count,
			  XLogRecPtr durable_at)
{
	TimestampTz now = GetCurrentTimestamp();

	if (count == 0)
		return;
	if (pipeline->ndelete_queue + count > pipeline->delete_queue_capacity)
	{
		int			capacity = Max(pipeline->delete_queue_capacity * 2,
								   pipeline->ndelete_queue + count);

		pipeline->delete_queue = pipeline->delete_queue ?
			repalloc(pipeline->delete_queue, sizeof(PendingDelete) * capacity) :
			MemoryContextAlloc(pipeline->delete_context, sizeof(PendingDelete) * capacity);
		pipeline->delete_queue_capacity = capacity;
	}
	for (int i = 0; i < count; i++)
	{
		PendingDelete *entry = &pipeline->delete_queue[pipeline->ndelete_queue++];

		entry->receipt_handle = MemoryContextStrdup(pipeline->delete_context,
													receipt_handles[i]);
		entry->durable_at = durable_at;
		entry->queued_at = now;
	}
}

/* queue the deletes of the batch just committed */
void
pipeline_queue_batch_deletes(Pipeline *pipeline, XLogRecPtr durable_at)
{
	char	  **handles = palloc(sizeof(char *) * Max(pipeline->nstored, 1));

	for (int i = 0; i < pipeline->nstored; i++)
	{
		handles[i] = pipeline->stored[i].receipt_handle;
		pipeline->deletes_urgent_at =
			Min(pipeline->deletes_urgent_at,
				TimestampTzPlusMilliseconds(pipeline->stored_visible_since[i],
											extend_after_ms(pipeline)));
	}
	queue_deletes(pipeline, handles, pipeline->nstored, durable_at);
	pfree(handles);
}

/* forget the batch stored and the memory of the results behind it */
void
pipeline_reset_batch(Pipeline *pipeline)
{
	pipeline->stored = NULL;
	pipeline->stored_visible_since = NULL;
	pipeline->nstored = 0;
	MemoryContextReset(pipeline->store_context);
}

/*
 * In a flush, deletes waiting for the standbys are looked at again every
 * DELETE_FLUSH_POLL_MS: returns how long the flush may wait for an answer
 * (wait_ms if no delete waits).  Once the visibility timeout of the last
 * batch queued has passed, they are given up: SQS delivers their messages
 * again, and the ledger skips them as duplicates.
 */
static long
standby_wait_in_flush(Pipeline *pipeline, long wait_ms)
{
	PendingDelete *last;
	XLogRecPtr	deletable;
	int			keep = 0;
	int			dropped;

	if (!deletes_wait_for_flush(pipeline))
		return wait_ms;
	last = &pipeline->delete_queue[pipeline->ndelete_queue - 1];
	if (!TimestampDifferenceExceeds(last->queued_at, GetCurrentTimestamp(),
									pipeline->config->visibility_timeout * 1000))
		return wait_ms < 0 ? DELETE_FLUSH_POLL_MS : Min(wait_ms, DELETE_FLUSH_POLL_MS);

	/* the queue is in commit order: what still waits is its tail */
	deletable = deletable_upto(pipeline, GetFlushRecPtr(NULL));
	while (keep < pipeline->ndelete_queue &&
		   pipeline->delete_queue[keep].durable_at <= deletable)
		keep++;
	dropped = pipeline->ndelete_queue - keep;
	for (int i = keep; i < pipeline->ndelete_queue; i++)
		pfree(pipeline->delete_queue[i].receipt_handle);
	pipeline->ndelete_queue = keep;
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg_plural("%d stored message was not deleted from SQS: no standby flushed its commit within the visibility timeout",
						   "%d stored messages were not deleted from SQS: no standby flushed their commit within the visibility timeout",
						   dropped, dropped),
			 errdetail("sqs_ingest.delete_after is \"standby_flush\"; SQS will deliver them again, and they will then be skipped as duplicates and deleted.")));
	return wait_ms;
}

/*
 * A result taken outside pipeline_wait(), while the pipeline finishes or
 * prepares a store: a receive still in flight brings its messages to the
 * batch, failed or not it asks for nothing more.
 */
static void
take_result(Pipeline *pipeline, SqsResult *result)
{
	if (result->action == SQS_DELETE_BATCH)
		handle_delete_result(pipeline, result);
	else if (result->action == SQS_CHANGE_VISIBILITY_BATCH)
		handle_extension_result(pipeline, result);
	else if (result->action == SQS_RECEIVE)
	{
		pipeline->receives_pending--;
		pipeline->reserved -= result->requested;
		if (result->error == NULL)
		{
			pipeline->received += result->nmessages;
			stats_count_received(pipeline->slot, result->nmessages);
			append_messages(pipeline, result);
		}
	}
}

/*
 * Before a store that pipeline_wait() did not ask for (the batch left when
 * the pipeline finishes, or stored before a failed receive's error): the
 * messages that have used a quarter of their visibility are extended, and
 * SQS has confirmed, before the store begins, as pipeline_wait() does.
 */
void
pipeline_prepare_store(Pipeline *pipeline)
{
	for (;;)
	{
		SqsResult  *result;
		MemoryContext old;

		(void) extend_visibility(pipeline);
		if (sqs_inflight(pipeline->client, SQS_CHANGE_VISIBILITY_BATCH) == 0)
			return;
		old = MemoryContextSwitchTo(pipeline->batch_context);
		result = sqs_next_result(pipeline->client, -1);
		MemoryContextSwitchTo(old);
		if (result != NULL)
			take_result(pipeline, result);
	}
}

/*
 * Wait until every queued delete has been sent and answered, before the
 * pipeline goes.  Deletes SQS refuses are not waited for: they are given
 * up.
 */
void
pipeline_flush_deletes(Pipeline *pipeline)
{
	stats_set_state(pipeline->slot, INGEST_DELETING);
	pipeline->finishing = true;
	if (pipeline->delete_refusals > 0)
		give_up_held_deletes(pipeline);
	if (pipeline->ndelete_queue > 0)
		XLogFlush(pipeline->delete_queue[pipeline->ndelete_queue - 1].durable_at);
	while (pipeline->ndelete_queue > 0 || pipeline->ndelete_calls > 0)
	{
		SqsResult  *result;
		MemoryContext old;
		TimestampTz due;

		issue_deletes(pipeline);
		due = next_retry_due(pipeline, false);
		old = MemoryContextSwitchTo(pipeline->batch_context);
		result = sqs_next_result(pipeline->client,
								 standby_wait_in_flush(pipeline, due ? ms_until(due) : -1));
		MemoryContextSwitchTo(old);
		/* a receive still in flight: its messages are kept for a batch */
		if (result != NULL)
			take_result(pipeline, result);
	}
}

/*
 * End a drain whose deletes failed for good: count stored messages were
 * not deleted, of stored received and committed.
 */
void
pipeline_report_undeleted(const SqsError *error, int64 count, int64 stored)
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
