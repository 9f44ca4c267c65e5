/*-------------------------------------------------------------------------
 *
 * mask.h
 *	  Masking of personal data (IP address, device id).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_MASK_H
#define SQS_INGEST_MASK_H

#include "setting_values.h"

/* a mask is 64 lowercase hex characters */
#define MASK_HEX_LEN 64

/* what masks values: the algorithm, and the keyed context (mask.c) */
typedef struct MaskHandle MaskHandle;

extern const MaskHandle *mask_prepare(MaskAlgorithm algorithm);
extern void mask_value(const MaskHandle *mask, const char *value, int len, char *out);

#endif							/* SQS_INGEST_MASK_H */
