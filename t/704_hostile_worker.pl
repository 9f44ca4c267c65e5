
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

my @all;
my $seed = 7400;
for my $action ('ReceiveMessage', 'DeleteMessageBatch')
{
	for my $case ($hostile->transport_cases($action))
	{
		push @all, @{ worker_meets_hostile($node, $hostile, $url, $action, $case, $N, ++$seed) };
	}
}

is(rows_digest($node), user_ids_digest(\@all), 'every event stored exactly once');

$node->stop;
done_testing();
