/*-------------------------------------------------------------------------
 *
 * drain.h
 *	  sqs_ingest_drain(): the ingest loop run on demand, in a background
 *	  worker started for the call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_DRAIN_H
#define SQS_INGEST_DRAIN_H

#include "fmgr.h"
#include "catalog.h"
#include "sink.h"

extern void drain_run(const PipelineDefinition *def, int64 max_messages,
					  BatchCounts *totals);
extern PGDLLEXPORT void sqs_ingest_drain_main(Datum main_arg);

#endif							/* SQS_INGEST_DRAIN_H */
