
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The extension against local-aws-sqs exactly as the npm package serves it:
# no front, so no signature check and none of the adjustments the other
# tests' emulator makes. The package's quirks are the extension's to cope
# with: an empty receive is a 200 with an empty body, a long poll waits for
# a full batch or the whole wait, in-flight messages count as visible.
# The drain stores the sample, then the worker polls the empty queue for a
# while and ingests a stream, with no crash, no error and nothing left.

use strict;
use warnings;
use lib 't';

use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu = start_emulator(front => 0);
my $url = create_queue('unmodified');

# the quirk the extension once crashed on is there
my $empty = HTTP::Tiny->new(timeout => 30)->post(
	$emu->endpoint . '/',
	{
		headers => {
			'Content-Type' => 'application/x-amz-json-1.0',
			'X-Amz-Target' => 'AmazonSQS.ReceiveMessage'
		},
		content => qq({"QueueUrl": "$url", "WaitTimeSeconds": 0})
	});
is($empty->{status}, 200, 'an empty receive is a 200');
is($empty->{content}, '', '... with an empty body');

my $node = worker_node(
	'unmodified',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'          => $emu->endpoint,
		'sqs_ingest.wait_time_seconds' => 1,
		'sqs_ingest.batch_size'        => 10,
	});
my $offset = -s $node->logfile;

# the worker polls the empty queue: each receive answers an empty body
sleep(4);
is(worker_stat($node, 'sqs_errors'), 0, 'the worker read empty answers as an empty queue');
is(worker_stat($node, 'received'),   0, 'and received nothing');

# a drain of the empty queue, then of the sample
$node->safe_psql('postgres', 'ALTER SYSTEM SET sqs_ingest.workers = 0');
$node->restart;
is_deeply(drain($node, 10),
	{ received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'a drain of the empty queue receives nothing, without an error');

is(send_json_array($url, sample_file()), 100, 'sample sent');
my %total = (received => 0, inserted => 0, duplicates => 0, dead_lettered => 0);
for (1 .. 10)
{
	my $r = drain($node);
	$total{$_} += $r->{$_} for keys %total;
	last if $total{received} >= 100;
}
is_deeply(\%total,
	{ received => 100, inserted => 99, duplicates => 0, dead_lettered => 1 },
	'the drains stored the sample: 99 rows, 1 dead letter');
my @good = grep { exists $_->{user_id} } @{ sample_events() };
is(rows_mismatch($node, \@good), 0, 'rows equal the events');
is(rows_sent_today($node), 99,
	'create_date is the send date: the package answers SentTimestamp');

# the worker again, on a stream
$node->safe_psql('postgres', 'ALTER SYSTEM SET sqs_ingest.workers = 1');
$node->restart;
wait_for_workers($node, 1);
is(send_generated($url, 500, 707), 500, '500 more events sent');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM user_logins', 599),
	'the worker stored them');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT deleted >= 500 AND sqs_errors = 0 FROM sqs_ingest.stats WHERE kind = 'worker'}),
	'and deleted every one, without an error');
is_deeply([ (queue_depth($url))[ 0, 1 ] ], [ 0, 0 ], 'nothing is left in the queue');

no_crash($node, $offset, 'unmodified emulator');

$node->stop;
$emu->stop;
done_testing();
