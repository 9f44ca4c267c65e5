/*-------------------------------------------------------------------------
 *
 * record.h
 *	  Mapping of one login event (a JSON message body) to a row of the
 *	  target table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_RECORD_H
#define SQS_INGEST_RECORD_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/date.h"

/* columns of the target table, in the order the insert lists them */
typedef enum TargetColumnId
{
	TC_USER_ID,
	TC_DEVICE_TYPE,
	TC_MASKED_IP,
	TC_MASKED_DEVICE_ID,
	TC_LOCALE,
	TC_APP_VERSION,
	TC_CREATE_DATE,
	TC_COUNT
} TargetColumnId;

/* how a value is turned into a Datum of the column's (base) type */
typedef enum ColumnKind
{
	CK_TEXT,					/* text, varchar, bpchar */
	CK_INT4,
	CK_INT8,
	CK_NUMERIC,
	CK_DATE,
	CK_TIMESTAMP,
	CK_TIMESTAMPTZ
} ColumnKind;

typedef struct TargetColumn
{
	Oid			typid;			/* declared type (may be a domain) */
	Oid			basetypid;		/* type the values are built in */
	int32		basetypmod;
	int			max_chars;		/* length limit of a text column, or -1 */
	ColumnKind	kind;
} TargetColumn;

/* what the pipeline knows of the target table, read from the catalog */
typedef struct TargetTable
{
	Oid			relid;
	char	   *qualified_name;
	TargetColumn col[TC_COUNT];
} TargetTable;

extern const char *const target_column_names[TC_COUNT];

/* maximum JSON nesting accepted in a body */
#define RECORD_MAX_JSON_DEPTH 1000

extern char *record_map(const TargetTable *target, char *body, int len,
						int64 sent_timestamp_ms, Datum *values, bool *nulls);
extern bool record_parse_app_version(const char *str, int len, int64 *result);
extern bool record_parse_iso_date(const char *str, int len, DateADT *result);
extern char *record_iso_date(DateADT date);
extern DateADT record_date_of_unix_ms(int64 unix_ms);
extern char *record_check_depth(char *json, int len, const char *what);
extern int64 record_unix_ms(TimestampTz ts);
extern TimestampTz record_timestamptz(int64 unix_ms);
extern bool record_unix_ms_in_range(int64 unix_ms);

#endif							/* SQS_INGEST_RECORD_H */
