/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The background worker that runs the workers of catalog pipelines.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_LAUNCHER_H
#define SQS_INGEST_LAUNCHER_H

#include "fmgr.h"

extern void launcher_register(void);
extern PGDLLEXPORT void sqs_ingest_launcher_main(Datum main_arg);

#endif							/* SQS_INGEST_LAUNCHER_H */
