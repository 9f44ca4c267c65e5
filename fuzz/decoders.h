/* decoders.h: one wire format's decoders, driven alike (see fuzz_decoders.c) */
#ifndef SQS_INGEST_FUZZ_DECODERS_H
#define SQS_INGEST_FUZZ_DECODERS_H

#include "sqs_decode.h"
#include "sts_decode.h"

typedef struct Decoders
{
	char	   *(*receive) (const char *data, size_t len, int max_messages,
							SqsReceiveResponse *result);
	char	   *(*batch) (const char *data, size_t len, int entries,
						  SqsBatchResponse *result);
	char	   *(*attributes) (const char *data, size_t len,
							   const char *const *names, int count, int64 *values);
	bool		(*error) (const char *data, size_t len, SqsErrorDocument *result);
	/* STS answers (credentials): XML only, NULL for JSON */
	char	   *(*sts) (const char *data, size_t len, StsAnswer *result);
} Decoders;

extern const Decoders json_decoders;
extern const Decoders xml_decoders;

extern void fuzz_decoders(const Decoders *d, const char *data, size_t len);

#endif
