
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Pipelines a DBA can grant.  A role granted only the pipeline functions
# (and INSERT on its tables) defines pipelines on the queues a superuser
# granted it, and on nothing else: not the settings' login queue under any
# spelling of its URL, not another pipeline's queue, not an ungranted one,
# neither at create nor by altering its pipeline.  It masks only with
# EXECUTE on sqs_ingest_mask.  Revoking a queue, revoking the mask, setting
# sqs_ingest.queue_url to a pipeline's queue or dropping the owner stops the
# pipeline's workers (saying why in the log), and what is sent meanwhile
# stays in the queue until the pipeline may run again.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu = start_emulator();
my $login_url  = create_queue('login-queue');
my $other_url  = create_queue('other', visibility_timeout => 2);
my $mine_url   = create_queue('mine', visibility_timeout => 2);
my $masked_url = create_queue('masked', visibility_timeout => 2);
my $closed_url = create_queue('closed');
my $doomed_url = create_queue('doomed', visibility_timeout => 2);

my $node = worker_node('grants', queue_url => $login_url, workers => 1,
	settings => { 'sqs_ingest.retry_interval' => 1, 'sqs_ingest.endpoint' => $emu->endpoint });
my $endpoint = $emu->endpoint;

$node->safe_psql(
	'postgres', qq{
CREATE TABLE other_events (id int, note text);
CREATE TABLE tenant_events (id int, note text);
CREATE TABLE tenant_masked (id int, m text);
CREATE ROLE tenant LOGIN;
GRANT USAGE ON SCHEMA sqs_ingest TO tenant;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb) TO tenant;
GRANT INSERT ON tenant_events, tenant_masked, user_logins, other_events TO tenant;
SELECT sqs_ingest_create_pipeline('theirs', '$other_url', 'other_events', NULL,
                                  '{"wait_time_seconds": 1}');
});

# what the tenant tries, as the tenant; returns stderr ('' on success)
sub as_tenant
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', 'tenant' ]);
	return $ret == 0 ? '' : $err;
}

sub create_as_tenant
{
	my ($name, $url, $table, $mapping, $options) = @_;
	$mapping = defined $mapping ? "'$mapping'" : 'NULL';
	$options //= '{"wait_time_seconds": 1}';
	return as_tenant(
		"SELECT sqs_ingest_create_pipeline('$name', '$url', '$table', $mapping, '$options')");
}

# the same queue, spelled otherwise: [url, options]
sub spellings
{
	my ($url) = @_;
	my ($origin, $path) = $url =~ m{^(https?://[^/]+)(/.*)$} or die "odd URL $url";
	my ($account, $name) = $path =~ m{^/([^/]+)/([^/]+)$} or die "odd path $path";
	my $via = qq{{"endpoint": "$endpoint", "wait_time_seconds": 1}};
	return (
		[ $url,                                         undef ],
		[ "$url/",                                      undef ],
		[ "$origin//$account//$name",                   undef ],
		[ "$origin/./$account/./$name",                 undef ],
		[ "$url?Action=ReceiveMessage",                 undef ],
		[ "$url#latest",                                undef ],
		[ "http://LocalHost:80/$account/$name",         $via ],
		[ "https://SQS.US-EAST-1.AMAZONAWS.COM:443/$account/$name", $via ],
		[ "$origin/$account/x/../$name",                undef ]);
}

# --- the settings' queue, under every spelling, granted or not --------------------

$node->safe_psql('postgres', "SELECT sqs_ingest_grant_queue('$login_url', 'tenant')");
for my $s (spellings($login_url))
{
	like(create_as_tenant('grab', $s->[0], 'tenant_events', undef, $s->[1]),
		qr/queue 000000000000\/login-queue is the queue sqs_ingest\.queue_url names/,
		"the settings' queue as $s->[0] is refused");
}
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT sqs_ingest_create_pipeline('grab', '$login_url/', 'user_logins', sqs_ingest_fetch_login_mapping())");
like($err, qr/is the queue sqs_ingest\.queue_url names/, "a superuser is refused the settings' queue too");

# --- another pipeline's queue, an ungranted queue ---------------------------------

$node->safe_psql('postgres', "SELECT sqs_ingest_grant_queue('$other_url', 'tenant')");
for my $s (spellings($other_url))
{
	like(create_as_tenant('grab', $s->[0], 'tenant_events', undef, $s->[1]),
		qr/queue 000000000000\/other is already read by another pipeline/,
		"another pipeline's queue as $s->[0] is refused");
}
like(create_as_tenant('grab', $closed_url, 'tenant_events'),
	qr/permission denied for queue 000000000000\/closed/, 'an ungranted queue is refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM sqs_ingest.pipelines WHERE name = 'grab'"),
	'0', 'no pipeline was created');

# --- its own queue; altering it onto a foreign one --------------------------------

$node->safe_psql('postgres', "SELECT sqs_ingest_grant_queue('$mine_url/', 'tenant')");
is(create_as_tenant('mine', "$mine_url?x=1", 'tenant_events'), '',
	'a queue granted under one spelling is used under another');
is(send_events($mine_url, [ map { { id => $_, note => "n$_" } } 1 .. 10 ]), 10, 'sent to mine');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 10 FROM tenant_events'),
	'mine: its worker stores the messages');

for my $foreign ([ "$closed_url", qr/permission denied for queue 000000000000\/closed/ ],
	[ "$login_url/", qr/is the queue sqs_ingest\.queue_url names/ ],
	[ "$other_url?a=b", qr/already read by another pipeline/ ])
{
	like(as_tenant("SELECT sqs_ingest_alter_pipeline('mine', queue_url => '$foreign->[0]')"),
		$foreign->[1], "mine: altering it onto $foreign->[0] is refused");
}
is($node->safe_psql('postgres', "SELECT queue_url FROM sqs_ingest.pipelines WHERE name = 'mine'"),
	"$mine_url?x=1", 'mine: its queue is unchanged');

# --- revoking the queue stops its worker; granting it again restarts it ------------

my $offset = log_offset($node);
$node->safe_psql('postgres', "SELECT sqs_ingest_revoke_queue('$mine_url', 'tenant')");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 'mine'}),
	'mine: revoked, its worker stops');
ok($node->wait_for_log(qr/permission denied for queue 000000000000\/mine/, $offset),
	'the launcher says why it does not run the pipeline');
is(send_events($mine_url, [ map { { id => $_, note => "n$_" } } 11 .. 15 ]), 5, 'sent after the revoke');
ok(wait_for_depth($mine_url, 5, 0, 0), 'mine: the messages wait in the queue');
($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM sqs_ingest_drain('mine')");
like($err, qr/permission denied for queue 000000000000\/mine/, 'mine: a drain of it is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_events'), '10', 'mine: nothing stored meanwhile');
$node->safe_psql('postgres', "SELECT sqs_ingest_grant_queue('$mine_url', 'tenant')");
ok($node->poll_query_until('postgres', 'SELECT count(*) = 15 FROM tenant_events'),
	'mine: granted again, it stores what waited');

# a grant to a role the owner is a member of is enough
$node->safe_psql('postgres', qq{
CREATE ROLE tenants;
GRANT tenants TO tenant;
SELECT sqs_ingest_revoke_queue('$mine_url', 'tenant');
SELECT sqs_ingest_grant_queue('$mine_url', 'tenants');
});
is(send_events($mine_url, [ { id => 16, note => 'n16' } ]), 1, 'sent with the grant held through a group');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 16 FROM tenant_events'),
	'mine: a grant to a role its owner is a member of lets it run');

# --- the mask is the mask's ---------------------------------------------------------

$node->safe_psql('postgres', "SELECT sqs_ingest_grant_queue('$masked_url', 'tenant')");
my $mask_mapping = '{"id": {"path": "$.id"}, "m": {"path": "$.ip", "transform": "mask"}}';
like(create_as_tenant('masky', $masked_url, 'tenant_masked', $mask_mapping),
	qr/permission denied for function sqs_ingest_mask/, 'mask without EXECUTE: create refused');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION sqs_ingest_mask(text) TO tenant');
is(create_as_tenant('masky', $masked_url, 'tenant_masked', $mask_mapping), '',
	'mask with EXECUTE: created');
is(send_events($masked_url, [ map { { id => $_, ip => "10.0.0.$_" } } 1 .. 5 ]), 5, 'sent to masky');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 5 FROM tenant_masked'), 'masky: stored');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM tenant_masked WHERE m = sqs_ingest_mask('10.0.0.' || id)}),
	'5', 'masky: masked');

$offset = log_offset($node);
$node->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION sqs_ingest_mask(text) FROM tenant');
is(send_events($masked_url, [ map { { id => $_, ip => "10.0.0.$_" } } 6 .. 10 ]), 5,
	'sent to masky after the revoke');
ok($node->wait_for_log(qr/permission denied for function sqs_ingest_mask/, $offset),
	'masky: the worker refuses to run, saying why');
ok($node->poll_query_until('postgres',
		q{SELECT bool_and(state = 'backing off') FROM sqs_ingest.stats WHERE pipeline = 'masky'}),
	'masky: its worker backs off');
sleep 3;
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_masked'), '5',
	'masky: nothing stored without EXECUTE on the mask');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sqs_ingest.dead_letters WHERE pipeline = 'masky'}),
	'0', 'masky: nothing dead-lettered either');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION sqs_ingest_mask(text) TO tenant');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 10 FROM tenant_masked'),
	'masky: EXECUTE granted again, what waited is stored');

# --- sqs_ingest.queue_url set to a pipeline's queue: the pipeline stops ------------

$offset = log_offset($node);
set_gucs($node, { 'sqs_ingest.queue_url' => "$mine_url/" });
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 'mine'}),
	"mine: the settings now read its queue, its worker stops");
ok($node->wait_for_log(qr/queue 000000000000\/mine is the queue sqs_ingest\.queue_url names/, $offset),
	'the launcher says why');
set_gucs($node, { 'sqs_ingest.queue_url' => $login_url });
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sqs_ingest.stats WHERE pipeline = 'mine' AND state = 'polling'}),
	'mine: the settings read another queue again, it runs again');

# --- a pipeline outlives DROP ROLE of its owner: it does not run ------------------

$node->safe_psql('postgres', qq{
CREATE ROLE doomed LOGIN;
CREATE TABLE doomed_events (id int, note text);
GRANT USAGE ON SCHEMA sqs_ingest TO doomed;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb) TO doomed;
GRANT INSERT ON doomed_events TO doomed;
SELECT sqs_ingest_grant_queue('$doomed_url', 'doomed');
SET ROLE doomed;
SELECT sqs_ingest_create_pipeline('doomed', '$doomed_url', 'doomed_events', NULL, '{"wait_time_seconds": 1}');
RESET ROLE;
});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sqs_ingest.stats WHERE pipeline = 'doomed' AND state = 'polling'}),
	'doomed: runs');
$offset = log_offset($node);
$node->safe_psql('postgres', 'DROP OWNED BY doomed; DROP ROLE doomed');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 'doomed'}),
	'doomed: its owner dropped, its worker stops');
ok($node->wait_for_log(qr/the owner of pipeline "doomed" no longer exists/, $offset),
	'the launcher says why');
is(send_events($doomed_url, [ map { { id => $_ } } 1 .. 3 ]), 3, 'sent to doomed');
ok(wait_for_depth($doomed_url, 3, 0, 0), 'doomed: the messages wait in the queue');
is($node->safe_psql('postgres', 'SELECT count(*) FROM doomed_events'), '0', 'doomed: nothing stored');

# --- two pipelines left on one queue (written behind the functions' back):
# only the first by name runs ------------------------------------------------------

$offset = log_offset($node);
$node->safe_psql('postgres', qq{
INSERT INTO sqs_ingest.pipelines (name, queue_url, target, options, owner)
VALUES ('zz-twin', '$other_url/', 'public.other_events', '{"wait_time_seconds": 1}', 'postgres');
});
ok($node->wait_for_log(qr/launcher does not run pipeline "zz-twin"/, $offset),
	'a second pipeline on a queue is not run, and the log says so');
like(log_since($node, $offset), qr/queue 000000000000\/other is already read by another pipeline/,
	'the log says why');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sqs_ingest.stats WHERE pipeline = 'zz-twin'}),
	'0', 'zz-twin: no worker');

# the settings' pipeline and theirs ran all along
is(send_events($other_url, [ { id => 1, note => 'x' } ]), 1, 'sent to theirs');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM other_events'), 'theirs: still runs');

$node->stop;
done_testing();
