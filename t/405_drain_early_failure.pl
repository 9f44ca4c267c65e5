# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A drain hands its caller's settings, secrets among them, to its worker
# through a shared memory segment.  A drain that fails before its worker has
# read them (no free background worker slot; a call cancelled at once)
# leaves the session and the cluster healthy, and a drain worker runs with
# its caller's settings or not at all: never with the server's instead.
#
# The wipe of the settings in the segment is not visible from SQL; what is
# checked here is every path around it.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu = start_emulator();

# the server's queue, which no drain here may touch, and the sessions' queue
my $server_url  = create_queue('early-server');
my $session_url = create_queue('early-session');
is(send_generated($server_url, 5, 4051), 5, '5 events in the server\'s queue');

my $node = new_node('drainearly',
	shared_preload => 1,
	conf => "sqs_ingest.workers = 0\nmax_worker_processes = 0\n",
	queue_url => $server_url);

sub in_sqs
{
	my ($v, $nv) = queue_depth($_[0]);
	return $v + $nv;
}

my $session_sql = "SET sqs_ingest.queue_url = '$session_url'; ";

### no free background worker slot

for my $attempt (1 .. 3)
{
	my ($ret, $out, $err) = $node->psql('postgres',
		$session_sql . 'SELECT * FROM sqs_ingest_drain();');
	isnt($ret, 0, "no worker slot ($attempt): the drain fails");
	like($err, qr/could not start a background worker for sqs_ingest_drain\(\)/,
		"no worker slot ($attempt): saying why");
}
my ($ret, $out, $err) = $node->psql('postgres',
	"BEGIN; ${session_sql}SAVEPOINT s; SELECT * FROM sqs_ingest_drain(); "
	  . "ROLLBACK TO s; SELECT 41 + 1; COMMIT;",
	on_error_stop => 0);
is($out, '42', 'the session goes on after a drain that found no worker slot');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.user_logins'),
	'0', 'nothing stored');
unlike(slurp_file($node->logfile),
	qr/leak|TRAP|PANIC|terminated by signal/,
	'no leaked segment, no crash in the log');

### with worker slots: drains cancelled before or while their worker starts

$node->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$node->restart;

my $cancelled = 0;
for my $ms (1 .. 30)
{
	($ret, $out, $err) = $node->psql('postgres',
		"${session_sql}SET statement_timeout = '${ms}ms'; "
		  . 'SELECT * FROM sqs_ingest_drain();');
	$cancelled++ if $ret != 0;
	like($err // '', qr/^$|statement timeout|after its caller had gone/,
		"cancelled after ${ms} ms: done or cancelled, nothing else");
}
note("$cancelled of 30 drains cancelled");

# every drain worker of the calls above ends
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'sqs_ingest drain'"),
	'no drain worker is left');
is(in_sqs($server_url), 5,
	'no drain worker ran on the server\'s settings: its queue is untouched');

### and the cluster drains as before

is(send_generated($session_url, 5, 4052), 5, '5 events in the session\'s queue');
my $r = drain($node, undef, $session_sql);
is($r->{inserted}, 5, 'a drain afterwards stores the session queue\'s events');
is(in_sqs($session_url), 0, 'the session\'s queue is empty');
is(in_sqs($server_url),  5, 'the server\'s queue still holds its events');
no_crash($node, 0, 'all along');

done_testing();
