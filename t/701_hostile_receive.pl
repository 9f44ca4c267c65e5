
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The drain against a hostile endpoint answering ReceiveMessage: every
# malformed, truncated, stalled, reset, redirected or failed answer ends in
# a clean error naming the call or in a retry that receives — never a crash,
# a hang past the timeouts, or a fault read as an empty queue — and every
# message is stored exactly once in the end.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

# more than one receive takes (10), so that a retry after a fault that
# consumed the first ten still finds messages
my $N = 15;

my $emu     = start_emulator();
my $url     = create_queue('hostile-receive');
my $hostile = start_hostile($emu);

# One receive at a time, so that the scripted answer is the drain's first;
# short timeouts, so that stalls end soon.
my $node = new_node(
	'hostile_receive',
	queue_url => $url,
	settings  => hostile_settings($hostile));

my @transport = $hostile->transport_cases('ReceiveMessage');
cmp_ok(scalar @transport, '>=', 25, 'the endpoint knows the transport cases');

my @all;
my $seed = 7000;
for my $case (@transport)
{
	my $events = generate_events($N, ++$seed);
	is(send_generated($url, $N, $seed), $N, "$case: $N events sent");
	push @all, @$events;

	$hostile->reset_stats;
	$hostile->script({ ReceiveMessage => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my $r = try_drain($node, undef, timeout => 120);
	note("$case: " . ($r->{ok} ? "drain returned @{$r->{result}}{qw(received inserted)}" : $r->{stderr}));

	is($hostile->served('ReceiveMessage', $case), 1, "$case: served once");
	ok(!$r->{timed_out}, "$case: the drain returns within the timeouts");
	no_crash($node, $offset, $case) or next;
	if ($case eq 'empty')
	{
		# an empty 200 is an empty JSON object, as the AWS SDKs read it
		ok($r->{ok}, "$case: read as an empty queue, no error")
		  or diag($r->{stderr});
	}
	elsif ($r->{ok})
	{
		cmp_ok($r->{result}{received}, '>', 0,
			"$case: not read as an empty queue (retried and received)");
	}
	else
	{
		like($r->{stderr}, qr/^psql:.*ERROR:  .*(ReceiveMessage|SQS)/m,
			"$case: a clean error naming the call");
	}
	is($hostile->stats->{redirectsFollowed}, 0, "$case: no redirect followed")
	  if $case eq 'redirect';
	cmp_ok($hostile->stats->{clientClosed}, '>=', 1,
		"$case: the client gave up the stalled connection")
	  if $case =~ /^stall/;

	$hostile->clear;
	ok(drain_until_stored($node, $events), "$case: every message stored in the end");
}

is(rows_mismatch($node, \@all), 0, 'every event stored exactly once, as it should be');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'no dead letters');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');

$node->stop;
done_testing();
