/*-------------------------------------------------------------------------
 *
 * setting_values.h
 *	  The values of sqs_ingest.* settings that several modules share.
 *
 * The settings themselves are defined and read in config.c alone; the
 * other modules take their values from its functions, or a pipeline's
 * from config_resolve(), so that one batch sees one consistent
 * configuration even if a reload lands in the middle of it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SETTING_VALUES_H
#define SQS_INGEST_SETTING_VALUES_H

/* mask algorithms (sqs_ingest.mask_algorithm) */
typedef enum MaskAlgorithm
{
	MASK_HMAC_SHA256,
	MASK_SHA256
} MaskAlgorithm;

/* wire protocols (sqs_ingest.protocol) */
typedef enum SqsProtocol
{
	SQS_PROTOCOL_AUTO,
	SQS_PROTOCOL_JSON,			/* AWS JSON 1.0 */
	SQS_PROTOCOL_QUERY			/* form-encoded requests, XML responses */
} SqsProtocol;

/* what a stored message's delete from SQS waits for (sqs_ingest.delete_after) */
typedef enum DeleteAfter
{
	DELETE_AFTER_LOCAL_FLUSH,	/* the commit flushed here */
	DELETE_AFTER_STANDBY_FLUSH	/* and on the standbys (standby.c) */
} DeleteAfter;

/* hard cap on concurrent HTTP requests of one process */
#define SQS_INGEST_MAX_INFLIGHT_CAP 128

#endif							/* SQS_INGEST_SETTING_VALUES_H */
