
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The pipelines' workers are capped by sqs_ingest.max_pipeline_workers: a
# pipeline that cannot get all its workers says so in the log, runs what it
# got, and gets the rest once another pipeline gives its workers back.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu   = start_emulator();
my $url_a = create_queue('cap-a');
my $url_b = create_queue('cap-b');

# no settings-based workers; room for two pipeline workers only
my $node = worker_node('cap', workers => 0,
	settings => { 'sqs_ingest.endpoint' => $emu->endpoint },
	conf => "sqs_ingest.max_pipeline_workers = 2\n");
my $offset = log_offset($node);

sub running_workers
{
	return $node->safe_psql(
		'postgres', q{
SELECT coalesce(string_agg(pipeline || ':' || n, ',' ORDER BY pipeline), '')
FROM (SELECT pipeline, count(*) AS n FROM sqs_ingest.stats
      WHERE kind = 'worker' AND pid IS NOT NULL GROUP BY pipeline) s});
}

$node->safe_psql(
	'postgres', qq{
SELECT sqs_ingest_create_pipeline('a', '$url_a', 'user_logins',
    sqs_ingest_fetch_login_mapping(), '{"workers": 2, "wait_time_seconds": 1}');
SELECT sqs_ingest_create_pipeline('b', '$url_b', 'user_logins',
    sqs_ingest_fetch_login_mapping(), '{"workers": 1, "wait_time_seconds": 1}');});

# three workers asked for, two allowed: never more than two run
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'two pipeline workers run');
ok( $node->wait_for_log(qr/sqs_ingest pipeline "[ab]" runs \d of its \d workers?/, $offset),
	'the pipeline short of workers says so in the log');
like(log_since($node, $offset), qr/Raise sqs_ingest\.max_pipeline_workers/,
	'with a hint naming the setting');
sleep 3;
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'2', 'the cap holds while both pipelines stay enabled');

# the workers that run do their work
is(send_generated($url_b, 5, 9021), 5, '5 events sent to pipeline b');

# dropping a gives its workers back: b runs its one, whatever it had before
$node->safe_psql('postgres', q{SELECT sqs_ingest_drop_pipeline('a')});
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM sqs_ingest.pipelines WHERE name = 'a'}),
	'pipeline a dropped');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 5 FROM user_logins}),
	'pipeline b stores its events');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM sqs_ingest.stats
WHERE kind = 'worker' AND pid IS NOT NULL AND pipeline = 'b'}),
	'pipeline b runs its worker once a gave the slots back');
is(running_workers(), 'b:1', 'only b\'s worker runs');

done_testing();
