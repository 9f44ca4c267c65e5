/* invariants.h: what any successful decode must satisfy (see invariants.c) */
#ifndef SQS_INGEST_FUZZ_INVARIANTS_H
#define SQS_INGEST_FUZZ_INVARIANTS_H

#include "sqs_decode.h"
#include "sts_decode.h"

extern void require(bool condition, const char *what);
extern void check_error_text(const char *error);
extern void check_receive(const SqsReceiveResponse *r, int max_messages);
extern void check_batch(const SqsBatchResponse *b, int entries);
extern void check_error_document(const SqsErrorDocument *e);
extern void check_sts(const StsAnswer *a);

#endif
