
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Integrity of what is received and of what a drain's transaction keeps:
# a body garbled in transit (it no longer matches the MD5OfBody SQS
# computed) is no row but a dead letter naming the mismatch, deleted like
# any (left in SQS, it would come back garbled forever); what a drain
# stores is committed by the drain itself, so savepoints, rollbacks and
# prepared transactions of the caller neither lose nor double it.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $VT = 2;

my $emu   = start_emulator();
my $proxy = start_proxy($emu);
my $node  = new_node('integrity',
	conf     => "max_prepared_transactions = 2\n",
	settings => { 'sqs_ingest.visibility_timeout' => $VT });

sub in_sqs
{
	my ($v, $nv) = queue_depth($_[0]);
	return $v + $nv;
}

### a garbled body is a dead letter

my $url = create_queue('garbled');
set_gucs($node,
	{ 'sqs_ingest.queue_url' => $url, 'sqs_ingest.endpoint' => $proxy->endpoint });
is(send_generated($url, 20, 501), 20, '20 events sent');

$proxy->set_fault({ corruptBodies => 3 });
$proxy->reset_stats;
my $r = drain($node);
is($proxy->stats->{ReceiveMessage}{corrupted}, 3, 'the proxy garbled 3 bodies');
is($r->{received},      20, 'all 20 taken');
is($r->{inserted},      17, '17 stored');
is($r->{dead_lettered}, 3,  'the 3 garbled bodies are dead letters');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM sqs_ingest.dead_letters WHERE error LIKE 'body does not match its MD5OfBody %'}),
	'3', 'each naming the mismatch');
is(in_sqs($url), 0, 'and deleted from SQS');
$proxy->clear_faults;

### savepoints and PREPARE: a drain's batches are committed by the drain

my $url_s = create_queue('savepoints');
set_gucs($node, { 'sqs_ingest.queue_url' => $url_s, 'sqs_ingest.endpoint' => undef });
is(send_generated($url_s, 10, 502), 10, '10 events sent');

my $out = $node->safe_psql(
	'postgres', q{
BEGIN;
SAVEPOINT before_drain;
SELECT received FROM sqs_ingest_drain(4);
ROLLBACK TO SAVEPOINT before_drain;
SELECT received FROM sqs_ingest_drain(6);
ROLLBACK;});
is($out, "4\n6", 'two drains in one transaction received 4 and 6');
is(in_sqs($url_s), 0, 'all 10 deleted from SQS');
is($node->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'27|27', 'kept through the rollbacks, each once');
$r = drain($node);
is($r->{received}, 0, 'nothing comes back');

is(send_generated($url_s, 2, 503), 2, '2 more events sent');
$out = $node->safe_psql(
	'postgres', q{
BEGIN;
SELECT received FROM sqs_ingest_drain();
PREPARE TRANSACTION 'drained';
ROLLBACK PREPARED 'drained';});
is($out, '2', 'a drain in a transaction that is prepared');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'29', 'its rows stay after ROLLBACK PREPARED');
is(in_sqs($url_s), 0, 'and they are deleted from SQS');

done_testing();
