
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Messages held while a slow store runs get their visibility extended, so a
# drain causes no redelivery of its own; when SQS becomes unreachable
# between a drain's receives and its deletes, the call ends within the
# configured timeouts with an error saying what it stored, no COMMIT waits
# on the network, and the undeleted messages come back later to be skipped
# as duplicates.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;
use Time::HiRes qw(time);

my $emu   = start_emulator();
my $proxy = start_proxy($emu);
my $node  = new_node('visibility',
	settings => { 'sqs_ingest.visibility_timeout' => 10 });

sub in_sqs
{
	my ($v, $nv) = queue_depth($_[0]);
	return $v + $nv;
}

### a store slower than half the visibility timeout

# each batch's insert takes 5.5 s of a 10 s visibility timeout: the messages
# that arrive meanwhile would come back before their own store ends.  A
# store begins with three quarters of its messages' visibility left (7.5 s),
# which leaves it 2 s for its commit and deletes however slow the machine.
$node->safe_psql('postgres', q{
CREATE FUNCTION slow_store() RETURNS trigger LANGUAGE plpgsql
AS $$BEGIN PERFORM pg_catalog.pg_sleep(5.5); RETURN NULL; END$$;
CREATE TRIGGER slow_store AFTER INSERT ON user_logins
FOR EACH STATEMENT EXECUTE FUNCTION slow_store();});

# with 200 ms round trips, receives are on the wire while a store runs
my $url = create_queue('slow-store');
is(send_generated($url, 300, 4201), 300, '300 events sent');
$proxy->set_fault({ delayMs => 200 });
$proxy->reset_stats;
my $r = drain($node, undef, "SET sqs_ingest.queue_url = '$url';\n"
	  . "SET sqs_ingest.endpoint = '" . $proxy->endpoint . "';\n"
	  . "SET sqs_ingest.batch_size = 100;\n"
	  . "SET sqs_ingest.batch_timeout = '60s';\n"
	  . "SET sqs_ingest.max_inflight = 4;\n");
$proxy->clear_faults;
is_deeply(
	$r,
	{ received => 300, inserted => 300, duplicates => 0, dead_lettered => 0 },
	'every message received once and stored: no redelivery');
cmp_ok($proxy->stats->{ChangeMessageVisibilityBatch}{forwarded} // 0,
	'>', 0, 'the messages held during the slow stores had their visibility extended');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'300|300', 'each stored once');
is(in_sqs($url), 0, 'queue empty');
$node->safe_psql('postgres', 'DROP TRIGGER slow_store ON user_logins');

### an answer read in pieces

# SQS starts the messages' visibility timeout when it answers: an answer
# whose second half comes 4 s (more than a quarter of the timeout) after its
# first is counted from the first, so its messages are extended before their
# store, however soon that comes.
my $url_s = create_queue('split');
is(send_generated($url_s, 10, 4203), 10, '10 events sent');
$proxy->set_fault({ receiveSplitMs => 4000 });
$proxy->reset_stats;
$r = drain($node, 10, "SET sqs_ingest.queue_url = '$url_s';\n"
	  . "SET sqs_ingest.endpoint = '" . $proxy->endpoint . "';\n"
	  . "SET sqs_ingest.max_inflight = 1;\n");
$proxy->clear_faults;
is_deeply(
	$r,
	{ received => 10, inserted => 10, duplicates => 0, dead_lettered => 0 },
	'the 10 are received in one answer and stored');
cmp_ok($proxy->stats->{ChangeMessageVisibilityBatch}{forwarded} // 0,
	'>', 0, 'their visibility was extended: counted from the first half of the answer');
is(in_sqs($url_s), 0, 'queue empty');

### SQS unreachable between the receives and the deletes

my $url_d = create_queue('unreachable');
is(send_generated($url_d, 50, 4202), 50, '50 events sent');
$proxy->set_fault({ deleteFailure => 'hang' });
$proxy->reset_stats;
my $t0 = time();
my ($ret, $out, $err) = $node->psql('postgres', qq{
SET sqs_ingest.queue_url = '$url_d';
SET sqs_ingest.endpoint = '} . $proxy->endpoint . q{';
SET sqs_ingest.request_timeout = '1s';
SET sqs_ingest.connect_timeout = '1s';
BEGIN;
SELECT received, inserted, duplicates, dead_lettered FROM sqs_ingest_drain();
\timing on
COMMIT;}, on_error_stop => 0);
my $elapsed = time() - $t0;
like($err, qr/ERROR:  could not delete 50 stored messages from SQS/,
	'the drain stores all 50 and ends with an error: none was deleted');
like($err, qr/DETAIL:  The drain stopped receiving after SQS DeleteMessageBatch failed: Operation timed out/,
	'naming the deletes that got no answer');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'), '360', 'the 50 are stored');
cmp_ok($elapsed, '<', 30, sprintf('and returns within the timeouts (%.1f s)', $elapsed));
cmp_ok($proxy->stats->{DeleteMessageBatch}{failed} // 0, '>', 0,
	'its deletes got no answer');
my ($commit_ms) = ($out =~ /Time: ([0-9.]+) ms/);
ok(defined $commit_ms && $commit_ms < 1000,
	'COMMIT does not wait on SQS (' . ($commit_ms // '?') . ' ms, each delete waits 1 s)');
is(in_sqs($url_d), 50, 'the 50 messages are still in SQS');

$proxy->clear_faults;
ok(wait_for_depth($url_d, 50, 0, 0), 'they come back after the visibility timeout');
$r = drain($node, undef, "SET sqs_ingest.queue_url = '$url_d';\n");
is_deeply(
	$r,
	{ received => 50, inserted => 0, duplicates => 50, dead_lettered => 0 },
	'and are skipped as duplicates');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'360|360', 'nothing stored twice');
is(in_sqs($url_d), 0, 'queue empty');

done_testing();
