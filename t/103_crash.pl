
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The worker killed with SIGKILL again and again while messages flow: the
# postmaster restarts everything, the worker comes back, and in the end every
# message is in the table exactly once. Messages a killed worker received but
# did not store come back after the (short) visibility timeout; those it
# stored but did not delete come back too and are skipped as duplicates.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $N     = 5000;
my $KILLS = 4;

my $emu  = start_emulator();
my $url  = create_queue('crash-queue');
my $node = worker_node(
	'crash',
	queue_url => $url,
	settings  => {
		'sqs_ingest.visibility_timeout' => 3,
		'sqs_ingest.batch_size'         => 100,
	},
	conf => "restart_after_crash = on\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub rows
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM user_logins');
}

my $events = generate_events($N, 301);
my %uniq = map { $_->{user_id} => 1 } @$events;
is(scalar keys %uniq, $N, "$N events with distinct user ids");

my $log_start = log_offset($node);
my $sender =
  send_in_background($emu, $url, $events, chunk => 1000, pause => 1);

# poll_query_until, across the postmaster's restarts: a psql that gives up
# on a restarting server before reading its query makes IPC::Run die of a
# broken pipe, which is no answer either way: poll again
sub poll_across_restarts
{
	my ($query, $expected) = @_;
	for my $try (1 .. 5)
	{
		my $ok = eval {
			$node->poll_query_until('postgres', $query, $expected // 't');
		};
		return $ok if defined $ok;
		die $@ unless $@ =~ /Broken pipe/;
		note "poll interrupted by a restart ($try): $@";
	}
	return 0;
}

my %killed;
my $last_rows = 0;
for my $k (1 .. $KILLS)
{
	# wait for a live worker (not one already killed) that has stored some
	# more since the last kill (or everything, should the stream be over),
	# then kill it in the middle of its work
	ok( poll_across_restarts(qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'sqs_ingest worker'
  AND pid NOT IN (0@{[ map { ",$_" } keys %killed ]})
  AND (SELECT count(*) > $last_rows OR count(*) = $N FROM user_logins)}),
		"kill $k: a live worker has stored more rows (or all)") or last;
	my $pid = worker_pid($node, 0);
	$last_rows = rows();
	ok(kill('KILL', $pid), "kill $k: SIGKILL sent to worker $pid ($last_rows rows stored)");
	$killed{$pid} = 1;
}
ok($sender->finish, "all $N events sent while the worker was being killed");

# after the last crash: the worker comes back and finishes the job
ok( poll_across_restarts(qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'sqs_ingest worker'
  AND pid NOT IN (0@{[ map { ",$_" } keys %killed ]})}),
	'a worker runs again after the last crash');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N),
	"$N rows stored in the end");
ok(wait_for_depth($url, 0, 0, 0), 'queue empty: every message deleted');

is(rows(), $N, "count(*) = $N");
is(sql('SELECT count(DISTINCT user_id) FROM user_logins'),
	$N, "count(DISTINCT user_id) = $N");
is(rows_digest($node), user_ids_digest($events),
	'the set of user ids is exactly the set sent');
is(rows_mismatch($node, $events), 0, 'rows equal the events');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), $N, "ledger holds $N ids");
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0', 'no dead letters');

my $log = log_since($node, $log_start);
is(count_lines($log, qr/background worker "sqs_ingest worker[^"]*" \(PID \d+\) was terminated by signal 9/),
	$KILLS, "server log: the worker was killed $KILLS times");
cmp_ok(count_lines($log, qr/all server processes terminated; reinitializing/),
	'>=', $KILLS, 'server log: the postmaster reinitialised after each kill');
note('after the last restart: '
	  . worker_stat($node,
		q{'received ' || received || ', inserted ' || inserted || ', duplicates ' || duplicates}));

$node->stop;
done_testing();
