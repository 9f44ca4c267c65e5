
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# sqs_ingest.role: the workers connect as a role that is not a superuser,
# with only the grants docs/security.md lists, and store rows; row-level security
# on the target applies to that role like to any writer (the table owner
# bypasses it unless FORCE ROW LEVEL SECURITY); a drain needs INSERT on the
# target; changing the role restarts the workers as the new role.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('role-worker');
my $url2 = create_queue('role-drain');
my $node = worker_node(
	'role',
	queue_url => $url,
	workers   => 0,
	settings  => {
		'sqs_ingest.role'           => 'ingest_worker',
		'sqs_ingest.retry_interval' => 2
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the grants docs/security.md lists
sql(q{
CREATE ROLE ingest_worker LOGIN;
GRANT USAGE ON SCHEMA sqs_ingest TO ingest_worker;
GRANT SELECT, INSERT, DELETE ON sqs_ingest.processed TO ingest_worker;
GRANT SELECT (message_id), INSERT ON sqs_ingest.dead_letters TO ingest_worker;
GRANT INSERT ON public.user_logins TO ingest_worker;
});
$node->append_conf('postgresql.conf', "sqs_ingest.workers = 1\n");
$node->restart;
wait_for_workers($node, 1);

is(sql(q{SELECT usename || '|' || (SELECT rolsuper FROM pg_roles WHERE rolname = usename)
	FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'}),
	'ingest_worker|false', 'the worker is connected as ingest_worker, not a superuser');

my $events = generate_events(20, 211);
is(send_events($url, $events), 20, '20 events sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 20),
	'the worker stored them with the documented grants only');
is(rows_mismatch($node, $events), 0, 'rows as expected');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');

### row-level security applies to the worker's role

sql(q{
ALTER TABLE user_logins ENABLE ROW LEVEL SECURITY;
CREATE POLICY not_blocked ON user_logins FOR INSERT TO ingest_worker
  WITH CHECK (device_type IS DISTINCT FROM 'blocked');
});
my $allowed = generate_events(3, 212);
is(send_events($url, $allowed), 3, '3 events the policy allows sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 23),
	'rows the policy allows are stored');

my $blocked = { %{ generate_events(1, 213)->[0] }, device_type => 'blocked' };
my $more = generate_events(2, 215);
is(send_events($url, [ $blocked, @$more ]), 3,
	'an event the policy rejects sent with two it allows');
ok( $node->poll_query_until(
		'postgres', q{
SELECT EXISTS (SELECT 1 FROM sqs_ingest.dead_letters
               WHERE error LIKE '%row-level security policy for table "user_logins"%')}),
	'the row the policy rejects is a dead letter naming the policy');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 25),
	'the rows of its batch the policy allows are stored');
is(sql(q{SELECT count(*) FROM user_logins WHERE device_type = 'blocked'}), '0',
	'the row the policy rejects was not stored');
ok(wait_for_depth($url, 0, 0, 0), 'nothing is left waiting in the queue');

sql(q{DROP POLICY not_blocked ON user_logins;
CREATE POLICY everything ON user_logins FOR INSERT TO ingest_worker WITH CHECK (true);});

### a drain needs INSERT on the target, and inserts as the role

sql('CREATE ROLE drainer; GRANT EXECUTE ON FUNCTION sqs_ingest_drain(bigint) TO drainer;');
is(send_generated($url2, 2, 214), 2, '2 events sent to the drain queue');
my ($ret, $out, $err) = $node->psql('postgres',
	"SET sqs_ingest.queue_url = '$url2'; SET ROLE drainer; SELECT * FROM sqs_ingest_drain()");
like($err, qr/permission denied for table user_logins/,
	'a caller without INSERT on the target is refused before anything is received');
my ($visible) = queue_depth($url2);
is($visible, 2, 'nothing was received by the refused drain');

sql(q{DROP POLICY everything ON user_logins;
CREATE POLICY not_blocked ON user_logins FOR INSERT TO ingest_worker
  WITH CHECK (device_type IS DISTINCT FROM 'blocked');});
send_events($url2, [ { %$blocked, user_id => 'blocked-by-drain' } ]);
($ret, $out, $err) = $node->psql('postgres',
	"SET sqs_ingest.queue_url = '$url2'; SELECT dead_lettered FROM sqs_ingest_drain()");
is($out, '1',
	'a superuser\'s drain inserts as sqs_ingest.role: the policy applies to it too');
is(sql(q{SELECT count(*) FROM user_logins WHERE user_id = 'blocked-by-drain'}), '0',
	'the row the policy rejects was not stored by the drain');

### a new role restarts the worker as that role

sql('CREATE ROLE ingest_other LOGIN IN ROLE ingest_worker');
my $offset = log_offset($node);
set_gucs($node, { 'sqs_ingest.role' => 'ingest_other' });
ok( $node->poll_query_until(
		'postgres', q{
SELECT usename FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'},
		'ingest_other'),
	'after a reload the worker runs as the new role');
like(log_since($node, $offset), qr/restarts because sqs_ingest.role changed/,
	'the restart is logged');

done_testing();
