
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A receive fails for good (three attempts in a row, the SDKs' standard
# retry mode) while the worker holds a partial batch: the worker stores
# what it holds, reports the failure (log and stats), backs off and goes on,
# in the same process. The scenario is played on a fresh worker process a
# few times, since what goes wrong in it may depend on the memory layout.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $ROUNDS = 3;
my $N      = 3000;

my $emu   = start_emulator();
my $url   = create_queue('failure-queue');
my $proxy = start_proxy($emu);

# The worker reaches SQS through the fault proxy. A batch never fills
# (batch_size) and is not due for a minute (batch_timeout, under a third of
# the visibility timeout), so the messages received stay in the worker's
# batch until something else happens; short long polls bring the next
# receive soon. One receive in flight makes the three failures those of one
# receive.
my $node = worker_node(
	'failure',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'           => $proxy->endpoint,
		'sqs_ingest.batch_size'         => 100000,
		'sqs_ingest.batch_timeout'      => 60000,
		'sqs_ingest.visibility_timeout' => 600,
		'sqs_ingest.wait_time_seconds'  => 1,
		'sqs_ingest.retry_interval'     => 2,
		'sqs_ingest.max_inflight'       => 1,
	},
	conf => "restart_after_crash = on\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @all;
for my $round (1 .. $ROUNDS)
{
	my $events = generate_events($N, 900 + $round);
	my $pid    = worker_pid($node, 0);
	my $offset = log_offset($node);

	is(send_generated($url, $N, 900 + $round), $N, "round $round: $N events sent");
	ok( $node->poll_query_until(
			'postgres', q{SELECT received FROM sqs_ingest.stats WHERE worker = 0}, $N),
		"round $round: all received into one pending batch");
	is(sql('SELECT count(*) FROM user_logins'), scalar(@all),
		"round $round: none of them stored yet");

	$proxy->set_fault({ receiveFailure => 'http500', receiveFailureCount => 3 });
	# done when the failure is counted, or when the worker is gone
	$node->poll_query_until(
		'postgres', qq{
SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)
    OR (SELECT sqs_errors >= 1 AND retries >= 1 FROM sqs_ingest.stats WHERE worker = 0)})
	  or diag("round $round: neither a failure counted nor the worker gone");
	$proxy->clear_faults;
	unlike(log_since($node, $offset), qr/terminated by signal/,
		"round $round: no process crashed")
	  or last;
	is(worker_pid($node, 0), $pid, "round $round: same worker process");
	ok( $node->poll_query_until(
			'postgres', 'SELECT count(*) FROM user_logins', scalar(@all) + $N),
		"round $round: the pending batch is stored when the receive fails");
	push @all, @$events;
	is(worker_stat($node, 'sqs_errors || \'|\' || retries'), '3|1',
		"round $round: three failed attempts, one retry of the worker");

	my $log = log_since($node, $offset);
	like($log,
		qr/LOG:  SQS ReceiveMessage failed: Injected failure: service unavailable\.\n.*DETAIL:  AWS error code: InternalError; HTTP status 500\./,
		"round $round: the failure is logged with its cause");
	is(count_lines($log, qr/sqs_ingest worker 0 will retry with exponential backoff/),
		1, "round $round: one \"will retry\" line");
	is( worker_stat($node, 'last_error'),
		'SQS ReceiveMessage failed: Injected failure: service unavailable.',
		"round $round: last_error holds the failure");
	is(rows_digest($node), user_ids_digest(\@all),
		"round $round: every event stored exactly once");

	# a fresh worker process for the next round
	if ($round < $ROUNDS)
	{
		$node->restart;
		wait_for_workers($node, 1);
	}
}

$node->stop;
done_testing();
