/*-------------------------------------------------------------------------
 *
 * standby.h
 *	  How far the standbys have flushed this server's WAL, for deletes that
 *	  wait for them (sqs_ingest.delete_after = standby_flush).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_STANDBY_H
#define SQS_INGEST_STANDBY_H

#include "access/xlogdefs.h"

extern XLogRecPtr standby_flushed_upto(void);

#endif							/* SQS_INGEST_STANDBY_H */
