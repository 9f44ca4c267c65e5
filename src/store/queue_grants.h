/*-------------------------------------------------------------------------
 *
 * queue_grants.h
 *	  Which queues a pipeline may read: queues granted like tables, and no
 *	  two readers of one queue.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_QUEUE_GRANTS_H
#define SQS_INGEST_QUEUE_GRANTS_H

#include "nodes/pg_list.h"

#include "definition.h"

/* why a pipeline may not be defined or run on its queue */
typedef enum PipelineRefusal
{
	PIPELINE_MAY_READ,
	PIPELINE_OWNER_DROPPED,
	PIPELINE_QUEUE_OF_SETTINGS,
	PIPELINE_QUEUE_OF_PIPELINE,
	PIPELINE_QUEUE_NOT_GRANTED,
} PipelineRefusal;

extern char *queue_identity(const char *url);
extern char *queue_identity_checked(const char *url);
extern PipelineRefusal queue_refusal(const PipelineDefinition *def, List *defs,
									 bool defining);
extern void queue_report_refusal(const PipelineDefinition *def,
								 PipelineRefusal refusal, int elevel);

#endif							/* SQS_INGEST_QUEUE_GRANTS_H */
