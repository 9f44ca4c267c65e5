/*-------------------------------------------------------------------------
 *
 * credential_http.h
 *	  Small blocking HTTP calls to AWS credential services (instance
 *	  metadata, container endpoint, STS) and the parsers of their answers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CREDENTIAL_HTTP_H
#define SQS_INGEST_CREDENTIAL_HTTP_H

#include "lib/stringinfo.h"

#include "sigv4.h"

#define CREDENTIAL_MAX_HEADERS 4

/* one call to a credential service */
typedef struct CredentialRequest
{
	const char *method;			/* "GET", "PUT" or "POST" */
	const char *url;
	const char *headers[CREDENTIAL_MAX_HEADERS + 1];	/* NULL-terminated */
	const char *body;			/* form body of a POST, or NULL */
	long		timeout_ms;		/* whole call; connecting gets at most 1 s */
	bool		direct;			/* link-local or loopback: never via a proxy */
	const char *ca_file;		/* CA bundle replacing the system's, or NULL */
	/* SigV4 signing (STS AssumeRole): the credentials, or NULL */
	const SigV4Credentials *signing;
	const char *region;
	const char *service;
} CredentialRequest;

/* what a credential service answered, every field palloc'd or NULL */
typedef struct CredentialDocument
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *expiration;
	char	   *code;			/* IMDS "Success", or an STS error code */
	char	   *message;		/* an error's message */
} CredentialDocument;

extern bool credential_http(const CredentialRequest *request, long *status,
							StringInfo response, StringInfo failure);
extern bool credential_parse_json(const char *json, size_t len,
								  const char *service, CredentialDocument *doc,
								  StringInfo failure);
extern bool credential_parse_sts_xml(const char *xml, size_t len,
									 const char *service, CredentialDocument *doc,
									 StringInfo failure);
/* credential_parse_json() or credential_parse_sts_xml() */
typedef bool (*CredentialParser) (const char *data, size_t len, const char *service,
								  CredentialDocument *doc, StringInfo failure);

extern void credential_document_free(CredentialDocument *doc);

#endif							/* SQS_INGEST_CREDENTIAL_HTTP_H */
