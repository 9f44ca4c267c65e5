
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The target table dropped while the worker runs: a database failure, not
# bad input. Messages sent meanwhile stay in SQS (no ledger entry, no dead
# letter), the worker says so once with a hint, and once the table is back it
# resumes by itself and stores everything exactly once.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $RETRY = 2;

my $emu  = start_emulator();
my $url  = create_queue('dropped-queue');
my $node = worker_node(
	'dropped',
	queue_url => $url,
	settings  => {
		'sqs_ingest.retry_interval'     => $RETRY,
		'sqs_ingest.visibility_timeout' => 3,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $before = generate_events(50, 501);
is(send_generated($url, 50, 501), 50, '50 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 50),
	'stored by the worker');
ok($node->poll_query_until('postgres',
		q{SELECT deleted FROM sqs_ingest.stats WHERE worker = 0}, 50),
	'and deleted from SQS');
my $pid = worker_pid($node, 0);

### drop the table, send more

my $log_start = log_offset($node);
sql('DROP TABLE public.user_logins');
my $during = generate_events(40, 502);
is(send_generated($url, 40, 502), 40, '40 events sent while the table is missing');

ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND last_error LIKE '%user_logins%does not exist%'
FROM sqs_ingest.stats WHERE worker = 0}),
	'the worker backs off; last_error names the missing table');

ok(wait_for_depth($url, 40, 0, 0), 'the 40 messages are in SQS, visible');
my $r0 = worker_stat($node, 'retries');
ok( $node->poll_query_until(
		'postgres',
		'SELECT retries >= ' . ($r0 + 2) . ' FROM sqs_ingest.stats WHERE worker = 0'),
	'the worker keeps retrying');
is_deeply([ queue_depth($url) ], [ 40, 0, 0 ],
	'after more attempts the messages are still all in SQS: a worker that cannot store does not receive');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), '50',
	'no ledger entry for the unstored messages');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0',
	'no dead letters: a missing table is not bad input');
is(worker_stat($node, 'inserted'), '50', 'stats: nothing more inserted');
is(worker_pid($node, 0), $pid, 'the worker did not exit: same process');

my $log = log_since($node, $log_start);
is(count_lines($log, qr/sqs_ingest target table public\.user_logins does not exist/),
	1, 'the missing table is logged once, not at every attempt');
like($log, qr/HINT:\s+Create it, for example: CREATE TABLE public\.user_logins/,
	'with a hint showing how to create it');
is(count_lines($log, qr/sqs_ingest worker 0 will retry every $RETRY s until the problem is fixed/),
	1, 'one "will retry every N s" line');

### the table is back

sql($TARGET_TABLE_DDL);
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 40),
	'the worker resumes by itself and stores the 40 messages');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
is(rows_digest($node), user_ids_digest($during), 'each of them exactly once');
is(rows_mismatch($node, $during), 0, 'rows equal the events');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), '90', 'ledger: 90 ids');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0', 'still no dead letters');

my $after = generate_events(30, 503);
is(send_generated($url, 30, 503), 30, '30 more events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 70),
	'stored as usual');
is(rows_digest($node), user_ids_digest([ @$during, @$after ]),
	'each event since the table came back stored exactly once');
ok( $node->poll_query_until(
		'postgres', q{SELECT state FROM sqs_ingest.stats WHERE worker = 0}, 'polling'),
	'state back to polling');
is(worker_pid($node, 0), $pid, 'still the same worker process');

$log = log_since($node, $log_start);
is(count_lines($log, qr/sqs_ingest worker 0 recovered after \d+ failed attempts?/),
	1, 'the recovery is logged once');
is(count_lines($log, qr/sqs_ingest target table .* does not exist/),
	1, 'the missing table was never logged again');

$node->stop;
done_testing();
