
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A backlog of 100,000 messages drains in one call with a 30 s visibility
# timeout: every message received once (no redelivery), stored once, and
# the counts exact.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N = 100_000;

my $emu  = start_emulator();
my $url  = create_queue('backlog');
# The emulator, one node process holding the whole backlog, is slower to
# answer than SQS when the machine is busy (other test files run beside
# this one, or the sanitizers slow everything down): give its connections
# and answers time, and its long polls too, since a drain ends at the first
# empty answer and a starved emulator can let a 1 s long poll run out with
# messages waiting. None of this changes what is checked here.
my $node = new_node('backlog',
	queue_url => $url,
	settings  => {
		'sqs_ingest.visibility_timeout'      => 30,
		'sqs_ingest.connect_timeout'         => 30000,
		'sqs_ingest.request_timeout'         => 60000,
		'sqs_ingest.drain_wait_time_seconds' => 10,
	});

is(send_generated($url, $N, 4301), $N, "$N events sent");
is_deeply([ queue_depth($url) ], [ $N, 0, 0 ], 'all waiting in the queue');

my $r = drain($node);
is_deeply(
	$r,
	{ received => $N, inserted => $N, duplicates => 0, dead_lettered => 0 },
	'one drain receives each message once and stores it');
is($node->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	"$N|$N", 'each event stored once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.processed'),
	$N, 'each in the ledger once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'no dead letter');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'the queue is empty, nothing in flight');

done_testing();
