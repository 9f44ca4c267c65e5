
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The 100 real events of the sample (99 good, 1 malformed) through
# sqs_ingest_drain(): counts, masks, version encoding, dates, dead letter.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $events = sample_events();
is(scalar @$events, 100, 'the sample holds 100 events');
my @good = grep { exists $_->{user_id} } @$events;
is(scalar @good, 99, '99 of them carry a user_id');

my $emu  = start_emulator();
my $url  = create_queue('login-queue');
my $node = new_node('sample', queue_url => $url);

is(send_json_array($url, sample_file()), 100, 'sample sent to the queue');
is_deeply([ queue_depth($url) ], [ 100, 0, 0 ], 'queue holds 100 messages');

my $r = drain($node);
is_deeply(
	$r,
	{ received => 100, inserted => 99, duplicates => 0, dead_lettered => 1 },
	'drain: 100 received, 99 inserted, 1 dead letter');

is_deeply([ queue_depth($url) ], [ 0, 0, 0 ],
	'every message deleted once the drain committed');

is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'99', '99 rows in the target table');

is(rows_mismatch($node, \@good), 0,
	'rows equal the events: user_id, device_type, locale, app_version, '
	  . 'and pgcrypto HMACs of ip and device_id');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM user_logins
WHERE masked_ip ~ '^[0-9a-f]{64}$' AND masked_device_id ~ '^[0-9a-f]{64}$'}),
	'99',
	'masks are 64 lower-case hex digits');

# every distinct version, and the ones that naive encodings merge
my %codes = map { $_->{app_version} => app_version_code($_->{app_version}) } @good;
ok(!grep({ !defined } values %codes), 'every sample version is encodable');
my $by_user = $node->safe_psql('postgres',
	q{SELECT string_agg(user_id || '=' || app_version, ',' ORDER BY user_id) FROM user_logins});
my $want = join ',',
  map { "$_->{user_id}=" . app_version_code($_->{app_version}) }
  sort { $a->{user_id} cmp $b->{user_id} } @good;
is($by_user, $want,
	'app_version encoded as M*1000000+m*1000+p for each of the '
	  . scalar(keys %codes)
	  . ' distinct versions');
my %distinct_codes = map { $_ => 1 } values %codes;
is($node->safe_psql('postgres', 'SELECT count(DISTINCT app_version) FROM user_logins'),
	scalar(keys %distinct_codes),
	'versions map to distinct codes ("2.6", "0.26", "0.2.6" are not merged)');
is( $node->safe_psql(
		'postgres',
		q{SELECT app_version FROM user_logins WHERE user_id = '181452ad-20c3-4e93-86ad-1934c9248903'}
	),
	'96000',
	'"0.96" is 96000');

my $null_locales = grep { !defined $_->{locale} } @good;
is($null_locales, 29, 'the sample has 29 null locales');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins WHERE locale IS NULL'),
	'29', 'null locales stay NULL');

# No event carries create_date: it is the UTC date the message was sent,
# which is today (or yesterday if the run straddles midnight UTC).
is(rows_sent_today($node), 99,
	'create_date is the UTC send date');

# the malformed event is kept whole, with the reason
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'1', 'one dead letter');
is( $node->safe_psql(
		'postgres',
		q{SELECT body::jsonb = '{"foo": "oops_wrong_msg_type", "bar": "123"}'::jsonb
		  FROM sqs_ingest.dead_letters}),
	't',
	'dead letter body is the malformed event');
like($node->safe_psql('postgres', 'SELECT error FROM sqs_ingest.dead_letters'),
	qr/user_id/, 'dead letter error names user_id');
is( $node->safe_psql(
		'postgres',
		'SELECT message_id IS NOT NULL AND received_at IS NOT NULL FROM sqs_ingest.dead_letters'
	),
	't',
	'dead letter has its message id and receive time');

cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.processed'),
	'>=', 99, 'ledger holds the stored messages');

# the mask function agrees with what the pipeline stored
is( $node->safe_psql(
		'postgres', q{
SELECT sqs_ingest_mask('199.172.111.135') = encode(hmac('199.172.111.135', 'test-mask-key', 'sha256'), 'hex')
   AND EXISTS (SELECT 1 FROM user_logins WHERE masked_ip = sqs_ingest_mask('199.172.111.135'))}),
	't',
	'sqs_ingest_mask() gives the stored mask');

$r = drain($node);
is_deeply(
	$r,
	{ received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'a second drain finds nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	'99', 'still 99 rows');

done_testing();
