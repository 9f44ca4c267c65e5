/*-------------------------------------------------------------------------
 *
 * subxact.h
 *	  Running a function in a subtransaction of its own, its error caught;
 *	  copying a caught error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SUBXACT_H
#define SQS_INGEST_SUBXACT_H

#include "utils/elog.h"

extern ErrorData *subxact_copy_error(void);
extern ErrorData *subxact_call(void (*fn) (void *), void *arg);

#endif							/* SQS_INGEST_SUBXACT_H */
