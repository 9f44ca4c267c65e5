
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A background worker and a drain on the same queue at once, 20,000
# messages: no backend ever waits for a lock held for a message or a row
# (only for PostgreSQL's relation extension lock, which any two backends
# inserting into one table take turns on), no deadlock, and each message is
# received and stored once.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(usleep);

my $N = 20_000;

my $emu   = start_emulator();
my $idle  = create_queue('idle');
my $url   = create_queue('shared');
my $node  = worker_node('both', queue_url => $idle, workers => 1,
	settings => { 'sqs_ingest.visibility_timeout' => 30 });

is(send_generated($url, $N, 4401), $N, "$N events sent");

# the worker moves to the shared queue while a drain starts on it
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('postgres'), '-c',
		"SET sqs_ingest.queue_url = '$url';\n"
		  . 'SELECT received, inserted, duplicates, dead_lettered FROM sqs_ingest_drain()' ],
	'<', '/dev/null', '>', \$out, '2>', \$err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$node->safe_psql('postgres', qq{
ALTER SYSTEM SET sqs_ingest.queue_url = '$url';
SELECT pg_reload_conf();});

# sample the lock table while both run
my ($samples, $waiting, $both) = (0, 0, 0);
my @waits;
while ($h->pumpable)
{
	my ($w, $d, $what) = split /\|/, $node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype <> 'extend'),
       (SELECT count(*) FROM sqs_ingest.stats WHERE kind = 'drain') +
       (SELECT count(*) FROM sqs_ingest.stats WHERE kind = 'worker' AND inserted > 0),
       (SELECT string_agg(locktype || ' ' || mode || coalesce(' on ' || relation::regclass::text, ''), ', ')
          FROM pg_locks WHERE NOT granted AND locktype <> 'extend')});
	$samples++;
	$waiting += $w;
	push @waits, $what if $w;
	$both++ if $d == 2;
	usleep(50_000);
	$h->pump_nb;
}
$h->finish;
is($err, '', 'the drain ended without error');
my @d = split /\|/, $out;
cmp_ok($d[1], '>', 0, "the drain stored $d[1]");
cmp_ok($both, '>', 0, "the worker stored while the drain ran ($both of $samples samples)");
is($waiting, 0, "no lock but relation extension was ever waited for ($samples samples of pg_locks)")
  or diag("waits seen: @waits");

ok($node->poll_query_until('postgres', "SELECT count(*) = $N FROM sqs_ingest.processed"),
	'everything stored once the worker is done');
is($node->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	"$N|$N", 'each message stored once');
is($d[2] + worker_stat($node, 'duplicates'), 0, 'no message was received twice');
is($d[1] + worker_stat($node, 'inserted'), $N, 'the drain and the worker stored them between them');
is($node->safe_psql('postgres',
		"SELECT deadlocks FROM pg_stat_database WHERE datname = 'postgres'"),
	'0', 'no deadlock');
ok(wait_for_depth($url, 0, 0, 0), 'the queue is empty');

done_testing();
