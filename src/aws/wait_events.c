/*-------------------------------------------------------------------------
 *
 * wait_events.c
 *	  Named wait events, so that pg_stat_activity says what an sqs_ingest
 *	  process is waiting for ("SqsReceive", "SqsDelete", ...).
 *
 * Servers that support custom wait events (17+) register each name the
 * first time a process waits for it; older ones report the generic
 * "Extension" event (see compat.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "compat.h"
#include "wait_events.h"

static const char *const wait_names[SQS_WAIT_COUNT] = {
	[SQS_WAIT_RECEIVE] = "SqsReceive",
	[SQS_WAIT_DELETE] = "SqsDelete",
	[SQS_WAIT_CHANGE_VISIBILITY] = "SqsChangeVisibility",
	[SQS_WAIT_GET_ATTRIBUTES] = "SqsGetQueueAttributes",
	[SQS_WAIT_BACKOFF] = "SqsBackoff",
	[SQS_WAIT_DRAIN] = "SqsDrain",
};

/* this process's event ids, 0 until first used */
static uint32 wait_ids[SQS_WAIT_COUNT];

/* the wait event info to pass to WaitLatch() and friends for a wait */
uint32
sqs_wait_event(SqsWait wait)
{
	Assert(wait < SQS_WAIT_COUNT);
	if (wait_ids[wait] == 0)
		wait_ids[wait] = compat_wait_event(wait_names[wait]);
	return wait_ids[wait];
}
