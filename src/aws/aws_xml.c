/*-------------------------------------------------------------------------
 *
 * aws_xml.c
 *	  XML documents from AWS read through a hardened libxml2: SQS's Query
 *	  protocol answers (sqs_decode_xml.c) and STS's (sts_decode.c).
 *
 * The same rules as for JSON (sqs_decode.c) apply, and XML adds its own
 * dangers.  libxml2 is asked for the least it can do: no DTD is loaded,
 * no entity is substituted, no network is touched (XML_PARSE_NONET), its
 * own depth and size limits stay on (no XML_PARSE_HUGE), and it reports
 * nothing on stderr.  A document that declares a DTD at all is refused
 * before parsing, so no entity declaration is ever read; nesting is capped
 * far below libxml2's own limit.  Elements are matched by local name,
 * whatever their namespace.
 *
 * libxml2 allocates with malloc: the decoders free the tree before
 * returning, and copy what they keep with palloc first.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "aws_xml.h"
#include "sqs_decode.h"

/* deepest element nesting accepted (SQS's documents nest 5 deep) */
#define XML_MAX_DEPTH 32

#define XML_PARSE_OPTIONS \
	(XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

/* is the element named name (local name, any namespace)? */
bool
aws_xml_is_element(const xmlNode *node, const char *name)
{
	return node->type == XML_ELEMENT_NODE &&
		strcmp((const char *) node->name, name) == 0;
}

/* does the tree under root nest deeper than limit?  Walked without recursion */
static bool
nests_deeper_than(xmlNode *root, int limit)
{
	xmlNode    *node = root;
	int			depth = 1;

	if (root->children == NULL)
		return false;
	for (;;)
	{
		if (node->type == XML_ELEMENT_NODE && node->children)
		{
			if (++depth > limit)
				return true;
			node = node->children;
			continue;
		}
		while (node->next == NULL)
		{
			node = node->parent;
			depth--;
			if (node == root)
				return false;
		}
		node = node->next;
	}
}

/*
 * Parse a response into a tree whose root is an element named root_name
 * (any element when root_name is NULL).  Returns NULL and sets *error if
 * the bytes are not such a document; *doc is NULL for an empty document.
 */
xmlNode *
aws_xml_parse(const char *data, size_t len, const char *root_name,
			   xmlDoc **doc, char **error)
{
	xmlNode    *root;

	*doc = NULL;
	*error = sqs_decode_check_text(data, len);
	if (*error || len == 0)
		return NULL;
	if (memmem(data, len, "<!DOCTYPE", 9) != NULL ||
		memmem(data, len, "<!ENTITY", 8) != NULL)
	{
		*error = psprintf("the response declares a DTD or entities");
		return NULL;
	}
	xmlInitParser();
	*doc = xmlReadMemory(data, (int) len, NULL, "UTF-8", XML_PARSE_OPTIONS);
	if (*doc == NULL)
	{
		const xmlError *e = xmlGetLastError();

		*error = psprintf("the response is not well-formed XML%s%s",
						  e && e->message ? ": " : "",
						  e && e->message ? sqs_decode_clip(e->message, SQS_DECODE_MAX_TEXT_CHARS) : "");
		/* drop the trailing newline libxml2 puts on its messages */
		if ((*error)[strlen(*error) - 1] == '\n')
			(*error)[strlen(*error) - 1] = '\0';
		return NULL;
	}
	root = xmlDocGetRootElement(*doc);
	if ((*doc)->intSubset || (*doc)->extSubset)
		*error = psprintf("the response declares a DTD or entities");
	else if (root == NULL)
		*error = psprintf("the response has no root element");
	else if (nests_deeper_than(root, XML_MAX_DEPTH))
		*error = psprintf("the response nests deeper than %d levels", XML_MAX_DEPTH);
	else if (root_name != NULL && !aws_xml_is_element(root, root_name))
		*error = psprintf("the response is <%s>, not <%s>",
						  sqs_decode_clip((const char *) root->name, SQS_DECODE_MAX_TEXT_CHARS),
						  root_name);
	return *error ? NULL : root;
}

/* the first child element of node named name, or NULL */
xmlNode *
aws_xml_child(const xmlNode *node, const char *name)
{
	for (xmlNode *c = node ? node->children : NULL; c; c = c->next)
		if (aws_xml_is_element(c, name))
			return c;
	return NULL;
}

/*
 * The text of an element as a palloc'd string, or NULL (and *error set)
 * if it holds elements.  NULL without error when node is NULL.  The string
 * is allocated at its final size, so that no copy of a secret is left
 * behind in memory given back.
 */
char *
aws_xml_text(const xmlNode *node, const char *what, char **error)
{
	size_t		len = 0;
	char	   *text;

	if (node == NULL)
		return NULL;
	for (xmlNode *c = node->children; c; c = c->next)
	{
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
			len += strlen((const char *) c->content);
		else if (c->type == XML_ELEMENT_NODE)
		{
			*error = psprintf("%s holds elements, not text", what);
			return NULL;
		}
	}
	text = palloc(len + 1);
	len = 0;
	for (xmlNode *c = node->children; c; c = c->next)
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
		{
			size_t		n = strlen((const char *) c->content);

			memcpy(text + len, c->content, n);
			len += n;
		}
	text[len] = '\0';
	return text;
}

/*
 * Free a parsed document, first wiping the text it holds (but not the
 * strings libxml2 shares through its dictionary, which other documents
 * may use): for documents that carry secrets.
 */
void
aws_xml_wipe_and_free(xmlDoc *doc)
{
	xmlNode    *root = xmlDocGetRootElement(doc);
	xmlNode    *node = root;

	/* a walk without recursion, as in nests_deeper_than() */
	while (node)
	{
		if ((node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) &&
			node->content && !xmlDictOwns(doc->dict, node->content))
			explicit_bzero(node->content, strlen((const char *) node->content));
		if (node->type == XML_ELEMENT_NODE && node->children)
		{
			node = node->children;
			continue;
		}
		while (node != root && node->next == NULL)
			node = node->parent;
		if (node == root)
			break;
		node = node->next;
	}
	xmlFreeDoc(doc);
}
