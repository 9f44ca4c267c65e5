/*-------------------------------------------------------------------------
 *
 * config.h
 *	  What a pipeline runs with: its definition resolved against the
 *	  sqs_ingest.* settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CONFIG_H
#define SQS_INGEST_CONFIG_H

#include "catalog.h"

/*
 * Every value a run of a pipeline takes from its definition or from the
 * settings, taken at one moment.  Strings are palloc'd.
 */
typedef struct ResolvedPipeline
{
	char	   *name;			/* "default": the settings' pipeline */
	char	   *queue_url;		/* "" if none is set */
	char	   *endpoint;		/* "": the origin of the queue URL */
	char	   *region;			/* "": us-east-1 */
	char	   *ca_file;		/* "": the system's bundle */
	int			protocol;		/* SqsProtocol */
	int			visibility_timeout;
	int			wait_time_seconds;	/* of the continuous workers */
	int			drain_wait_time_seconds;
	int			batch_size;
	int			max_inflight;
	int			max_batch_bytes;	/* kB */
	int			batch_timeout_ms;
	int			connect_timeout_ms;
	int			request_timeout_ms;
	int			delete_after;	/* DeleteAfter */
} ResolvedPipeline;

extern void config_resolve(const PipelineDefinition *def, ResolvedPipeline *resolved);
extern void config_release(ResolvedPipeline *resolved);

#endif							/* SQS_INGEST_CONFIG_H */
