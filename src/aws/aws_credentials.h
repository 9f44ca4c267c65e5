/*-------------------------------------------------------------------------
 *
 * aws_credentials.h
 *	  The AWS credential chain, as the AWS SDKs resolve it, with a
 *	  per-process cache refreshed before temporary credentials expire.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_AWS_CREDENTIALS_H
#define SQS_INGEST_AWS_CREDENTIALS_H

#include "datatype/timestamp.h"

/* long enough for "profile:" and any profile name worth having */
#define AWS_SOURCE_LEN 72

typedef struct AwsCredentials
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL when none */
	TimestampTz expiration;		/* 0: does not expire */
	char		source[AWS_SOURCE_LEN]; /* "environment", "profile:NAME", ... */
} AwsCredentials;

/* what a credential fetch depends on besides the environment */
typedef struct AwsChainScope
{
	const char *region;			/* of STS's regional endpoint */
	const char *ca_file;		/* CA bundle for https endpoints, or NULL */
} AwsChainScope;

extern const AwsCredentials *aws_credentials_current(const AwsChainScope *scope);

#endif							/* SQS_INGEST_AWS_CREDENTIALS_H */
