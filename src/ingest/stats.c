/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Per-process counters in shared memory.
 *
 * One slot per worker of the settings-based pipeline, a pool of
 * sqs_ingest.max_pipeline_workers for the workers of catalog pipelines
 * (freed when they stop), and a few for backends running
 * sqs_ingest_drain().  A slot holds only plain values, never a pointer
 * into a process's memory, and is updated under its own spinlock once per
 * batch or request, so readers always see a consistent row.  Without
 * shared_preload_libraries there is no shared memory and every function
 * here does nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "config.h"
#include "stats.h"

/* slots for concurrent drains; a drain beyond them runs unseen */
#define DRAIN_SLOTS 16
#define LAST_ERROR_LEN 256
#define CREDENTIAL_SOURCE_LEN 72

typedef enum SlotKind
{
	SLOT_FREE,
	SLOT_WORKER,
	SLOT_PIPELINE_WORKER,
	SLOT_DRAIN
} SlotKind;

struct IngestSlot
{
	slock_t		mutex;
	SlotKind	kind;
	char		pipeline[NAMEDATALEN];
	int			worker_index;
	pid_t		pid;
	IngestState state;
	int64		received;
	int64		inserted;
	int64		duplicates;
	int64		dead_lettered;
	int64		deleted;
	int64		delete_failures;
	int64		sqs_errors;
	int64		retries;
	TimestampTz started_at;
	TimestampTz last_batch_at;
	TimestampTz last_error_at;
	char		last_error[LAST_ERROR_LEN];
	char		credential_source[CREDENTIAL_SOURCE_LEN];	/* never a secret */
};

typedef struct IngestShared
{
	slock_t		mutex;			/* protects slot kinds */
	int			nslots;
	IngestSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} IngestShared;

static IngestShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static IngestSlot *my_slot = NULL;	/* released at process exit */

static const char *const state_names[] = {
	"starting", "polling", "storing", "deleting", "backing off", "idle", "stopped"
};

static int
slot_count(void)
{
	return config_workers() + config_max_pipeline_workers() + DRAIN_SLOTS;
}

static Size
shared_size(void)
{
	return add_size(offsetof(IngestShared, slots),
					mul_size(sizeof(IngestSlot), slot_count()));
}

static void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
}

static void
startup_shmem(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("sqs_ingest stats", shared_size(), &found);
	if (!found)
	{
		memset(shared, 0, shared_size());
		SpinLockInit(&shared->mutex);
		shared->nslots = slot_count();
		for (int i = 0; i < shared->nslots; i++)
			SpinLockInit(&shared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* called from _PG_init while preloading */
void
stats_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

static void
release_at_exit(int code, Datum arg)
{
	stats_release_slot(my_slot);
}

static void
claim(IngestSlot *slot, SlotKind kind, const char *pipeline, int worker_index)
{
	static bool exit_hook_registered = false;

	SpinLockAcquire(&slot->mutex);
	slot->kind = kind;
	strlcpy(slot->pipeline, pipeline, NAMEDATALEN);
	slot->worker_index = worker_index;
	slot->pid = MyProcPid;
	slot->state = INGEST_STARTING;
	slot->started_at = GetCurrentTimestamp();
	slot->credential_source[0] = '\0';
	if (kind != SLOT_WORKER)
	{
		/* a drain's counters are its own; a worker's survive its restarts */
		slot->received = slot->inserted = slot->duplicates = 0;
		slot->dead_lettered = slot->deleted = slot->delete_failures = 0;
		slot->sqs_errors = slot->retries = 0;
		slot->last_batch_at = slot->last_error_at = 0;
		slot->last_error[0] = '\0';
	}
	SpinLockRelease(&slot->mutex);

	my_slot = slot;
	if (!exit_hook_registered)
	{
		before_shmem_exit(release_at_exit, (Datum) 0);
		exit_hook_registered = true;
	}
}

IngestSlot *
stats_worker_slot(int worker_index)
{
	IngestSlot *slot;

	if (shared == NULL || worker_index >= config_workers())
		return NULL;
	/* worker slots come first and are never handed to a drain */
	slot = &shared->slots[worker_index];
	claim(slot, SLOT_WORKER, DEFAULT_PIPELINE, worker_index);
	return slot;
}

/* a free slot among first .. end - 1, marked kind, or NULL */
static IngestSlot *
free_slot(int first, int end, SlotKind kind)
{
	IngestSlot *slot = NULL;

	SpinLockAcquire(&shared->mutex);
	for (int i = first; i < end; i++)
	{
		if (shared->slots[i].kind == SLOT_FREE)
		{
			slot = &shared->slots[i];
			slot->kind = kind;
			break;
		}
	}
	SpinLockRelease(&shared->mutex);
	return slot;
}

/*
 * A slot for a worker of a catalog pipeline, freed when it stops, or NULL
 * if every one is taken (the launcher starts no more workers than slots).
 */
IngestSlot *
stats_pipeline_slot(const char *pipeline, int worker_index)
{
	IngestSlot *slot;

	if (shared == NULL)
		return NULL;
	slot = free_slot(config_workers(),
					 config_workers() + config_max_pipeline_workers(),
					 SLOT_PIPELINE_WORKER);
	if (slot)
		claim(slot, SLOT_PIPELINE_WORKER, pipeline, worker_index);
	return slot;
}

IngestSlot *
stats_drain_slot(const char *pipeline)
{
	IngestSlot *slot;

	if (shared == NULL)
		return NULL;
	slot = free_slot(config_workers() + config_max_pipeline_workers(),
					 shared->nslots, SLOT_DRAIN);
	if (slot)
		claim(slot, SLOT_DRAIN, pipeline, -1);
	return slot;
}

/*
 * Stop the workers of catalog pipelines that are still running: a
 * launcher that starts again does not know them, and starts its own.
 * Returns how many slots they still hold.
 */
int
stats_stop_pipeline_workers(void)
{
	int			held = 0;

	if (shared == NULL)
		return 0;
	for (int i = config_workers(); i < config_workers() + config_max_pipeline_workers(); i++)
	{
		pid_t		pid = 0;
		bool		in_use;

		SpinLockAcquire(&shared->slots[i].mutex);
		in_use = shared->slots[i].kind == SLOT_PIPELINE_WORKER;
		if (in_use)
			pid = shared->slots[i].pid;
		SpinLockRelease(&shared->slots[i].mutex);
		if (in_use)
			held++;
		if (pid != 0)
			kill(pid, SIGTERM);
	}
	return held;
}

/* a worker's slot stays, marked stopped; the others are freed */
void
stats_release_slot(IngestSlot *slot)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->state = INGEST_STOPPED;
	slot->pid = 0;
	SpinLockRelease(&slot->mutex);
	if (slot->kind != SLOT_WORKER)
	{
		SpinLockAcquire(&shared->mutex);
		slot->kind = SLOT_FREE;
		SpinLockRelease(&shared->mutex);
	}
	if (slot == my_slot)
		my_slot = NULL;
}

void
stats_set_state(IngestSlot *slot, IngestState state)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->state = state;
	SpinLockRelease(&slot->mutex);
}

void
stats_count_received(IngestSlot *slot, int64 n)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->received += n;
	SpinLockRelease(&slot->mutex);
}

void
stats_count_batch(IngestSlot *slot, const BatchCounts *counts)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->inserted += counts->inserted;
	slot->duplicates += counts->duplicates;
	slot->dead_lettered += counts->dead_lettered;
	slot->last_batch_at = GetCurrentTimestamp();
	SpinLockRelease(&slot->mutex);
}

void
stats_count_deletes(IngestSlot *slot, int64 deleted, int64 failed)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->deleted += deleted;
	slot->delete_failures += failed;
	SpinLockRelease(&slot->mutex);
}

void
stats_record_error(IngestSlot *slot, const char *message, bool from_sqs)
{
	int			len;

	if (slot == NULL)
		return;
	/* cut on a character boundary: the view shows it as text */
	len = pg_mbcliplen(message, strlen(message), LAST_ERROR_LEN - 1);
	SpinLockAcquire(&slot->mutex);
	if (from_sqs)
		slot->sqs_errors++;
	memcpy(slot->last_error, message, len);
	slot->last_error[len] = '\0';
	slot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&slot->mutex);
}

void
stats_count_retry(IngestSlot *slot)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->retries++;
	SpinLockRelease(&slot->mutex);
}

/* where the slot's process takes its AWS credentials from */
void
stats_set_credential_source(IngestSlot *slot, const char *source)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	strlcpy(slot->credential_source, source, CREDENTIAL_SOURCE_LEN);
	SpinLockRelease(&slot->mutex);
}

static Datum
timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

/* one row per worker slot and per running drain */
Datum
stats_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (shared == NULL)
	{
		ereport(NOTICE,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sqs_ingest is not loaded through shared_preload_libraries, so no worker runs"),
				 errhint("Add sqs_ingest to shared_preload_libraries and restart the server.")));
		return (Datum) 0;
	}

	for (int i = 0; i < shared->nslots; i++)
	{
		IngestSlot	copy;
		Datum		values[19];
		bool		nulls[19] = {0};
		int			n = 0;

		SpinLockAcquire(&shared->slots[i].mutex);
		memcpy(&copy, &shared->slots[i], sizeof(IngestSlot));
		SpinLockRelease(&shared->slots[i].mutex);
		if (copy.kind == SLOT_FREE)
			continue;

		values[n++] = CStringGetTextDatum(copy.kind == SLOT_DRAIN ? "drain" : "worker");
		nulls[n] = copy.kind == SLOT_DRAIN;
		values[n++] = Int32GetDatum(copy.worker_index);
		nulls[n] = copy.pid == 0;
		values[n++] = Int32GetDatum(copy.pid);
		values[n++] = CStringGetTextDatum(state_names[copy.state]);
		values[n++] = Int64GetDatum(copy.received);
		values[n++] = Int64GetDatum(copy.inserted);
		values[n++] = Int64GetDatum(copy.duplicates);
		values[n++] = Int64GetDatum(copy.dead_lettered);
		values[n++] = Int64GetDatum(copy.deleted);
		values[n++] = Int64GetDatum(copy.delete_failures);
		values[n++] = Int64GetDatum(copy.sqs_errors);
		values[n++] = Int64GetDatum(copy.retries);
		nulls[n] = copy.last_error[0] == '\0';
		values[n++] = CStringGetTextDatum(copy.last_error);
		values[n] = timestamp_or_null(copy.last_error_at, &nulls[n]);
		n++;
		values[n] = timestamp_or_null(copy.last_batch_at, &nulls[n]);
		n++;
		values[n] = timestamp_or_null(copy.started_at, &nulls[n]);
		n++;
		/* columns added in 1.1: a 1.0 schema's row type leaves them out */
		nulls[n] = copy.credential_source[0] == '\0';
		values[n++] = CStringGetTextDatum(copy.credential_source);
		values[n++] = CStringGetTextDatum(copy.pipeline);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
