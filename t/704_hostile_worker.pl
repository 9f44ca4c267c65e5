
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The background worker against a hostile endpoint answering ReceiveMessage
# and DeleteMessageBatch: whatever the answer, no process crashes, the
# worker keeps going within its timeouts, a fault is reported (never read
# as an empty queue), and every message is stored exactly once.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(usleep);

my $N = 5;

my $emu     = start_emulator();
my $url     = create_queue('hostile-worker');
my $hostile = start_hostile($emu);
my $node    = worker_node(
	'hostile_worker',
	queue_url => $url,
	settings  => {
		%{ hostile_settings($hostile) },
		'sqs_ingest.wait_time_seconds' => 1,
		'sqs_ingest.retry_interval'    => 2,
	});

sub wait_served
{
	my ($action, $case) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $hostile->served($action, $case) >= 1;
		usleep(100_000);
	}
	return 0;
}


my @all;
my $seed = 7400;
for my $action ('ReceiveMessage', 'DeleteMessageBatch')
{
	for my $case ($hostile->transport_cases($action))
	{
		my $what = "$action $case";
		$hostile->reset_stats;
		my $offset = -s $node->logfile;
		my $errors = worker_stat($node, 'sqs_errors') || 0;
		$hostile->script({ $action => { case => $case, count => 1 } });
		my $events = generate_events($N, ++$seed);
		is(send_generated($url, $N, $seed), $N, "$what: $N events sent");
		push @all, @$events;

		ok(wait_served($action, $case), "$what: served");
		my $ids = join ',', map { "'$_->{user_id}'" } @$events;
		# (a crash shuts the cluster down under the poll)
		my $stored = eval {
			$node->poll_query_until('postgres',
				"SELECT count(*) FROM public.user_logins WHERE user_id IN ($ids)", $N);
		};
		no_crash($node, $offset, $what) or next;
		ok($stored, "$what: every message stored");
		ok( $node->poll_query_until(
				'postgres', q{SELECT count(*) FROM pg_stat_activity
				  WHERE backend_type = 'sqs_ingest worker'}, '1'),
			"$what: the worker runs");
		# libcurl itself retries a request whose reused connection dies
		# before any answer, so a reset may never reach the worker
		if ($action eq 'ReceiveMessage' && $case ne 'empty' && $case ne 'reset')
		{
			my $deadline = time() + 15;
			my $reported = 0;
			while (!$reported && time() < $deadline)
			{
				$reported = slurp_file($node->logfile, $offset) =~ /ReceiveMessage|SQS/
				  || (worker_stat($node, 'sqs_errors') || 0) > $errors;
				usleep(200_000) unless $reported;
			}
			ok($reported, "$what: the fault is reported, not read as an empty queue");
		}
		is($hostile->stats->{redirectsFollowed}, 0, "$what: no redirect followed")
		  if $case eq 'redirect';
		# what was not deleted comes back and is deleted as a duplicate
		ok(wait_for_depth($url, 0, 0, 0), "$what: queue empty");
	}
}

is(rows_digest($node), user_ids_digest(\@all), 'every event stored exactly once');

$node->stop;
done_testing();
