/*-------------------------------------------------------------------------
 *
 * sigv4.h
 *	  AWS Signature Version 4 ("AWS4-HMAC-SHA256") of the requests sent to
 *	  SQS and STS: header-based, over the whole payload.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SIGV4_H
#define SQS_INGEST_SIGV4_H

#include <time.h>

#include <curl/curl.h>

/* the credentials a request is signed with; session_token may be NULL */
typedef struct SigV4Credentials
{
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
} SigV4Credentials;

typedef struct SigV4Signer SigV4Signer;

extern SigV4Signer *sigv4_signer_create(const char *url, const char *region,
										const char *service);
extern void sigv4_signer_free(SigV4Signer *signer);
extern struct curl_slist *sigv4_sign(SigV4Signer *signer, const char *method,
									 const struct curl_slist *headers,
									 const char *payload, size_t payload_len,
									 const SigV4Credentials *credentials,
									 time_t when);

#endif							/* SQS_INGEST_SIGV4_H */
