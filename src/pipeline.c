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
 * durable.  The worker and sqs_ingest_drain() differ only in when they
 * commit and what they do between batches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "mask.h"
#include "pipeline.h"
#include "stats.h"

/* messages a DeleteMessageBatch call carries at most */
#define DELETE_BATCH_MAX 10

/* messages a ReceiveMessage call returns at most */
#define RECEIVE_BATCH_MAX 10

/*
 * How long a delete waits for the WAL writer to flush the commit that
 * stored its message before the pipeline flushes it itself, and how often
 * it looks meanwhile.
 */
#define DELETE_FLUSH_WAIT_MS 50
#define DELETE_FLUSH_POLL_MS 10

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
	pipeline->client = sqs_client_create(config);
	pipeline->batch_context = AllocSetContextCreate(CurrentMemoryContext,
													"sqs_ingest batch",
													ALLOCSET_DEFAULT_SIZES);
	pipeline->delete_context = AllocSetContextCreate(CurrentMemoryContext,
													 "sqs_ingest deletes",
													 ALLOCSET_DEFAULT_SIZES);
	pipeline->receiving = true;
	return pipeline;
}

void
pipeline_destroy(Pipeline *pipeline)
{
	sqs_client_destroy(pipeline->client);
	MemoryContextDelete(pipeline->batch_context);
	MemoryContextDelete(pipeline->delete_context);
	pfree(pipeline);
}

/* start as many receives as the limits allow */
static void
issue_receives(Pipeline *pipeline)
{
	const PipelineOptions *options = &pipeline->options;

	while (pipeline->receiving &&
		   sqs_inflight(pipeline->client, SQS_RECEIVE) < pipeline->config->max_inflight)
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
		/* do not let unstored messages pile up beyond two batches */
		if (pipeline->nbatch + pipeline->reserved >= 2 * options->batch_size)
			break;
		sqs_start_receive(pipeline->client, want, options->wait_time_seconds);
		pipeline->reserved += want;
	}
}

/* is the head of the delete queue waiting for a WAL flush? */
static bool
deletes_wait_for_flush(Pipeline *pipeline)
{
	return pipeline->ndelete_queue > 0 &&
		pipeline->delete_queue[0].durable_at > GetFlushRecPtr(NULL);
}

/*
 * Start deletes for queued receipt handles whose commit is on disk, as
 * connections allow.  A commit the WAL writer has not flushed after a
 * short while is flushed here: by then the receives are in flight, so the
 * wait costs no throughput.
 */
static void
issue_deletes(Pipeline *pipeline)
{
	XLogRecPtr	flushed = GetFlushRecPtr(NULL);
	int			start = 0;

	while (pipeline->ndelete_queue - start > 0 &&
		   sqs_inflight(pipeline->client, SQS_DELETE_BATCH) < pipeline->config->max_inflight)
	{
		PendingDelete *head = &pipeline->delete_queue[start];
		char	   *handles[DELETE_BATCH_MAX];
		int			n = 0;

		if (head->durable_at > flushed)
		{
			if (!TimestampDifferenceExceeds(head->queued_at, GetCurrentTimestamp(),
											DELETE_FLUSH_WAIT_MS))
				break;
			XLogFlush(head->durable_at);
			flushed = GetFlushRecPtr(NULL);
		}
		while (n < DELETE_BATCH_MAX && start < pipeline->ndelete_queue &&
			   pipeline->delete_queue[start].durable_at <= flushed)
			handles[n++] = pipeline->delete_queue[start++].receipt_handle;
		sqs_start_delete(pipeline->client, handles, n);
	}
	if (start == 0)
		return;
	pipeline->ndelete_queue -= start;
	if (pipeline->ndelete_queue > 0)
		memmove(pipeline->delete_queue, pipeline->delete_queue + start,
				sizeof(PendingDelete) * pipeline->ndelete_queue);
	else
	{
		/* the request bodies hold copies: the handles can go */
		MemoryContextReset(pipeline->delete_context);
		pipeline->delete_queue = NULL;
		pipeline->delete_queue_capacity = 0;
	}
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
		pipeline->batch_capacity = capacity;
	}
	if (pipeline->nbatch == 0)
		pipeline->batch_started = GetCurrentTimestamp();
	memcpy(pipeline->batch + pipeline->nbatch, result->messages,
		   sizeof(SqsMessage) * result->nmessages);
	pipeline->nbatch += result->nmessages;
}

static void
handle_delete_result(Pipeline *pipeline, SqsResult *result)
{
	int			failed = result->error ? result->requested : result->nfailed;

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

/* has the drain received all it will? */
static bool
finished_receiving(Pipeline *pipeline)
{
	const PipelineOptions *options = &pipeline->options;

	if (!options->stop_when_empty ||
		sqs_inflight(pipeline->client, SQS_RECEIVE) > 0)
		return false;
	return pipeline->saw_empty ||
		(options->max_messages >= 0 && pipeline->received >= options->max_messages);
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

	for (;;)
	{
		long		wait_ms = -1;
		SqsResult  *result;
		MemoryContext old;

		issue_deletes(pipeline);
		issue_receives(pipeline);

		if (pipeline->nbatch >= pipeline->options.batch_size)
			return PIPELINE_BATCH_READY;
		if (finished_receiving(pipeline))
			return pipeline->nbatch > 0 ? PIPELINE_BATCH_READY : PIPELINE_DONE;

		if (pipeline->nbatch > 0)
		{
			TimestampTz due = TimestampTzPlusMilliseconds(pipeline->batch_started,
														  pipeline->options.batch_timeout_ms);

			wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
			if (wait_ms <= 0)
				return PIPELINE_BATCH_READY;
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

		/* results, and the bodies they point into, belong to the batch */
		old = MemoryContextSwitchTo(pipeline->batch_context);
		result = sqs_next_result(pipeline->client, wait_ms);
		MemoryContextSwitchTo(old);

		if (result == NULL)
		{
			/* a filling batch or a delete may be due: the loop decides */
			if (pipeline->nbatch > 0 || deletes_wait_for_flush(pipeline))
				continue;
			return PIPELINE_IDLE;
		}

		switch (result->action)
		{
			case SQS_RECEIVE:
				pipeline->reserved -= result->requested;
				if (result->error)
				{
					pipeline->error = result->error;
					return PIPELINE_FAILED;
				}
				pipeline->receives_ok++;
				if (result->ncorrupt > 0)
					ereport(pipeline->options.delete_log_level,
							(errmsg("SQS returned %d messages whose body does not match its MD5",
									result->ncorrupt),
							 errdetail("They were left in the queue, which will deliver them again.")));
				if (result->nmessages == 0 && result->ncorrupt == 0)
					pipeline->saw_empty = true;
				pipeline->received += result->nmessages;
				stats_count_received(pipeline->slot, result->nmessages);
				append_messages(pipeline, result);
				break;
			case SQS_DELETE_BATCH:
				handle_delete_result(pipeline, result);
				break;
			case SQS_GET_ATTRIBUTES:
				break;
		}
		if (pipeline->nbatch == 0)
			MemoryContextReset(pipeline->batch_context);
	}
}

/*
 * Store the current batch in the caller's transaction.  The caller commits
 * and then calls pipeline_queue_batch_deletes(), or hands the handles to
 * whatever deletes them after its commit.
 */
void
pipeline_store(Pipeline *pipeline, BatchCounts *counts)
{
	MemoryContext old = MemoryContextSwitchTo(pipeline->batch_context);

	stats_set_state(pipeline->slot, INGEST_STORING);
	mask_prepare();
	sink_store_batch(pipeline->batch, pipeline->nbatch,
					 pipeline->config->queue_url, counts);
	stats_count_batch(pipeline->slot, counts);
	MemoryContextSwitchTo(old);
}

/*
 * Queue receipt handles for deletion once WAL is flushed up to durable_at
 * (the end of the commit that stored them; InvalidXLogRecPtr if it is on
 * disk already).  The handles are copied.
 */
void
pipeline_queue_deletes(Pipeline *pipeline, char **receipt_handles, int count,
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
	char	  **handles = palloc(sizeof(char *) * Max(pipeline->nbatch, 1));

	for (int i = 0; i < pipeline->nbatch; i++)
		handles[i] = pipeline->batch[i].receipt_handle;
	pipeline_queue_deletes(pipeline, handles, pipeline->nbatch, durable_at);
	pfree(handles);
}

/* forget the current batch and the memory of the results behind it */
void
pipeline_reset_batch(Pipeline *pipeline)
{
	pipeline->batch = NULL;
	pipeline->nbatch = 0;
	pipeline->batch_capacity = 0;
	MemoryContextReset(pipeline->batch_context);
}

/* wait until every queued delete has been sent and answered */
void
pipeline_flush_deletes(Pipeline *pipeline)
{
	stats_set_state(pipeline->slot, INGEST_DELETING);
	if (pipeline->ndelete_queue > 0)
		XLogFlush(pipeline->delete_queue[pipeline->ndelete_queue - 1].durable_at);
	while (pipeline->ndelete_queue > 0 ||
		   sqs_inflight(pipeline->client, SQS_DELETE_BATCH) > 0)
	{
		SqsResult  *result;
		MemoryContext old;

		issue_deletes(pipeline);
		old = MemoryContextSwitchTo(pipeline->batch_context);
		result = sqs_next_result(pipeline->client, -1);
		MemoryContextSwitchTo(old);
		if (result == NULL)
			continue;
		if (result->action == SQS_DELETE_BATCH)
			handle_delete_result(pipeline, result);
		else if (result->action == SQS_RECEIVE)
		{
			/* a receive still in flight: its messages are kept for a batch */
			pipeline->reserved -= result->requested;
			if (result->error == NULL)
			{
				pipeline->received += result->nmessages;
				stats_count_received(pipeline->slot, result->nmessages);
				append_messages(pipeline, result);
			}
		}
	}
}
