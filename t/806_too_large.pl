
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A ReceiveMessage response too large for the 16 MiB cap is asked again for
# half as many messages, down to one, before the call fails.

use strict;
use warnings;
use lib 't';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use ScriptedEndpoint;
use SqsIngestTest;
use Test::More;

my $ep   = ScriptedEndpoint->start;
my $node = new_node(
	'too_large',
	queue_url => $ep->queue_url,
	settings  => { 'sqs_ingest.max_inflight' => 1 });

my $huge = encode_json({ Messages => [ { MessageId => 'big', ReceiptHandle => 'rh',
	Body => 'x' x (17 * 1024 * 1024) } ] });

sub asked_for
{
	my $req = decode_json($ep->last_request('ReceiveMessage'));
	return $req->{MaxNumberOfMessages};
}

# too large once, then an empty queue
$ep->answer('ReceiveMessage', 200, '{}');
$ep->answer_once('ReceiveMessage', 200, $huge);
is_deeply(drain($node), { received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'a response too large once: the drain goes on');
is($ep->count('ReceiveMessage'), 2, 'with one more receive');
is(asked_for(), 5, 'asking for half as many messages');

# too large every time: 10, 5, 2, 1, then the call fails
$ep->answer('ReceiveMessage', 200, $huge);
my $before = $ep->count('ReceiveMessage');
like(drain_error($node), qr/SQS ReceiveMessage failed: response too large/,
	'a response too large even for one message fails the drain');
is($ep->count('ReceiveMessage') - $before, 4, 'after asking for 10, 5, 2 and 1');
is(asked_for(), 1, 'the last request asked for one message');
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');

$node->stop;
done_testing();
