/*-------------------------------------------------------------------------
 *
 * drain.c
 *	  sqs_ingest_drain(): run the pipeline in the calling backend until the
 *	  queue is empty, and delete what it stored once the caller commits.
 *
 * A function cannot commit, so everything a drain stores belongs to the
 * caller's transaction.  The receipt handles of the stored messages are
 * kept with the (sub)transaction that stored them; the deletes are sent
 * only after that transaction has committed.  A rollback, of the whole
 * transaction or of the savepoint the drain ran in, forgets them: the
 * messages reappear after the visibility timeout and are stored again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "utils/memutils.h"

#include "drain.h"
#include "pipeline.h"
#include "stats.h"
#include "sqs_ingest.h"

/* handles stored by one drain batch, waiting for their transaction */
typedef struct PendingDeletes
{
	struct PendingDeletes *next;
	int			nest_level;		/* subtransaction that stored them */
	SqsConfig  *config;
	int			count;
	char	  **handles;
} PendingDeletes;

/* in TopTransactionContext, so gone with the transaction in any case */
static PendingDeletes *pending = NULL;
static bool callbacks_registered = false;

static void
remember_batch(Pipeline *pipeline)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	PendingDeletes *entry = palloc(sizeof(PendingDeletes));

	entry->nest_level = GetCurrentTransactionNestLevel();
	entry->config = (pending && pending->config->queue_url &&
					 strcmp(pending->config->queue_url, pipeline->config->queue_url) == 0 &&
					 strcmp(pending->config->endpoint, pipeline->config->endpoint) == 0) ?
		pending->config : sqs_config_copy(pipeline->config);
	entry->count = pipeline->nbatch;
	entry->handles = palloc(sizeof(char *) * Max(entry->count, 1));
	for (int i = 0; i < entry->count; i++)
		entry->handles[i] = pstrdup(pipeline->batch[i].receipt_handle);
	entry->next = pending;
	pending = entry;
	MemoryContextSwitchTo(old);
}

/* delete the handles of entries from group up to (not including) end */
static void
send_group(PendingDeletes *group, PendingDeletes *end, MemoryContext context)
{
	PipelineOptions options = {0};

	options.delete_log_level = WARNING;
	options.batch_size = 1;

	PG_TRY();
	{
		Pipeline   *pipeline = pipeline_create(group->config, &options, NULL);

		pipeline->receiving = false;
		for (PendingDeletes *entry = group; entry != end; entry = entry->next)
			pipeline_queue_deletes(pipeline, entry->handles, entry->count,
								   InvalidXLogRecPtr);
		pipeline_flush_deletes(pipeline);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("could not delete stored messages from SQS: %s", error->message),
				 errdetail("They were stored; when SQS delivers them again they will be skipped as duplicates and deleted.")));
	}
	PG_END_TRY();
}

/*
 * Send the deletes of a committed transaction.  This runs after the commit
 * record is written, where an error cannot be raised any more: failures
 * are reported as warnings, and the messages concerned come back from SQS
 * later to be skipped as duplicates.
 */
static void
send_committed_deletes(PendingDeletes *list)
{
	MemoryContext context = AllocSetContextCreate(TopMemoryContext,
												  "sqs_ingest commit deletes",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);

	while (list)
	{
		PendingDeletes *group = list;

		/* consecutive entries of one drain share its configuration */
		while (list && list->config == group->config)
			list = list->next;
		send_group(group, list, context);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(context);
}

static void
drain_xact_callback(XactEvent event, void *arg)
{
	PendingDeletes *list = pending;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has run sqs_ingest_drain()"),
						 errdetail("The drained messages are deleted from SQS when the transaction commits, which a prepared transaction cannot signal.")));
			break;
		case XACT_EVENT_COMMIT:
			pending = NULL;
			if (list)
			{
				/* with synchronous_commit off the commit may not be on disk */
				XLogFlush(XactLastCommitEnd);
				send_committed_deletes(list);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			pending = NULL;
			break;
		default:
			break;
	}
}

static void
drain_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* what the aborted savepoint stored is gone: keep the messages */
		while (pending && pending->nest_level >= level)
			pending = pending->next;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (PendingDeletes *entry = pending; entry; entry = entry->next)
			if (entry->nest_level >= level)
				entry->nest_level = level - 1;
	}
}

/*
 * Drain the queue into the current transaction: receive until a receive
 * comes back empty or max_messages (-1: no limit) were received.
 */
void
drain_run(int64 max_messages, BatchCounts *totals)
{
	SqsConfig  *config;
	PipelineOptions options = {0};
	Pipeline   *pipeline;
	IngestSlot *slot;

	memset(totals, 0, sizeof(*totals));
	if (!callbacks_registered)
	{
		RegisterXactCallback(drain_xact_callback, NULL);
		RegisterSubXactCallback(drain_subxact_callback, NULL);
		callbacks_registered = true;
	}

	config = sqs_config_from_gucs();
	options.wait_time_seconds = sqs_ingest_drain_wait_time_seconds;
	options.stop_when_empty = true;
	options.max_messages = max_messages;
	options.batch_size = sqs_ingest_batch_size;
	/* the caller commits once at the end: no point storing partial batches */
	options.batch_timeout_ms = INT_MAX;
	options.delete_log_level = WARNING;

	slot = stats_drain_slot();
	PG_TRY();
	{
		pipeline = pipeline_create(config, &options, slot);
		for (;;)
		{
			PipelineEvent event;

			stats_set_state(slot, INGEST_POLLING);
			event = pipeline_wait(pipeline, -1);
			if (event == PIPELINE_FAILED)
			{
				stats_record_error(slot, pipeline->error->message, true);
				sqs_report_error(pipeline->error, ERROR);
			}
			if (event == PIPELINE_BATCH_READY)
			{
				BatchCounts counts;

				pipeline_store(pipeline, &counts);
				remember_batch(pipeline);
				pipeline_reset_batch(pipeline);
				totals->received += counts.received;
				totals->inserted += counts.inserted;
				totals->duplicates += counts.duplicates;
				totals->dead_lettered += counts.dead_lettered;
			}
			if (event == PIPELINE_DONE)
				break;
		}
		pipeline_destroy(pipeline);
	}
	PG_FINALLY();
	{
		stats_release_slot(slot);
	}
	PG_END_TRY();
}
