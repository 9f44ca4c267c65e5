/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers that run the pipeline continuously.
 *
 * Each worker keeps receives long-polling, stores each batch in a short
 * transaction of its own, and queues the batch's deletes right after the
 * commit while the next receives are already in flight.  It never holds a
 * transaction open while waiting on the network.
 *
 * Failures are handled in the process, not by crashing: the error is
 * caught, the transaction (if any) rolled back, the SQS client and every
 * unstored message dropped (SQS hands them out again after the visibility
 * timeout), and the worker waits before trying again.  Transient failures
 * back off exponentially with jitter, up to sqs_ingest.retry_interval;
 * others (queue missing, bad credentials, no target table, no mask key)
 * retry every sqs_ingest.retry_interval.  Only changes are logged: the
 * first failure, a different failure, and the recovery.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "mask.h"
#include "pipeline.h"
#include "sink.h"
#include "sqs_ingest.h"
#include "stats.h"
#include "worker.h"

/* first delay after a transient failure */
#define BACKOFF_INITIAL_MS 1000

/* how often the ledger is pruned */
#define PRUNE_INTERVAL_MS (60 * 60 * 1000)

typedef struct WorkerState
{
	int			index;
	IngestSlot *slot;
	MemoryContext pipeline_context; /* holds the pipeline; dropped on error */
	Pipeline   *pipeline;
	int			failures;		/* consecutive failed attempts */
	int			logged_errcode; /* of the last failure logged, 0 if none */
	bool		storing;		/* in a batch's transaction */
	bool		failed_storing; /* the last failure was in one */
	TimestampTz last_prune;
} WorkerState;

/* register sqs_ingest.workers workers; called from _PG_init when preloaded */
void
worker_register_all(void)
{
	for (int i = 0; i < sqs_ingest_workers; i++)
	{
		BackgroundWorker worker = {0};

		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		/* on a standby it would have nowhere to write: wait for promotion */
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 10;
		strlcpy(worker.bgw_library_name, "sqs_ingest", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "sqs_ingest_worker_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "sqs_ingest worker %d", i);
		strlcpy(worker.bgw_type, "sqs_ingest worker", BGW_MAXLEN);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

static PipelineOptions
worker_options(void)
{
	PipelineOptions options = {0};

	options.wait_time_seconds = sqs_ingest_wait_time_seconds;
	options.stop_when_empty = false;
	options.max_messages = -1;
	options.batch_size = sqs_ingest_batch_size;

	/*
	 * A received message must be stored and deleted well within its
	 * visibility timeout, or SQS hands it to another consumer meanwhile.
	 */
	options.batch_timeout_ms = Min(sqs_ingest_batch_timeout_ms,
								   sqs_ingest_visibility_timeout * 1000 / 3);
	options.delete_log_level = LOG;
	return options;
}

static bool
same_config(const SqsConfig *a, const SqsConfig *b)
{
	return strcmp(a->queue_url, b->queue_url) == 0 &&
		strcmp(a->endpoint, b->endpoint) == 0 &&
		strcmp(a->region, b->region) == 0 &&
		strcmp(a->access_key_id, b->access_key_id) == 0 &&
		strcmp(a->secret_access_key, b->secret_access_key) == 0 &&
		((a->session_token == NULL && b->session_token == NULL) ||
		 (a->session_token && b->session_token &&
		  strcmp(a->session_token, b->session_token) == 0)) &&
		a->visibility_timeout == b->visibility_timeout &&
		a->connect_timeout_ms == b->connect_timeout_ms &&
		a->request_timeout_ms == b->request_timeout_ms &&
		a->max_inflight == b->max_inflight;
}

/* run fn(arg) in a transaction of its own, with a snapshot and SPI */
static void
in_transaction(void (*fn) (WorkerState *), WorkerState *ws, const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	fn(ws);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
check_target(WorkerState *ws)
{
	TargetTable target;

	sink_lookup_target(&target, RowExclusiveLock);
}

static void
store_batch(WorkerState *ws)
{
	BatchCounts counts;

	/*
	 * The commit need not wait for its WAL flush: the batch's deletes do
	 * (see pipeline.c), so a crash before the flush leaves the messages in
	 * SQS, to be stored again.  Meanwhile the worker goes on receiving.
	 * Synchronous replication is left alone: a standby must have the rows
	 * before SQS forgets them.
	 */
	if (SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	pipeline_store(ws->pipeline, &counts);
}

static void
note_recovery(WorkerState *ws)
{
	if (ws->failures == 0)
		return;
	ereport(LOG,
			(errmsg("sqs_ingest worker %d recovered after %d failed attempts",
					ws->index, ws->failures)));
	ws->failures = 0;
	ws->logged_errcode = 0;
	ws->failed_storing = false;
}

/* store the current batch in a transaction, then queue its deletes */
static void
store_and_delete_batch(WorkerState *ws)
{
	int			count = ws->pipeline->nbatch;
	TimestampTz start = GetCurrentTimestamp();

	ws->storing = true;
	in_transaction(store_batch, ws, "sqs_ingest: storing a batch");
	ws->storing = false;
	note_recovery(ws);
	pipeline_queue_batch_deletes(ws->pipeline, XactLastCommitEnd);
	pipeline_reset_batch(ws->pipeline);
	elog(DEBUG1, "sqs_ingest worker %d stored %d messages in %ld ms",
		 ws->index, count,
		 (long) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()));
}

static void
prune_ledger(WorkerState *ws)
{
	int64		pruned;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pruned = sink_prune_ledger(sqs_ingest_processed_retention);
	SPI_finish();
	if (pruned > 0)
		elog(DEBUG1, "sqs_ingest pruned %lld ledger entries", (long long) pruned);
}

/*
 * Make sure a pipeline runs with the current configuration.  Everything it
 * needs is checked before the first receive, so that a worker that cannot
 * store does not take messages out of the queue.
 */
static void
ensure_pipeline(WorkerState *ws)
{
	SqsConfig  *config;
	MemoryContext old;

	old = MemoryContextSwitchTo(ws->pipeline_context);
	config = sqs_config_from_gucs();
	MemoryContextSwitchTo(old);

	if (ws->pipeline && same_config(ws->pipeline->config, config))
	{
		/* a reload of tuning settings only: nothing to reconnect */
		sqs_config_free(config);
		ws->pipeline->options = worker_options();
		return;
	}

	if (ws->pipeline)
	{
		/* store what was received under the old settings, then start anew */
		if (ws->pipeline->nbatch > 0)
			store_and_delete_batch(ws);
		pipeline_flush_deletes(ws->pipeline);
		sqs_config_free(ws->pipeline->config);
		pipeline_destroy(ws->pipeline);
		ws->pipeline = NULL;
	}

	mask_prepare();
	in_transaction(check_target, ws, "sqs_ingest: checking the target table");

	old = MemoryContextSwitchTo(ws->pipeline_context);
	{
		PipelineOptions options = worker_options();

		ws->pipeline = pipeline_create(config, &options, ws->slot);
	}
	MemoryContextSwitchTo(old);
}

static void
reload_if_asked(WorkerState *ws)
{
	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	ensure_pipeline(ws);
}


/* the worker's normal life: returns only by error or process exit */
static void
run(WorkerState *ws)
{
	ensure_pipeline(ws);

	for (;;)
	{
		PipelineEvent event;

		CHECK_FOR_INTERRUPTS();
		reload_if_asked(ws);

		if (ws->index == 0 && sqs_ingest_processed_retention > 0 &&
			TimestampDifferenceExceeds(ws->last_prune, GetCurrentTimestamp(),
									   PRUNE_INTERVAL_MS))
		{
			in_transaction(prune_ledger, ws, "sqs_ingest: pruning the ledger");
			ws->last_prune = GetCurrentTimestamp();
		}

		stats_set_state(ws->slot, INGEST_POLLING);
		/* come back now and then for the ledger pruning */
		event = pipeline_wait(ws->pipeline, 10 * 1000L);
		/* SQS answers again; a database failure waits for a stored batch */
		if (ws->pipeline->receives_ok > 0 && !ws->failed_storing)
			note_recovery(ws);

		switch (event)
		{
			case PIPELINE_BATCH_READY:
				store_and_delete_batch(ws);
				break;
			case PIPELINE_FAILED:
				{
					/* the error lives with the batch: keep a copy */
					SqsError   *error = sqs_copy_error(ws->pipeline_context,
													   ws->pipeline->error);

					/* keep what was received before the failure */
					if (ws->pipeline->nbatch > 0)
					{
						store_and_delete_batch(ws);
						pipeline_flush_deletes(ws->pipeline);
					}
					stats_record_error(ws->slot, error->message, true);
					sqs_report_error(error, ERROR);
				}
				break;
			case PIPELINE_IDLE:
			case PIPELINE_DONE:
				break;
		}
	}
}

/* is this failure likely to go away by itself soon? */
static bool
is_transient(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_CONNECTION_EXCEPTION ||
		category == ERRCODE_TRANSACTION_ROLLBACK ||
		category == ERRCODE_INSUFFICIENT_RESOURCES ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * After a failure: log it if it is news, drop the pipeline, and wait
 * before the next attempt.  A configuration reload cuts the wait short,
 * since it may well be the fix.
 */
static void
back_off(WorkerState *ws, ErrorData *error)
{
	bool		transient = is_transient(error->sqlerrcode);
	long		cap_ms = sqs_ingest_retry_interval * 1000L;
	long		delay_ms;
	TimestampTz until;

	ws->failures++;
	stats_record_error(ws->slot, error->message, false);
	stats_count_retry(ws->slot);

	if (transient)
	{
		int			shift = Min(ws->failures - 1, 20);

		delay_ms = Min((long) BACKOFF_INITIAL_MS << shift, cap_ms);
		/* full jitter in the upper half, so workers do not retry in step */
		delay_ms = delay_ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (delay_ms / 2));
	}
	else
		delay_ms = cap_ms;

	if (ws->logged_errcode != error->sqlerrcode)
	{
		error->elevel = LOG;
		ThrowErrorData(error);
		ereport(LOG,
				(errmsg("sqs_ingest worker %d will retry %s", ws->index,
						transient ? "with exponential backoff" :
						psprintf("every %d s until the problem is fixed",
								 sqs_ingest_retry_interval)),
				 errdetail("Messages that were not stored stay in SQS.")));
		ws->logged_errcode = error->sqlerrcode;
	}

	stats_set_state(ws->slot, INGEST_BACKING_OFF);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0 || ConfigReloadPending)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

void
sqs_ingest_worker_main(Datum main_arg)
{
	WorkerState ws = {0};
	MemoryContext worker_context;

	ws.index = DatumGetInt32(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(sqs_ingest_database, NULL, 0);
	pgstat_report_appname(psprintf("sqs_ingest worker %d", ws.index));
	ws.slot = stats_worker_slot(ws.index);

	worker_context = AllocSetContextCreate(TopMemoryContext, "sqs_ingest worker",
										   ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("sqs_ingest worker %d started", ws.index)));

	for (;;)
	{
		MemoryContextSwitchTo(worker_context);
		ws.pipeline_context = AllocSetContextCreate(worker_context,
													"sqs_ingest pipeline",
													ALLOCSET_DEFAULT_SIZES);
		PG_TRY();
		{
			run(&ws);
		}
		PG_CATCH();
		{
			ErrorData  *error;

			/* as PostgresMain does: no interrupt while cleaning up */
			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(worker_context);
			error = CopyErrorData();
			FlushErrorState();
			/* the error may come from a subtransaction of the sink */
			AbortOutOfAnyTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
			/* drops the client and every message not stored */
			MemoryContextDelete(ws.pipeline_context);
			ws.pipeline = NULL;
			ws.failed_storing = ws.storing;
			ws.storing = false;
			RESUME_INTERRUPTS();

			back_off(&ws, error);
			FreeErrorData(error);
		}
		PG_END_TRY();
	}
}
