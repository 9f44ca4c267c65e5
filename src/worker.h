/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background worker that ingests continuously.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_WORKER_H
#define SQS_INGEST_WORKER_H

#include "fmgr.h"

extern void worker_register_all(void);
extern PGDLLEXPORT void sqs_ingest_worker_main(Datum main_arg);

#endif							/* SQS_INGEST_WORKER_H */
