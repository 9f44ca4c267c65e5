/*-------------------------------------------------------------------------
 *
 * sqs_ingest.h
 *	  Configuration shared by the modules of sqs_ingest.
 *
 * The GUC variables are defined in sqs_ingest.c; every other module reads
 * them through the snapshot structs below so that one batch sees one
 * consistent configuration even if a reload lands in the middle of it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_H
#define SQS_INGEST_H

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

/* GUC variables, see sqs_ingest.c for their meaning */
extern char *sqs_ingest_queue_url;
extern char *sqs_ingest_endpoint;
extern char *sqs_ingest_region;
extern char *sqs_ingest_ca_file;
extern int	sqs_ingest_mask_algorithm;
extern int	sqs_ingest_protocol;
extern char *sqs_ingest_target_table;
extern char *sqs_ingest_database;
extern char *sqs_ingest_role;
extern int	sqs_ingest_workers;
extern int	sqs_ingest_max_pipeline_workers;
extern int	sqs_ingest_visibility_timeout;
extern int	sqs_ingest_wait_time_seconds;
extern int	sqs_ingest_drain_wait_time_seconds;
extern int	sqs_ingest_max_inflight;
extern int	sqs_ingest_batch_size;
extern int	sqs_ingest_batch_timeout_ms;
extern int	sqs_ingest_connect_timeout_ms;
extern int	sqs_ingest_request_timeout_ms;
extern int	sqs_ingest_processed_retention;
extern int	sqs_ingest_retry_interval;
extern int	sqs_ingest_max_receive_count;
extern int	sqs_ingest_delete_after;
extern int	sqs_ingest_max_batch_bytes;
extern int	sqs_ingest_max_rows_per_message;
extern int	sqs_ingest_max_pipeline_batch_size;
extern int	sqs_ingest_max_pipeline_inflight;

/* hard cap on concurrent HTTP requests of one process */
#define SQS_INGEST_MAX_INFLIGHT_CAP 128

#endif							/* SQS_INGEST_H */
