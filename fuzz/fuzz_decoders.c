/*-------------------------------------------------------------------------
 *
 * fuzz_decoders.c
 *	  Every decoder of one wire format on the same bytes, each result
 *	  checked against the invariants; the JSON and XML tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "arena.h"
#include "decoders.h"
#include "invariants.h"

static const char *const depth_names[] = {
	"ApproximateNumberOfMessages",
	"ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed"
};

static char *
xml_delete_batch(const char *data, size_t len, int entries, SqsBatchResponse *result)
{
	return sqs_decode_xml_batch(data, len, "DeleteMessageBatch", entries, result);
}

const Decoders json_decoders = {
	sqs_decode_json_receive, sqs_decode_json_batch,
	sqs_decode_json_attributes, sqs_decode_json_error, NULL
};

const Decoders xml_decoders = {
	sqs_decode_xml_receive, xml_delete_batch,
	sqs_decode_xml_attributes, sqs_decode_xml_error, sts_decode_xml
};

void
fuzz_decoders(const Decoders *d, const char *data, size_t len)
{
	SqsReceiveResponse receive;
	SqsBatchResponse batch;
	SqsErrorDocument error;
	StsAnswer sts;
	int64		values[3];
	char	   *reason;

	for (int max = 1; max <= 10; max += 9)
	{
		reason = d->receive(data, len, max, &receive);
		check_error_text(reason);
		if (reason == NULL)
			check_receive(&receive, max);
	}
	reason = d->batch(data, len, 10, &batch);
	check_error_text(reason);
	if (reason == NULL)
		check_batch(&batch, 10);
	reason = d->attributes(data, len, depth_names, 3, values);
	check_error_text(reason);
	if (d->error(data, len, &error))
		check_error_document(&error);
	if (d->sts)
	{
		reason = d->sts(data, len, &sts);
		check_error_text(reason);
		check_sts(&sts);
	}
	arena_reset();
}
