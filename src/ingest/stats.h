/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  Per-process counters in shared memory, for sqs_ingest_stats().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_STATS_H
#define SQS_INGEST_STATS_H

#include "fmgr.h"
#include "sink.h"

typedef enum IngestState
{
	INGEST_STARTING,
	INGEST_POLLING,
	INGEST_STORING,
	INGEST_DELETING,
	INGEST_BACKING_OFF,
	INGEST_IDLE,
	INGEST_STOPPED
} IngestState;

typedef struct IngestSlot IngestSlot;

extern void stats_request_shmem(void);
extern IngestSlot *stats_worker_slot(int worker_index);
extern IngestSlot *stats_pipeline_slot(const char *pipeline, int worker_index);
extern IngestSlot *stats_drain_slot(const char *pipeline);
extern int	stats_stop_pipeline_workers(void);
extern void stats_release_slot(IngestSlot *slot);
extern void stats_set_state(IngestSlot *slot, IngestState state);
extern void stats_count_received(IngestSlot *slot, int64 n);
extern void stats_count_batch(IngestSlot *slot, const BatchCounts *counts);
extern void stats_count_deletes(IngestSlot *slot, int64 deleted, int64 failed);
extern void stats_record_error(IngestSlot *slot, const char *message, bool from_sqs);
extern void stats_count_retry(IngestSlot *slot);
extern void stats_set_credential_source(IngestSlot *slot, const char *source);
extern Datum stats_srf(PG_FUNCTION_ARGS);

#endif							/* SQS_INGEST_STATS_H */
