/*-------------------------------------------------------------------------
 *
 * wait_events.h
 *	  What an sqs_ingest process is waiting for, as pg_stat_activity shows
 *	  it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_WAIT_EVENTS_H
#define SQS_INGEST_WAIT_EVENTS_H

typedef enum SqsWait
{
	SQS_WAIT_RECEIVE,			/* a ReceiveMessage long poll */
	SQS_WAIT_DELETE,			/* DeleteMessageBatch after a commit */
	SQS_WAIT_CHANGE_VISIBILITY, /* extending the visibility before a store */
	SQS_WAIT_GET_ATTRIBUTES,	/* GetQueueAttributes */
	SQS_WAIT_BACKOFF,			/* sleeping before a retry */
	SQS_WAIT_DRAIN,				/* sqs_ingest_drain() waiting for its worker */
	SQS_WAIT_COUNT
} SqsWait;

extern uint32 sqs_wait_event(SqsWait wait);

#endif							/* SQS_INGEST_WAIT_EVENTS_H */
