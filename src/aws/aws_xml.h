/*-------------------------------------------------------------------------
 *
 * aws_xml.h
 *	  XML documents from AWS (SQS's Query protocol, STS) read through a
 *	  hardened libxml2: the parse and the walk the decoders share.
 *
 * Pure, like the decoders (sqs_decode.h): built as frontend code too.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_AWS_XML_H
#define SQS_INGEST_AWS_XML_H

#include <libxml/tree.h>

extern xmlNode *aws_xml_parse(const char *data, size_t len,
							  const char *root_name, xmlDoc **doc,
							  char **error);
extern bool aws_xml_is_element(const xmlNode *node, const char *name);
extern xmlNode *aws_xml_child(const xmlNode *node, const char *name);
extern char *aws_xml_text(const xmlNode *node, const char *what, char **error);
extern void aws_xml_wipe_and_free(xmlDoc *doc);

#endif							/* SQS_INGEST_AWS_XML_H */
