/*-------------------------------------------------------------------------
 *
 * config.c
 *	  Resolve a pipeline: the values a run of it takes, from its definition
 *	  and the sqs_ingest.* settings.
 *
 * The settings define the pipeline "default"; a pipeline of the catalog
 * takes its queue and the options it sets from its definition, and the
 * rest from the settings.  Either way the result is one ResolvedPipeline,
 * from which the SQS client's configuration and the runner's options are
 * built, so that no pipeline value is ever written back into a setting.
 * A worker resolves again at each configuration reload: a setting a
 * pipeline inherits, or a cap lowered by a superuser, applies without a
 * restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "config.h"
#include "sqs_ingest.h"

/* the settings' pipeline's name */
#define DEFAULT_PIPELINE "default"

static char *
setting_string(const char *value)
{
	return pstrdup(value ? value : "");
}

/* an option a pipeline sets (>= 0), else the setting it inherits */
static int
option_or_setting(int option, int setting)
{
	return option >= 0 ? option : setting;
}

/*
 * Resolve the pipeline def, or with def NULL the settings' pipeline
 * "default", into resolved.
 */
void
config_resolve(const PipelineDefinition *def, ResolvedPipeline *resolved)
{
	memset(resolved, 0, sizeof(ResolvedPipeline));
	resolved->name = pstrdup(def ? def->name : DEFAULT_PIPELINE);
	resolved->queue_url = setting_string(sqs_ingest_queue_url);
	resolved->endpoint = setting_string(sqs_ingest_endpoint);
	resolved->region = setting_string(sqs_ingest_region);
	resolved->ca_file = setting_string(sqs_ingest_ca_file);
	resolved->protocol = sqs_ingest_protocol;
	resolved->visibility_timeout = sqs_ingest_visibility_timeout;
	resolved->wait_time_seconds = sqs_ingest_wait_time_seconds;
	resolved->drain_wait_time_seconds = sqs_ingest_drain_wait_time_seconds;
	resolved->batch_size = sqs_ingest_batch_size;
	resolved->max_inflight = sqs_ingest_max_inflight;
	resolved->max_batch_bytes = sqs_ingest_max_batch_bytes;
	resolved->batch_timeout_ms = sqs_ingest_batch_timeout_ms;
	resolved->connect_timeout_ms = sqs_ingest_connect_timeout_ms;
	resolved->request_timeout_ms = sqs_ingest_request_timeout_ms;
	resolved->delete_after = sqs_ingest_delete_after;
	if (def == NULL)
		return;

	/*
	 * A pipeline names its own queue, and talks to its own endpoint or to
	 * the one of its queue URL, never to the settings' endpoint.  It may do
	 * so whoever runs it: the role that created it was allowed to (see
	 * security_check_pipeline_endpoint()).
	 */
	pfree(resolved->queue_url);
	resolved->queue_url = pstrdup(def->queue_url);
	pfree(resolved->endpoint);
	resolved->endpoint = setting_string(def->settings.endpoint);
	if (def->settings.region)
	{
		pfree(resolved->region);
		resolved->region = pstrdup(def->settings.region);
	}
	resolved->visibility_timeout = option_or_setting(def->settings.visibility_timeout,
													 resolved->visibility_timeout);
	resolved->wait_time_seconds = option_or_setting(def->settings.wait_time_seconds,
													resolved->wait_time_seconds);
	resolved->batch_size = option_or_setting(def->settings.batch_size,
											 resolved->batch_size);
	resolved->max_inflight = option_or_setting(def->settings.max_inflight,
											   resolved->max_inflight);

	/*
	 * What a pipeline's owner may ask for that costs the server memory is
	 * bounded by a superuser, whether the pipeline's options or the settings
	 * it inherits say it.
	 */
	resolved->batch_size = Min(resolved->batch_size, sqs_ingest_max_pipeline_batch_size);
	resolved->max_inflight = Min(resolved->max_inflight, sqs_ingest_max_pipeline_inflight);
}

/* free what config_resolve() allocated */
void
config_release(ResolvedPipeline *resolved)
{
	pfree(resolved->name);
	pfree(resolved->queue_url);
	pfree(resolved->endpoint);
	pfree(resolved->region);
	pfree(resolved->ca_file);
}
