/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  Storing a batch of messages: rows, ledger and dead letters in the
 *	  current transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SINK_H
#define SQS_INGEST_SINK_H

#include "record.h"
#include "sqs_client.h"

typedef struct BatchCounts
{
	int64		received;
	int64		inserted;
	int64		duplicates;
	int64		dead_lettered;
} BatchCounts;

#include "storage/lockdefs.h"

extern void sink_lookup_target(TargetTable *target, LOCKMODE lockmode);
extern int64 sink_prune_ledger(int retention_minutes);
extern void sink_store_batch(SqsMessage *messages, int count,
							 const char *queue_url, BatchCounts *counts);

#endif							/* SQS_INGEST_SINK_H */
