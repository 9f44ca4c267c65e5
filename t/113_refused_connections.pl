
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# SQS refusing connections for a while: every receive's socket fails while
# connecting, which libcurl 7.88 closes without telling the client.  The
# worker must not keep those sockets listed: not hold their share of the
# server's file descriptor budget, not watch a closed descriptor, not take a
# new socket given the same number for the old one.  After the outage it
# ingests again, and the log shows none of those failures.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

# a budget of about 60 sockets (a third of the files, less PostgreSQL's own):
# more than a worker of 8 receives and its deletes ever holds at once, less
# than the refused sockets of the outage's attempts if they were kept
my $FILES = 200;

my $emu  = start_emulator(queues => ['refused']);
my $url  = $emu->queue_url('refused');
my $node = worker_node(
	'refused',
	queue_url => $url,
	workers   => 0,
	settings  => {
		'sqs_ingest.max_inflight'    => 8,
		'sqs_ingest.retry_interval'  => 1,
		'sqs_ingest.connect_timeout' => 1000,
	});
$node->append_conf('postgresql.conf',
	"sqs_ingest.workers = 1\nmax_files_per_process = $FILES\n");
$node->restart;

my $events = generate_events(200, 113);
is(send_events($url, [ @$events[ 0 .. 99 ] ]), 100, '100 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 100 FROM user_logins'),
	'stored before the outage');

my $log_start = log_offset($node);
$emu->stop;
# the worker tries again every second or so, each time with every receive
# refused: far more sockets than the budget holds, if they were kept
sleep 20;
$emu->start;
is(send_events($url, [ @$events[ 100 .. 199 ] ]), 100, '100 more events sent after the outage');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 200 FROM user_logins'),
	'the worker ingests again after the outage');

my $log = log_since($node, $log_start);
like($log, qr/SQS ReceiveMessage failed: .*connect/i, 'the outage was seen: connections refused');
unlike($log, qr/file descriptor budget is used up/,
	'refused sockets gave their share of the descriptor budget back');
unlike($log, qr/opened more sockets than it allows/, 'nor stayed listed');
unlike($log, qr/epoll_ctl\(\) failed/, 'no closed or reused descriptor was watched');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'no dead letter');

$node->stop;
done_testing();
