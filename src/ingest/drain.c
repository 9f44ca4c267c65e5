/*-------------------------------------------------------------------------
 *
 * drain.c
 *	  sqs_ingest_drain(): run the ingest loop on demand, in a dynamic
 *	  background worker started for the call, until the queue is empty.
 *
 * A function cannot commit, and a drain must: each batch is committed
 * before its deletes go out, and no transaction may stay open across a
 * network wait.  So the calling backend only checks what it can (including
 * that the caller may insert into the target), hands the pipeline's name,
 * its effective settings (a SessionSettings, config.h) and its database
 * to a background worker through a dynamic shared memory segment, and
 * waits on its latch.  The worker connects as
 * the continuous workers do (sqs_ingest.role, else the bootstrap
 * superuser), and the target's own code runs as ingest_role_for_target(),
 * never as the caller or a superuser it did not choose.  The
 * worker runs the same loop as the continuous workers (runner.c), with
 * stop-when-empty and max_messages, and writes its counts, or its error,
 * back into the segment.
 *
 * A drain of a catalog pipeline (sqs_ingest_drain(pipeline, ...)) takes
 * the pipeline's queue, options and mapping instead of the caller's
 * settings for them.
 *
 * What a drain stored is committed batch by batch, like VACUUM's work: the
 * caller's ROLLBACK does not undo it.  Cancelling the call (statement
 * timeout, pg_cancel_backend) asks the worker to stop after its current
 * batch; the call returns within a second, and what was committed stays.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shm_toc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "config.h"
#include "drain.h"
#include "mask.h"
#include "queue_grants.h"
#include "runner.h"
#include "secrets.h"
#include "security.h"
#include "setting_values.h"
#include "stats.h"
#include "subxact.h"
#include "wait_events.h"
#include "worker.h"

#define DRAIN_MAGIC 0x73716464
#define DRAIN_KEY_STATE 1
#define DRAIN_KEY_SETTINGS 2

/* how long a cancelled call waits for the drain to finish its batch */
#define DRAIN_STOP_WAIT_MS 900

#define DRAIN_TEXT_LEN 1024
/* longest endpoint or queue URL whose protocol a backend remembers */
#define DRAIN_URL_LEN 1024

/*
 * Who has the settings in the segment, which hold secrets.  Whoever moves
 * them out of SETTINGS_WAITING owns them: the worker takes them (a private
 * copy, then wipes them in the segment), or the caller withdraws them
 * (wipes them) when it detaches from the segment, on every path, error or
 * not.  So they are wiped once read or once nobody will read them, and the
 * worker never reads them while they are being wiped.
 */
typedef enum SettingsHandover
{
	SETTINGS_WAITING,
	SETTINGS_TAKEN,				/* by the worker, which wipes them */
	SETTINGS_WITHDRAWN			/* by the caller, which wipes them */
} SettingsHandover;

/* the segment's state; the caller's settings are a SessionSettings beside it */
typedef struct DrainState
{
	/* from the caller, read-only afterwards */
	Oid			database;
	Oid			role;			/* the worker connects as this role, or as
								 * the bootstrap superuser if invalid */
	char		pipeline[NAMEDATALEN];	/* its name */
	int64		max_messages;	/* -1: no limit */
	Size		settings_len;	/* of the SessionSettings */

	/*
	 * protocol = auto: the endpoint and queue URL that earlier drains of
	 * the caller found to speak only the Query protocol ("" for none), and
	 * on return what this drain found.  Written by the worker only once the
	 * caller no longer reads them, and read by the caller only once the
	 * worker has exited.
	 */
	char		query_only_endpoint[DRAIN_URL_LEN];
	char		query_only_queue[DRAIN_URL_LEN];
	bool		protocol_found; /* the worker wrote the two above */

	slock_t		mutex;			/* protects the rest */
	SettingsHandover settings_state;
	bool		stop_requested;
	Latch	   *worker_latch;	/* NULL until the worker is attached */
	bool		finished;		/* totals are final */
	bool		failed;			/* the error below is set */
	BatchCounts totals;
	int			sqlerrcode;
	char		message[DRAIN_TEXT_LEN];
	char		detail[DRAIN_TEXT_LEN];
	char		hint[DRAIN_TEXT_LEN];
} DrainState;

/*
 * protocol = auto: the endpoint and queue URL this backend's last drain
 * found to speak only the Query protocol, in TopMemoryContext, or NULL.  A
 * drain worker is a new process each time, which would otherwise probe
 * again on every call; a drain to another endpoint or queue probes anew.
 */
static char *known_query_only_endpoint = NULL;
static char *known_query_only_queue = NULL;

/* ---------------------------------------------------------------------
 * the calling backend
 * ---------------------------------------------------------------------
 */

/*
 * Everything that can be checked before anything is received: where the
 * drain would write, that the caller may insert there, and that the
 * settings make sense.
 */
static void
check_before_start(const PipelineDefinition *def)
{
	SinkTarget *sink;

	PreventCommandDuringRecovery("sqs_ingest_drain()");
	PreventCommandIfReadOnly("sqs_ingest_drain()");

	/* a pipeline's owner reads its queue by a grant; the settings' queue is a superuser's */
	if (OidIsValid(def->owner))
	{
		PipelineRefusal refusal = queue_refusal(def, catalog_list(), false);

		if (refusal != PIPELINE_MAY_READ)
			queue_report_refusal(def, refusal, ERROR);
	}
	else
	{
		ResolvedPipeline resolved;
		SqsConfig  *config;

		config_resolve(def, &resolved);
		config = sqs_config_from_definition(&resolved);
		sqs_config_free(config);
		config_release(&resolved);
	}
	sink = sink_target_create(def);

	/*
	 * No lock is kept: the caller's transaction must not hold anything the
	 * drain worker waits for while the caller waits for the worker.
	 */
	PG_TRY();
	{
		const CompiledMapping *mapping = sink_check(sink, NoLock);

		security_check_target_privilege(mapping->relid, get_rel_name(mapping->relid));
	}
	PG_FINALLY();
	{
		sink_target_free(sink);
	}
	PG_END_TRY();
}

/*
 * The caller detaches from the segment (at the end of the call, or on its
 * error): the settings the worker did not take are wiped.  Runs on every
 * path out of drain_run(), so that no secret waits in the segment for it
 * to be destroyed.
 */
static void
withdraw_settings(dsm_segment *segment, Datum arg)
{
	shm_toc    *toc = (shm_toc *) DatumGetPointer(arg);
	DrainState *state = shm_toc_lookup(toc, DRAIN_KEY_STATE, false);
	SessionSettings *settings = shm_toc_lookup(toc, DRAIN_KEY_SETTINGS, false);
	bool		waiting;

	SpinLockAcquire(&state->mutex);
	waiting = state->settings_state == SETTINGS_WAITING;
	state->settings_state = SETTINGS_WITHDRAWN;
	SpinLockRelease(&state->mutex);
	/* taken: the worker wipes them as it copies them */
	if (waiting)
		explicit_bzero(settings, state->settings_len);
}

static void
request_stop(DrainState *state)
{
	Latch	   *latch;

	SpinLockAcquire(&state->mutex);
	state->stop_requested = true;
	latch = state->worker_latch;
	SpinLockRelease(&state->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Wait for the drain worker to end, servicing interrupts.  A cancel or
 * termination asks the worker to stop after its current batch and gives it
 * DRAIN_STOP_WAIT_MS; the caller then raises the interrupt.
 */
static void
wait_until_stopped(DrainState *state, BackgroundWorkerHandle *handle)
{
	bool		stopping = false;
	TimestampTz stop_deadline = 0;

	for (;;)
	{
		pid_t		pid;
		long		wait_ms = 1000;

		if (!stopping && (QueryCancelPending || ProcDiePending))
		{
			request_stop(state);
			stopping = true;
			stop_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														DRAIN_STOP_WAIT_MS);
		}
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			return;
		if (stopping)
		{
			wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													  stop_deadline);
			if (wait_ms <= 0)
				return;
		}
		/* the postmaster sets the latch when the worker ends */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, sqs_wait_event(SQS_WAIT_DRAIN));
		ResetLatch(MyLatch);
		if (!stopping)
			CHECK_FOR_INTERRUPTS();
	}
}

/* wait for the drain worker; any error on the way asks it to stop */
static void
wait_for_drain(DrainState *state, BackgroundWorkerHandle *handle)
{
	PG_TRY();
	{
		wait_until_stopped(state, handle);
	}
	PG_CATCH();
	{
		request_stop(state);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* raises the cancel that stopped the drain, if any */
	CHECK_FOR_INTERRUPTS();
}

/* keep what the drain worker found of the endpoint's protocol, if it said */
static void
remember_protocol(const DrainState *state)
{
	if (!state->protocol_found)
		return;
	if (known_query_only_endpoint)
		pfree(known_query_only_endpoint);
	if (known_query_only_queue)
		pfree(known_query_only_queue);
	known_query_only_endpoint = known_query_only_queue = NULL;
	if (state->query_only_endpoint[0] != '\0')
	{
		known_query_only_endpoint = MemoryContextStrdup(TopMemoryContext,
														state->query_only_endpoint);
		known_query_only_queue = MemoryContextStrdup(TopMemoryContext,
													 state->query_only_queue);
	}
}

/* raise the drain worker's error, or its unexpected end, in the caller */
static void
report_outcome(DrainState *state)
{
	if (state->failed)
		ereport(ERROR,
				(errcode(state->sqlerrcode),
				 errmsg_internal("%s", state->message),
				 state->detail[0] ? errdetail_internal("%s", state->detail) : 0,
				 state->hint[0] ? errhint("%s", state->hint) : 0));
	if (!state->finished)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("the sqs_ingest drain worker exited unexpectedly"),
				 errdetail("What it committed before stays stored."),
				 errhint("See the server log.")));
}

/*
 * Drain the queue of a pipeline, the settings' (config_default_definition())
 * or a catalog one: receive until a receive comes back empty or max_messages (-1:
 * no limit) were received, committing batch by batch in a background
 * worker.  Returns what the batches held.
 */
void
drain_run(const PipelineDefinition *def, int64 max_messages, BatchCounts *totals)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	shm_toc_estimator estimator;
	dsm_segment *segment;
	shm_toc    *toc;
	DrainState *state;
	SessionSettings *settings;
	Size		settings_len;
	Size		size;
	Oid			role;
	bool		is_default;

	check_before_start(def);
	/* like the workers: as sqs_ingest.role, or else the bootstrap superuser */
	role = config_role()[0] ? get_role_oid(config_role(), false) : InvalidOid;

	is_default = strcmp(def->name, DEFAULT_PIPELINE) == 0;
	settings_len = config_session_write(!is_default, NULL);
	shm_toc_initialize_estimator(&estimator);
	shm_toc_estimate_chunk(&estimator, sizeof(DrainState));
	shm_toc_estimate_chunk(&estimator, settings_len);
	shm_toc_estimate_keys(&estimator, 2);
	size = shm_toc_estimate(&estimator);

	segment = dsm_create(size, 0);
	toc = shm_toc_create(DRAIN_MAGIC, dsm_segment_address(segment), size);
	state = shm_toc_allocate(toc, sizeof(DrainState));
	memset(state, 0, sizeof(DrainState));
	state->database = MyDatabaseId;
	state->role = role;
	state->max_messages = max_messages;
	strlcpy(state->pipeline, def->name, NAMEDATALEN);
	state->settings_len = settings_len;
	state->settings_state = SETTINGS_WAITING;
	if (known_query_only_endpoint)
	{
		strlcpy(state->query_only_endpoint, known_query_only_endpoint, DRAIN_URL_LEN);
		strlcpy(state->query_only_queue, known_query_only_queue, DRAIN_URL_LEN);
	}
	SpinLockInit(&state->mutex);
	shm_toc_insert(toc, DRAIN_KEY_STATE, state);
	settings = shm_toc_allocate(toc, settings_len);
	shm_toc_insert(toc, DRAIN_KEY_SETTINGS, settings);
	/* before any secret is in the segment */
	on_dsm_detach(segment, withdraw_settings, PointerGetDatum(toc));
	(void) config_session_write(!is_default, settings);

	worker_describe(&worker, "sqs_ingest_drain_main", "sqs_ingest drain", BGW_NEVER_RESTART);
	snprintf(worker.bgw_name, BGW_MAXLEN, "sqs_ingest drain for PID %d", MyProcPid);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(segment));
	worker.bgw_notify_pid = MyProcPid;

	/* on an error from here on, detaching the segment wipes the settings */
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a background worker for sqs_ingest_drain()"),
				 errdetail("Every background worker slot is in use."),
				 errhint("A drain runs in a background worker of its own: raise max_worker_processes (a restart is needed).")));

	wait_for_drain(state, handle);
	remember_protocol(state);
	report_outcome(state);
	*totals = state->totals;
	dsm_detach(segment);
}

/* ---------------------------------------------------------------------
 * the drain worker
 * ---------------------------------------------------------------------
 */

/*
 * Take the caller's settings out of the segment: a private copy, wiped
 * there.  Errors out if the caller has withdrawn them (it stopped waiting
 * before the worker got this far).
 */
static SessionSettings *
take_settings(DrainState *state, SessionSettings *settings)
{
	/* allocated first: nothing may fail between taking and wiping */
	SessionSettings *copy = MemoryContextAlloc(TopMemoryContext, state->settings_len);
	bool		waiting;

	SpinLockAcquire(&state->mutex);
	waiting = state->settings_state == SETTINGS_WAITING;
	if (waiting)
		state->settings_state = SETTINGS_TAKEN;
	SpinLockRelease(&state->mutex);
	if (!waiting)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sqs_ingest drain started after its caller had gone")));

	memcpy(copy, settings, state->settings_len);
	explicit_bzero(settings, state->settings_len);
	return copy;
}

static bool
stop_requested(DrainState *state)
{
	bool		stop;

	SpinLockAcquire(&state->mutex);
	stop = state->stop_requested;
	SpinLockRelease(&state->mutex);
	return stop;
}

/*
 * protocol = auto: start from what the caller's earlier drains found of
 * this endpoint and queue.
 */
static void
recall_protocol(DrainState *state, const SqsConfig *config)
{
	if (config->protocol == SQS_PROTOCOL_AUTO &&
		strcmp(state->query_only_endpoint, config->endpoint) == 0 &&
		strcmp(state->query_only_queue, config->queue_url) == 0)
		sqs_remember_only_query(config->endpoint);
}

/* protocol = auto: hand back what this drain found, for the caller's next */
static void
report_protocol(DrainState *state, const SqsConfig *config)
{
	state->query_only_endpoint[0] = state->query_only_queue[0] = '\0';
	if (config->protocol == SQS_PROTOCOL_AUTO &&
		sqs_speaks_only_query(config->endpoint) &&
		strlen(config->endpoint) < DRAIN_URL_LEN &&
		strlen(config->queue_url) < DRAIN_URL_LEN)
	{
		strlcpy(state->query_only_endpoint, config->endpoint, DRAIN_URL_LEN);
		strlcpy(state->query_only_queue, config->queue_url, DRAIN_URL_LEN);
	}
	state->protocol_found = true;
}

/* the drain itself: the runner until the queue is empty, or told to stop */
static void
run_drain(DrainState *state, const PipelineDefinition *def, IngestRunner *runner)
{
	ResolvedPipeline resolved;
	SqsConfig  *config;
	FlowOptions options;

	config_resolve(def, &resolved);
	config = sqs_config_from_definition(&resolved);
	/* a drain's long poll is its own, whatever the pipeline's */
	options = runner_options_from_definition(&resolved, resolved.drain_wait_time_seconds);
	config_release(&resolved);

	options.stop_when_empty = true;
	options.max_messages = state->max_messages;
	/* the caller learns of deletes failed for good: see flow.c */
	options.end_on_failed_deletes = true;
	recall_protocol(state, config);
	runner_start(runner, config, &options);

	while (!stop_requested(state))
	{
		if (runner_step(runner, -1) == FLOW_DONE)
			break;
	}
	runner_finish(runner);
	report_protocol(state, config);
	sqs_config_free(config);
}

/* copy an error's text, cut on a character boundary */
static void
copy_text(char *dest, const char *src)
{
	int			len;

	if (src == NULL)
		src = "";
	len = pg_mbcliplen(src, strlen(src), DRAIN_TEXT_LEN - 1);
	memcpy(dest, src, len);
	dest[len] = '\0';
}

typedef struct PipelineLoad
{
	const char *name;
	PipelineDefinition *def;
} PipelineLoad;

/* load a catalog pipeline's definition (in the drain worker) */
static void
load_pipeline(void *arg)
{
	PipelineLoad *load = arg;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	load->def = catalog_get(load->name);
	MemoryContextSwitchTo(old);
}

/*
 * The definition of the pipeline the drain runs: the settings' one, with
 * the caller's settings (config_use_session() first), or the catalog's.
 */
static PipelineDefinition *
drain_pipeline(DrainState *state)
{
	PipelineLoad load = {state->pipeline, NULL};

	if (strcmp(state->pipeline, DEFAULT_PIPELINE) == 0)
		return config_default_definition();
	runner_in_transaction(load_pipeline, &load, "sqs_ingest: reading the pipeline");
	return load.def;
}

/* entry point of the drain worker; the argument is the segment's handle */
void
sqs_ingest_drain_main(Datum main_arg)
{
	dsm_segment *segment;
	shm_toc    *toc;
	DrainState *state;
	SessionSettings *settings;
	IngestRunner runner = {0};
	MemoryContext context;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	segment = dsm_attach(DatumGetUInt32(main_arg));
	if (segment == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sqs_ingest drain started after its caller had gone")));
	toc = shm_toc_attach(DRAIN_MAGIC, dsm_segment_address(segment));
	if (toc == NULL)
		elog(ERROR, "bad sqs_ingest drain segment");
	state = shm_toc_lookup(toc, DRAIN_KEY_STATE, false);
	/* taken at once, so that nothing that fails later leaves them there */
	settings = take_settings(state, shm_toc_lookup(toc, DRAIN_KEY_SETTINGS, false));

	SpinLockAcquire(&state->mutex);
	state->worker_latch = MyLatch;
	SpinLockRelease(&state->mutex);

	BackgroundWorkerInitializeConnectionByOid(state->database, state->role, 0);
	pgstat_report_appname("sqs_ingest drain");

	context = AllocSetContextCreate(TopMemoryContext, "sqs_ingest drain",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		PipelineDefinition *def;

		config_use_session(settings);
		def = drain_pipeline(state);
		runner.sink = sink_target_create(def);
		runner.slot = stats_drain_slot(runner.sink->name);
		run_drain(state, def, &runner);

		SpinLockAcquire(&state->mutex);
		state->totals = runner.totals;
		state->finished = true;
		SpinLockRelease(&state->mutex);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(context);
		error = subxact_copy_error();
		FlushErrorState();
		/* the error may come from a subtransaction of the sink */
		AbortOutOfAnyTransaction();

		SpinLockAcquire(&state->mutex);
		state->failed = true;
		state->sqlerrcode = error->sqlerrcode;
		copy_text(state->message, error->message);
		copy_text(state->detail, error->detail);
		copy_text(state->hint, error->hint);
		SpinLockRelease(&state->mutex);

		stats_record_error(runner.slot, error->message, false);
		/* a caller that has stopped waiting will not report it */
		if (stop_requested(state))
		{
			error->elevel = LOG;
			ThrowErrorData(error);
		}
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	proc_exit(0);
}
