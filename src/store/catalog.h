/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The pipeline catalog, sqs_ingest.pipelines: definitions, their
 *	  options, and the SQL functions that change them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CATALOG_H
#define SQS_INGEST_CATALOG_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"

#include "security.h"

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

/* SPI access to the extension's tables as their owner */
typedef struct CatalogAccess
{
	SecurityScope scope;
} CatalogAccess;

extern void catalog_begin(CatalogAccess *access);
extern void catalog_end(CatalogAccess *access);
extern void catalog_parse_options(Jsonb *options, PipelineSettings *settings);
extern PipelineDefinition *catalog_get(const char *name);
extern List *catalog_list(void);
extern Oid	catalog_target_relid(const PipelineDefinition *def, LOCKMODE lockmode);

#endif							/* SQS_INGEST_CATALOG_H */
