/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background workers that ingest continuously: the settings-based
 *	  pipeline's, and those the launcher starts for catalog pipelines.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_WORKER_H
#define SQS_INGEST_WORKER_H

#include "fmgr.h"
#include "postmaster/bgworker.h"

extern void worker_describe(BackgroundWorker *worker, const char *function_name,
							const char *type, int restart_time);
extern void worker_register_all(void);
extern PGDLLEXPORT void sqs_ingest_worker_main(Datum main_arg);
extern PGDLLEXPORT void sqs_ingest_pipeline_worker_main(Datum main_arg);

#endif							/* SQS_INGEST_WORKER_H */
