
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# On PostgreSQL 17 and later, pg_stat_activity names what a worker waits
# for: SqsReceive during a long poll, SqsDelete while deletes are in
# flight, SqsBackoff while it sleeps before a retry. Older servers show the
# generic Extension event (t/101_worker.pl checks that much on every
# server).

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

if (PostgreSQL::Test::Cluster->new('version_probe')->pg_version < 17)
{
	plan skip_all => 'named custom wait events need PostgreSQL 17 or later';
}

my $emu   = start_emulator();
my $url   = create_queue('wait-queue');
my $proxy = start_proxy($emu);

# Every request goes through the proxy so that it can hold them; long
# polls of 20 s leave the worker waiting on the receive most of the time.
my $node = worker_node(
	'waits',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'          => $proxy->endpoint,
		'sqs_ingest.wait_time_seconds' => 20,
		'sqs_ingest.retry_interval'    => 30,
	});
my $pid = worker_pid($node, 0);

# true once the worker has been seen waiting on the given event
sub seen_waiting
{
	my ($event) = @_;
	return $node->poll_query_until(
		'postgres', qq{
SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE pid = $pid},
		"Extension/$event");
}

ok(seen_waiting('SqsReceive'), 'a long poll shows as Extension/SqsReceive');

# Deletes held by the proxy: the worker waits on them after each commit.
$proxy->set_fault({ delayMs => 3000 });
my $N = 40;
is(send_generated($url, $N, 501), $N, "$N events sent");
ok(seen_waiting('SqsDelete'), 'deletes in flight show as Extension/SqsDelete');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N),
	'every event stored');
ok(wait_for_depth($url, 0, 0, 0), 'and deleted from the queue');

# Receives fail until further notice: the worker sleeps between attempts.
$proxy->set_fault({ receiveFailure => 'http500' });
ok(seen_waiting('SqsBackoff'), 'a retry delay shows as Extension/SqsBackoff');
$proxy->clear_faults;

# The names live in shared memory: any session sees them, and they are
# registered once however many times a process waits.
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(name, ',' ORDER BY name)
FROM pg_catalog.pg_wait_events WHERE type = 'Extension' AND name LIKE 'Sqs%'}),
	'SqsBackoff,SqsDelete,SqsReceive',
	'pg_wait_events lists each event the worker used, once');

$node->stop;
done_testing();
