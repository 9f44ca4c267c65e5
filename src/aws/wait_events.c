/*-------------------------------------------------------------------------
 *
 * wait_events.c
 *	  Named wait events, so that pg_stat_activity says what an sqs_ingest
 *	  process is waiting for ("SqsReceive", "SqsDelete", ...).
 *
 * Servers that support custom wait events (17+) register each name the
 * first time a process waits for it; older ones report the generic
 * "Extension" event (see compat.h).  The SQS requests' events
 * ("SqsReceive", "SqsDelete", ...) are named in the table of SQS actions
 * (sqs_wire.c); the others here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "compat.h"
#include "wait_events.h"

static const char *const wait_names[SQS_WAIT_COUNT] = {
	[SQS_WAIT_BACKOFF] = "SqsBackoff",
	[SQS_WAIT_DRAIN] = "SqsDrain",
};

/* this process's event ids, 0 until first used */
static uint32 wait_ids[SQS_WAIT_COUNT];

/*
 * The wait event info to pass to WaitLatch() and friends for a wait named
 * name; *id keeps this process's event id, 0 until first used.
 */
uint32
sqs_named_wait_event(const char *name, uint32 *id)
{
	if (*id == 0)
		*id = compat_wait_event(name);
	return *id;
}

/* the wait event info to pass to WaitLatch() and friends for a wait */
uint32
sqs_wait_event(SqsWait wait)
{
	Assert(wait < SQS_WAIT_COUNT);
	return sqs_named_wait_event(wait_names[wait], &wait_ids[wait]);
}
