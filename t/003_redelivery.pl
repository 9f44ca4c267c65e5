
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# At-least-once delivery made exactly-once in the table: a drain commits as
# it goes, so the caller's rollback neither loses nor doubles anything;
# failed deletes leave messages in SQS (the drain ends with an error saying
# what it stored), and their redelivery is counted as duplicates, not stored
# twice; a message
# seen by another consumer is stored once when it comes back.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $VT = 3;    # visibility timeout: short, but longer than one small drain

my $emu  = start_emulator();
my $node = new_node('redelivery',
	settings => { 'sqs_ingest.visibility_timeout' => $VT });

sub count_rows
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM user_logins') + 0;
}

sub ledger
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.processed') + 0;
}

sub in_sqs
{
	my ($v, $nv) = queue_depth($_[0]);
	return $v + $nv;
}

### (a) a drain whose caller rolls back: like VACUUM, what it stored stays

my $url_a = create_queue('rollback');
set_gucs($node, { 'sqs_ingest.queue_url' => $url_a });
is(send_generated($url_a, 40, 101), 40, '(a) 40 events sent');

is( $node->safe_psql(
		'postgres', q{
BEGIN;
SELECT received, inserted, duplicates, dead_lettered FROM sqs_ingest_drain();
ROLLBACK;}),
	'40|40|0|0',
	'(a) drain inside BEGIN ... ROLLBACK received and inserted 40');
is(count_rows(), 40, '(a) the rows stay after the caller\'s ROLLBACK');
is(ledger(),     40, '(a) and so do their ledger entries');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', '(a) no dead letters');
is_deeply([ queue_depth($url_a) ], [ 0, 0, 0 ], '(a) all 40 deleted from SQS');

my $r = drain($node);
is_deeply(
	$r,
	{ received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'(a) nothing left for the next drain');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT user_id) FROM user_logins'),
	'40', '(a) each message stored once');

### (b) deletes that fail after the commit

my $url_b = create_queue('deletes');
my $proxy = start_proxy($emu);
set_gucs($node,
	{ 'sqs_ingest.queue_url' => $url_b, 'sqs_ingest.endpoint' => $proxy->endpoint });

my $rows = count_rows();
my $seed = 200;
for my $fault ('http500', 'failed-entries')
{
	my $n = 20;
	is(send_generated($url_b, $n, ++$seed), $n, "(b $fault) $n events sent");
	$proxy->set_fault({ deleteFailure => $fault });
	$proxy->reset_stats;

	if ($fault eq 'http500')
	{
		# delete calls given up end the drain with an error saying what it
		# stored
		my $err = drain_error($node);
		like($err // '', qr/could not delete $n stored messages from SQS/,
			"(b $fault) the drain ends with an error: its deletes failed");
		like($err // '', qr/It stored and committed $n messages/,
			"(b $fault) the error says the drain stored $n although deletes fail");
	}
	else
	{
		# entries refused one by one in answered calls: the drain ends well
		$r = drain($node);
		is_deeply(
			$r,
			{ received => $n, inserted => $n, duplicates => 0, dead_lettered => 0 },
			"(b $fault) drain stores $n although deletes fail");
	}
	is(count_rows(), $rows + $n, "(b $fault) rows committed");
	cmp_ok($proxy->stats->{DeleteMessageBatch}{failed} // 0,
		'>=', 1, "(b $fault) deletes were attempted and failed");
	is(in_sqs($url_b), $n, "(b $fault) messages remain in SQS");

	$proxy->clear_faults;
	ok(wait_for_depth($url_b, $n, 0, 0), "(b $fault) redelivered after the visibility timeout");
	$r = drain($node);
	is_deeply(
		$r,
		{ received => $n, inserted => 0, duplicates => $n, dead_lettered => 0 },
		"(b $fault) redelivery counted as duplicates");
	is(count_rows(), $rows + $n, "(b $fault) no row stored twice");
	is_deeply([ queue_depth($url_b) ], [ 0, 0, 0 ], "(b $fault) duplicates deleted");
	$rows += $n;
}

# Connections reset on the first delete call only: however the client
# retries, whatever stayed in SQS comes back as duplicates, nothing doubles.
{
	my $n = 30;
	is(send_generated($url_b, $n, ++$seed), $n, "(b reset) $n events sent");
	$proxy->set_fault({ deleteFailure => 'reset', deleteFailureCount => 1 });
	$proxy->reset_stats;
	$r = drain($node);
	is($r->{inserted}, $n, "(b reset) drain stores $n");
	is($proxy->stats->{DeleteMessageBatch}{failed}, 1, '(b reset) one delete call was cut');
	my $left = in_sqs($url_b);
	cmp_ok($left, '<=', $n, "(b reset) $left messages left in SQS");
	$proxy->clear_faults;
	ok(wait_for_depth($url_b, $left, 0, 0), '(b reset) leftovers visible again');
	$r = drain($node);
	is_deeply(
		$r,
		{ received => $left, inserted => 0, duplicates => $left, dead_lettered => 0 },
		'(b reset) leftovers are duplicates');
	is(count_rows(), $rows + $n, '(b reset) no row stored twice');
	is_deeply([ queue_depth($url_b) ], [ 0, 0, 0 ], '(b reset) queue empty');
	$rows += $n;
}

### (c) a message another consumer received but did not delete

my $url_c = create_queue('peek');
set_gucs($node, { 'sqs_ingest.queue_url' => $url_c, 'sqs_ingest.endpoint' => undef });
is(send_generated($url_c, 1, 300), 1, '(c) one event sent');
my $msgs = receive_messages($url_c, max => 1, visibility_timeout => 4);
is(scalar @$msgs, 1, '(c) another consumer received it');
$r = drain($node);
is($r->{received}, 0, '(c) drain does not see a message in flight');
ok(wait_for_depth($url_c, 1, 0, 0), '(c) message visible again');
$r = drain($node);
is_deeply(
	$r,
	{ received => 1, inserted => 1, duplicates => 0, dead_lettered => 0 },
	'(c) drain stores it');
my $uid = generate_events(1, 300)->[0]{user_id};
is($node->safe_psql('postgres', "SELECT count(*) FROM user_logins WHERE user_id = '$uid'"),
	'1', '(c) stored once');
is_deeply([ queue_depth($url_c) ], [ 0, 0, 0 ], '(c) queue empty');
is(count_rows(), $rows + 1, 'total rows');

done_testing();
