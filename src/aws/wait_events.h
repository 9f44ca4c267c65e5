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
	SQS_WAIT_BACKOFF,			/* sleeping before a retry */
	SQS_WAIT_DRAIN,				/* sqs_ingest_drain() waiting for its worker */
	SQS_WAIT_COUNT
} SqsWait;

/* an SQS request in flight: the wait event of its action (sqs_wire.c) */
extern uint32 sqs_named_wait_event(const char *name, uint32 *id);

/* the other waits: SqsBackoff, SqsDrain */
extern uint32 sqs_wait_event(SqsWait wait);

#endif							/* SQS_INGEST_WAIT_EVENTS_H */
