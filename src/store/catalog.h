/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The pipeline catalog, sqs_ingest.pipelines: its rows read as
 *	  definitions (definition.h), their options, and the SQL functions
 *	  that change them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CATALOG_H
#define SQS_INGEST_CATALOG_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"

#include "definition.h"

extern void catalog_parse_options(Jsonb *options, PipelineSettings *settings);
extern PipelineDefinition *catalog_get(const char *name);
extern List *catalog_list(void);
extern Oid	catalog_target_relid(const PipelineDefinition *def, LOCKMODE lockmode);

#endif							/* SQS_INGEST_CATALOG_H */
