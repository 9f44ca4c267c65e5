/*-------------------------------------------------------------------------
 *
 * runner.c
 *	  The ingest loop shared by the background workers and the drain.
 *
 * A runner keeps receives long-polling on one pipeline, stores each batch
 * in a short transaction of its own, and queues the batch's deletes right
 * after the commit while the next receives are already in flight.  No
 * transaction is ever open while it waits on the network, and no request
 * is sent from a transaction callback.
 *
 * Everything a runner needs comes in through its configuration snapshot
 * and pipeline options, so that the continuous workers and a drain started
 * on a caller's behalf differ only in those and in what their owner does
 * between steps (reloads and back-off for a worker, a stop request and an
 * end for a drain).  On error the owner calls runner_abandon(): the client
 * and every message not yet stored are dropped, and SQS hands the messages
 * out again after the visibility timeout.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/syncrep.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "runner.h"
#include "security.h"

/*
 * The runner's options of a resolved pipeline, with the given long-poll
 * wait (the workers' and the drain's differ).
 */
FlowOptions
runner_options_from_definition(const ResolvedPipeline *resolved, int wait_time_seconds)
{
	FlowOptions options = {0};

	options.wait_time_seconds = wait_time_seconds;
	options.stop_when_empty = false;
	options.max_messages = -1;
	options.batch_size = resolved->batch_size;
	options.batch_bytes = (int64) resolved->max_batch_bytes * 1024;
	options.batch_timeout_ms = resolved->batch_timeout_ms;
	options.delete_log_level = LOG;
	/* the AWS SDKs' standard retry mode */
	options.max_attempts = 3;
	options.delete_after = resolved->delete_after;
	return options;
}

/*
 * A received message must be stored and deleted well within its
 * visibility timeout, or SQS hands it to another consumer meanwhile.
 */
static void
bound_options(FlowOptions *options, const SqsConfig *config)
{
	options->batch_timeout_ms = Min(options->batch_timeout_ms,
									config->visibility_timeout * 1000 / 3);
}

/* run fn(arg) in a transaction of its own, with a snapshot */
void
runner_in_transaction(void (*fn) (void *), void *arg, const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	fn(arg);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Bound every lock wait of the current transaction: while a store waits,
 * nothing extends the visibility of its messages (see flow.c).  An
 * error raised by the timeout fails the batch, whose messages stay in SQS.
 */
static void
bound_lock_waits(const SqsConfig *config)
{
	char		value[32];

	snprintf(value, sizeof(value), "%d", flow_store_lock_timeout_ms(config));
	(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* what check_target() checks: the runner's sink, under its configuration */
typedef struct TargetCheck
{
	IngestRunner *runner;
	const SqsConfig *config;
} TargetCheck;

static void
check_target(void *arg)
{
	TargetCheck *check = arg;
	const CompiledMapping *mapping;

	bound_lock_waits(check->config);
	mapping = sink_check(check->runner->sink, RowExclusiveLock);
	sink_check_bookkeeping(check->runner->sink, mapping);
	if (!OidIsValid(check->runner->sink->owner))
		security_warn_superuser_target(mapping->relid);
}

/*
 * Start receiving with a copy of the given configuration.  Everything a
 * store needs (target table, mapping, mask key, the extension's ledger and
 * dead letters, and the privileges on them) is checked first, so that a
 * runner that cannot store does not take messages out of the queue.  On
 * error nothing is left allocated and the copied credentials are wiped.
 */
void
runner_start(IngestRunner *runner, const SqsConfig *config,
			 const FlowOptions *options)
{
	MemoryContext old;
	FlowOptions bounded = *options;
	TargetCheck check = {runner, config};
	SqsConfig  *copy;

	Assert(runner->flow == NULL);
	runner->checked = false;
	runner_in_transaction(check_target, &check, "sqs_ingest: checking the target table");
	runner->checked = true;

	runner->context = AllocSetContextCreate(CurrentMemoryContext,
											"sqs_ingest runner",
											ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(runner->context);
	bound_options(&bounded, config);
	copy = sqs_config_copy(config);
	PG_TRY();
	{
		/* resolves the credentials: may fail */
		runner->flow = flow_create(copy, &bounded, runner->slot);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		sqs_config_free(copy);
		/* and the client, whose release wipes its own copy */
		MemoryContextDelete(runner->context);
		runner->context = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	runner->flow->sink = runner->sink;
	MemoryContextSwitchTo(old);
	runner->storing = false;
	runner->batches = 0;
	memset(&runner->totals, 0, sizeof(runner->totals));
}

/* new tuning for a running pipeline (a reload that keeps the connection) */
void
runner_set_options(IngestRunner *runner, const FlowOptions *options)
{
	runner->flow->options = *options;
	bound_options(&runner->flow->options, runner->flow->config);
}

static void
store_batch(void *arg)
{
	IngestRunner *runner = arg;
	BatchCounts counts;

	/*
	 * The commit need not wait for its WAL flush: the batch's deletes do
	 * (see flow.c), so a crash before the flush leaves the messages in
	 * SQS, to be stored again.  Meanwhile the runner goes on receiving.
	 * Synchronous replication is left alone: a standby must have the rows
	 * before SQS forgets them.
	 */
	if (SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	bound_lock_waits(runner->flow->config);

	/* the target's own code runs as ingest_role_for_target() (sink.c) */
	flow_store(runner->flow, &counts);

	runner->totals.received += counts.received;
	runner->totals.inserted += counts.inserted;
	runner->totals.duplicates += counts.duplicates;
	runner->totals.dead_lettered += counts.dead_lettered;
}

/* store the current batch in a transaction, then queue its deletes */
static void
store_and_queue_deletes(IngestRunner *runner)
{
	MessageFlow *flow = runner->flow;
	int			count;
	BatchCounts before = runner->totals;
	TimestampTz start = GetCurrentTimestamp();

	/* the store must begin with enough of its messages' visibility left */
	flow_prepare_store(flow);
	count = flow->nbatch;
	runner->storing = true;
	runner_in_transaction(store_batch, runner, "sqs_ingest: storing a batch");
	runner->storing = false;
	runner->batches++;
	flow_queue_batch_deletes(flow, XactLastCommitEnd);
	flow_reset_batch(flow);
	elog(DEBUG1, "sqs_ingest stored %d messages (%lld new) in %ld ms",
		 count, (long long) (runner->totals.inserted - before.inserted),
		 (long) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()));
}

/*
 * Wait at most timeout_ms (-1: no limit) for something to do and do it:
 * store a ready batch, or raise the error of a failed receive after
 * storing what was received before it.  Returns what happened, so that the
 * owner can tell a stored batch, the drain's end and an idle wake-up apart.
 */
FlowEvent
runner_step(IngestRunner *runner, long timeout_ms)
{
	MessageFlow *flow = runner->flow;
	FlowEvent event;

	CHECK_FOR_INTERRUPTS();
	stats_set_state(runner->slot, INGEST_POLLING);
	event = flow_wait(flow, timeout_ms);
	switch (event)
	{
		case FLOW_BATCH_READY:
			store_and_queue_deletes(runner);
			break;
		case FLOW_FAILED:
			{
				/* the error lives with the batch: keep a copy */
				SqsError   *error = sqs_copy_error(runner->context, flow->error);

				if (flow->nbatch > 0)
				{
					store_and_queue_deletes(runner);
					flow_flush_deletes(flow);
				}
				/* the pipeline counted it in the stats */
				sqs_report_error(error, ERROR);
			}
			break;
		case FLOW_IDLE:
		case FLOW_DONE:
			break;
	}
	return event;
}

/*
 * Store what was received, wait for every delete, and release the
 * pipeline.  A drain whose deletes failed for good then ends with an error
 * saying what was stored and not deleted.
 */
void
runner_finish(IngestRunner *runner)
{
	MessageFlow *flow = runner->flow;
	SqsError   *delete_error = NULL;
	int64		undeleted;

	if (flow == NULL)
		return;
	/* what its last stores take in is stored; nothing more is asked for */
	flow->receiving_stopped = true;
	if (flow->nbatch > 0)
		store_and_queue_deletes(runner);
	flow_flush_deletes(flow);
	/* receives still in flight may have brought more */
	if (flow->nbatch > 0)
	{
		store_and_queue_deletes(runner);
		flow_flush_deletes(flow);
	}
	if (flow->delete_error)
		delete_error = sqs_copy_error(CurrentMemoryContext, flow->delete_error);
	undeleted = flow->delete_failures;
	runner_abandon(runner);
	if (delete_error)
		flow_report_undeleted(delete_error, undeleted, runner->totals.received);
}

/*
 * Drop the pipeline without storing or deleting anything more: after an
 * error, or when its remaining messages may come back from SQS later.
 */
void
runner_abandon(IngestRunner *runner)
{
	if (runner->flow == NULL)
		return;
	sqs_config_free(runner->flow->config);
	runner->flow = NULL;
	runner->storing = false;
	/* releases the client and every message not stored */
	MemoryContextDelete(runner->context);
	runner->context = NULL;
}
