
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A fast shutdown does not wait for the worker's 20-second long poll; a
# shutdown while messages flow loses nothing and doubles nothing; a reload
# moves the worker to a new queue without restarting it.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(time);

my $emu  = start_emulator();
my $url  = create_queue('shutdown-queue');
my $node = worker_node(
	'shutdown',
	queue_url => $url,
	settings  => {
		'sqs_ingest.wait_time_seconds'  => 20,
		'sqs_ingest.visibility_timeout' => 4,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @all;    # every event sent, to compare with the table at the end

### fast shutdown in the middle of a long poll

my $events = generate_events(300, 201);
push @all, @$events;
is(send_generated($url, 300, 201), 300, '300 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 300),
	'the worker stores them');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty: the worker is now in an empty long poll');

my $pid = worker_pid($node, 0);
ok( $node->poll_query_until(
		'postgres', qq{
SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $pid}),
	'worker waits on its long poll');
# let the long poll get well under way: a shutdown must not wait for its end
sleep(2);

my $t0 = time();
$node->stop('fast');
my $elapsed = time() - $t0;
note(sprintf('pg_ctl stop -m fast took %.2f s', $elapsed));
cmp_ok($elapsed, '<', 5, 'fast shutdown during a 20 s long poll returns within 5 s');
ok(!kill(0, $pid), 'worker process is gone');

$node->start;
wait_for_workers($node, 1);
isnt(worker_pid($node, 0), $pid, 'a new worker runs after the restart');

$events = generate_events(200, 202);
push @all, @$events;
is(send_generated($url, 200, 202), 200, '200 events sent after the restart');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 500),
	'they are stored');

### fast shutdown while messages flow

$events = generate_events(5000, 203);
push @all, @$events;
my $sender = send_in_background($emu, $url, $events);
# stop as soon as the worker is at work on them, while they are still sent
ok($node->poll_query_until('postgres', 'SELECT count(*) > 520 FROM user_logins'),
	'the worker has started on them');
$t0 = time();
$node->stop('fast');
$elapsed = time() - $t0;
note(sprintf('stop while storing took %.2f s; sender still running: %s',
		$elapsed, $sender->running ? 'yes' : 'no'));
cmp_ok($elapsed, '<', 5, 'fast shutdown while messages flow returns within 5 s');
ok($sender->finish, '5000 events sent meanwhile');

$node->start;
wait_for_workers($node, 1);
$events = generate_events(100, 204);
push @all, @$events;
is(send_generated($url, 100, 204), 100, '100 events sent after the second restart');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', scalar @all),
	'every event sent before and after the shutdowns is stored');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
note('after the restart: ' . sql(q{SELECT 'received ' || received || ', inserted ' || inserted || ', duplicates ' || duplicates FROM sqs_ingest.stats}));
is(rows_digest($node), user_ids_digest(\@all), 'each event stored exactly once');
is(rows_mismatch($node, \@all), 0, 'rows equal the events');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0', 'no dead letters');

### reload to a new queue: same process, new queue

my $url2 = create_queue('second-queue');
$pid = worker_pid($node, 0);
like($pid, qr/^\d+$/, 'worker pid before the reload');
set_gucs($node, { 'sqs_ingest.queue_url' => $url2 });

$events = generate_events(150, 205);
is(send_generated($url2, 150, 205), 150, '150 events sent to the new queue');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', scalar(@all) + 150),
	'the worker consumes the new queue');
push @all, @$events;
ok(wait_for_depth($url2, 0, 0, 0), 'new queue empty');
is(worker_pid($node, 0), $pid, 'same worker process: no restart');
is(rows_digest($node), user_ids_digest(\@all), 'each event stored exactly once');

# the old queue is no longer consumed
is(send_generated($url, 20, 206), 20, '20 events sent to the old queue');
$events = generate_events(30, 207);
is(send_generated($url2, 30, 207), 30, '30 more sent to the new queue');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', scalar(@all) + 30),
	'those on the new queue arrive');
push @all, @$events;
is_deeply([ queue_depth($url) ], [ 20, 0, 0 ],
	'those on the old queue stay there, untouched');
is(rows_digest($node), user_ids_digest(\@all), 'nothing from the old queue was stored');
is(worker_pid($node, 0), $pid, 'still the same worker process');
is(worker_stat($node, 'sqs_errors + retries'), '0', 'no errors or retries in the switch');

### reload of the mask key: rows from then on are masked with the new key

set_gucs($node, { 'sqs_ingest.mask_key' => 'rotated-key' });
$events = generate_events(10, 208);
is(send_generated($url2, 10, 208), 10, '10 events sent after the mask key changed');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', scalar(@all) + 10),
	'stored');
my $values = join ',', map { "('$_->{user_id}', '$_->{ip}')" } @$events;
is( sql(qq{
SELECT count(*) FROM user_logins u JOIN (VALUES $values) AS e(user_id, ip) USING (user_id)
WHERE u.masked_ip = encode(hmac(e.ip, 'rotated-key', 'sha256'), 'hex')}),
	'10', 'the new rows are masked with the new key');
push @all, @$events;
is(worker_pid($node, 0), $pid, 'same worker process after the key change');

### reload of the credentials: a wrong secret stops the worker, the right one
### brings it back, both without a restart

my $offset = log_offset($node);
set_gucs($node, { 'sqs_ingest.secret_access_key' => 'not-the-secret' });
ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND last_error ~* 'signature'
FROM sqs_ingest.stats WHERE worker = 0}),
	'with a wrong secret the worker fails at its next request and backs off');
$events = generate_events(25, 209);
is(send_generated($url2, 25, 209), 25, '25 events sent meanwhile');
ok(wait_for_depth($url2, 25, 0, 0), 'they stay in SQS');
is(sql('SELECT count(*) FROM user_logins'), scalar(@all), 'nothing stored meanwhile');

set_gucs($node, { 'sqs_ingest.secret_access_key' => $TEST_SECRET_ACCESS_KEY });
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', scalar(@all) + 25),
	'with the right secret back, the worker stores them without a restart');
push @all, @$events;
ok(wait_for_depth($url2, 0, 0, 0), 'queue empty');
is(rows_digest($node), user_ids_digest(\@all), 'each event stored exactly once');
is(worker_pid($node, 0), $pid, 'same worker process through the credential change');
my $log = log_since($node, $offset);
is(count_lines($log, qr/sqs_ingest worker 0 will retry/), 1,
	'the failure is logged once');
is(count_lines($log, qr/sqs_ingest worker 0 recovered after/), 1,
	'the recovery is logged once');

$node->stop;
done_testing();
