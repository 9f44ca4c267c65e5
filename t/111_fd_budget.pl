
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# libcurl's sockets count against the server's file descriptor budget
# (max_files_per_process, of which a third may go to descriptors opened
# outside fd.c): a worker asked for more receives in flight than that
# holds no more sockets than the budget, fails the rest cleanly and does
# not crash.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $FILES = 64;

my $emu  = start_emulator();
my $url  = create_queue('fd-budget');
my $node = worker_node(
	'fdbudget',
	queue_url => $url,
	workers   => 0,
	settings  => {
		'sqs_ingest.max_inflight'      => 40,
		'sqs_ingest.wait_time_seconds' => 20,
	});
$node->append_conf('postgresql.conf',
	"sqs_ingest.workers = 1\nmax_files_per_process = $FILES\n");
$node->restart;

# the sockets a process holds open
sub sockets
{
	my ($pid) = @_;
	opendir my $fds, "/proc/$pid/fd" or die "cannot list descriptors of $pid: $!";
	my $n = grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^socket:/ } readdir $fds;
	closedir $fds;
	return $n;
}

ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'the worker runs');
my $pid = worker_pid($node, 0);
my $most = 0;
for (1 .. 20)
{
	my $n = sockets($pid);
	$most = $n if $n > $most;
	select(undef, undef, undef, 0.5);
}
# a third of the budget, less the descriptors PostgreSQL keeps for itself
cmp_ok($most, '<=', int($FILES / 3),
	"40 receives asked for, at most $most sockets open: within the budget");
cmp_ok($most, '>', 0, 'some receives are in flight');
my $log = slurp_file($node->logfile);
# libcurl's wording: "Couldn't connect" (7.88), "Could not connect" (8.x)
like($log, qr/SQS ReceiveMessage failed: .*Could(?:n't| not) connect to server/,
	'the others fail as refused connections do');
like($log,
	qr/could not open a connection to SQS: the server's file descriptor budget is used up/,
	'and the log says why');
is(worker_pid($node, 0) ne '' ? 1 : 0, 1, 'the worker is still there');

$node->stop;
done_testing();
