/*-------------------------------------------------------------------------
 *
 * config.h
 *	  What a pipeline runs with: its definition resolved against the
 *	  sqs_ingest.* settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CONFIG_H
#define SQS_INGEST_CONFIG_H

#include "definition.h"

/* the strings of SessionSettings */
typedef enum SessionString
{
	SESSION_QUEUE_URL,
	SESSION_ENDPOINT,
	SESSION_REGION,
	SESSION_CA_FILE,
	SESSION_TARGET_TABLE,
	SESSION_ACCESS_KEY_ID,		/* the secrets: see secret_set_session() */
	SESSION_SECRET_ACCESS_KEY,
	SESSION_SESSION_TOKEN,
	SESSION_MASK_KEY,
	NUM_SESSION_STRINGS
} SessionString;

/*
 * The sqs_ingest.* settings a drain takes from its caller's session, so
 * that a session's SET sqs_ingest.queue_url drains that queue; the drain
 * worker takes the others from the server's configuration.  The strings
 * follow the struct, at their offsets into text.  Of a catalog pipeline's
 * drain, the values the pipeline sets (queue URL, endpoint, region,
 * visibility timeout, batch size, max_inflight) are not taken.
 */
typedef struct SessionSettings
{
	bool		pipeline;		/* of a catalog pipeline's drain */
	int			protocol;
	int			mask_algorithm;
	int			visibility_timeout;
	int			drain_wait_time_seconds;
	int			max_inflight;
	int			batch_size;
	int			batch_timeout_ms;
	int			connect_timeout_ms;
	int			request_timeout_ms;
	int			max_receive_count;
	Size		strings[NUM_SESSION_STRINGS];
	char		text[FLEXIBLE_ARRAY_MEMBER];
} SessionSettings;

extern void config_define_settings(bool preloaded);
extern const char *config_database(void);
extern const char *config_role(void);
extern int	config_workers(void);
extern int	config_max_pipeline_workers(void);
extern int	config_processed_retention(void);
extern int	config_retry_interval(void);
extern int	config_max_batch_bytes(void);
extern int	config_max_rows_per_message(void);
extern int	config_max_pipeline_batch_size(void);
extern int	config_max_pipeline_inflight(void);
extern const char *config_queue_url(void);
extern const char *config_endpoint(void);
extern const char *config_server_queue_url(void);
extern Size config_session_write(bool pipeline, SessionSettings *dest);
extern void config_use_session(SessionSettings *session);
extern const char *config_target_table(void);
extern int	config_max_receive_count(void);
extern int	config_mask_algorithm(void);
extern PipelineDefinition *config_default_definition(void);
extern void config_free_definition(PipelineDefinition *def);
extern Jsonb *config_pipeline_mapping(const char *name, Jsonb *mapping, Oid relid);
extern void config_resolve(const PipelineDefinition *def, ResolvedPipeline *resolved);
extern void config_release(ResolvedPipeline *resolved);

#endif							/* SQS_INGEST_CONFIG_H */
