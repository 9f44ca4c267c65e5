
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The target table created after the server started: the worker, which
# checks it before receiving anything, notices within seconds, not after
# sqs_ingest.retry_interval (left at its 60 s default here).

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
my $url  = create_queue('late-table');
my $node = worker_node('late', queue_url => $url, create_table => 0, workers => 0);
$node->append_conf('postgresql.conf', "sqs_ingest.workers = 1\n");
$node->restart;

ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND last_error LIKE '%user_logins%does not exist%'
FROM sqs_ingest.stats WHERE worker = 0}),
	'without its table the worker waits, saying why');
is(send_generated($url, 20, 804), 20, '20 events sent');
ok( $node->poll_query_until(
		'postgres', q{SELECT retries >= 3 FROM sqs_ingest.stats WHERE worker = 0}),
	'it looks again and again');
is_deeply([ queue_depth($url) ], [ 20, 0, 0 ], 'meanwhile nothing is received');

my $t0 = time();
$node->safe_psql('postgres', $TARGET_TABLE_DDL);
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 20),
	'once the table exists the events are stored');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 30,
	sprintf('noticed in %.1f s, well within the 60 s retry_interval', $elapsed));
like(slurp_file($node->logfile),
	qr/sqs_ingest worker 0 will retry with exponential backoff, at most every 10 s/,
	'the log says how often it looks');

$node->stop;
done_testing();
