/*-------------------------------------------------------------------------
 *
 * redact.h
 *	  Text from AWS made fit for the log and the statistics.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_REDACT_H
#define SQS_INGEST_REDACT_H

/* characters kept of an AWS message at most */
#define REDACT_MAX_CHARS 256

extern char *redact_aws_text(const char *text);

#endif							/* SQS_INGEST_REDACT_H */
