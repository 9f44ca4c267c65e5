
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# SQS unreachable for a while in the middle of a stream: the worker backs
# off, logs the outage once and its end once, and recovers by itself. The
# emulator keeps its messages in memory, so what it held when it stopped is
# sent again; no event may be lost or stored twice.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(time);

my $OUTAGE = 10;

# the queue is created at every start of the emulator
my $emu  = start_emulator(queues => ['outage-queue']);
my $url  = $emu->queue_url('outage-queue');
my $node = worker_node(
	'outage',
	queue_url => $url,
	settings  => {
		'sqs_ingest.retry_interval'     => 4,
		'sqs_ingest.visibility_timeout' => 5,
		'sqs_ingest.connect_timeout'    => 1000,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub stored_ids
{
	return map { $_ => 1 } split /\n/, sql('SELECT user_id FROM user_logins');
}

my $events = generate_events(4000, 401);
my %uniq = map { $_->{user_id} => 1 } @$events;
is(scalar keys %uniq, 4000, 'events with distinct user ids');
my @first  = @$events[ 0 .. 1999 ];
my @second = @$events[ 2000 .. 3999 ];

### before: the worker consumes normally

is(send_events($url, [ @first[ 0 .. 499 ] ]), 500, '500 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 500),
	'stored');
is(worker_stat($node, 'retries'), '0', 'no retries so far');

### the outage, in the middle of a stream

my $log_start = log_offset($node);
# 15 chunks, half a second apart: still sending when SQS goes away
my $sender = send_in_background($emu, $url, [ @first[ 500 .. 1999 ] ],
	chunk => 100, pause => 0.5);
ok($node->poll_query_until('postgres', 'SELECT count(*) > 600 FROM user_logins'),
	'stream under way');
$emu->stop;
my $t_down = time();
ok(!$sender->finish, 'the sender fails too: SQS is gone');
note('rows when SQS went away: ' . sql('SELECT count(*) FROM user_logins'));

ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND retries > 0 AND sqs_errors > 0 AND last_error IS NOT NULL
FROM sqs_ingest.stats WHERE worker = 0}),
	'the worker notices and backs off');
# let the outage last: several attempts at 4 s at most apart
$node->poll_query_until('postgres',
	'SELECT retries >= 3 FROM sqs_ingest.stats WHERE worker = 0')
  or diag('fewer than 3 retries during the outage');
my $wait = $OUTAGE - (time() - $t_down);
sleep($wait) if $wait > 0;
my $retries_in_outage = worker_stat($node, 'retries');
cmp_ok($retries_in_outage, '>=', 3, "$retries_in_outage retries during the outage");
cmp_ok($retries_in_outage, '<=', 20, 'backing off, not retrying in a tight loop');
is(sql(q{SELECT state FROM sqs_ingest.stats WHERE worker = 0}),
	'backing off', 'still backing off');

### SQS back: a new emulator has none of the old messages; send again what is
### not stored, and the rest of the stream

$emu->start;
my %stored = stored_ids();
my @missing = grep { !$stored{ $_->{user_id} } } @first;
note(scalar(@missing) . ' of the first 2000 events not stored when SQS went away');
ok(@missing > 0, 'the outage hit the stream: some events are to be sent again');
is(send_events($url, [ @missing, @second ]), @missing + @second,
	'unstored and remaining events sent to the restarted SQS');

ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 4000),
	'the worker recovers by itself and stores everything');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
is(sql('SELECT count(*) FROM user_logins'), '4000', 'row count = distinct events sent');
is(sql('SELECT count(DISTINCT user_id) FROM user_logins'), '4000',
	'no user id stored twice');
is(rows_digest($node), user_ids_digest($events), 'the set of user ids is the set sent');
is(rows_mismatch($node, $events), 0, 'rows equal the events');

ok( $node->poll_query_until(
		'postgres', q{SELECT state FROM sqs_ingest.stats WHERE worker = 0}, 'polling'),
	'state back to polling');
cmp_ok(worker_stat($node, 'retries'), '>', 0, 'stats: retries > 0');
cmp_ok(worker_stat($node, 'sqs_errors'), '>', 0, 'stats: sqs_errors > 0');
is(worker_stat($node, 'last_error_at IS NOT NULL AND last_error IS NOT NULL'),
	't', 'stats: last error kept');

ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'sqs_ingest worker'}, 1),
	'one worker');

my $log = log_since($node, $log_start);
is(count_lines($log, qr/sqs_ingest worker 0 will retry/),
	1, 'server log: exactly one "will retry" line for the outage');
like($log, qr/sqs_ingest worker 0 will retry with exponential backoff/,
	'... with exponential backoff, as for a transient failure');
is(count_lines($log, qr/sqs_ingest worker 0 recovered after \d+ failed attempts?/),
	1, 'server log: exactly one "recovered" line');
my ($attempts) = $log =~ /recovered after (\d+) failed attempts?/;
cmp_ok($attempts // 0, '>=', $retries_in_outage, "recovered after $attempts attempts");

$node->stop;
done_testing();
