
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Two workers on one queue: every message stored exactly once, and the work
# shared between them.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $N = 3000;

my $emu  = start_emulator();
my $url  = create_queue('two-queue');
my $node = worker_node(
	'two',
	queue_url => $url,
	workers   => 2,
	settings  => { 'sqs_ingest.batch_size' => 50 });

sub sql { return $node->safe_psql('postgres', $_[0]); }

is( sql(q{
SELECT string_agg(application_name, ',' ORDER BY application_name)
FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'sqs_ingest worker 0,sqs_ingest worker 1',
	'two workers in pg_stat_activity');
is( sql(q{
SELECT string_agg(s.worker || ':' || s.state, ',' ORDER BY s.worker)
FROM sqs_ingest.stats s JOIN pg_stat_activity a USING (pid)
WHERE s.kind = 'worker'}),
	'0:polling,1:polling',
	'two rows in the stats, each with its own live pid');
my @pids = worker_pids($node);

my $events = generate_events($N, 601);
my %uniq = map { $_->{user_id} => 1 } @$events;
is(scalar keys %uniq, $N, "$N events with distinct user ids");

# in chunks, so that both workers' long polls see messages come
my $sender = send_in_background($emu, $url, $events, chunk => 600, pause => 0.2);
ok($sender->finish, "$N events sent");
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N),
	"$N rows stored");
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');

is(sql('SELECT count(DISTINCT user_id) FROM user_logins'), $N, 'no user id twice');
is(rows_digest($node), user_ids_digest($events), 'the set of user ids is the set sent');
is(rows_mismatch($node, $events), 0, 'rows equal the events');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), $N, "ledger holds $N ids");

ok( $node->poll_query_until(
		'postgres',
		q{SELECT sum(deleted) FROM sqs_ingest.stats WHERE kind = 'worker'}, $N),
	'stats: deleted adds up to what was sent');
is( sql(q{
SELECT sum(received) || '|' || sum(inserted) || '|' || sum(duplicates) || '|' || sum(dead_lettered)
FROM sqs_ingest.stats WHERE kind = 'worker'}),
	"$N|$N|0|0",
	'stats: received and inserted add up to what was sent, no duplicates');
my @received = split /\n/,
  sql(q{SELECT received FROM sqs_ingest.stats WHERE kind = 'worker' ORDER BY worker});
note("received by worker 0: $received[0], by worker 1: $received[1]");
cmp_ok($received[0], '>', 0, 'worker 0 received some');
cmp_ok($received[1], '>', 0, 'worker 1 received some');
is(join(',', worker_pids($node)), join(',', @pids), 'same two worker processes throughout');

$node->stop;
done_testing();
