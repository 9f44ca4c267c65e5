/*-------------------------------------------------------------------------
 *
 * mapping_internal.h
 *	  What the parts of the mapping share, private to src/mapping/:
 *	  compile.c turns a mapping into rules, evaluate.c finds each rule's
 *	  value in a message, convert.c makes it the column's Datum, after the
 *	  rule's transform (transforms.c); calls.c runs the functions that
 *	  report bad data by raising an error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_MAPPING_INTERNAL_H
#define SQS_INGEST_MAPPING_INTERNAL_H

#include "utils/jsonb.h"
#include "utils/jsonpath.h"

#include "compat.h"
#include "json_capture.h"
#include "mapping.h"

/* how kinds of values are named in messages: "a string", ... */
extern const char *const mapping_kind_names[];

#define KIND_BIT(kind) (1 << (kind))

typedef enum RuleSource
{
	SOURCE_PATH,
	SOURCE_MESSAGE,
	SOURCE_ATTRIBUTE
} RuleSource;

typedef enum MessageField
{
	FIELD_ID,
	FIELD_SENT_AT,
	FIELD_SENT_DATE,
	FIELD_RECEIVE_COUNT,
	FIELD_BODY,
	FIELD_COUNT
} MessageField;

typedef struct MappingTransform MappingTransform;

struct MappingRule
{
	RuleSource	source;
	char	   *what;			/* how messages name the source: $.a.b, ... */
	JsonPath   *path;
	CaptureNode *node;			/* member chain read while parsing, or NULL */
	MessageField field;
	char	   *attribute;
	const MappingTransform *transform;	/* or NULL */
	int			types;			/* KIND_BITs accepted, 0 for any */
	char	   *types_text;		/* "a string or a number" */
	bool		required;
	MappingRule *otherwise;
};

/* a value a rule produced */
typedef struct MappingValue
{
	JsonKind	kind;
	char	   *str;			/* not NUL-terminated */
	int			len;
	Datum		datum;			/* JV_DATUM */
	Oid			datum_type;
	const MappingRule *rule;
} MappingValue;

/* what a transform needs made ready before each batch (mapping_prepare) */
#define TRANSFORM_NEEDS_MASK			0x01	/* the mask key */
#define TRANSFORM_NEEDS_RECOVERY_KEY	0x02	/* a key to encrypt to */

/*
 * A transform a rule may name.  check raises the mapping error
 * (mapping_rule_error) when the column cannot take the transform's values.
 * apply returns why the message is a dead letter, or NULL; it either
 * changes the value, which the column's conversion then takes, or makes the
 * column's Datum itself and sets *done.
 */
struct MappingTransform
{
	const char *name;
	int			needs;			/* TRANSFORM_NEEDS_* */
	void		(*check) (const MappingColumn *col);
	char	   *(*apply) (const CompiledMapping *mapping, const MappingColumn *col,
						  MappingValue *v, Datum *result, bool *done);
};

/*
 * A mistake in a column's rule: the detail is a whole sentence, given as a
 * format and its arguments so that it is translated like any errdetail.
 */
#define mapping_rule_error(col, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("invalid mapping for column \"%s\"", (col)->name), \
			 errdetail(__VA_ARGS__)))

/* transforms.c */
extern const MappingTransform *mapping_transform_compile(const MappingColumn *col,
														 const JsonbValue *v);
extern void mapping_check_recovery_key(const CompiledMapping *mapping);

/* convert.c */
extern char *mapping_convert(const CompiledMapping *mapping, const MappingColumn *col,
							 MappingValue *v, Datum *result);

/* calls.c */
typedef Datum (*CatchingFunction) (void *arg);

extern char *mapping_call_builtin(CatchingFunction fn, void *arg, Datum *result);
extern char *mapping_call_input(const TypeInput *input, char *str, int len,
								Datum *result);

#endif							/* SQS_INGEST_MAPPING_INTERNAL_H */
