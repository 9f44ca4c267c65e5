/*-------------------------------------------------------------------------
 *
 * runner.h
 *	  The ingest loop shared by the background workers and the drain:
 *	  receive, store each batch in a short transaction of its own, delete
 *	  after the commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_RUNNER_H
#define SQS_INGEST_RUNNER_H

#include "config.h"
#include "flow.h"
#include "sink.h"
#include "stats.h"

typedef struct IngestRunner
{
	/* set by the owner before runner_start() */
	IngestSlot *slot;			/* shared statistics, or NULL */
	SinkTarget *sink;			/* what batches are stored by */

	/* the runner's own */
	MemoryContext context;		/* holds the flow and its configuration */
	MessageFlow *flow;			/* NULL when not started */
	bool		checked;		/* the last runner_start() got past the
								 * checks of the store */
	bool		storing;		/* in a batch's transaction */
	int64		batches;		/* batches committed since runner_start() */
	BatchCounts totals;			/* what they held */
} IngestRunner;

extern FlowOptions runner_options_from_definition(const ResolvedPipeline *resolved,
													  int wait_time_seconds);
extern void runner_start(IngestRunner *runner, const SqsConfig *config,
						 const FlowOptions *options);
extern void runner_set_options(IngestRunner *runner, const FlowOptions *options);
extern FlowEvent runner_step(IngestRunner *runner, long timeout_ms);
extern void runner_finish(IngestRunner *runner);
extern void runner_abandon(IngestRunner *runner);
extern void runner_in_transaction(void (*fn) (void *), void *arg,
								  const char *activity);

#endif							/* SQS_INGEST_RUNNER_H */
