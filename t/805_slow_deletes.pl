
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Deletes slower than receives (the fault proxy holds every delete call):
# the worker stops receiving while deletes are behind, so the messages it
# holds (received, not yet deleted) and its private memory stay bounded
# instead of growing with the backlog. Everything is stored once and
# deleted in the end.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(usleep);

my $N          = 4000;
my $BATCH      = 100;
my $IN_FLIGHT  = 4;

my $emu   = start_emulator();
my $url   = create_queue('slow-deletes');
my $proxy = start_proxy($emu);
my $node  = worker_node(
	'slowdel',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'           => $proxy->endpoint,
		'sqs_ingest.batch_size'         => $BATCH,
		'sqs_ingest.max_inflight'       => $IN_FLIGHT,
		'sqs_ingest.wait_time_seconds'  => 1,
		'sqs_ingest.visibility_timeout' => 600,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# private memory of a process, in kB
sub rss_anon_kb
{
	my ($pid) = @_;
	my $status = slurp_file("/proc/$pid/status");
	return $status =~ /^RssAnon:\s+(\d+) kB/m ? $1 : die "no RssAnon for $pid";
}

my $pid = worker_pid($node, 0);

# warm up: allocator pools and plans reach their working size
is(send_generated($url, 500, 1), 500, 'warm-up events sent');
ok($node->poll_query_until('postgres', q{SELECT deleted FROM sqs_ingest.stats WHERE worker = 0}, 500),
	'warm-up stored and deleted');
my $rss_before = rss_anon_kb($pid);

$proxy->set_fault({ deleteDelayMs => 250 });
is(send_generated($url, $N, 805), $N, "$N events sent; each delete call now takes 250 ms");

# received but not deleted: held by the worker, in its batch or delete queue
my $max_held = 0;
my $max_rss  = 0;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	my ($received, $deleted) = split /\|/,
	  sql(q{SELECT received, deleted FROM sqs_ingest.stats WHERE worker = 0});
	my $held = $received - $deleted;
	$max_held = $held if $held > $max_held;
	my $rss = rss_anon_kb($pid);
	$max_rss = $rss if $rss > $max_rss;
	last if $deleted >= $N + 500;
	usleep(200_000);
}
is(sql(q{SELECT deleted FROM sqs_ingest.stats WHERE worker = 0}), $N + 500,
	'every message deleted in the end');

# the bound: deletes waiting (2 batches), in flight (10 per connection), a
# batch or two being filled, receives in flight; far below the backlog
my $bound = 2 * $BATCH + 10 * $IN_FLIGHT + 2 * $BATCH + 10 * $IN_FLIGHT + $BATCH;
cmp_ok($max_held, '<=', $bound,
	"at most $max_held messages held at once (bound $bound, backlog $N): receives paused while deletes were behind");
SKIP:
{
	# an AddressSanitizer build (scripts/sanitize.sh) pads every allocation
	# and holds freed memory back: its private memory is not the worker's
	skip 'private memory is the sanitizer\'s under AddressSanitizer', 1
	  if $ENV{SQS_INGEST_SERVER_PRELOAD};
	cmp_ok($max_rss - $rss_before, '<', 16 * 1024,
		sprintf('private memory grew by %.1f MiB at most (%.1f MiB before)',
			($max_rss - $rss_before) / 1024, $rss_before / 1024));
}
is(sql('SELECT count(*) FROM user_logins'), $N + 500, 'every event stored');
is(worker_stat($node, 'duplicates'), '0', 'none twice');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
is(worker_pid($node, 0), $pid, 'same worker process');

$node->stop;
done_testing();
