
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Deletes SQS never answers (the fault proxy holds every delete call): a
# drain's time is bounded by the configured timeouts, not by the backlog.
# It stops receiving once deletes back up, ends as soon as a delete has used
# up its attempts, with an error naming the stuck deletes and saying what
# it stored, and extends the visibility only of messages still waiting to
# be stored, once per extension period. A drain of 3,000 messages takes
# about as long as one of 500. What was not deleted comes back later and is
# skipped as duplicates: each event is stored once.

use strict;
use warnings;
use lib 't';

use POSIX qw(ceil);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;
use Time::HiRes qw(time);

my $REQUEST_TIMEOUT_S = 2;
my $VISIBILITY_S      = 20;
my $BATCH             = 100;
my $IN_FLIGHT         = 8;

my $emu   = start_emulator();
my $proxy = start_proxy($emu);
my $node  = new_node(
	'unanswered',
	settings => {
		'sqs_ingest.endpoint'           => $proxy->endpoint,
		'sqs_ingest.request_timeout'    => "${REQUEST_TIMEOUT_S}s",
		'sqs_ingest.connect_timeout'    => '1s',
		'sqs_ingest.visibility_timeout' => $VISIBILITY_S,
		'sqs_ingest.batch_size'         => $BATCH,
		'sqs_ingest.max_inflight'       => $IN_FLIGHT,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A delete is given up after 3 attempts of the request timeout, with
# backoffs of at most 1 s and 2 s between them; the calls already on the
# wire then end within one more timeout, the receives in flight within the
# drain's long poll and a timeout. Twice that is plenty.
my $bound = 2 * (3 * $REQUEST_TIMEOUT_S + 3 + $REQUEST_TIMEOUT_S + 1 + $REQUEST_TIMEOUT_S);

my %elapsed;
my $stored_before = 0;
for my $n (500, 3000)
{
	my $url = create_queue("unanswered-$n");
	is(send_generated($url, $n, $n), $n, "$n: events sent");
	$proxy->set_fault({ deleteFailure => 'hang' });
	$proxy->reset_stats;
	my $t0 = time();
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET sqs_ingest.queue_url = '$url'; SELECT * FROM sqs_ingest_drain();");
	$elapsed{$n} = time() - $t0;
	my $stats = $proxy->stats;
	$proxy->clear_faults;

	my $stored = sql('SELECT count(*) FROM user_logins') - $stored_before;
	isnt($ret, 0, "$n: the drain fails");
	like($err, qr/ERROR:  could not delete $stored stored messages from SQS/,
		"$n: the error counts the $stored messages stored and not deleted");
	like($err, qr/DETAIL:  The drain stopped receiving after SQS DeleteMessageBatch failed: Operation timed out.* It stored and committed $stored messages;/,
		"$n: naming the deletes that got no answer");
	cmp_ok($elapsed{$n}, '<', $bound,
		sprintf('%d: it ends within the timeouts (%.1f s, bound %d s)', $n, $elapsed{$n}, $bound));
	# deletes back up to two batches (or ten a connection), two more batches
	# wait to be stored
	my $held = (2 * $BATCH > 10 * $IN_FLIGHT ? 2 * $BATCH : 10 * $IN_FLIGHT) + 2 * $BATCH;
	cmp_ok($stored, '<=', $held,
		"$n: it stopped receiving while deletes backed up ($stored stored, at most $held)");

	# at most every message waiting to be stored (two batches), once per
	# extension period (a quarter of the visibility timeout), for as long
	# as the drain may take
	my $extensions = $stats->{ChangeMessageVisibilityBatch}{forwarded} // 0;
	my $most       = (2 * $BATCH / 10) * (ceil($bound / ($VISIBILITY_S / 4)) + 1);
	cmp_ok($extensions, '<=', $most,
		"$n: $extensions ChangeMessageVisibilityBatch calls (at most $most)");

	# what was not deleted comes back after the visibility timeout
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		drain($node, undef, "SET sqs_ingest.queue_url = '$url';\n");
		last if !grep { $_ } queue_depth($url);
		sleep 1;
	}
	$stored_before += $n;
	is(sql('SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
		"$stored_before|$stored_before", "$n: in the end each event is stored once");
	is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], "$n: queue empty");
}
cmp_ok($elapsed{3000}, '<', 2 * $elapsed{500} + 5,
	sprintf('six times the backlog, not six times the time (%.1f s against %.1f s)',
		$elapsed{3000}, $elapsed{500}));

$node->stop;
done_testing();
