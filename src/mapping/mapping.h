/*-------------------------------------------------------------------------
 *
 * mapping.h
 *	  The mapping language: a jsonb object from target column to rule,
 *	  compiled once against the target table, then applied to messages.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_MAPPING_H
#define SQS_INGEST_MAPPING_H

#include "access/attnum.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/jsonpath.h"

#include "json_capture.h"
#include "mask.h"
#include "openpgp.h"

typedef struct MappingRule MappingRule;

/* how a column's values are built */
typedef enum ColumnConversion
{
	CONV_TEXT,					/* text, varchar: checked here, no input call */
	CONV_INT4,
	CONV_INT8,
	CONV_NUMERIC,
	CONV_DATE,					/* strict ISO dates without an input call */
	CONV_TIMESTAMP,
	CONV_TIMESTAMPTZ,
	CONV_JSON,					/* json, jsonb: a value's JSON text */
	CONV_ARRAY,					/* a JSON array, element by element */
	CONV_INPUT					/* anything else: the type's input function */
} ColumnConversion;

/* a type's input function, looked up once */
typedef struct TypeInput
{
	Oid			typid;
	int32		typmod;
	FmgrInfo	func;
	Oid			ioparam;
	bool		builtin;		/* runs built-in code only: its errors are
								 * caught without a subtransaction */
} TypeInput;

typedef struct MappingColumn
{
	char	   *name;
	AttrNumber	attnum;
	Oid			typid;			/* declared type (may be a domain) */
	Oid			basetypid;		/* type the values are built in */
	int32		basetypmod;
	ColumnConversion conversion;
	int16		typlen;			/* of the base type: how values are copied */
	bool		typbyval;
	int			max_chars;		/* length limit of a text column, or -1 */
	TypeInput	input;
	/* array columns: their elements */
	ColumnConversion elem_conversion;
	TypeInput	elem_input;
	int16		elem_len;
	bool		elem_byval;
	char		elem_align;
	MappingRule *rule;
} MappingColumn;

/* a mapping compiled against its target table's columns */
typedef struct CompiledMapping
{
	uint64		generation;		/* unique among the mappings compiled in
								 * this process, never 0 */
	Oid			relid;
	char	   *qualified_name;
	int			ncolumns;
	MappingColumn *columns;
	bool		envelope_sns;	/* unwrap an SNS notification first */
	JsonPath   *explode;		/* one row per element found, or NULL */
	char	   *explode_text;
	int			max_rows;		/* option max_rows_per_message, or 0 */
	int			max_rows_cap;	/* sqs_ingest.max_rows_per_message, given to
								 * mapping_prepare() */
	bool		uses_mask;
	const MaskHandle *mask;		/* made ready by mapping_prepare() */
	const char *encrypts;		/* the first column encrypted, or NULL */
	OpenPgpKey *recovery_key;	/* the pipeline's, or NULL: the setting's */
	bool		uses_attributes;
	bool		reads_body;		/* some rule reads a path of the body */
	/* member chains read in one streaming pass of the parser */
	CapturePlan captures;
	Jsonb	   *no_vars;		/* the empty object jsonpath queries get */
} CompiledMapping;

/* a message as the mapping sees it */
typedef struct MappingMessage
{
	const char *message_id;
	char	   *body;			/* not NUL-terminated */
	int			body_len;
	int64		sent_timestamp_ms;
	int32		receive_count;
	int			nattributes;
	char	  **attribute_names;
	char	  **attribute_values;
} MappingMessage;

/*
 * Rows built by the mapping, column-major: values[column][row], in the
 * memory context that was current at mapping_rows_init().  A message is
 * mapped in a context of its own, each row of it in another, both reset
 * once the values are copied out: what a message's mapping allocates never
 * outlives it.
 */
typedef struct MappedRows
{
	int			ncolumns;
	int			nrows;
	int			capacity;
	Datum	  **values;
	bool	  **nulls;
	MemoryContext context;		/* of the values */
	MemoryContext message_context;	/* reset after each message */
	MemoryContext row_context;	/* reset after each row */
} MappedRows;

/*
 * A table the login events' mapping (mapping_login()) stores into, as DDL
 * whose %s is the table's name
 */
#define LOGIN_TABLE_DDL \
	"CREATE TABLE %s (user_id varchar(128), device_type varchar(32), " \
	"masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32), " \
	"app_version integer, create_date date);"

extern CompiledMapping *mapping_compile(Oid relid, Jsonb *mapping, Jsonb *options);
extern void mapping_prepare(CompiledMapping *mapping, MaskAlgorithm mask_algorithm,
							int max_rows_per_message);
extern Jsonb *mapping_login(Oid relid);
extern void mapping_rows_init(MappedRows *rows, int ncolumns);
extern char *mapping_map(const CompiledMapping *mapping, const MappingMessage *message,
						 MappedRows *rows);

#endif							/* SQS_INGEST_MAPPING_H */
