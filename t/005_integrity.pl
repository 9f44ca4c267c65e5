
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Integrity of what is received and of what a drain's transaction keeps:
# a body garbled in transit (it no longer matches the MD5OfBody SQS
# computed) is neither stored nor deleted, and comes back intact; a drain
# inside a savepoint that is rolled back deletes nothing, while the rest of
# the transaction's drains are deleted at commit.

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

### a garbled body is left in SQS, then stored intact

my $url = create_queue('garbled');
set_gucs($node,
	{ 'sqs_ingest.queue_url' => $url, 'sqs_ingest.endpoint' => $proxy->endpoint });
is(send_generated($url, 20, 501), 20, '20 events sent');

$proxy->set_fault({ corruptBodies => 3 });
$proxy->reset_stats;
my $r = drain($node);
is($proxy->stats->{ReceiveMessage}{corrupted}, 3, 'the proxy garbled 3 bodies');
is($r->{received},      17, 'the 3 garbled messages were not taken');
is($r->{inserted},      17, '17 stored');
is($r->{dead_lettered}, 0,  'a garbled body is not a dead letter');
is(in_sqs($url),        3,  'the 3 garbled messages are still in SQS');

$proxy->clear_faults;
ok(wait_for_depth($url, 3, 0, 0), 'they are visible again after the visibility timeout');
$r = drain($node);
is($r->{inserted}, 3, 'delivered again intact, they are stored');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT user_id) FROM user_logins'),
	'20', 'every event stored exactly once');
is(in_sqs($url), 0, 'queue empty');

### savepoints: a rolled-back drain deletes nothing, a kept one is deleted

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
COMMIT;});
is($out, "4\n6", 'two drains in one transaction received 4 and 6');
my ($visible, $inflight) = queue_depth($url_s);
is($visible + $inflight, 4, 'the 4 messages of the rolled-back drain are still in SQS');
ok(wait_for_depth($url_s, 4, 0, 0), 'and visible again after the visibility timeout');
$r = drain($node);
is($r->{inserted},   4, 'stored by the next drain');
is($r->{duplicates}, 0, 'none of them a duplicate');
is(in_sqs($url_s),   0, 'queue empty');

### PREPARE TRANSACTION cannot carry a drain's deletes

is(send_generated($url_s, 2, 503), 2, '2 more events sent');
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
BEGIN;
SELECT received FROM sqs_ingest_drain();
PREPARE TRANSACTION 'drained';},
	on_error_stop => 1);
like($stderr, qr/cannot prepare a transaction that has run sqs_ingest_drain/,
	'PREPARE TRANSACTION after a drain is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
	'0', 'nothing prepared');
is(in_sqs($url_s), 2, 'and nothing deleted');

done_testing();
