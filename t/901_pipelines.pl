
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Three pipelines at once, on three queues, each with its own workers: the
# login events with sqs_ingest_fetch_login_mapping() (the real sample), an
# orders table of many types, and S3 event notifications delivered through
# SNS (envelope and explode).  While they run: one pipeline's mapping is
# altered, one is disabled and enabled again, one is dropped, and one's
# target table appears only after the pipeline exists.  Every message is
# accounted for exactly once, as a row or a dead letter.

use strict;
use warnings;
use lib 't';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu = start_emulator();
# stopped workers leave messages in flight: let them come back soon
my $logins_url = create_queue('logins', visibility_timeout => 5);
my $orders_url = create_queue('orders', visibility_timeout => 5);
my $s3_url     = create_queue('s3-events', visibility_timeout => 5);
my $late_url   = create_queue('late', visibility_timeout => 5);

# no settings-based workers: only the pipelines run
my $node = worker_node('pipelines', workers => 0,
	settings => { 'sqs_ingest.retry_interval' => 2, 'sqs_ingest.endpoint' => $emu->endpoint });
my $json = JSON::PP->new->utf8->canonical;

$node->safe_psql(
	'postgres', q{
CREATE TABLE orders (
    order_id   uuid NOT NULL,
    amount     numeric(12,2),
    ordered_at timestamptz,
    tags       text[],
    customer   text NOT NULL,
    body       jsonb,
    channel    text
);
CREATE TABLE s3_objects (bucket text, key text, size bigint, event_time timestamptz);
CREATE ROLE ingest_admin;
GRANT USAGE ON SCHEMA sqs_ingest TO ingest_admin;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_drop_pipeline(text) TO ingest_admin;
GRANT INSERT ON orders, s3_objects TO ingest_admin;
});
# the queues its pipelines read are granted to it
$node->safe_psql(
	'postgres', qq{
SELECT sqs_ingest_grant_queue('$orders_url', 'ingest_admin');
SELECT sqs_ingest_grant_queue('$s3_url', 'ingest_admin');
});

# the orders pipeline belongs to a role that may insert into orders only
$node->safe_psql(
	'postgres', qq{
SELECT sqs_ingest_create_pipeline('logins', '$logins_url', 'user_logins',
                                  sqs_ingest_fetch_login_mapping());
SET ROLE ingest_admin;
SELECT sqs_ingest_create_pipeline('orders', '$orders_url', 'orders',
    '{"order_id": {"path": "\$.id"}, "amount": {"path": "\$.total"},
      "ordered_at": {"path": "\$.at"}, "tags": {"path": "\$.tags"},
      "customer": {"path": "\$.customer.name", "required": true},
      "body": {"message": "body"}}',
    '{"workers": 2, "visibility_timeout": 5, "wait_time_seconds": 1}');
SELECT sqs_ingest_create_pipeline('s3', '$s3_url', 's3_objects',
    '{"bucket": {"path": "\$.s3.bucket.name", "required": true},
      "key": {"path": "\$.s3.object.key", "required": true},
      "size": {"path": "\$.s3.object.size"},
      "event_time": {"path": "\$.eventTime"}}',
    '{"envelope": "sns", "explode": "\$.Records[*]", "visibility_timeout": 5, "wait_time_seconds": 1}');
RESET ROLE;
});

# one stats row per pipeline worker, with its pipeline's name
ok( $node->poll_query_until(
		'postgres', q{
SELECT string_agg(pipeline || ':' || n, ',' ORDER BY pipeline) = 'logins:1,orders:2,s3:1'
FROM (SELECT pipeline, count(*) AS n FROM sqs_ingest.stats
      WHERE kind = 'worker' AND state = 'polling' GROUP BY pipeline) s}),
	'each pipeline runs its workers, shown in sqs_ingest.stats by name');

# --- the messages ---------------------------------------------------------

my @orders;
for my $i (1 .. 60)
{
	my %o = (
		id       => sprintf('00000000-0000-4000-8000-%012d', $i),
		total    => $i * 10.005,
		at       => sprintf('2024-03-%02dT12:00:00+02:00', 1 + $i % 28),
		tags     => [ "t$i", 'all' ],
		customer => { name => "customer $i" });
	# a few bad ones: no customer, a malformed id
	delete $o{customer} if $i % 20 == 0;
	$o{id} = "not-a-uuid-$i" if $i % 25 == 0;
	push @orders, \%o;
}
my $bad_orders = grep { !exists $_->{customer} || $_->{id} =~ /^not/ } @orders;

# S3 notifications through SNS: 1 to 3 records each; one test event without
# records, one record without a key (the whole message is refused)
sub s3_notification
{
	my ($n, @records) = @_;
	return {
		Type      => 'Notification',
		MessageId => "sns-$n",
		TopicArn  => 'arn:aws:sns:us-east-1:000000000000:uploads',
		Message   => $json->encode({ Records => \@records }),
	};
}
my @s3;
my $s3_rows = 0;
for my $n (1 .. 30)
{
	my @records = map {
		{
			eventTime => "2024-05-01T10:00:${_}0.000Z",
			s3        => {
				bucket => { name => 'photos' },
				object => { key => "img/$n-$_.jpg", size => $n * 1000 + $_ }
			}
		}
	} 1 .. (1 + $n % 3);
	delete $records[-1]{s3}{object}{key} if $n == 7;
	$s3_rows += @records unless $n == 7;
	push @s3, s3_notification($n, @records);
}
push @s3,
  {
	Type      => 'Notification',
	MessageId => 'sns-test',
	Message   => $json->encode({ Event => 's3:TestEvent' })
  };
my $bad_s3 = 2;

is(send_json_array($logins_url, sample_file()), 100, 'login sample sent');
is(send_events($orders_url, [ @orders[ 0 .. 29 ] ]), 30, 'first orders sent');
is(send_events($s3_url, \@s3), scalar @s3, 'S3 notifications sent');

ok($node->poll_query_until('postgres', 'SELECT count(*) = 99 FROM user_logins'),
	'logins: the 99 good events of the sample stored');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = $s3_rows FROM s3_objects"),
	"s3: $s3_rows objects stored from the exploded records");
my $first_bad = grep { !exists $_->{customer} || $_->{id} =~ /^not/ } @orders[ 0 .. 29 ];
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = " . (30 - $first_bad) . " FROM orders"),
	'orders: the first good orders stored');

is( $node->safe_psql(
		'postgres', q{
SELECT order_id || '|' || amount || '|' || ordered_at AT TIME ZONE 'UTC' || '|' || tags::text
       || '|' || customer || '|' || (body->>'id')
FROM orders WHERE order_id = '00000000-0000-4000-8000-000000000003'}),
	'00000000-0000-4000-8000-000000000003|30.02|2024-03-04 10:00:00|{t3,all}|customer 3|00000000-0000-4000-8000-000000000003',
	'orders: uuid, numeric(12,2), timestamptz, text[], required text and the whole body as jsonb');
is( $node->safe_psql(
		'postgres',
		q{SELECT bucket || '|' || key || '|' || size || '|' || (event_time AT TIME ZONE 'UTC') FROM s3_objects WHERE key = 'img/2-3.jpg'}
	),
	'photos|img/2-3.jpg|2003|2024-05-01 10:00:30',
	's3: bucket, key, size and event time of a record');

# --- alter a mapping while it runs ------------------------------------------

$node->safe_psql(
	'postgres', q{
SET ROLE ingest_admin;
SELECT sqs_ingest_alter_pipeline('orders', mapping => '{"order_id": {"path": "$.id"}, "amount": {"path": "$.total"},
      "ordered_at": {"path": "$.at"}, "tags": {"path": "$.tags"},
      "customer": {"path": "$.customer.name", "required": true},
      "body": {"message": "body"},
      "channel": {"message_attribute": "channel", "else": {"path": "$.channel"}}}');
});
# the launcher replaces the pipeline's workers by ones with the new mapping
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 2 FROM sqs_ingest.stats s, sqs_ingest.pipelines p
WHERE s.pipeline = 'orders' AND p.name = 'orders' AND s.state = 'polling'
  AND s.started_at > p.updated_at}),
	'orders: altered, new workers run it');
# the new mapping reads a message attribute, else a member of the body
$_->{channel} = 'web' for @orders[ 30 .. 59 ];
is(sqs_tool('send', $orders_url, '--lines', events_file([ @orders[ 30 .. 44 ] ]),
		'--attribute', 'channel=api') + 0,
	15, 'orders sent with a message attribute');
is(send_events($orders_url, [ @orders[ 45 .. 59 ] ]), 15, 'the other orders sent');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = " . (60 - $bad_orders) . " FROM orders"),
	'orders: every good order stored, across the change of mapping');
sub good { return scalar grep { exists $_->{customer} && $_->{id} !~ /^not/ } @_; }
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(channel || ':' || n, ',' ORDER BY channel)
          FROM (SELECT channel, count(*) AS n FROM orders WHERE channel IS NOT NULL GROUP BY 1) c}),
	'api:' . good(@orders[ 30 .. 44 ]) . ',web:' . good(@orders[ 45 .. 59 ]),
	'orders: the altered mapping fills the new column, from the message attribute when there is one');
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE channel IS NOT NULL AND order_id <= '00000000-0000-4000-8000-000000000030'}),
	'0', 'orders: rows stored before the change keep the old mapping');

# --- disable and enable -------------------------------------------------------

$node->safe_psql('postgres',
	q{SET ROLE ingest_admin; SELECT sqs_ingest_alter_pipeline('s3', options => '{"enabled": false}')});
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 's3'}),
	's3: disabled, its workers stop');
my @more_s3 = map {
	s3_notification(100 + $_,
		{ eventTime => '2024-05-02T00:00:00Z', s3 => { bucket => { name => 'docs' }, object => { key => "doc-$_.pdf", size => $_ } } })
} 1 .. 5;
is(send_events($s3_url, \@more_s3), 5, 'notifications sent while disabled');
ok(wait_for_depth($s3_url, 5, 0, 0), 's3: they wait in the queue while the pipeline is disabled');
$node->safe_psql('postgres',
	q{SET ROLE ingest_admin; SELECT sqs_ingest_alter_pipeline('s3', options => '{"enabled": true}')});
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 5 FROM s3_objects WHERE bucket = 'docs'}),
	's3: enabled again, the waiting notifications are stored');
$s3_rows += 5;

# --- drop -----------------------------------------------------------------------

$node->safe_psql('postgres', q{SELECT sqs_ingest_drop_pipeline('logins')});
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 'logins'}),
	'logins: dropped, its worker stops');
is(send_json_array($logins_url, sample_file()), 100, 'the sample sent again');
ok(wait_for_depth($logins_url, 100, 0, 0), 'logins: nothing consumes the queue any more');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'), '99',
	'logins: no row added after the drop');

# --- a target table that appears after its pipeline -----------------------------

$node->safe_psql(
	'postgres', qq{
CREATE TABLE late_events (id int, note text);
SELECT sqs_ingest_create_pipeline('late', '$late_url', 'late_events', NULL,
                                  '{"visibility_timeout": 5, "wait_time_seconds": 1}');
DROP TABLE late_events;
});
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 0 FROM sqs_ingest.stats WHERE pipeline = 'late'}),
	'late: no worker while the target table does not exist');
is(send_events($late_url, [ map { { id => $_, note => "n$_" } } 1 .. 20 ]), 20,
	'late: messages sent before the table exists');
ok(wait_for_depth($late_url, 20, 0, 0), 'late: they wait in the queue');
$node->safe_psql('postgres', 'CREATE TABLE late_events (id int, note text)');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 20 FROM late_events'),
	'late: once the table exists, the workers start and store every message');

# --- every message exactly once ---------------------------------------------------

ok(wait_for_depth($orders_url, 0, 0, 0), 'orders queue empty');
ok(wait_for_depth($s3_url,     0, 0, 0), 's3 queue empty');
ok(wait_for_depth($late_url,   0, 0, 0), 'late queue empty');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(pipeline || ':' || n, ',' ORDER BY pipeline)
          FROM (SELECT pipeline, count(*) AS n FROM sqs_ingest.dead_letters GROUP BY 1) d}),
	"logins:1,orders:$bad_orders,s3:$bad_s3",
	'dead letters carry their pipeline: 1 login event, the bad orders, 2 S3 notifications');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM sqs_ingest.processed}),
	100 + 60 + scalar(@s3) + 5 + 20,
	'the ledger holds every message once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'),
	60 - $bad_orders, 'orders: each good order once');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT order_id) FROM orders'),
	60 - $bad_orders, 'orders: no order twice');
is($node->safe_psql('postgres', 'SELECT count(*) FROM s3_objects'),
	$s3_rows, 's3: each record once');
like(
	$node->safe_psql('postgres',
		q{SELECT error FROM sqs_ingest.dead_letters WHERE pipeline = 'orders' AND body LIKE '%not-a-uuid-25%'}),
	qr/^column "order_id": \$\.id: invalid input syntax for type uuid/,
	'a dead letter names the column at fault');
like(
	$node->safe_psql('postgres',
		q{SELECT string_agg(error, ' / ') FROM sqs_ingest.dead_letters WHERE pipeline = 's3'}),
	qr/^(?=.*element 2 of \$\.Records\[\*\]: column "key": \$\.s3\.object\.key is missing)(?=.*\$\.Records\[\*\] finds no element in the SNS message)/,
	'S3: a record without a key refuses its whole message; a test event has no record');

# --- a disabled pipeline drained by hand ---------------------------------------------

my $manual_url = create_queue('manual', visibility_timeout => 5);
$node->safe_psql(
	'postgres', qq{
CREATE TABLE manual_events (id int, note text);
SELECT sqs_ingest_create_pipeline('manual', '$manual_url', 'manual_events', NULL,
                                  '{"enabled": false}');
});
is(send_events($manual_url, [ (map { { id => $_, note => "m$_" } } 1 .. 7), { id => 'eight' } ]),
	8, 'manual: messages sent to a disabled pipeline');
is( $node->safe_psql(
		'postgres',
		q{SELECT received || ' ' || inserted || ' ' || duplicates || ' ' || dead_lettered
          FROM sqs_ingest_drain('manual')}),
	'8 7 0 1',
	'manual: sqs_ingest_drain(pipeline) drains its queue through its mapping');
is($node->safe_psql('postgres', q{SELECT count(*) FROM manual_events}), '7',
	'manual: the rows are stored');
like(
	$node->safe_psql('postgres',
		q{SELECT pipeline || ': ' || error FROM sqs_ingest.dead_letters WHERE body LIKE '%eight%'}),
	qr/^manual: column "id": \$\."id": invalid input syntax for type integer/,
	'manual: the drain dead-letters with the pipeline and the column');

# --- least privilege: a pipeline inserts with its owner's rights ---------------------

$node->safe_psql('postgres', 'REVOKE INSERT ON orders FROM ingest_admin');
my @denied = map {
	{ id => sprintf('00000000-0000-4000-9000-%012d', $_), customer => { name => 'x' } }
} 1 .. 3;
is(send_events($orders_url, \@denied), 3, 'orders sent after the owner lost INSERT');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT bool_or(last_error LIKE '%permission denied for table orders%') FROM sqs_ingest.stats WHERE pipeline = 'orders'}),
	'orders: the workers cannot insert once the owner may not');
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE customer = 'x'}),
	'0', 'orders: nothing inserted beyond the owner\'s rights');
$node->safe_psql('postgres', 'GRANT INSERT ON orders TO ingest_admin');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 3 FROM orders WHERE customer = 'x'}),
	'orders: stored once the owner may insert again');

$node->stop;
done_testing();
