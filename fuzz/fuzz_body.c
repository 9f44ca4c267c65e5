/*-------------------------------------------------------------------------
 *
 * fuzz_body.c
 *	  libFuzzer target for the body mapper's streaming pass
 *	  (src/mapping/json_capture.c), checked against a reference.
 *
 * The input is a few member chains, one per line ("$.a.b"), then the
 * document; without chain lines, a fixed set is read (the login events'
 * members, an SNS envelope's, nested ones).  The reference builds the
 * whole document as a tree with the same parser and reads each chain the
 * way jsonb and lax SQL/JSON path mode do: the last of repeated members
 * wins, and an array on the way means the chain must be left to jsonpath.
 * Any difference, or a captured text that is not where it should be,
 * aborts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "arena.h"
#include "compat.h"
#include "invariants.h"
#include "json_capture.h"
#include "sqs_decode.h"

#define MAX_CHAINS 8
#define MAX_KEYS 8

/* a document as a tree: the reference */
typedef struct RefValue RefValue;
struct RefValue
{
	JsonKind	kind;
	char	   *str;			/* scalar text */
	int			n;				/* members or elements */
	int			capacity;
	char	  **keys;			/* objects */
	RefValue  **items;
};

typedef struct RefBuild
{
	RefValue   *root;
	RefValue   *stack[CAPTURE_MAX_JSON_DEPTH + 2];
	int			depth;
	char	   *pending_key;
} RefBuild;

/* the reference's view of one chain */
typedef struct RefResult
{
	bool		unwrap;
	const RefValue *value;		/* NULL if absent */
} RefResult;

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
attach(RefBuild *b, RefValue *v)
{
	RefValue   *parent;

	if (b->depth == 0)
	{
		b->root = v;
		return;
	}
	parent = b->stack[b->depth - 1];
	if (parent->n == parent->capacity)
	{
		parent->capacity = parent->capacity ? 2 * parent->capacity : 4;
		parent->items = parent->items ?
			repalloc(parent->items, sizeof(RefValue *) * parent->capacity) :
			palloc(sizeof(RefValue *) * parent->capacity);
		parent->keys = parent->keys ?
			repalloc(parent->keys, sizeof(char *) * parent->capacity) :
			palloc(sizeof(char *) * parent->capacity);
	}
	if (parent->kind == JV_OBJECT)
		parent->keys[parent->n] = b->pending_key;
	parent->items[parent->n++] = v;
}

static RefValue *
new_value(JsonKind kind)
{
	RefValue   *v = palloc0(sizeof(RefValue));

	v->kind = kind;
	return v;
}

static JsonSemResult
ref_container_start(RefBuild *b, JsonKind kind)
{
	RefValue   *v = new_value(kind);

	attach(b, v);
	b->stack[b->depth++] = v;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
ref_object_start(void *state)
{
	return ref_container_start(state, JV_OBJECT);
}

static JsonSemResult
ref_array_start(void *state)
{
	return ref_container_start(state, JV_ARRAY);
}

static JsonSemResult
ref_container_end(void *state)
{
	((RefBuild *) state)->depth--;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
ref_field_start(void *state, char *fname, bool isnull)
{
	((RefBuild *) state)->pending_key = fname;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
ref_scalar(void *state, char *token, JsonTokenType tokentype)
{
	RefValue   *v = new_value(capture_scalar_kind(tokentype));

	v->str = token;
	attach(state, v);
	return JSON_SEM_SUCCESS;
}

/* the document as a tree, or NULL if it is not JSON */
static RefValue *
reference_parse(char *json, int len)
{
	RefBuild   *b = palloc0(sizeof(RefBuild));
	JsonSemAction sem = {0};
	JsonLexContext *lex = compat_json_lex(json, len, true);
	JsonParseErrorType rc;

	sem.semstate = b;
	sem.object_start = ref_object_start;
	sem.object_end = ref_container_end;
	sem.array_start = ref_array_start;
	sem.array_end = ref_container_end;
	sem.object_field_start = ref_field_start;
	sem.scalar = ref_scalar;
	rc = pg_parse_json(lex, &sem);
	compat_json_lex_free(lex);
	return rc == JSON_SUCCESS ? b->root : NULL;
}

/* a chain read from the tree as jsonb and lax jsonpath would */
static RefResult
reference_chain(const RefValue *root, char **keys, int nkeys)
{
	RefResult	r = {false, NULL};
	const RefValue *cur = root;

	if (root->kind != JV_OBJECT)
		return r;
	for (int k = 0; k < nkeys; k++)
	{
		const RefValue *found = NULL;

		if (cur->kind == JV_ARRAY)
		{
			r.unwrap = true;
			return r;
		}
		if (cur->kind != JV_OBJECT)
			return r;
		for (int i = 0; i < cur->n; i++)
			if (strcmp(cur->keys[i], keys[k]) == 0)
				found = cur->items[i];
		if (found == NULL)
			return r;
		cur = found;
	}
	r.value = cur;
	return r;
}

static bool
reference_equal(const RefValue *a, const RefValue *b)
{
	if (a->kind != b->kind || a->n != b->n)
		return false;
	if (a->kind != JV_OBJECT && a->kind != JV_ARRAY)
		return strcmp(a->str, b->str) == 0;
	for (int i = 0; i < a->n; i++)
	{
		if (a->kind == JV_OBJECT && strcmp(a->keys[i], b->keys[i]) != 0)
			return false;
		if (!reference_equal(a->items[i], b->items[i]))
			return false;
	}
	return true;
}

/* the slot of a chain against the reference's reading of it */
static void
check_slot(const Captured *slot, RefResult expected, const char *doc, int len,
		   bool utf8)
{
	require(slot->unwrap == expected.unwrap, "an array on the way is flagged, and only then");
	if (expected.unwrap)
		return;
	if (expected.value == NULL)
	{
		require(slot->kind == JV_ABSENT, "an absent member is absent");
		return;
	}
	require(slot->kind == expected.value->kind, "the member's kind");
	if (slot->kind == JV_OBJECT || slot->kind == JV_ARRAY)
	{
		char	   *copy;
		RefValue   *reparsed;

		require(slot->str >= doc && slot->len > 0 && slot->str + slot->len <= doc + len,
				"a container's text lies inside the document");
		require(slot->str[0] == (slot->kind == JV_OBJECT ? '{' : '['),
				"a container's text starts with its bracket");
		copy = pnstrdup(slot->str, slot->len);
		reparsed = reference_parse(copy, slot->len);
		require(reparsed != NULL && reference_equal(reparsed, expected.value),
				"a container's text is the member's value");
	}
	else
	{
		require(slot->str != NULL && (int) strlen(slot->str) == slot->len,
				"a scalar's text and its length");
		require(strcmp(slot->str, expected.value->str) == 0, "the scalar's text");
		if (utf8)
			require(pg_encoding_verifymbstr(PG_UTF8, slot->str, slot->len) == slot->len,
					"a string of a UTF-8 document is UTF-8");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const default_chains[] = {
		"$.Type", "$.Message", "$.user_id", "$.a", "$.a.b", "$.a.b.c", "$.x.y"
	};
	const char *p = (const char *) data;
	const char *end = p + size;
	char	   *chains[MAX_CHAINS];
	int			nchains = 0;
	char	  **keys[MAX_CHAINS];
	int			nkeys[MAX_CHAINS];
	CaptureNode *nodes[MAX_CHAINS];
	CaptureNode *root = palloc0(sizeof(CaptureNode));
	CapturePlan plan;
	Captured   *slots;
	JsonKind	top;
	char	   *doc;
	int			len;
	char	   *error;

	while (p < end && *p == '$' && nchains < MAX_CHAINS)
	{
		const char *nl = memchr(p, '\n', end - p);

		if (nl == NULL)
			nl = end;
		chains[nchains++] = pnstrdup(p, nl - p);
		p = nl < end ? nl + 1 : end;
	}
	if (nchains == 0)
		for (; nchains < (int) lengthof(default_chains); nchains++)
			chains[nchains] = pstrdup(default_chains[nchains]);

	/* "$.a.b" as keys a, b; a chain of no key reads nothing */
	for (int c = 0; c < nchains; c++)
	{
		char	   *rest = chains[c][1] == '.' ? chains[c] + 2 : NULL;
		CaptureNode *node = root;

		keys[c] = palloc0(sizeof(char *) * MAX_KEYS);
		nkeys[c] = 0;
		while (rest && nkeys[c] < MAX_KEYS)
		{
			char	   *dot = strchr(rest, '.');

			if (dot)
				*dot = '\0';
			keys[c][nkeys[c]++] = rest;
			node = capture_child(node, rest);
			rest = dot ? dot + 1 : NULL;
		}
		nodes[c] = nkeys[c] > 0 ? node : NULL;
		if (nodes[c])
			nodes[c]->wanted = true;
	}
	capture_number(root, &plan);

	/* exactly the document's bytes, so that reading past them is caught */
	len = end - p;
	doc = malloc(Max(len, 1));
	memcpy(doc, p, len);

	error = capture_parse(&plan, doc, len, "body", &slots, &top);
	if (sqs_json_nests_deeper_than(doc, len, CAPTURE_MAX_JSON_DEPTH))
		require(error != NULL, "a document too deep is refused");
	else
	{
		RefValue   *reference = reference_parse(pnstrdup(doc, len), len);
		bool		utf8 = pg_encoding_verifymbstr(PG_UTF8, doc, len) == len;

		require((error == NULL) == (reference != NULL), "JSON is accepted, and only JSON");
		if (error)
			require(pg_encoding_verifymbstr(PG_UTF8, error, strlen(error)) == (int) strlen(error) ||
					!utf8, "the reason is UTF-8");
		else
		{
			require(top == reference->kind, "the document's kind");
			for (int c = 0; c < nchains; c++)
				if (nodes[c])
					check_slot(&slots[nodes[c]->capture],
							   reference_chain(reference, keys[c], nkeys[c]),
							   doc, len, utf8);
		}
	}
	free(doc);
	arena_reset();
	return 0;
}
