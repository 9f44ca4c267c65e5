
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# One receive throttled among many in flight is retried alone, with backoff:
# the worker does not tear its pipeline down, the other receives and the
# messages they hold are not disturbed (none left hidden for the visibility
# timeout), nothing is stored twice.  Throttled delete calls are retried
# alone too, so that their messages do not come back.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $N = 2000;

my $emu   = start_emulator();
my $url   = create_queue('throttle-queue');
my $proxy = start_proxy($emu);

# A long visibility timeout: a message lost with a torn-down receive would
# stay hidden far longer than the test waits.
my $node = worker_node(
	'throttle',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'           => $proxy->endpoint,
		'sqs_ingest.max_inflight'       => 8,
		'sqs_ingest.wait_time_seconds'  => 2,
		'sqs_ingest.visibility_timeout' => 600,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $pid    = worker_pid($node, 0);
my $offset = log_offset($node);
$proxy->reset_stats;
$proxy->set_fault({ receiveFailure => 'throttle', receiveFailureCount => 1 });
my $events = generate_events($N, 802);
is(send_generated($url, $N, 802), $N, "$N events sent while one receive is throttled");

ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N),
	'every event stored');
is($proxy->stats->{ReceiveMessage}{failed}, 1, 'one receive was throttled');
ok(wait_for_depth($url, 0, 0, 0),
	'no message left hidden in SQS: the other receives were not abandoned');
is(rows_mismatch($node, $events), 0, 'rows equal the events, each once');
is( worker_stat($node, q{sqs_errors || '|' || retries || '|' || duplicates}),
	'1|0|0', 'stats: one SQS error, no retry of the worker, no duplicate');
like(worker_stat($node, 'last_error'), qr/Rate exceeded/,
	'last_error shows the throttling');
is(worker_pid($node, 0), $pid, 'same worker process');
my $log = log_since($node, $offset);
unlike($log, qr/will retry|ReceiveMessage failed/,
	'nothing logged: a throttled receive is retried quietly');

# Delete calls throttled after their batches are stored are retried alone
# as well, not left for SQS to deliver again as duplicates (which, with
# this visibility timeout, would come long after the test has given up).
my $M = 200;
$offset = log_offset($node);
$proxy->reset_stats;
$proxy->set_fault({ deleteFailure => 'throttle', deleteFailureCount => 2 });
my $more = generate_events($M, 8021);
is(send_generated($url, $M, 8021), $M, "$M more events sent while two delete calls are throttled");
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N + $M),
	'every event stored');
ok(wait_for_depth($url, 0, 0, 0), 'no message left in SQS: the throttled deletes were retried');
is($proxy->stats->{DeleteMessageBatch}{failed}, 2, 'two delete calls were throttled');
is(rows_mismatch($node, [ @$events, @$more ]), 0, 'rows equal the events, each once');
is( worker_stat($node, q{sqs_errors || '|' || retries || '|' || duplicates || '|' || delete_failures}),
	'3|0|0|0', 'stats: two more SQS errors; no retry of the worker, duplicate or failed delete');
is(worker_pid($node, 0), $pid, 'same worker process');
unlike(log_since($node, $offset), qr/could not delete|DeleteMessageBatch failed/,
	'nothing logged: a throttled delete call is retried quietly');

$node->stop;
done_testing();
