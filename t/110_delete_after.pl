
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# sqs_ingest.delete_after: with standby_flush, a stored batch's messages
# stay in SQS until the standby has flushed the commit that stored them, so
# that a failover to it loses nothing; with local_flush (the default) they
# are deleted once the commit is on the primary's disk, standby or not.
# The standby's WAL receiver is paused (SIGSTOP: connected, flushing
# nothing) or the standby is stopped while the worker stores a batch; with
# synchronous_standby_names set, the synchronous standby is the one waited for.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu     = start_emulator();
my $url     = create_queue('delete-after-queue');
my $primary = worker_node('primary', workers => 1, queue_url => $url,
	conf => "wal_level = replica\nmax_wal_senders = 4\nwal_sender_timeout = 0\n");
$primary->restart;
wait_for_workers($primary, 1);
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# the standby's WAL receiver, paused and resumed by signals
my $receiver;
sub pause_receiver
{
	$receiver = $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
	die 'no WAL receiver on the standby' unless $receiver;
	kill 'STOP', $receiver;
	return;
}
sub resume_receiver
{
	kill 'CONT', $receiver if $receiver;
	$receiver = undef;
	return;
}
END { resume_receiver(); }

sub rows { return $primary->safe_psql('postgres', 'SELECT count(*) FROM user_logins'); }

sub stored
{
	my ($n, $what) = @_;
	ok($primary->poll_query_until('postgres', "SELECT count(*) = $n FROM user_logins"),
		"$what: the worker stores the batch ($n rows)");
	return;
}

# The messages stored but not deleted: in flight, and still so a while
# later (a delete follows a local flush within milliseconds).
sub still_in_sqs
{
	my ($n, $what) = @_;
	my @depth = queue_depth($url);
	sleep 3;
	my @later = queue_depth($url);
	is("@depth | @later", "0 $n 0 | 0 $n 0",
		"$what: the $n messages stay in SQS, in flight");
	return;
}

# 1. local_flush, the default: deletes do not wait for the standby.
is($primary->safe_psql('postgres', 'SHOW sqs_ingest.delete_after'),
	'local_flush', 'local_flush is the default');
pause_receiver();
is(send_generated($url, 20, 1101), 20, '20 events sent');
stored(20, 'local_flush, standby paused');
ok(wait_for_depth($url, 0, 0, 0),
	'local_flush: deleted from SQS while the standby has not flushed them');
resume_receiver();
$primary->wait_for_catchup($standby);

# 2. standby_flush (a reload): a standby that keeps up lets deletes go.
my $offset = log_offset($primary);
set_gucs($primary, { 'sqs_ingest.delete_after' => 'standby_flush' });
sleep 1;    # the worker applies the reload at its next wake-up
is(send_generated($url, 10, 1102), 10, '10 events sent');
stored(30, 'standby_flush, standby streaming');
ok(wait_for_depth($url, 0, 0, 0), 'standby_flush: deleted once the standby has them');

# 3. standby_flush, WAL receiver paused: the messages stay in SQS until it
# has flushed the commit.
pause_receiver();
is(send_generated($url, 20, 1103), 20, '20 events sent');
stored(50, 'standby_flush, standby paused');
still_in_sqs(20, 'standby_flush, standby paused');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'30', 'the paused standby does not have the batch');
resume_receiver();
ok(wait_for_depth($url, 0, 0, 0), 'deleted once the standby catches up');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'50', 'the standby has every row');

# 4. standby_flush, no standby streaming at all: deletes wait, and say why.
$standby->stop;
is(send_generated($url, 20, 1104), 20, '20 events sent');
stored(70, 'standby_flush, standby stopped');
still_in_sqs(20, 'standby_flush, standby stopped');
like(log_since($primary, $offset),
	qr/WARNING:  sqs_ingest waits for a standby before deleting stored messages from SQS/,
	'the worker warns that deletes wait for a standby');
$standby->start;
ok(wait_for_depth($url, 0, 0, 0), 'deleted once the standby is back');
like(log_since($primary, $offset),
	qr/sqs_ingest deletes stored messages from SQS again: a standby is streaming/,
	'and says so');

# Nothing doubled, nothing lost.
is($primary->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'70|70', 'each event stored once');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.processed'),
	'70', 'the ledger has each message once');
is(worker_stat($primary, 'duplicates'), '0', 'no message came back');

# 5. A drain honours it too, and waits for the standby at most a visibility
# timeout: then it ends, and the messages come back from SQS.
$primary->wait_for_catchup($standby);
my $drain_url = create_queue('delete-after-drain');
is(send_generated($drain_url, 5, 1105), 5, '5 events sent to a second queue');
pause_receiver();
$offset = log_offset($primary);
my $start = time();
my $r = drain($primary, undef,
	"SET sqs_ingest.queue_url = '$drain_url'; SET sqs_ingest.visibility_timeout = 3;\n");
my $took = time() - $start;
is("$r->{received} $r->{inserted}", '5 5', 'the drain stores the 5 messages');
ok($took >= 3 && $took < 30, "it waited a visibility timeout for the standby ($took s)");
my @depth = queue_depth($drain_url);
is($depth[0] + $depth[1], 5, 'the messages were not deleted from SQS');
like(log_since($primary, $offset),
	qr/WARNING:  5 stored messages were not deleted from SQS: no standby flushed their commit/,
	'the drain says why');
resume_receiver();
ok(wait_for_depth($drain_url, 5, 0, 0), 'SQS delivers them again');
$r = drain($primary, undef, "SET sqs_ingest.queue_url = '$drain_url';\n");
is("$r->{received} $r->{duplicates}", '5 5', 'a second drain skips them as duplicates');
ok(wait_for_depth($drain_url, 0, 0, 0), 'and deletes them');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'75', 'each stored once');

# 6. With synchronous_standby_names set, the synchronous standbys are the
# ones that count, whatever synchronous_commit the workers use (local here,
# so that commits do not wait): while it names a standby that is not
# connected, deletes wait although another standby streams.
set_gucs($primary,
	{ synchronous_standby_names => 'elsewhere', synchronous_commit => 'local' });
sleep 1;
is(send_generated($url, 10, 1106), 10, '10 events sent');
stored(85, 'synchronous standby absent');
still_in_sqs(10, 'synchronous standby absent, another one streaming');
set_gucs($primary, { synchronous_standby_names => 'standby' });
# WAL for the standby to confirm as a synchronous one
$primary->safe_psql('postgres', 'CREATE TABLE nudge (); DROP TABLE nudge;');
ok(wait_for_depth($url, 0, 0, 0), 'deleted once the synchronous standby has them');
is($primary->safe_psql('postgres', 'SELECT count(*), count(DISTINCT user_id) FROM user_logins'),
	'85|85', 'each stored once');

# 7. A worker waiting for the standby still stops at once when terminated.
pause_receiver();
is(send_generated($url, 5, 1107), 5, '5 events sent');
stored(90, 'synchronous standby paused');
still_in_sqs(5, 'synchronous standby paused');
my $pid = worker_pid($primary, 0);
my $t0 = time();
$primary->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($primary->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the worker waiting for the standby exits when terminated');
ok(time() - $t0 < 5, 'at once');
resume_receiver();

done_testing();
