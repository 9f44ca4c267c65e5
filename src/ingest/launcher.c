/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: a background worker that keeps one set of dynamic
 *	  workers running for each enabled pipeline of sqs_ingest.pipelines.
 *
 * Once a second (and whenever one of its workers starts or stops) it reads
 * the catalog.  A pipeline wants its workers when it is enabled, its
 * target table exists and it may read its queue (queue_grants.c: its owner
 * exists and holds a grant on the queue, which no other reader reads; a
 * refusal is logged once); the set it has is kept while the pipeline's row
 * and target stay the same, and replaced when either changes (an alter,
 * a table dropped and created again), so that every change reaches the
 * workers within a second or two.  The workers of all pipelines together
 * are capped by sqs_ingest.max_pipeline_workers and by the server's free
 * background worker slots; a pipeline that cannot get its workers says so
 * in the log, once, and gets them as slots free up.
 *
 * A worker asked to stop counts against the cap until it has exited: it
 * holds its statistics slot until then, and the slots are as many as the
 * cap, so that every worker that runs has one and shows in
 * sqs_ingest.stats.  For the same reason a launcher that starts again
 * waits for the workers of the one before it to exit before starting any.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "config.h"
#include "launcher.h"
#include "queue_grants.h"
#include "stats.h"
#include "worker.h"

/* how often the catalog is read */
#define LAUNCHER_NAPTIME_MS 1000

/* the workers the launcher runs for one pipeline */
typedef struct PipelineWorkers
{
	char		name[NAMEDATALEN];
	TimestampTz updated_at;		/* of the definition they run */
	Oid			target;			/* the table they store into */
	int			wanted;
	int			nworkers;
	BackgroundWorkerHandle **handles;
	bool		logged_shortage;
	PipelineRefusal refusal;	/* why it may not read its queue, as logged */
	bool		seen;			/* still in the catalog this pass */
} PipelineWorkers;

static List *running = NIL;		/* of PipelineWorkers, in TopMemoryContext */
static List *stopping = NIL;	/* handles of workers told to stop, until
								 * they have, in TopMemoryContext */

/* register the launcher; called from _PG_init when preloaded */
void
launcher_register(void)
{
	BackgroundWorker worker;

	worker_describe(&worker, "sqs_ingest_launcher_main", "sqs_ingest launcher", 5);
	strlcpy(worker.bgw_name, "sqs_ingest launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* workers running in all pipelines, those told to stop included */
static int
total_workers(void)
{
	ListCell   *lc;
	int			total = list_length(stopping);

	foreach(lc, running)
		total += ((PipelineWorkers *) lfirst(lc))->nworkers;
	return total;
}

/* tell a worker to stop; it counts until it has */
static void
stop_worker(BackgroundWorkerHandle *handle)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	TerminateBackgroundWorker(handle);
	stopping = lappend(stopping, handle);
	MemoryContextSwitchTo(old);
}

/* forget the workers told to stop that have */
static void
reap_stopping(void)
{
	ListCell   *lc;

	foreach(lc, stopping)
	{
		BackgroundWorkerHandle *handle = lfirst(lc);
		pid_t		pid;

		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			stopping = foreach_delete_current(stopping, lc);
			pfree(handle);
		}
	}
}

static void
stop_workers(PipelineWorkers *set)
{
	for (int i = 0; i < set->nworkers; i++)
		stop_worker(set->handles[i]);
	set->nworkers = 0;
}

/* start the workers a set lacks, as far as the limits allow */
static void
start_workers(PipelineWorkers *set)
{
	while (set->nworkers < set->wanted)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		MemoryContext old;
		bool		registered = false;

		if (total_workers() < config_max_pipeline_workers())
		{
			/* the launcher restarts what stops */
			worker_describe(&worker, "sqs_ingest_pipeline_worker_main",
							"sqs_ingest worker", BGW_NEVER_RESTART);
			snprintf(worker.bgw_name, BGW_MAXLEN, "sqs_ingest pipeline %s worker %d",
					 set->name, set->nworkers);
			strlcpy(worker.bgw_extra, set->name, BGW_EXTRALEN);
			worker.bgw_main_arg = Int32GetDatum(set->nworkers);
			worker.bgw_notify_pid = MyProcPid;
			old = MemoryContextSwitchTo(TopMemoryContext);
			registered = RegisterDynamicBackgroundWorker(&worker, &handle);
			MemoryContextSwitchTo(old);
		}
		if (!registered)
		{
			if (!set->logged_shortage)
				ereport(LOG,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg_plural("sqs_ingest pipeline \"%s\" runs %d of its %d worker",
									   "sqs_ingest pipeline \"%s\" runs %d of its %d workers",
									   set->wanted,
									   set->name, set->nworkers, set->wanted),
						 errdetail_plural("Pipelines run %d worker, sqs_ingest.max_pipeline_workers allows %d, and max_worker_processes is %d.",
										  "Pipelines run %d workers, sqs_ingest.max_pipeline_workers allows %d, and max_worker_processes is %d.",
										  total_workers(),
										  total_workers(), config_max_pipeline_workers(),
										  max_worker_processes),
						 errhint("Raise sqs_ingest.max_pipeline_workers or max_worker_processes, or lower the pipelines' workers option; the rest start when slots free up.")));
			set->logged_shortage = true;
			return;
		}
		set->handles[set->nworkers++] = handle;
	}
	if (set->logged_shortage)
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_plural("sqs_ingest pipeline \"%s\" runs all its %d worker",
							   "sqs_ingest pipeline \"%s\" runs all its %d workers",
							   set->wanted,
							   set->name, set->wanted)));
	set->logged_shortage = false;
}

/* forget workers that have stopped (they are started again) */
static void
reap_workers(PipelineWorkers *set)
{
	int			kept = 0;

	for (int i = 0; i < set->nworkers; i++)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(set->handles[i], &pid) == BGWH_STOPPED)
			pfree(set->handles[i]);
		else
			set->handles[kept++] = set->handles[i];
	}
	set->nworkers = kept;
}

static PipelineWorkers *
find_set(const char *name)
{
	ListCell   *lc;

	foreach(lc, running)
	{
		PipelineWorkers *set = lfirst(lc);

		if (strcmp(set->name, name) == 0)
			return set;
	}
	return NULL;
}

/* context of the launcher's log line about a pipeline it does not run */
static void
refusal_context(void *arg)
{
	errcontext("the sqs_ingest launcher does not run pipeline \"%s\"",
			   (const char *) arg);
}

/* is sqs_ingest installed in this database (pipelines being version 1.1)? */
static bool
pipelines_table_exists(void)
{
	Oid			schema = get_namespace_oid("sqs_ingest", true);

	return OidIsValid(schema) && OidIsValid(get_relname_relid("pipelines", schema));
}

/* bring the running workers in line with the catalog */
static void
sync_with_catalog(void)
{
	List	   *defs = NIL;
	ListCell   *lc;
	List	   *kept = NIL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "sqs_ingest: reading the pipelines");
	if (pipelines_table_exists())
		defs = catalog_list();

	foreach(lc, running)
		((PipelineWorkers *) lfirst(lc))->seen = false;

	foreach(lc, defs)
	{
		PipelineDefinition *def = lfirst(lc);
		/*
		 * The name only, unlocked: a pipeline's owner may hold its table in
		 * any lock mode for as long as they like, and the launcher serves
		 * every pipeline.  Its workers lock the table when they use it.
		 */
		Oid			target = catalog_target_relid(def, NoLock);
		PipelineWorkers *set = find_set(def->name);
		PipelineRefusal refusal = queue_refusal(def, defs, false);
		int			wanted = (def->settings.enabled && OidIsValid(target) &&
							  refusal == PIPELINE_MAY_READ) ?
			def->settings.workers : 0;

		if (set == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			set = palloc0(sizeof(PipelineWorkers));
			strlcpy(set->name, def->name, NAMEDATALEN);
			set->handles = palloc0(sizeof(BackgroundWorkerHandle *) * 64);
			running = lappend(running, set);
			MemoryContextSwitchTo(old);
		}
		set->seen = true;
		if (refusal != set->refusal && refusal != PIPELINE_MAY_READ)
		{
			ErrorContextCallback context = {error_context_stack,
											refusal_context, def->name};

			error_context_stack = &context;
			queue_report_refusal(def, refusal, LOG);
			error_context_stack = context.previous;
		}
		set->refusal = refusal;
		reap_workers(set);
		/* a changed definition or table: a new set of workers */
		if (set->updated_at != def->updated_at || set->target != target)
			stop_workers(set);
		set->updated_at = def->updated_at;
		set->target = target;
		set->wanted = wanted;
		while (set->nworkers > wanted)
			stop_worker(set->handles[--set->nworkers]);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* dropped pipelines stop; the others get what they lack */
	reap_stopping();
	foreach(lc, running)
	{
		PipelineWorkers *set = lfirst(lc);

		if (set->seen)
		{
			kept = lappend(kept, set);
			continue;
		}
		stop_workers(set);
		pfree(set->handles);
		pfree(set);
	}
	list_free(running);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		running = list_copy(kept);
		MemoryContextSwitchTo(old);
	}
	list_free(kept);
	foreach(lc, running)
		start_workers(lfirst(lc));
}

void
sqs_ingest_launcher_main(Datum main_arg)
{
	MemoryContext loop_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(config_database(), NULL, 0);
	pgstat_report_appname("sqs_ingest launcher");
	ereport(LOG,
			(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
			 errmsg("sqs_ingest launcher started in database \"%s\"", config_database())));
	/*
	 * Workers left by a launcher that stopped are not ours: replace them,
	 * once they have given their statistics slots back.
	 */
	while (stats_stop_pipeline_workers() > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	loop_context = AllocSetContextCreate(TopMemoryContext, "sqs_ingest launcher",
										 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old = MemoryContextSwitchTo(loop_context);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		sync_with_catalog();
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_context);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
