/*-------------------------------------------------------------------------
 *
 * json_capture.h
 *	  One streaming pass of PostgreSQL's JSON parser over a document that
 *	  reads the values of chosen member chains ($.a.b) without building
 *	  anything else.
 *
 * Like the response decoders, nothing here raises an error or touches the
 * database: the same code runs in the server and, built as frontend code
 * against libpgcommon, in the fuzzer.  Everything is palloc'd in the
 * current memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_JSON_CAPTURE_H
#define SQS_INGEST_JSON_CAPTURE_H

#include "common/jsonapi.h"

/* deepest JSON nesting accepted in a message body */
#define CAPTURE_MAX_JSON_DEPTH 1000

/* JSON type of a value, and the other things a mapping rule can produce */
typedef enum JsonKind
{
	JV_ABSENT,
	JV_NULL,
	JV_STRING,
	JV_NUMBER,
	JV_BOOLEAN,
	JV_OBJECT,
	JV_ARRAY,
	JV_DATUM					/* a typed value of the message itself (never
								 * produced by the parse) */
} JsonKind;

/*
 * A member name looked for under its parent's, in a tree whose root is the
 * document.  Built with capture_child(), numbered by capture_number().
 */
typedef struct CaptureNode CaptureNode;
struct CaptureNode
{
	char	   *key;
	bool		wanted;			/* somebody reads exactly this chain */
	int			capture;		/* its slot, or -1 */
	int			first_capture;	/* slots of this subtree */
	int			end_capture;
	CaptureNode *first_child;
	CaptureNode *next_sibling;
};

/* what the pass found for one wanted chain */
typedef struct Captured
{
	JsonKind	kind;			/* JV_ABSENT if not in the document */
	char	   *str;			/* a scalar's text (strings unescaped,
								 * NUL-terminated), or a container's JSON
								 * text inside the document */
	int			len;
	bool		unwrap;			/* an array on the way: lax SQL/JSON path
								 * mode would look into its elements */
} Captured;

/* a parsed capture tree, ready for any number of documents */
typedef struct CapturePlan
{
	CaptureNode *root;
	int			nslots;
	int			max_depth;		/* deepest level a node lives at */
} CapturePlan;

extern CaptureNode *capture_child(CaptureNode *parent, const char *key);
extern JsonKind capture_scalar_kind(JsonTokenType tokentype);
extern void capture_number(CaptureNode *root, CapturePlan *plan);
extern char *capture_parse(const CapturePlan *plan, char *json, int len,
						   const char *what, Captured **slots,
						   JsonKind *top_kind);

#endif							/* SQS_INGEST_JSON_CAPTURE_H */
