
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The drain against a hostile endpoint answering DeleteMessageBatch. The
# deletes go out after the batch is stored: whatever the answer, what was
# stored stays stored, no process crashes (not even after the commit, where
# the client could not tell whether its transaction committed), nothing
# hangs past the timeouts, and messages whose delete failed come back and
# are skipped as duplicates — each event is stored exactly once.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N = 5;

my $emu     = start_emulator();
my $url     = create_queue('hostile-delete');
my $hostile = start_hostile($emu);
my $node    = new_node(
	'hostile_delete',
	queue_url => $url,
	settings  => hostile_settings($hostile));

my @delete_cases = $hostile->transport_cases('DeleteMessageBatch');
cmp_ok(scalar @delete_cases, '>=', 25, 'the endpoint knows the delete cases');

my @all;
my $seed = 7200;
for my $case (@delete_cases)
{
	my $events = generate_events($N, ++$seed);
	is(send_generated($url, $N, $seed), $N, "$case: $N events sent");
	push @all, @$events;

	$hostile->reset_stats;
	$hostile->script({ DeleteMessageBatch => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my $r = try_drain($node, undef, timeout => 120);
	note("$case: " . ($r->{ok} ? "drain returned; $r->{stderr}" : $r->{stderr}));

	is($hostile->served('DeleteMessageBatch', $case), 1, "$case: served once");
	ok(!$r->{timed_out}, "$case: the drain returns within the timeouts");
	no_crash($node, $offset, $case) or next;
	ok($r->{ok}, "$case: a failed delete does not fail the drain")
	  or diag($r->{stderr});
	is($node->safe_psql('postgres', 'SELECT count(*) FROM public.user_logins'),
		scalar @all, "$case: the batch is stored");
	my ($failed, $sent) = $r->{stderr} =~ /could not delete (\d+) of (\d+)/;
	ok(!defined $failed || $failed <= $sent,
		"$case: no more failures reported than entries sent");
	is($hostile->stats->{redirectsFollowed}, 0, "$case: no redirect followed")
	  if $case eq 'redirect';

	$hostile->clear;
	# what was not deleted comes back after the visibility timeout
	ok(drain_until_stored($node, $events), "$case: every message stored");
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my ($v, $nv) = queue_depth($url);
		last if $v + $nv == 0;
		try_drain($node);
		sleep 1;
	}
	is_deeply([ queue_depth($url) ], [ 0, 0, 0 ],
		"$case: redelivered messages are deleted as duplicates");
}

is(rows_mismatch($node, \@all), 0, 'every event stored exactly once, as it should be');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'no dead letters');

$node->stop;
done_testing();
