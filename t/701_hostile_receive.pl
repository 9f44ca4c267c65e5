
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
push @all, @{ drain_meets_hostile($node, $hostile, $url, $_, $N, ++$seed) } for @transport;

is(rows_mismatch($node, \@all), 0, 'every event stored exactly once, as it should be');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'no dead letters');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');

$node->stop;
done_testing();
