/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  A pipeline's definition: what a row of sqs_ingest.pipelines
 *	  (catalog.c) and the sqs_ingest.* settings (config.c) both yield, and
 *	  what a worker, a drain and the launcher run; the values a run of one
 *	  takes, resolved against the settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_DEFINITION_H
#define SQS_INGEST_DEFINITION_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/*
 * The pipeline the sqs_ingest.* settings define (config.c), a name no row
 * of the catalog may take.
 */
#define DEFAULT_PIPELINE "default"

/* what a pipeline's options say; -1 or NULL: the sqs_ingest.* setting */
typedef struct PipelineSettings
{
	int			workers;
	bool		enabled;
	char	   *region;
	char	   *endpoint;
	int			visibility_timeout;
	int			wait_time_seconds;
	int			batch_size;
	int			max_inflight;
	int			max_rows_per_message;
} PipelineSettings;

/*
 * One row of sqs_ingest.pipelines, or the pipeline DEFAULT_PIPELINE that
 * config_default_definition() builds from the settings.
 */
typedef struct PipelineDefinition
{
	char	   *name;
	char	   *queue_url;
	char	   *target;			/* schema-qualified table name */
	Jsonb	   *mapping;		/* NULL: columns from members of their name */
	Jsonb	   *options;
	Oid			owner;			/* invalid: the settings' pipeline, no owner */
	TimestampTz updated_at;
	PipelineSettings settings;
} PipelineDefinition;

/*
 * Every value a run of a pipeline takes from its definition or from the
 * settings, taken at one moment (config_resolve()).  Strings are
 * palloc'd.
 */
typedef struct ResolvedPipeline
{
	char	   *name;			/* DEFAULT_PIPELINE: the settings' pipeline */
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

#endif							/* SQS_INGEST_DEFINITION_H */
