/*-------------------------------------------------------------------------
 *
 * recovery.h
 *	  The recovery key of the encrypt transform (sqs_ingest.recovery_key_file)
 *	  and the audited recovery of encrypted values.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_RECOVERY_H
#define SQS_INGEST_RECOVERY_H

#include "openpgp.h"

extern void recovery_define_settings(void);
extern bool recovery_key_configured(void);
extern const OpenPgpKey *recovery_key_prepare(void);
extern const OpenPgpKey *recovery_key_current(void);

#endif							/* SQS_INGEST_RECOVERY_H */
