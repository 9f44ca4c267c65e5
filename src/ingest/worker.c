/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers that run the pipeline continuously.
 *
 * Each worker runs the ingest loop of runner.c, the one the drain runs
 * too, with the settings of postgresql.conf; this module adds what only a
 * continuous worker needs: configuration reloads, ledger pruning, and
 * surviving failures.
 *
 * A receive that fails transiently is retried alone by the pipeline, the
 * SDKs' way (three attempts, exponential backoff with jitter), while the
 * other receives go on.  Other failures are handled in the process, not by
 * crashing: the error is caught, the transaction (if any) rolled back, the
 * SQS client and every unstored message dropped (SQS hands them out again
 * after the visibility timeout), and the worker waits before trying again.
 * Transient failures, and every failure to start (no credentials, the
 * target table, the ledger or a privilege missing), back off exponentially
 * with jitter from a second up to sqs_ingest.retry_interval, and start
 * from a second again once SQS answers; a problem found by the checks
 * before anything is received waits at most LOCAL_RETRY_CAP_MS, so that a
 * fix is noticed soon.  Others (queue missing, access denied, a batch the
 * table refused) retry every sqs_ingest.retry_interval.  Only changes are
 * logged: the first failure, a different failure, and the recovery.
 *
 * Each attempt runs in a memory context of its own, reset after a failure,
 * and wipes the credentials it copied on the way out: a worker that keeps
 * failing neither grows nor leaves secrets in freed memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "compat.h"
#include "config.h"
#include "queue_grants.h"
#include "runner.h"
#include "sink.h"
#include "stats.h"
#include "subxact.h"
#include "wait_events.h"
#include "worker.h"

/* the longest wait before checking a missing table, grant or key again */
#define LOCAL_RETRY_CAP_MS (10 * 1000L)

/* how often the ledger is pruned */
#define PRUNE_INTERVAL_MS (60 * 60 * 1000)

typedef struct WorkerState
{
	int			index;
	char	   *pipeline;		/* catalog pipeline's name; NULL: the settings' */
	char	   *label;			/* in application_name: "worker 0", "pipeline \"orders\" worker 1" */
	bool		prunes;			/* the one process that prunes the ledger */
	PipelineDefinition *def;	/* the catalog pipeline run, NULL: the
								 * settings' pipeline, whose definition
								 * (config_default_definition()) follows
								 * them */
	IngestRunner runner;
	int			failures;		/* consecutive failed attempts */
	int			logged_errcode; /* of the last failure logged, 0 if none */
	bool		failed_storing; /* the last failure was in a store */
	bool		starting;		/* in ensure_runner(), before any receive */
	TimestampTz last_prune;
	char	   *connected_role; /* sqs_ingest.role when connecting */
} WorkerState;

/*
 * Describe one of sqs_ingest's background workers (the settings' workers,
 * the launcher, a pipeline's workers, a drain): what they all share, and
 * the entry point, type and restart time given.  The caller names it,
 * gives its argument and registers it.
 */
void
worker_describe(BackgroundWorker *worker, const char *function_name,
				const char *type, int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* on a standby it would have nowhere to write: wait for promotion */
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_time;
	strlcpy(worker->bgw_library_name, "sqs_ingest", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function_name, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
}

/* register sqs_ingest.workers workers; called from _PG_init when preloaded */
void
worker_register_all(void)
{
	for (int i = 0; i < config_workers(); i++)
	{
		BackgroundWorker worker;

		worker_describe(&worker, "sqs_ingest_worker_main", "sqs_ingest worker", 10);
		snprintf(worker.bgw_name, BGW_MAXLEN, "sqs_ingest worker %d", i);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

/* equal strings, or both NULL */
static bool
same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
same_config(const SqsConfig *a, const SqsConfig *b)
{
	return strcmp(a->queue_url, b->queue_url) == 0 &&
		strcmp(a->endpoint, b->endpoint) == 0 &&
		strcmp(a->region, b->region) == 0 &&
		same_string(a->access_key_id, b->access_key_id) &&
		same_string(a->secret_access_key, b->secret_access_key) &&
		same_string(a->session_token, b->session_token) &&
		a->visibility_timeout == b->visibility_timeout &&
		a->connect_timeout_ms == b->connect_timeout_ms &&
		a->request_timeout_ms == b->request_timeout_ms &&
		a->max_inflight == b->max_inflight &&
		a->protocol == b->protocol &&
		((a->ca_file == NULL && b->ca_file == NULL) ||
		 (a->ca_file && b->ca_file && strcmp(a->ca_file, b->ca_file) == 0));
}

static void
note_recovery(WorkerState *ws)
{
	if (ws->failures == 0)
		return;
	if (ws->pipeline)
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_plural("sqs_ingest pipeline \"%s\" worker %d recovered after %d failed attempt",
							   "sqs_ingest pipeline \"%s\" worker %d recovered after %d failed attempts",
							   ws->failures,
							   ws->pipeline, ws->index, ws->failures)));
	else
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_plural("sqs_ingest worker %d recovered after %d failed attempt",
							   "sqs_ingest worker %d recovered after %d failed attempts",
							   ws->failures,
							   ws->index, ws->failures)));
	ws->failures = 0;
	ws->logged_errcode = 0;
	ws->failed_storing = false;
}

static void
prune_ledger(void *arg)
{
	int64		pruned;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pruned = sink_prune_ledger(config_processed_retention());
	SPI_finish();
	if (pruned > 0)
		elog(DEBUG1, "sqs_ingest pruned %lld ledger entries", (long long) pruned);
}

/*
 * Make sure the runner runs with the current configuration: a changed
 * connection stores what was received under the old one and starts anew,
 * a change of tuning only is applied in place.
 */
static void
ensure_runner(WorkerState *ws)
{
	ResolvedPipeline resolved;
	SqsConfig  *config;
	FlowOptions options;

	/*
	 * The settings as they are now, within the caps a reload may have
	 * lowered; the settings' pipeline is what they define now.
	 */
	if (ws->def)
		config_resolve(ws->def, &resolved);
	else
	{
		PipelineDefinition *def = config_default_definition();

		sink_redefine(ws->runner.sink, def);
		config_resolve(def, &resolved);
		config_free_definition(def);
	}
	options = runner_options_from_definition(&resolved, resolved.wait_time_seconds);
	ws->starting = ws->runner.flow == NULL;
	config = sqs_config_from_definition(&resolved);
	config_release(&resolved);
	PG_TRY();
	{
		if (ws->runner.flow && same_config(ws->runner.flow->config, config))
			runner_set_options(&ws->runner, &options);
		else
		{
			runner_finish(&ws->runner);
			ws->starting = true;
			runner_start(&ws->runner, config, &options);
		}
	}
	PG_FINALLY();
	{
		/* wipes the credentials, on error too */
		sqs_config_free(config);
	}
	PG_END_TRY();
	ws->starting = false;
}

/*
 * A worker is connected as one role for its life: when sqs_ingest.role
 * changes, it stores and deletes what it holds, then exits to be started
 * again as the new role.
 */
static void
exit_if_role_changed(WorkerState *ws)
{
	if (strcmp(ws->connected_role, config_role()) == 0)
		return;
	runner_finish(&ws->runner);
	if (ws->pipeline)
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("sqs_ingest pipeline \"%s\" worker %d restarts because sqs_ingest.role changed",
						ws->pipeline, ws->index)));
	else
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("sqs_ingest worker %d restarts because sqs_ingest.role changed",
						ws->index)));
	proc_exit(1);
}

static void
reload_if_asked(WorkerState *ws)
{
	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	exit_if_role_changed(ws);
	ensure_runner(ws);
}

/* the worker's normal life: returns only by error or process exit */
static void
run(WorkerState *ws)
{
	ensure_runner(ws);

	for (;;)
	{
		FlowEvent event;

		CHECK_FOR_INTERRUPTS();
		reload_if_asked(ws);

		if (ws->prunes && config_processed_retention() > 0 &&
			TimestampDifferenceExceeds(ws->last_prune, GetCurrentTimestamp(),
									   PRUNE_INTERVAL_MS))
		{
			runner_in_transaction(prune_ledger, NULL, "sqs_ingest: pruning the ledger");
			ws->last_prune = GetCurrentTimestamp();
		}

		/* come back now and then for the ledger pruning */
		event = runner_step(&ws->runner, 10 * 1000L);
		/* SQS answers again; a database failure waits for a stored batch */
		if (event == FLOW_BATCH_READY ||
			(ws->runner.flow->receives_ok > 0 && !ws->failed_storing))
			note_recovery(ws);
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
 * since it may well be the fix.  starting: the attempt failed before it
 * could receive; local: the checks of what a store needs failed.
 */
static void
back_off(WorkerState *ws, ErrorData *error, bool starting, bool local)
{
	bool		exponential = starting || is_transient(error->sqlerrcode);
	long		cap_ms = config_retry_interval() * 1000L;
	long		delay_ms;
	TimestampTz until;

	ws->failures++;
	stats_record_error(ws->runner.slot, error->message, false);
	stats_count_retry(ws->runner.slot);

	if (local)
		cap_ms = Min(LOCAL_RETRY_CAP_MS, cap_ms);
	delay_ms = exponential ? flow_backoff_ms(ws->failures, cap_ms) : cap_ms;

	if (ws->logged_errcode != error->sqlerrcode)
	{
		error->elevel = LOG;
		ThrowErrorData(error);
		if (exponential && ws->pipeline)
			ereport(LOG,
					(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
					 errmsg("sqs_ingest pipeline \"%s\" worker %d will retry with exponential backoff, at most every %ld s",
							ws->pipeline, ws->index, cap_ms / 1000),
					 errdetail("Messages that were not stored stay in SQS.")));
		else if (exponential)
			ereport(LOG,
					(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
					 errmsg("sqs_ingest worker %d will retry with exponential backoff, at most every %ld s",
							ws->index, cap_ms / 1000),
					 errdetail("Messages that were not stored stay in SQS.")));
		else if (ws->pipeline)
			ereport(LOG,
					(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
					 errmsg("sqs_ingest pipeline \"%s\" worker %d will retry every %ld s until the problem is fixed",
							ws->pipeline, ws->index, delay_ms / 1000),
					 errdetail("Messages that were not stored stay in SQS.")));
		else
			ereport(LOG,
					(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
					 errmsg("sqs_ingest worker %d will retry every %ld s until the problem is fixed",
							ws->index, delay_ms / 1000),
					 errdetail("Messages that were not stored stay in SQS.")));
		ws->logged_errcode = error->sqlerrcode;
	}

	stats_set_state(ws->runner.slot, INGEST_BACKING_OFF);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0 || ConfigReloadPending)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, sqs_wait_event(SQS_WAIT_BACKOFF));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		exit_if_role_changed(ws);
	}
}

/*
 * Connect as sqs_ingest.role, or else as the bootstrap superuser, after
 * the signal handlers are in place.
 */
static void
worker_connect(WorkerState *ws)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	ws->connected_role = MemoryContextStrdup(TopMemoryContext,
											 config_role());
	BackgroundWorkerInitializeConnection(config_database(),
										 ws->connected_role[0] ? ws->connected_role : NULL,
										 0);
}

/* the life of a worker, the settings-based pipeline's or a catalog one's */
pg_noreturn static void
worker_loop(WorkerState *ws)
{
	MemoryContext worker_context;
	MemoryContext attempt_context;

	pgstat_report_appname(psprintf("sqs_ingest %s", ws->label));
	worker_context = AllocSetContextCreate(TopMemoryContext, "sqs_ingest worker",
										   ALLOCSET_DEFAULT_SIZES);
	/* what one attempt allocates, freed when it fails */
	attempt_context = AllocSetContextCreate(worker_context, "sqs_ingest attempt",
											ALLOCSET_DEFAULT_SIZES);
	if (ws->pipeline)
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("sqs_ingest pipeline \"%s\" worker %d started",
						ws->pipeline, ws->index)));
	else
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("sqs_ingest worker %d started", ws->index)));

	for (;;)
	{
		MemoryContextSwitchTo(attempt_context);
		PG_TRY();
		{
			run(ws);
		}
		PG_CATCH();
		{
			ErrorData  *error;
			bool		starting = ws->starting;
			bool		local = starting && !ws->runner.checked;

			/* as PostgresMain does: no interrupt while cleaning up */
			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(attempt_context);
			error = subxact_copy_error();
			FlushErrorState();
			/* the error may come from a subtransaction of the sink */
			AbortOutOfAnyTransaction();
			MemoryContextSwitchTo(attempt_context);
			pgstat_report_activity(STATE_IDLE, NULL);
			ws->failed_storing = ws->runner.storing;
			ws->starting = false;
			runner_abandon(&ws->runner);
			RESUME_INTERRUPTS();

			back_off(ws, error, starting, local);
			/* all the attempt allocated, the copy of its error included */
			MemoryContextReset(attempt_context);
		}
		PG_END_TRY();
	}
}

/* a worker of the settings-based pipeline */
void
sqs_ingest_worker_main(Datum main_arg)
{
	WorkerState ws = {0};
	PipelineDefinition *def;

	ws.index = DatumGetInt32(main_arg);
	ws.label = psprintf("worker %d", ws.index);
	ws.prunes = ws.index == 0;
	worker_connect(&ws);
	ws.runner.slot = stats_worker_slot(ws.index);
	def = config_default_definition();
	ws.runner.sink = sink_target_create(def);
	config_free_definition(def);
	worker_loop(&ws);
}

/*
 * A worker of a catalog pipeline, started by the launcher with the
 * pipeline's name.  It runs with the pipeline's queue and options, the
 * settings for the rest; its rows go in with its owner's rights.
 */
void
sqs_ingest_pipeline_worker_main(Datum main_arg)
{
	WorkerState ws = {0};
	char		name[BGW_EXTRALEN];
	MemoryContext old;
	PipelineRefusal refusal;

	memcpy(name, MyBgworkerEntry->bgw_extra, BGW_EXTRALEN);
	name[BGW_EXTRALEN - 1] = '\0';
	ws.index = DatumGetInt32(main_arg);
	ws.pipeline = pstrdup(name);
	ws.label = psprintf("pipeline \"%s\" worker %d", name, ws.index);

	/*
	 * A worker nobody sees would also be one a launcher started again
	 * could not stop: without a slot, it does not run.
	 */
	ws.runner.slot = stats_pipeline_slot(name, ws.index);
	if (ws.runner.slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("sqs_ingest pipeline \"%s\" worker %d found no free statistics slot",
						name, ws.index),
				 errdetail("Every one of the sqs_ingest.max_pipeline_workers slots is held by another worker."),
				 errhint("The launcher starts the worker again once a slot is free.")));
	worker_connect(&ws);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* kept for the worker's life: each reload resolves it again */
	old = MemoryContextSwitchTo(TopMemoryContext);
	ws.def = catalog_get(name);
	MemoryContextSwitchTo(old);
	/* the launcher checked too, but a revoke may have come in between */
	refusal = queue_refusal(ws.def, catalog_list(), false);
	if (refusal != PIPELINE_MAY_READ)
		queue_report_refusal(ws.def, refusal, ERROR);
	ws.runner.sink = sink_target_create(ws.def);
	PopActiveSnapshot();
	CommitTransactionCommand();

	worker_loop(&ws);
}
