
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The launcher serves every pipeline, so no pipeline's owner may stall it:
# while one owner holds its target table in ACCESS EXCLUSIVE mode in an open
# transaction, another pipeline still gets its worker, a worker that stops
# is started again and a dropped pipeline's worker stops.  Only the locked
# pipeline's own worker waits.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu   = start_emulator();
my $url_a = create_queue('locked-a');
my $url_b = create_queue('free-b');

# no settings-based workers: only the pipelines run
my $node = worker_node('launcher_locks', workers => 0,
	settings => { 'sqs_ingest.endpoint' => $emu->endpoint });

$node->safe_psql(
	'postgres', qq{
CREATE ROLE owner_a LOGIN;
CREATE TABLE a_logins (LIKE user_logins INCLUDING ALL);
GRANT USAGE ON SCHEMA sqs_ingest TO owner_a;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_fetch_login_mapping(), sqs_ingest_mask(text) TO owner_a;
SELECT sqs_ingest_grant_queue('$url_a', 'owner_a');
ALTER TABLE a_logins OWNER TO owner_a;
SET ROLE owner_a;
SELECT sqs_ingest_create_pipeline('a', '$url_a', 'a_logins',
    sqs_ingest_fetch_login_mapping(), '{"wait_time_seconds": 1}');
RESET ROLE;});

# the number of running workers of a pipeline
sub workers_of
{
	my ($pipeline) = @_;
	return qq{
SELECT (SELECT count(*) FROM sqs_ingest.stats s JOIN pg_stat_activity a USING (pid)
        WHERE s.kind = 'worker' AND s.pipeline = '$pipeline'
          AND a.backend_type = 'sqs_ingest worker')};
}

ok($node->poll_query_until('postgres', workers_of('a') . ' = 1'),
	'pipeline a runs its worker');

# owner_a holds its table and keeps the transaction open
my ($out, $err) = ('', '');
my $holder = IPC::Run::start(
	[
		'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('postgres') . ' user=owner_a application_name=lock_holder',
		'-c', "BEGIN;\nLOCK TABLE a_logins IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(3600);"
	],
	'<', '/dev/null', '>', \$out, '2>', \$err);
my $holding = q{
SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE a.application_name = 'lock_holder' AND l.granted
  AND l.relation = 'a_logins'::regclass AND l.mode = 'AccessExclusiveLock'};
ok($node->poll_query_until('postgres', $holding),
	'owner_a holds a_logins in ACCESS EXCLUSIVE mode')
  or diag("lock holder: $err");

# pipeline b, on a table nobody holds, comes while the lock is held
$node->safe_psql(
	'postgres', qq{
SELECT sqs_ingest_create_pipeline('b', '$url_b', 'user_logins',
    sqs_ingest_fetch_login_mapping(), '{"wait_time_seconds": 1}');});
ok($node->poll_query_until('postgres', workers_of('b') . ' = 1'),
	'pipeline b gets its worker while a\'s table is locked');
is($node->safe_psql('postgres', $holding), 't', 'the lock was held all along');

# b's worker does its work
is(send_generated($url_b, 5, 9031), 5, '5 events sent to pipeline b');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 5 FROM user_logins}),
	'pipeline b stores its events');

# a stopped worker of b is started again
my $old_pid = $node->safe_psql('postgres',
	q{SELECT pid FROM sqs_ingest.stats WHERE kind = 'worker' AND pipeline = 'b' AND pid IS NOT NULL});
$node->safe_psql('postgres', qq{SELECT pg_terminate_backend($old_pid)});
ok( $node->poll_query_until(
		'postgres', workers_of('b') . qq{ = 1 AND NOT EXISTS
(SELECT FROM pg_stat_activity WHERE pid = $old_pid)}),
	'b\'s stopped worker is started again while a\'s table is locked');

# a dropped pipeline's worker stops
$node->safe_psql('postgres', q{SELECT sqs_ingest_drop_pipeline('b')});
ok($node->poll_query_until('postgres', workers_of('b') . ' = 0'),
	'dropped pipeline b\'s worker stops while a\'s table is locked');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'sqs_ingest launcher' AND wait_event_type = 'Lock'}),
	'0', 'the launcher never waits for a lock');
is($node->safe_psql('postgres', $holding), 't', 'the lock is still held');

# once the lock goes, a's worker goes on
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock_holder'});
$holder->finish;
is(send_generated($url_a, 3, 9032), 3, '3 events sent to pipeline a');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 3 FROM a_logins}),
	'pipeline a stores its events once the lock is gone');

done_testing();
