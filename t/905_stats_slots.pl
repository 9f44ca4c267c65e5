
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Every pipeline worker that runs has a row in sqs_ingest.stats: the
# launcher starts a replacement only once the worker it replaces has given
# its statistics slot back, even when that worker is slow to exit (here:
# stopped with SIGSTOP), and a launcher started again waits likewise.  So
# no worker runs unseen, and dropping a pipeline stops all its workers.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu = start_emulator();
my $url = create_queue('slots');

# one pipeline worker at most, so one statistics slot
my $node = worker_node('slots', workers => 0,
	settings => { 'sqs_ingest.endpoint' => $emu->endpoint },
	conf => "sqs_ingest.max_pipeline_workers = 1\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

# pids of the workers running, and of those without a row in the stats
sub workers
{
	return sql(q{
SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '')
FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'});
}

sub unseen
{
	return sql(q{
SELECT count(*) FROM pg_stat_activity a
WHERE backend_type = 'sqs_ingest worker'
  AND NOT EXISTS (SELECT FROM sqs_ingest.stats s WHERE s.pid = a.pid)});
}

sub polling_worker
{
	$node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM sqs_ingest.stats
WHERE kind = 'worker' AND pipeline = 'p' AND state = 'polling'})
	  or die 'the pipeline worker did not start';
	return sql(q{SELECT pid FROM sqs_ingest.stats WHERE pipeline = 'p' AND pid IS NOT NULL});
}

sql(qq{SELECT sqs_ingest_create_pipeline('p', '$url', 'user_logins',
    sqs_ingest_fetch_login_mapping(), '{"workers": 1, "wait_time_seconds": 1}')});
my $first = polling_worker();

# the worker is slow to exit when the pipeline changes
kill 'STOP', $first;
sql(q{SELECT sqs_ingest_alter_pipeline('p', options => '{"wait_time_seconds": 2}')});
sleep 4;
is(unseen(), 0, 'while the old worker holds the slot, no worker runs unseen');
is(workers(), $first, 'its replacement waits for it');

kill 'CONT', $first;
my $second = polling_worker();
isnt($second, $first, 'once the old worker has exited its replacement runs');
is(unseen(), 0, 'with its row in the stats');
is(workers(), $second, 'alone');

# a launcher started again, while the worker of the one before is slow to exit
my $launcher =
  sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sqs_ingest launcher'});
kill 'STOP', $second;
sql("SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'sqs_ingest launcher' AND pid <> $launcher}),
	'the launcher is started again');
sleep 3;
is(unseen(), 0, 'the new launcher starts no worker unseen');
is(workers(), $second, 'it waits for the old worker to exit');
kill 'CONT', $second;
my $third = polling_worker();
is(unseen(), 0, 'then starts its own, seen');

# dropping the pipeline stops every worker it had
sql(q{SELECT sqs_ingest_drop_pipeline('p')});
my $left;
for (1 .. 100)
{
	$left = workers();
	last if $left eq '';
	sleep 0.2;
}
is($left, '', 'after sqs_ingest_drop_pipeline no worker is left');

$node->stop;
done_testing();
