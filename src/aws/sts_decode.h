/*-------------------------------------------------------------------------
 *
 * sts_decode.h
 *	  Pure decoder of STS's answers, for the AWS credential chain: bytes in,
 *	  the credentials or the reason the bytes are not an answer out.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_STS_DECODE_H
#define SQS_INGEST_STS_DECODE_H

/*
 * A decoded STS answer (AssumeRole, AssumeRoleWithWebIdentity): the
 * credentials, or an error's code and message.
 */
typedef struct StsAnswer
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *expiration;
	char	   *code;
	char	   *message;
} StsAnswer;

/* NULL on success, or a palloc'd fragment saying what is wrong */
extern char *sts_decode_xml(const char *data, size_t len, StsAnswer *result);

#endif							/* SQS_INGEST_STS_DECODE_H */
