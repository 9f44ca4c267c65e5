/*-------------------------------------------------------------------------
 *
 * version.h
 *	  The extension's version as the code shows it to others.
 *
 * SQS_INGEST_VERSION is default_version of sqs_ingest.control, which the
 * Makefile passes to the compiler, so that what endpoints see cannot drift
 * from the version installed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_VERSION_H
#define SQS_INGEST_VERSION_H

#ifndef SQS_INGEST_VERSION
#error "SQS_INGEST_VERSION is not defined: build with the Makefile"
#endif

/* the User-Agent of every HTTP request, to SQS and to credential services */
#define SQS_INGEST_USER_AGENT "sqs_ingest/" SQS_INGEST_VERSION

#endif							/* SQS_INGEST_VERSION_H */
