
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Deletes SQS refuses for good (the credentials lack sqs:DeleteMessage; the
# fault proxy answers every delete 403 AccessDenied; or the queue is gone). A worker stops
# receiving and tries the refused delete again after a backoff, logging each
# step once and showing the missing permission in sqs_ingest.stats: its
# receives are bounded, the messages do not cycle. A drain stops at the
# first refusal and ends with an error saying what it stored and did not
# delete. Once deletes are allowed again, everything is deleted, nothing is
# stored twice.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $N = 300;

my $emu   = start_emulator();
my $url   = create_queue('deletes-refused');
my $proxy = start_proxy($emu);

### a worker

my $node = worker_node(
	'refused',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'           => $proxy->endpoint,
		'sqs_ingest.max_inflight'       => 4,
		'sqs_ingest.wait_time_seconds'  => 1,
		'sqs_ingest.visibility_timeout' => 5,
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

$proxy->set_fault({ deleteFailure => 'denied' });
my $offset = log_offset($node);
is(send_generated($url, $N, 809), $N, "$N events sent; every delete refused");
ok($node->poll_query_until('postgres',
		q{SELECT inserted > 0 AND last_error LIKE 'SQS refused%'
		  FROM sqs_ingest.stats WHERE kind = 'worker' AND worker = 0}),
	'stored, and the deletes refused');

# the messages come back every 5 s: a worker that kept receiving would take
# them again and again (and poll 4 receives a second besides)
$proxy->reset_stats;
sleep 30;
my $stats    = $proxy->stats;
my $receives = ($stats->{ReceiveMessage}{forwarded} // 0) + ($stats->{ReceiveMessage}{failed} // 0);
my $deletes  = $stats->{DeleteMessageBatch}{failed} // 0;
cmp_ok($receives, '<=', 4, "$receives receives in 30 s: receiving stopped while deletes are refused");
cmp_ok($deletes, '>=', 1, "the refused delete is tried again ($deletes calls in 30 s)");
cmp_ok($deletes, '<=', 8, 'after a backoff, one call at a time');
is(worker_stat($node, 'state'), 'backing off', 'stats: backing off');
like(worker_stat($node, 'last_error'),
	qr/^SQS refused to delete stored messages\. Grant the credentials sqs:DeleteMessage on the queue\. SQS said: User: .* not authorized/,
	'stats: last_error names the missing permission');
my $log     = log_since($node, $offset);
my $refusal = count_lines($log, qr/LOG:  SQS refused to delete stored messages/);
cmp_ok($refusal, '>=', 1, "the refusal is logged ($refusal times)");
cmp_ok($refusal, '<=', 10, 'once per backoff step, not per message');
like($log, qr/HINT:  Grant the credentials sqs:DeleteMessage on the queue\./, 'the log names the permission');

$proxy->clear_faults;
ok($node->poll_query_until('postgres',
		q{SELECT inserted FROM sqs_ingest.stats WHERE kind = 'worker' AND worker = 0}, $N),
	'once deletes are allowed, receiving resumes and everything is stored');
ok(wait_for_depth($url, 0, 0, 0), 'and deleted');
like(log_since($node, $offset), qr/SQS accepts deletes again after \d+ refusals: receiving resumes/,
	'the recovery is logged');
is(send_generated($url, 10, 8091), 10, 'ten more events sent');
ok($node->poll_query_until('postgres',
		q{SELECT inserted FROM sqs_ingest.stats WHERE kind = 'worker' AND worker = 0}, $N + 10),
	'receiving resumed');
is(sql('SELECT count(*), count(DISTINCT user_id) FROM user_logins'), ($N + 10) . '|' . ($N + 10),
	'each event stored once');
is(worker_stat($node, 'state'), 'polling', 'stats: polling again');

### a drain

# more than a drain receives before its first deletes are answered
my $ND    = 1000;
my $url_d = create_queue('drain-refused');
is(send_generated($url_d, $ND, 8092), $ND, "drain: $ND events sent");
$proxy->set_fault({ deleteFailure => 'denied' });
$proxy->reset_stats;
my ($ret, $out, $err) = $node->psql('postgres',
	"SET sqs_ingest.queue_url = '$url_d'; SELECT * FROM sqs_ingest_drain();");
my $before = $N + 10;
my $stored = sql('SELECT count(*) FROM user_logins') - $before;
isnt($ret, 0, 'drain: the drain fails');
like($err, qr/ERROR:  could not delete $stored stored messages? from SQS/,
	"drain: the error counts the $stored messages stored and not deleted");
like($err, qr/DETAIL:  The drain stopped receiving after SQS DeleteMessageBatch failed: .*not authorized.* It stored and committed $stored messages?; those not deleted come back after the visibility timeout, to be skipped as duplicates and deleted then\./,
	'drain: the detail says what was stored and what becomes of it');
like($err, qr/HINT:  Grant the credentials sqs:DeleteMessage on the queue\./, 'drain: the hint names the permission');
cmp_ok($stored, '>', 0, "drain: $stored stored");
cmp_ok($stored, '<', $ND, 'drain: it stopped receiving at the refusal');
cmp_ok($proxy->stats->{DeleteMessageBatch}{failed}, '<=', 32, 'drain: no delete sent after the refusal came');

$proxy->clear_faults;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
my $dups     = 0;
while (time() < $deadline)
{
	my $r = drain($node, undef, "SET sqs_ingest.queue_url = '$url_d';\n");
	$dups += $r->{duplicates};
	last if sql('SELECT count(*) FROM user_logins') == $before + $ND && !grep { $_ } queue_depth($url_d);
	sleep 1;
}
is(sql('SELECT count(*), count(DISTINCT user_id) FROM user_logins'), ($before + $ND) . '|' . ($before + $ND),
	'drain: later drains store the rest, each event once');
is($dups, $stored, 'drain: the messages not deleted came back as duplicates');
is_deeply([ queue_depth($url_d) ], [ 0, 0, 0 ], 'drain: queue empty');

# the queue deleted under a drain: the same end, saying what to check
is(send_generated($url_d, 50, 8093), 50, 'queue gone: 50 events sent');
$proxy->set_fault({ deleteFailure => 'gone' });
($ret, $out, $err) = $node->psql('postgres',
	"SET sqs_ingest.queue_url = '$url_d'; SELECT * FROM sqs_ingest_drain();");
$proxy->clear_faults;
like($err, qr/ERROR:  could not delete 50 stored messages from SQS/, 'queue gone: the drain fails, counting what it stored');
like($err, qr/DETAIL:  The drain stopped receiving after SQS DeleteMessageBatch failed: The specified queue does not exist\./,
	'queue gone: saying why');
like($err, qr/HINT:  Check sqs_ingest.queue_url/, 'queue gone: and what to check');

$node->stop;
done_testing();
