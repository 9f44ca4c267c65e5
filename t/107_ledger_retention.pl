
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The ledger of processed message ids is pruned to
# sqs_ingest.processed_retention: by sqs_ingest_prune_processed() on demand,
# and by the first worker when it starts (then hourly). Retention 0 keeps
# every id.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('ledger-queue');
my $node = worker_node('ledger', queue_url => $url);

sub sql { return $node->safe_psql('postgres', $_[0]); }

# $n ids per age, named after it: old-N (20 days), mid-N (2 days), new-N (1 hour)
sub fill
{
	my ($tag, $n) = @_;
	sql(qq{
INSERT INTO sqs_ingest.processed (message_id, processed_at)
SELECT '$tag-old-' || i, now() - interval '20 days' FROM generate_series(1, $n) i;
INSERT INTO sqs_ingest.processed (message_id, processed_at)
SELECT '$tag-mid-' || i, now() - interval '2 days' FROM generate_series(1, $n) i;
INSERT INTO sqs_ingest.processed (message_id, processed_at)
SELECT '$tag-new-' || i, now() - interval '1 hour' FROM generate_series(1, $n) i;});
	return;
}

sub ages
{
	my ($tag) = @_;
	return sql(qq{
SELECT count(*) FILTER (WHERE message_id LIKE '$tag-old-%') || '|'
    || count(*) FILTER (WHERE message_id LIKE '$tag-mid-%') || '|'
    || count(*) FILTER (WHERE message_id LIKE '$tag-new-%')
FROM sqs_ingest.processed});
}

### on demand, default retention (14 days)

is(sql('SHOW sqs_ingest.processed_retention'), '14d', 'default retention is 14 days');
fill('a', 25);
is(ages('a'), '25|25|25', 'ledger filled: 25 ids each 20 days, 2 days, 1 hour old');
is(sql('SELECT sqs_ingest_prune_processed()'), '25', 'prune removes the 25 old ids');
is(ages('a'), '0|25|25', 'recent ids kept');
is(sql('SELECT sqs_ingest_prune_processed()'), '0', 'pruning again removes nothing');

### retention 0: nothing is pruned

fill('b', 10);
is( sql(q{SET sqs_ingest.processed_retention = 0;
SELECT sqs_ingest_prune_processed()}),
	'0', 'with processed_retention = 0 nothing is pruned');
is(ages('b'), '10|10|10', 'every id kept');

### shorter retention

is( sql(q{SET sqs_ingest.processed_retention = '1d';
SELECT sqs_ingest_prune_processed()}),
	'45', 'with one day, every id older than a day goes (20 of b, 25 of a)');
is(ages('b'), '0|0|10', 'ids of the last hour kept');
is(ages('a'), '0|0|25', '... of every batch');
sql('DELETE FROM sqs_ingest.processed');

### not for everyone

sql('CREATE ROLE plain LOGIN');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT sqs_ingest_prune_processed()',
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a role without grants cannot prune');
like($err, qr/permission denied/, '... permission denied');

### the first worker prunes when it starts

# messages really stored by the worker are recent: they stay
my $events = generate_events(20, 701);
is(send_generated($url, 20, 701), 20, '20 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM sqs_ingest.processed', 20),
	'the worker records 20 ids in the ledger');
fill('c', 15);

my $pid = worker_pid($node, 0);
$node->restart;
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) FILTER (WHERE message_id LIKE 'c-old-%') = 0
FROM sqs_ingest.processed}),
	'after a restart, the worker prunes the old ids by itself');
wait_for_workers($node, 1);
isnt(worker_pid($node, 0), $pid, 'a new worker process');
is(ages('c'), '0|15|15', 'recent ids kept by the worker');
is( sql(q{SELECT count(*) FROM sqs_ingest.processed
WHERE message_id NOT LIKE 'c-%'}),
	'20', 'the ids of the stored messages kept');

### with retention 0 the worker prunes nothing

set_gucs($node, { 'sqs_ingest.processed_retention' => 0 });
fill('d', 5);
$node->restart;
# the prune happens before the worker first polls: once it polls, it is done
wait_for_workers($node, 1);
is(ages('d'), '5|5|5', 'with retention 0 a starting worker keeps every id');

# and it still works: a message sent now is stored and its id kept
is(send_generated($url, 5, 702), 5, '5 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 25),
	'stored');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), 20 + 30 + 15 + 5,
	'ledger: ids of all stored messages plus what the test put in');

$node->stop;
done_testing();
