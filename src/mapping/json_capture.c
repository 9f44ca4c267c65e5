/*-------------------------------------------------------------------------
 *
 * json_capture.c
 *	  Reading the values of member chains ($.a.b) of a JSON document in one
 *	  streaming pass of pg_parse_json.
 *
 * The chains wanted form a tree of member names under the document.  While
 * the parser walks the document, the node whose members are looked for is
 * kept for every open container down to the deepest wanted level; a member
 * whose name is a child of that node has its value recorded in the child's
 * slot (a scalar's unescaped text, or a container's JSON text pointing into
 * the document).  A repeated member replaces the earlier one, as jsonb
 * does.  A member chain that meets an array on its way is not read here:
 * lax SQL/JSON path mode would look into the array's elements, so the
 * slots under it are only flagged for the caller's jsonpath fallback.
 *
 * The nesting depth is measured first with the lexer alone: pg_parse_json
 * recurses once per level, and its stack check is its only throwing path.
 *
 * The file builds as backend code and, with FRONTEND defined, as frontend
 * code against libpgcommon (fuzzing).
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include "common/jsonapi.h"

#include "compat.h"
#include "json_capture.h"
#include "sqs_decode.h"

typedef struct CaptureState
{
	JsonLexContext *lex;
	Captured   *slots;
	int			max_depth;		/* deepest level a wanted member lives at */
	int			depth;			/* containers open around the position */
	const CaptureNode **containers; /* [level]: node whose members are
									 * looked for, or NULL */
	int		   *open_slot;		/* [level]: slot of the container, or -1 */
	const CaptureNode *pending; /* the member whose value comes next */
	JsonKind	top_kind;
} CaptureState;

/* the child of parent named key, created if it is not there yet */
CaptureNode *
capture_child(CaptureNode *parent, const char *key)
{
	CaptureNode **link = &parent->first_child;

	for (; *link; link = &(*link)->next_sibling)
		if (strcmp((*link)->key, key) == 0)
			return *link;
	*link = palloc0(sizeof(CaptureNode));
	(*link)->key = pstrdup(key);
	(*link)->capture = -1;
	return *link;
}

/* number the wanted nodes depth first, so a subtree's slots are contiguous */
static void
number_subtree(CaptureNode *node, int depth, CapturePlan *plan)
{
	plan->max_depth = Max(plan->max_depth, depth);
	node->first_capture = plan->nslots;
	node->capture = node->wanted ? plan->nslots++ : -1;
	for (CaptureNode *child = node->first_child; child; child = child->next_sibling)
		number_subtree(child, depth + 1, plan);
	node->end_capture = plan->nslots;
}

/* give the wanted nodes of the tree their slots; the plan is then usable */
void
capture_number(CaptureNode *root, CapturePlan *plan)
{
	plan->root = root;
	plan->nslots = 0;
	plan->max_depth = 0;
	number_subtree(root, 0, plan);
}

static void
reset_slots(CaptureState *s, const CaptureNode *node)
{
	for (int i = node->first_capture; i < node->end_capture; i++)
		memset(&s->slots[i], 0, sizeof(Captured));
}

static JsonSemResult
capture_field_start(void *state, char *fname, bool isnull)
{
	CaptureState *s = state;
	const CaptureNode *container;

	s->pending = NULL;
	if (s->depth > s->max_depth || (container = s->containers[s->depth]) == NULL)
		return JSON_SEM_SUCCESS;
	for (const CaptureNode *child = container->first_child; child;
		 child = child->next_sibling)
	{
		if (strcmp(child->key, fname) == 0)
		{
			/* a repeated key replaces the earlier one, as in jsonb */
			reset_slots(s, child);
			s->pending = child;
			break;
		}
	}
	return JSON_SEM_SUCCESS;
}

/* a container starts: record it for its member, look inside if need be */
static void
capture_container_start(CaptureState *s, JsonKind kind)
{
	const CaptureNode *node = s->pending;
	int			level = s->depth + 1;

	s->pending = NULL;
	if (s->depth == 0)
		s->top_kind = kind;
	if (level <= s->max_depth + 1)
	{
		s->containers[level] = NULL;
		s->open_slot[level] = -1;
		if (s->depth == 0 && kind == JV_OBJECT)
			s->containers[level] = s->containers[0];
		else if (node)
		{
			if (node->capture >= 0)
			{
				s->slots[node->capture].kind = kind;
				/* into the document, which is the caller's and writable */
				s->slots[node->capture].str = (char *) s->lex->token_start;
				s->open_slot[level] = node->capture;
			}
			if (kind == JV_OBJECT)
				s->containers[level] = node;
			else
			{
				/* lax mode looks into the array's elements: leave it to jsonpath */
				for (int i = node->first_capture; i < node->end_capture; i++)
					if (i != node->capture)
						s->slots[i].unwrap = true;
			}
		}
	}
	s->depth++;
}

static JsonSemResult
capture_object_start(void *state)
{
	capture_container_start(state, JV_OBJECT);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
capture_array_start(void *state)
{
	capture_container_start(state, JV_ARRAY);
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
capture_container_end(void *state)
{
	CaptureState *s = state;

	if (s->depth <= s->max_depth + 1 && s->open_slot[s->depth] >= 0)
	{
		Captured   *slot = &s->slots[s->open_slot[s->depth]];

		slot->len = s->lex->prev_token_terminator - slot->str;
	}
	s->depth--;
	return JSON_SEM_SUCCESS;
}

/* the kind of a scalar token */
JsonKind
capture_scalar_kind(JsonTokenType tokentype)
{
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			return JV_STRING;
		case JSON_TOKEN_NUMBER:
			return JV_NUMBER;
		case JSON_TOKEN_NULL:
			return JV_NULL;
		default:
			return JV_BOOLEAN;
	}
}

static JsonSemResult
capture_scalar(void *state, char *token, JsonTokenType tokentype)
{
	CaptureState *s = state;
	const CaptureNode *node = s->pending;

	s->pending = NULL;
	if (s->depth == 0)
		s->top_kind = capture_scalar_kind(tokentype);
	else if (node && node->capture >= 0)
	{
		Captured   *slot = &s->slots[node->capture];

		slot->kind = capture_scalar_kind(tokentype);
		slot->str = token;
		slot->len = token ? strlen(token) : 0;
	}
	return JSON_SEM_SUCCESS;
}

/*
 * Parse a JSON document (len bytes, which must stay valid and unchanged
 * while the slots are used), reading the chains of the plan into *slots
 * and the document's own kind into *top_kind.  Returns NULL, or the reason
 * the document is not JSON; what names the document in it.
 */
char *
capture_parse(const CapturePlan *plan, char *json, int len, const char *what,
			  Captured **slots, JsonKind *top_kind)
{
	JsonSemAction sem = {0};
	CaptureState s = {0};
	JsonParseErrorType rc;
	char	   *error = NULL;

	*slots = palloc0(sizeof(Captured) * Max(plan->nslots, 1));
	*top_kind = JV_ABSENT;
	if (sqs_json_nests_deeper_than(json, len, CAPTURE_MAX_JSON_DEPTH))
		return psprintf("%s nests JSON deeper than %d levels", what,
						CAPTURE_MAX_JSON_DEPTH);

	s.lex = compat_json_lex(json, len, true);
	s.slots = *slots;
	s.max_depth = plan->max_depth;
	s.containers = palloc0(sizeof(CaptureNode *) * (plan->max_depth + 2));
	s.open_slot = palloc(sizeof(int) * (plan->max_depth + 2));
	s.containers[0] = plan->root;
	s.top_kind = JV_ABSENT;

	sem.semstate = &s;
	sem.object_start = capture_object_start;
	sem.object_end = capture_container_end;
	sem.array_start = capture_array_start;
	sem.array_end = capture_container_end;
	sem.object_field_start = capture_field_start;
	sem.scalar = capture_scalar;

	rc = pg_parse_json(s.lex, &sem);
	if (rc != JSON_SUCCESS)
		error = psprintf("%s is not valid JSON: %s", what, json_errdetail(rc, s.lex));
	compat_json_lex_free(s.lex);
	pfree(s.containers);
	pfree(s.open_slot);
	*top_kind = s.top_kind;
	return error;
}
