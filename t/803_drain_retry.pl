
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The drain retries what the AWS SDKs retry (5xx, throttling, reset
# connections), with backoff, up to three attempts of a request; only then
# does the call fail: for a delete, with an error saying how many stored
# messages were not deleted, which come back as duplicates.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu   = start_emulator();
my $url   = create_queue('drain-retry');
my $proxy = start_proxy($emu);

# one receive at a time, so that the proxy's count is that receive's attempts
my $node = new_node(
	'drainretry',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'     => $proxy->endpoint,
		'sqs_ingest.max_inflight' => 1,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $stored = 0;
for my $kind ('http500', 'throttle', 'reset')
{
	is(send_generated($url, 30, length $kind), 30, "$kind: 30 events sent");
	$proxy->reset_stats;
	$proxy->set_fault({ receiveFailure => $kind, receiveFailureCount => 2 });
	my $r = drain($node);
	$stored += 30;
	is($r->{inserted}, 30, "$kind: two failed attempts, then the drain stores everything");
	is($proxy->stats->{ReceiveMessage}{failed}, 2, "$kind: both failures went through the proxy");
	is(sql('SELECT count(*) FROM user_logins'), $stored, "$kind: rows stored");
}

is(send_generated($url, 10, 99), 10, 'ten more events sent');
$proxy->reset_stats;
$proxy->set_fault({ receiveFailure => 'http500' });
like(drain_error($node), qr/SQS ReceiveMessage failed: Injected failure/,
	'a receive failing on every attempt fails the drain');
is($proxy->stats->{ReceiveMessage}{failed}, 3, 'after exactly three attempts');
is($proxy->stats->{ReceiveMessage}{forwarded} // 0, 0, 'none of which reached SQS');
$proxy->clear_faults;

# many receives in flight, some failing: each is retried on its own
set_gucs($node, { 'sqs_ingest.max_inflight' => undef });
$proxy->reset_stats;
$proxy->set_fault({ receiveFailure => 'http500', receiveFailureCount => 6 });
my $r = drain($node);
is($r->{inserted}, 10, 'with 32 receives in flight, six failures are retried and the drain succeeds');
is($proxy->stats->{ReceiveMessage}{failed}, 6, 'six failures went through the proxy');

# deletes are retried the same way, in either protocol: nothing is left for
# a redelivery, nothing is logged
my $seed = 80;
for my $case ([ json => 'http500' ], [ json => 'reset' ], [ json => 'throttle' ],
	[ query => 'http500' ], [ query => 'throttle' ])
{
	my ($protocol, $kind) = @$case;
	my $what = "delete $kind ($protocol)";
	set_gucs($node, { 'sqs_ingest.protocol' => $protocol });
	is(send_generated($url, 20, ++$seed), 20, "$what: 20 events sent");
	$proxy->reset_stats;
	$proxy->set_fault({ deleteFailure => $kind, deleteFailureCount => 2 });
	my $offset = -s $node->logfile;
	my $r = drain($node);
	is($r->{inserted}, 20, "$what: stored");
	is($proxy->stats->{DeleteMessageBatch}{failed}, 2, "$what: two delete calls failed");
	is_deeply([ queue_depth($url) ], [ 0, 0, 0 ],
		"$what: retried, every message deleted when the drain returns");
	unlike(slurp_file($node->logfile, $offset), qr/could not delete/,
		"$what: no delete reported as failed");
	$proxy->clear_faults;
}
set_gucs($node, { 'sqs_ingest.protocol' => undef });

# a delete failing on every attempt is given up after three: its messages
# stay in SQS, to come back as duplicates, and the drain says so
is(send_generated($url, 5, 90), 5, 'delete failing for good: 5 events sent');
$proxy->reset_stats;
$proxy->set_fault({ deleteFailure => 'http500' });
my $offset = -s $node->logfile;
my $before = sql('SELECT count(*) FROM user_logins');
like(drain_error($node),
	qr/ERROR:  could not delete 5 stored messages from SQS\n.*DETAIL:  The drain stopped receiving after SQS DeleteMessageBatch failed: Injected failure.* It stored and committed 5 messages;/s,
	'delete failing for good: the drain ends with an error saying what it stored and did not delete');
is(sql('SELECT count(*) FROM user_logins'), $before + 5, 'delete failing for good: stored');
is($proxy->stats->{DeleteMessageBatch}{failed}, 3, 'delete failing for good: after exactly three attempts');
like(slurp_file($node->logfile, $offset), qr/could not delete 5 stored messages from SQS: Injected failure/,
	'delete failing for good: logged');
$proxy->clear_faults;

$node->stop;
done_testing();
