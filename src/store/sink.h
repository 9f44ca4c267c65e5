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

#include "catalog.h"
#include "mapping.h"
#include "sqs_client.h"
#include "storage/lockdefs.h"

typedef struct BatchCounts
{
	int64		received;
	int64		inserted;
	int64		duplicates;
	int64		dead_lettered;
} BatchCounts;

/* called now and then during a store, to keep the caller's network going */
typedef void (*SinkLook) (void *arg);

/*
 * What a batch is stored by: of a pipeline's definition, its name, target
 * and mapping
 */
typedef struct SinkTarget
{
	char	   *name;
	char	   *target;			/* table name */
	Jsonb	   *mapping;		/* NULL: columns from members of their name */
	Jsonb	   *options;		/* envelope and explode */
	Oid			owner;			/* rows are inserted as this role, if valid */
	MemoryContext context;
	/* compiled against the target, again when the target or mapping changes */
	MemoryContext compiled_context;
	CompiledMapping *compiled;
	Jsonb	   *compiled_from;	/* the mapping compiled, or NULL */
	bool		stale;
	struct SinkTarget *next;	/* of the process's pipelines */
} SinkTarget;

extern SinkTarget *sink_target_create(const PipelineDefinition *def);
extern void sink_redefine(SinkTarget *sink, const PipelineDefinition *def);
extern void sink_target_free(SinkTarget *sink);
extern const CompiledMapping *sink_prepare_target(SinkTarget *sink,
												  LOCKMODE lockmode);
extern const CompiledMapping *sink_check(SinkTarget *sink, LOCKMODE lockmode);
extern void sink_check_bookkeeping(const SinkTarget *sink,
								   const CompiledMapping *mapping);
extern Oid	sink_store_role(const SinkTarget *sink, Oid relid);
extern int64 sink_prune_ledger(int retention_minutes);
extern void sink_store_batch(SinkTarget *sink, SqsMessage *messages, int count,
							 const char *queue_url, BatchCounts *counts,
							 SinkLook look, void *look_arg);

#endif							/* SQS_INGEST_SINK_H */
