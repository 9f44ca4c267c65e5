/*-------------------------------------------------------------------------
 *
 * drain.h
 *	  sqs_ingest_drain(): the pipeline run on demand in a backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_DRAIN_H
#define SQS_INGEST_DRAIN_H

#include "sink.h"

extern void drain_run(int64 max_messages, BatchCounts *totals);

#endif							/* SQS_INGEST_DRAIN_H */
