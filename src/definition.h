/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  A pipeline's definition: what a row of sqs_ingest.pipelines
 *	  (catalog.c) and the sqs_ingest.* settings (config.c) both yield, and
 *	  what a worker, a drain and the launcher run.
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

#endif							/* SQS_INGEST_DEFINITION_H */
