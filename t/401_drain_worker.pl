
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# sqs_ingest_drain() runs in a background worker of its own: it refuses up
# front where it could not commit (read-only transaction, standby), drains
# the queue of the caller's session settings, shows in sqs_ingest.stats and
# pg_stat_activity while it runs, stops within a second when the call is
# cancelled (keeping what it committed), and hands its errors back with
# their SQLSTATE.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $emu   = start_emulator();
my $proxy = start_proxy($emu);
my $node  = new_node('drainworker',
	shared_preload => 1,
	conf => "sqs_ingest.workers = 0\nwal_level = replica\nmax_wal_senders = 4\n",
	settings       => { 'sqs_ingest.visibility_timeout' => 30 });

sub in_sqs
{
	my ($v, $nv) = queue_depth($_[0]);
	return $v + $nv;
}

sub drain_backends
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sqs_ingest drain'"
	) + 0;
}

# a drain in a session of its own, left running; returns the harness
sub start_drain
{
	my ($sql, $out, $err) = @_;
	return IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres'), '-c', $sql ],
		'<', '/dev/null', '>', $out, '2>', $err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

### refused up front in a read-only transaction

my $url = create_queue('drain-main');
set_gucs($node, { 'sqs_ingest.queue_url' => $url });
is(send_generated($url, 10, 4101), 10, '10 events sent');

my ($ret, $out, $err) = $node->psql('postgres',
	'BEGIN READ ONLY; SELECT * FROM sqs_ingest_drain(); COMMIT;',
	on_error_stop => 1);
like($err, qr/cannot execute sqs_ingest_drain\(\) in a read-only transaction/,
	'a drain in a read-only transaction is refused');
is_deeply([ queue_depth($url) ], [ 10, 0, 0 ], 'and nothing was received');

### the caller's INSERT privilege on the target is checked first

$node->safe_psql('postgres', q{
CREATE ROLE drainer LOGIN;
GRANT EXECUTE ON FUNCTION sqs_ingest_drain(bigint) TO drainer;
GRANT SELECT ON user_logins TO drainer;});
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM sqs_ingest_drain()',
	extra_params => [ '-U', 'drainer' ]);
like($err, qr/permission denied for table user_logins/,
	'a caller without INSERT on the target is refused');
is_deeply([ queue_depth($url) ], [ 10, 0, 0 ], 'before receiving anything');

### a session's settings choose the queue

my $url_b = create_queue('drain-session');
is(send_generated($url_b, 5, 4102), 5, '5 events sent to another queue');
my $r = drain($node, undef, "SET sqs_ingest.queue_url = '$url_b';\n");
is_deeply(
	$r,
	{ received => 5, inserted => 5, duplicates => 0, dead_lettered => 0 },
	'SET sqs_ingest.queue_url in the session drains that queue');
is_deeply([ queue_depth($url) ], [ 10, 0, 0 ], 'the configured queue is untouched');
$r = drain($node);
is($r->{inserted}, 10, 'the configured queue drains without the SET');
is(drain_backends(), 0, 'no drain worker is left behind');

### an error in the drain worker comes back with its SQLSTATE

($ret, $out, $err) = $node->psql('postgres', q{
\set VERBOSITY verbose
SET sqs_ingest.queue_url = 'http://127.0.0.1:1/000000000000/nowhere';
SET sqs_ingest.connect_timeout = '500ms';
SELECT * FROM sqs_ingest_drain();});
like($err, qr/ERROR:  08006: SQS ReceiveMessage failed/,
	'a receive that fails in the drain worker is raised with SQLSTATE 08006');

my $missing_queue = $emu->endpoint . '/000000000000/no-such-queue';
($ret, $out, $err) = $node->psql('postgres', qq{
\\set VERBOSITY verbose
SET sqs_ingest.queue_url = '$missing_queue';
SELECT * FROM sqs_ingest_drain();});
like($err, qr/ERROR:  42704: SQS ReceiveMessage failed/,
	'a queue that does not exist: SQLSTATE 42704');
like($err, qr/HINT:  Check sqs_ingest.queue_url/, 'with its hint');

### statement_timeout during the long poll

my $t0 = time();
($ret, $out, $err) = $node->psql('postgres', q{
SET sqs_ingest.drain_wait_time_seconds = 20;
SET statement_timeout = '2s';
SELECT * FROM sqs_ingest_drain();});
my $elapsed = time() - $t0;
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout cancels a drain in its long poll');
cmp_ok($elapsed, '<', 3, sprintf('within 3 s (%.2f s)', $elapsed));
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'sqs_ingest drain'"),
	'the drain worker is gone');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'), '15',
	'the cluster answers, the rows are there');

### while it runs: pg_stat_activity, sqs_ingest.stats; a cancel keeps what committed

# receives slowed down by the proxy, so that the drain runs for a while
my $url_c = create_queue('drain-slow');
is(send_generated($url_c, 2000, 4103), 2000, '2000 events sent');
$proxy->set_fault({ delayMs => 300 });
my ($dout, $derr) = ('', '');
my $h = start_drain(qq{
SET sqs_ingest.queue_url = '$url_c';
SET sqs_ingest.endpoint = '} . $proxy->endpoint . q{';
SET sqs_ingest.max_inflight = 2;
SET sqs_ingest.visibility_timeout = 5;
SET sqs_ingest.batch_size = 50;
SELECT * FROM sqs_ingest_drain();}, \$dout, \$derr);

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM sqs_ingest.stats WHERE kind = 'drain' AND inserted > 0"),
	'the running drain shows in sqs_ingest.stats, with what it stored');
is(drain_backends(), 1, 'and in pg_stat_activity as an sqs_ingest drain');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state = 'idle in transaction'}),
	'0', 'the caller holds no transaction open across the drain');

my $caller = $node->safe_psql('postgres', q{
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'client backend' AND query LIKE '%sqs_ingest_drain()%'
  AND pid <> pg_backend_pid()});
$t0 = time();
$node->safe_psql('postgres', "SELECT pg_cancel_backend($caller)");
$h->finish;
$elapsed = time() - $t0;
like($derr, qr/canceling statement due to user request/, 'pg_cancel_backend cancels the drain');
cmp_ok($elapsed, '<', 3, sprintf('the call ended at once (%.2f s)', $elapsed));
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'sqs_ingest drain'"),
	'the drain worker stops');
my $kept = $node->safe_psql('postgres',
	'SELECT count(*) FROM user_logins') - 15;
cmp_ok($kept, '>', 0, "what it committed stays ($kept rows)");
cmp_ok($kept, '<', 2000, 'it stopped before the end');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.stats'), '0',
	'its stats row is gone with it');

$proxy->clear_faults;
# what the stopped drain had received and not stored comes back after its
# visibility timeout (5 s here)
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	drain($node, undef, qq{SET sqs_ingest.queue_url = '$url_c';\n});
	last if in_sqs($url_c) == 0;
	sleep 1;
}
is($node->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'2015|2015', 'every event stored once in the end');
is(in_sqs($url_c), 0, 'queue empty');

### refused on a standby

$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('drainstandby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
is(send_generated($url, 3, 4104), 3, '3 events sent');
($ret, $out, $err) = $standby->psql('postgres', 'SELECT * FROM sqs_ingest_drain()');
like($err, qr/cannot execute sqs_ingest_drain\(\) during recovery/,
	'a drain on a standby is refused');
is_deeply([ queue_depth($url) ], [ 3, 0, 0 ], 'and nothing was received');
$standby->stop;

done_testing();
