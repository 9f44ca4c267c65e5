/*-------------------------------------------------------------------------
 *
 * sqs_client.h
 *	  Asynchronous Amazon SQS client (AWS JSON 1.0 or the Query protocol
 *	  over libcurl multi): all the pipeline sees of SQS.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SQS_CLIENT_H
#define SQS_INGEST_SQS_CLIENT_H

#include "datatype/timestamp.h"

#include "definition.h"
#include "sqs_decode.h"

/* everything a request needs, copied from a resolved pipeline when a client starts */
typedef struct SqsConfig
{
	char	   *queue_url;
	char	   *endpoint;		/* scheme://host[:port]/ requests go to */
	char	   *region;
	/* the credential settings, or all NULL: the AWS credential chain */
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL when none */
	char	   *ca_file;		/* CA bundle for HTTPS; NULL: the system's */
	int			visibility_timeout; /* seconds */
	int			connect_timeout_ms;
	int			request_timeout_ms; /* beyond a receive's long poll */
	int			max_inflight;	/* concurrent connections */
	int			protocol;		/* SqsProtocol */
} SqsConfig;

/* the SQS actions: one row each in sqs_actions[] (sqs_wire.c) */
typedef enum SqsAction
{
	SQS_RECEIVE,
	SQS_DELETE_BATCH,
	SQS_CHANGE_VISIBILITY_BATCH,
	SQS_GET_ATTRIBUTES
} SqsAction;

/* the last action's, plus one */
#define SQS_NUM_ACTIONS (SQS_GET_ATTRIBUTES + 1)

typedef struct SqsError
{
	bool		transient;		/* worth retrying as is */
	bool		too_large;		/* response past the cap: ask for fewer */
	int			sqlerrcode;
	const char *action;			/* "ReceiveMessage", ... */
	char	   *aws_type;		/* AWS error code, or NULL */
	char	   *message;
	long		http_status;	/* 0 if no response */
	const char *hint;			/* a sentence marked with gettext_noop:
								 * translate it where it is reported */
} SqsError;

/* a completed request */
typedef struct SqsResult
{
	SqsAction	action;
	SqsError   *error;			/* NULL on success */
	int			requested;		/* messages asked for, or entries sent */
	int			tag;			/* the caller's number for the request, as
								 * given when it was started */
	/* ReceiveMessage */
	int			nmessages;
	SqsMessage *messages;
	int			nskipped;		/* left out: a ReceiptHandle too long to be
								 * deleted */
	/* DeleteMessageBatch, ChangeMessageVisibilityBatch */
	int			nfailed;
	bool	   *failed;			/* per entry sent */
	char	   *failure;		/* first failed entry, for the log */
	/* GetQueueAttributes: visible, not visible, delayed */
	int64		attributes[3];
} SqsResult;

typedef struct SqsClient SqsClient;

extern SqsConfig *sqs_config_from_definition(const ResolvedPipeline *resolved);
extern SqsConfig *sqs_config_copy(const SqsConfig *config);
extern void sqs_config_free(SqsConfig *config);
extern const char *sqs_credential_source(const SqsConfig *config);
extern bool sqs_speaks_only_query(const char *endpoint);
extern void sqs_remember_only_query(const char *endpoint);
extern SqsClient *sqs_client_create(const SqsConfig *config);
extern void sqs_client_destroy(SqsClient *client);
extern void sqs_start_receive(SqsClient *client, int max_messages,
							  int wait_seconds, int tag);
extern void sqs_start_delete(SqsClient *client, char **receipt_handles,
							 int count, int tag);
extern void sqs_start_change_visibility(SqsClient *client, char **receipt_handles,
										int count, int timeout_seconds);
extern void sqs_start_get_attributes(SqsClient *client);
extern int	sqs_inflight(SqsClient *client, SqsAction action);
extern SqsResult *sqs_next_result(SqsClient *client, long timeout_ms);
extern void sqs_send_started(SqsClient *client);
extern SqsError *sqs_copy_error(MemoryContext context, const SqsError *error);
extern void sqs_report_error(const SqsError *error, int elevel);

#endif							/* SQS_INGEST_SQS_CLIENT_H */
