/*-------------------------------------------------------------------------
 *
 * credential_http.c
 *	  Small blocking HTTP calls to AWS credential services, and the parsers
 *	  of what they answer: the JSON document of the instance metadata
 *	  service and of the container endpoint, the XML of STS.
 *
 * These calls are rare (once per process, then once per credential
 * lifetime) and short, so they block, with tight timeouts; a pending
 * interrupt (SIGTERM, query cancel) aborts them at once.  Everything an
 * endpoint sends is untrusted: responses are capped, redirects are not
 * followed, only http and https are spoken, TLS is always verified (the
 * hardening of transport.c, shared with the SQS client), JSON goes through
 * the non-throwing pg_parse_json and STS's XML through its pure decoder
 * (sts_decode.c), which reads it with the hardened libxml2 SQS's XML
 * answers go through (aws_xml.c: DTDs refused, neither entities nor
 * network access, nesting capped).  Their sockets
 * count against the server's file descriptor budget, as the SQS client's
 * do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "compat.h"
#include "credential_http.h"
#include "redact.h"
#include "secrets.h"
#include "sts_decode.h"
#include "transport.h"

/* a credential document is a few KiB; anything bigger is not one */
#define CREDENTIAL_MAX_RESPONSE (64 * 1024)
#define CREDENTIAL_CONNECT_TIMEOUT_MS 1000L

/* the response buffer libcurl writes into: sized up front, no palloc inside */
typedef struct ResponseBuffer
{
	StringInfo	data;
	bool		too_big;
} ResponseBuffer;

static size_t
write_capped(char *data, size_t size, size_t nmemb, void *userdata)
{
	ResponseBuffer *buf = userdata;
	size_t		n = size * nmemb;

	if (buf->data->len + n > CREDENTIAL_MAX_RESPONSE)
	{
		buf->too_big = true;
		return 0;				/* aborts the transfer */
	}
	memcpy(buf->data->data + buf->data->len, data, n);
	buf->data->len += n;
	buf->data->data[buf->data->len] = '\0';
	return n;
}

/* a pending interrupt aborts the call; it is serviced once libcurl is out */
static int
abort_on_interrupt(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
				   curl_off_t ultotal, curl_off_t ulnow)
{
	return InterruptPending ? 1 : 0;
}

/*
 * Make one call.  Returns false, with the reason in failure, if no HTTP
 * answer came; otherwise the status and the body (capped).
 */
bool
credential_http(const CredentialRequest *request, long *status,
				StringInfo response, StringInfo failure)
{
	CURL	   *easy;
	struct curl_slist *headers = NULL;
	char		error[CURL_ERROR_SIZE] = "";
	ResponseBuffer buf;
	CURLcode	rc;
	bool		ok = true;
	bool		out_of_descriptors = false;
	const char *body = request->body ? request->body : "";

	resetStringInfo(response);
	enlargeStringInfo(response, CREDENTIAL_MAX_RESPONSE + 1);
	buf.data = response;
	buf.too_big = false;

	for (int i = 0; i < CREDENTIAL_MAX_HEADERS && request->headers[i]; i++)
	{
		struct curl_slist *next = curl_slist_append(headers, request->headers[i]);

		if (next == NULL)
		{
			transport_free_headers(headers);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		}
		headers = next;
	}
	if (request->signing)
	{
		SigV4Signer *signer = sigv4_signer_create(request->url, request->region,
												  request->service);
		struct curl_slist *signed_headers;

		signed_headers = sigv4_sign(signer, request->method, headers, body,
									strlen(body), request->signing, time(NULL));
		sigv4_signer_free(signer);
		curl_slist_free_all(headers);
		headers = signed_headers;
	}

	easy = curl_easy_init();
	if (easy == NULL)
	{
		transport_free_headers(headers);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}

	curl_easy_setopt(easy, CURLOPT_URL, request->url);
	transport_harden(easy, request->ca_file,
					 Min(CREDENTIAL_CONNECT_TIMEOUT_MS, request->timeout_ms));
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, request->timeout_ms);
	if (request->direct)
		curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	if (strcmp(request->method, "POST") == 0)
	{
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
	}
	else if (strcmp(request->method, "PUT") == 0)
	{
		/* a PUT without a body (the IMDSv2 token) */
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_capped);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, abort_on_interrupt);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
	transport_count_sockets(easy, &out_of_descriptors);

	rc = curl_easy_perform(easy);
	*status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	else
	{
		ok = false;
		if (buf.too_big)
			appendStringInfo(failure, _("the answer of %s exceeds %d bytes"),
							 request->url, CREDENTIAL_MAX_RESPONSE);
		else if (out_of_descriptors)
			appendStringInfo(failure, _("%s: no file descriptor left for a connection (max_files_per_process)"),
							 request->url);
		else
			appendStringInfo(failure, "%s: %s", request->url,
							 error[0] ? error : curl_easy_strerror(rc));
	}
	curl_easy_cleanup(easy);
	transport_free_headers(headers);
	CHECK_FOR_INTERRUPTS();
	return ok;
}

/* ---------------------------------------------------------------------
 * JSON: {"AccessKeyId": ..., "SecretAccessKey": ..., "Token": ...,
 *        "Expiration": ..., "Code": ...}
 * ---------------------------------------------------------------------
 */

typedef struct JsonDocState
{
	CredentialDocument *doc;
	int			depth;
	char	  **target;			/* field of the member being parsed */
} JsonDocState;

static JsonSemResult
doc_struct_start(void *state)
{
	((JsonDocState *) state)->depth++;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
doc_struct_end(void *state)
{
	((JsonDocState *) state)->depth--;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
doc_field_start(void *state, char *fname, bool isnull)
{
	JsonDocState *s = state;
	CredentialDocument *doc = s->doc;

	s->target = NULL;
	if (s->depth != 1)
		return JSON_SEM_SUCCESS;
	if (strcmp(fname, "AccessKeyId") == 0)
		s->target = &doc->access_key_id;
	else if (strcmp(fname, "SecretAccessKey") == 0)
		s->target = &doc->secret_access_key;
	else if (strcmp(fname, "Token") == 0)
		s->target = &doc->session_token;
	else if (strcmp(fname, "Expiration") == 0)
		s->target = &doc->expiration;
	else if (strcmp(fname, "Code") == 0)
		s->target = &doc->code;
	else if (strcmp(fname, "Message") == 0)
		s->target = &doc->message;
	return JSON_SEM_SUCCESS;
}

static JsonSemResult
doc_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JsonDocState *s = state;

	if (s->depth != 1 || s->target == NULL || tokentype != JSON_TOKEN_STRING)
		return JSON_SEM_SUCCESS;
	/* a repeated key replaces the earlier one */
	secret_free(*s->target);
	*s->target = pstrdup(token);
	/* the parser's copy is left to its memory context: wipe it */
	explicit_bzero(token, strlen(token));
	s->target = NULL;
	return JSON_SEM_SUCCESS;
}

/*
 * Parse the JSON credential document of the instance metadata service or
 * the container endpoint (service, in messages).  Returns false, with what
 * is wrong with the answer in failure, if it is not valid JSON.
 */
bool
credential_parse_json(const char *json, size_t len, const char *service,
					  CredentialDocument *doc, StringInfo failure)
{
	JsonLexContext *lex;
	JsonSemAction sem = {0};
	JsonDocState state = {0};
	JsonParseErrorType rc;

	memset(doc, 0, sizeof(*doc));
	if (len > CREDENTIAL_MAX_RESPONSE)
	{
		appendStringInfo(failure, _("the answer of %s exceeds %d bytes"),
						 service, CREDENTIAL_MAX_RESPONSE);
		return false;
	}
	state.doc = doc;
	sem.semstate = &state;
	sem.object_start = doc_struct_start;
	sem.object_end = doc_struct_end;
	sem.array_start = doc_struct_start;
	sem.array_end = doc_struct_end;
	sem.object_field_start = doc_field_start;
	sem.scalar = doc_scalar;

	lex = compat_json_lex(unconstify(char *, json), (int) len, true);
	/* room for the longest string at once: a buffer that grows leaves copies */
	if (lex->strval != NULL)
		enlargeStringInfo(lex->strval, (int) len + 1);
	rc = pg_parse_json(lex, &sem);
	/* the lexer's last string may be a secret */
	if (lex->strval != NULL)
		explicit_bzero(lex->strval->data, lex->strval->maxlen);
	compat_json_lex_free(lex);
	if (rc != JSON_SUCCESS)
	{
		credential_document_free(doc);
		appendStringInfo(failure, _("the answer of %s is not a JSON document"), service);
		return false;
	}
	return true;
}

/*
 * Parse an STS answer (AssumeRoleWithWebIdentity, AssumeRole, or an
 * ErrorResponse) with its pure decoder (sts_decode.c); service names it in
 * messages.  Returns false, with
 * what is wrong with the answer in failure, if it is not one.
 */
bool
credential_parse_sts_xml(const char *xml, size_t len, const char *service,
						 CredentialDocument *doc, StringInfo failure)
{
	StsAnswer answer;
	char	   *error;

	memset(doc, 0, sizeof(*doc));
	if (len > CREDENTIAL_MAX_RESPONSE)
	{
		appendStringInfo(failure, _("the answer of %s exceeds %d bytes"),
						 service, CREDENTIAL_MAX_RESPONSE);
		return false;
	}
	error = sts_decode_xml(xml, len, &answer);
	doc->access_key_id = answer.access_key_id;
	doc->secret_access_key = answer.secret_access_key;
	doc->session_token = answer.session_token;
	doc->expiration = answer.expiration;
	doc->code = answer.code;
	doc->message = answer.message;
	if (error)
	{
		credential_document_free(doc);
		appendStringInfo(failure, _("the answer of %s is unusable: %s"),
						 service, redact_aws_text(error));
		return false;
	}
	return true;
}

/* free a parsed document, wiping what it held */
void
credential_document_free(CredentialDocument *doc)
{
	secret_free(doc->access_key_id);
	secret_free(doc->secret_access_key);
	secret_free(doc->session_token);
	secret_free(doc->expiration);
	secret_free(doc->code);
	secret_free(doc->message);
	memset(doc, 0, sizeof(*doc));
}
