
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The settings' pipeline follows a reload of sqs_ingest.target_table: its
# running worker stores the next messages into the new table, in the same
# process, while a catalog pipeline beside it keeps its own target.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu         = start_emulator();
my $url         = create_queue('default-queue');
my $catalog_url = create_queue('catalog-queue');
my $node        = worker_node(
	'default_reload',
	queue_url => $url,
	settings  => {
		'sqs_ingest.wait_time_seconds' => 1,
		'sqs_ingest.endpoint'          => $emu->endpoint,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(qq{
CREATE TABLE other_logins (LIKE user_logins INCLUDING ALL);
CREATE TABLE catalog_logins (LIKE user_logins INCLUDING ALL);
SELECT sqs_ingest_create_pipeline('cat', '$catalog_url', 'catalog_logins',
                                  sqs_ingest_fetch_login_mapping(),
                                  '{"wait_time_seconds": 1}');
});
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM sqs_ingest.stats
WHERE pipeline = 'cat' AND kind = 'worker' AND state = 'polling'}),
	'the catalog pipeline runs its worker beside the settings\' one');

# before the reload: each pipeline stores into its own table
is(send_generated($url,         20, 9061), 20, '20 events sent to the settings\' queue');
is(send_generated($catalog_url, 10, 9062), 10, '10 events sent to the catalog pipeline\'s queue');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 20),
	'the settings\' worker stores them into user_logins');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM catalog_logins', 10),
	'the catalog pipeline stores its own into catalog_logins');

my $pid = worker_pid($node, 0);
like($pid, qr/^\d+$/, 'the settings\' worker runs');

# the reload: the settings' pipeline now targets other_logins
set_gucs($node, { 'sqs_ingest.target_table' => 'other_logins' });

# A reload reaches the worker asynchronously: a batch received before it
# landed may still be stored into the old table.  One round first lets the
# reload land (its events go to one table or the other, each once); the
# next round shows its effect.
is(send_generated($url, 10, 9063), 10, 'first round sent after the reload');
ok( $node->poll_query_until(
		'postgres',
		'SELECT (SELECT count(*) FROM user_logins) + (SELECT count(*) FROM other_logins)',
		30),
	'the first round is stored, each event once');
my $before = sql('SELECT count(*) FROM user_logins');

my $events = generate_events(15, 9064);
is(send_generated($url, 15, 9064), 15, 'second round sent');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) FROM other_logins WHERE user_id IN ('}
		  . join(q{','}, map { $_->{user_id} } @$events) . q{')}, 15),
	'the second round is stored into the new target table');
ok(wait_for_depth($url, 0, 0, 0), 'the settings\' queue is empty');
is(sql('SELECT count(*) FROM user_logins'), $before,
	'nothing more is stored into the old target table');
is(sql('SELECT count(*) FROM other_logins'), 45 - $before,
	'the new target table holds the rest, each event once');
is(worker_pid($node, 0), $pid, 'same worker process: no restart');

# the catalog pipeline keeps its own target
is(send_generated($catalog_url, 10, 9065), 10, '10 more events sent to the catalog pipeline\'s queue');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM catalog_logins', 20),
	'the catalog pipeline stores them into catalog_logins, as before the reload');
ok(wait_for_depth($catalog_url, 0, 0, 0), 'the catalog pipeline\'s queue is empty');
is(sql('SELECT count(*) FROM other_logins'), 45 - $before,
	'none of them reached the settings\' new target');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0', 'no dead letters');

$node->stop;
done_testing();
