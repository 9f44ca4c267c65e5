
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The background worker drains the queue continuously: messages sent while
# it runs are stored without anyone asking, its counters agree with what was
# sent, it shows in pg_stat_activity, and its statistics are open to
# pg_monitor only.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(time);

my $emu  = start_emulator();
my $url  = create_queue('worker-queue');
my $node = worker_node('worker', queue_url => $url);

sub sql { return $node->safe_psql('postgres', $_[0]); }

### the worker process

is( sql(q{
SELECT backend_type || '|' || application_name || '|' || datname
FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'sqs_ingest worker|sqs_ingest worker 0|postgres',
	'pg_stat_activity: one worker, its backend_type, application_name and database');

my $pid = worker_pid($node, 0);
like($pid, qr/^\d+$/, 'worker has a pid');
is(sql('SELECT count(*) FROM sqs_ingest.stats'), '1', 'stats: one row');
is( sql(q{SELECT kind || '|' || worker || '|' || pid || '|' || state || '|'
  || received || '|' || inserted || '|' || deleted || '|' || (started_at IS NOT NULL)
FROM sqs_ingest.stats}),
	"worker|0|$pid|polling|0|0|0|true",
	'stats: worker 0, same pid, polling, nothing received yet');

# a long poll waits on the network through a wait event of the extension
ok( $node->poll_query_until(
		'postgres', qq{
SELECT wait_event_type = 'Extension' AND state = 'idle' AND xact_start IS NULL
FROM pg_stat_activity WHERE pid = $pid}),
	'while long-polling the worker waits as Extension, with no transaction open');

### messages sent after the start arrive by themselves

my $N1      = 500;
my $events1 = generate_events($N1, 101);
my %uniq    = map { $_->{user_id} => 1 } @$events1;
is(scalar keys %uniq, $N1, 'generated user ids are distinct');

my $t0 = time();
is(send_generated($url, $N1, 101), $N1, "$N1 events sent");
my $t_sent = time();
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $N1),
	"all $N1 rows stored by the worker");
my $elapsed = time() - $t_sent;
note(sprintf('sending took %.1f s, storing finished %.1f s later', $t_sent - $t0, $elapsed));
cmp_ok($elapsed, '<', 15,
	'rows appear within seconds of sending, not after a long-poll period');

is(rows_mismatch($node, $events1), 0, 'rows equal the events, masks and versions included');
is(rows_digest($node), user_ids_digest($events1), 'each event stored exactly once');
ok(wait_for_depth($url, 0, 0, 0), 'queue ends empty');

ok( $node->poll_query_until(
		'postgres', q{SELECT deleted FROM sqs_ingest.stats WHERE worker = 0}, $N1),
	'stats: every message deleted');
is( sql(q{SELECT received || '|' || inserted || '|' || duplicates || '|' || dead_lettered
  || '|' || deleted || '|' || delete_failures || '|' || sqs_errors || '|' || retries
FROM sqs_ingest.stats WHERE worker = 0}),
	"$N1|$N1|0|0|$N1|0|0|0",
	'stats: received, inserted, deleted match what was sent; no errors');
is(sql('SELECT last_batch_at IS NOT NULL AND last_error IS NULL FROM sqs_ingest.stats'),
	't', 'stats: last_batch_at set, no last_error');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), $N1, 'ledger holds every message id');

### a second wave, with a malformed body, still without any call

my $events2 = generate_events(200, 102);
my $file = events_file($events2, 'wave2');
open(my $fh, '>>', $file) or die "could not append to $file: $!";
print $fh "{\"user_id\": \"not closed\"\n";
close($fh);
is(send_lines($url, $file), 201, '201 more messages sent, one of them malformed');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT (SELECT count(*) FROM user_logins) = 700
		     AND (SELECT count(*) FROM sqs_ingest.dead_letters) = 1}),
	'the worker stores the second wave and dead-letters the malformed body');
is(rows_mismatch($node, $events2), 0, 'second wave rows equal the events');
ok( $node->poll_query_until(
		'postgres', q{
SELECT received = 701 AND inserted = 700 AND dead_lettered = 1 AND deleted = 701
FROM sqs_ingest.stats WHERE worker = 0}),
	'stats: 701 received, 700 inserted, 1 dead-lettered, 701 deleted');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty again');
is(worker_pid($node, 0), $pid, 'the same worker process did all of it');

### sqs_ingest_queue_depth() from SQL

is(sql('SELECT visible || ' . q{'|'} . ' || not_visible || ' . q{'|'} . ' || delayed FROM sqs_ingest_queue_depth()'),
	'0|0|0', 'queue depth of the worker queue: empty');
my $other = create_queue('other-queue');
is(send_generated($other, 7, 103), 7, '7 events sent to another queue');
is( sql(qq{SET sqs_ingest.queue_url = '$other';
SELECT visible || '|' || not_visible || '|' || delayed FROM sqs_ingest_queue_depth()}),
	'7|0|0', 'queue depth of another queue: 7 visible');
is_deeply([ queue_depth($other) ], [ 7, 0, 0 ], 'the worker left the other queue alone');

### who may watch

sql(q{
CREATE ROLE plain LOGIN;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
});

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM sqs_ingest.stats',
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a role without grants cannot read sqs_ingest.stats');
like($err, qr/permission denied/, '... permission denied');
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM sqs_ingest_stats()',
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a role without grants cannot call sqs_ingest_stats()');
like($err, qr/permission denied/, '... permission denied');
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM sqs_ingest_queue_depth()',
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a role without grants cannot call sqs_ingest_queue_depth()');

($ret, $out, $err) = $node->psql('postgres',
	q{SELECT worker || '|' || pid || '|' || inserted FROM sqs_ingest.stats},
	extra_params => [ '-U', 'watcher' ]);
is($ret, 0, 'a member of pg_monitor reads sqs_ingest.stats');
is($out, "0|$pid|700", '... and sees the worker and its counters');
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM sqs_ingest_stats()',
	extra_params => [ '-U', 'watcher' ]);
is($out, '1', 'a member of pg_monitor calls sqs_ingest_stats()');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT visible || '|' || not_visible FROM sqs_ingest_queue_depth()},
	extra_params => [ '-U', 'watcher' ]);
is($out, '0|0', 'a member of pg_monitor calls sqs_ingest_queue_depth()');
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM sqs_ingest.processed',
	extra_params => [ '-U', 'watcher' ]);
isnt($ret, 0, 'pg_monitor does not read the ledger');
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM sqs_ingest_drain(0)',
	extra_params => [ '-U', 'watcher' ]);
isnt($ret, 0, 'pg_monitor cannot drain');

$node->stop;
done_testing();
