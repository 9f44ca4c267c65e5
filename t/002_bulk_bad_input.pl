
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Thousands of good events mixed with one message of each kind of bad input:
# every bad one becomes a dead letter with a specific reason, every good one
# a row, hostile but valid values are stored verbatim, the queue ends empty.

use strict;
use warnings;
use lib 't';

use Digest::MD5 qw(md5_hex);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N_GOOD = 3000;
my $SEED   = 42;

# A valid event around the given fields; values are byte strings (UTF-8),
# written as JSON by hand so that they reach the queue exactly as given.
sub event_json
{
	my (%f) = @_;
	my %e = (
		user_id     => '"' . ($f{uid} // 'u') . '"',
		app_version => '"1.2.3"',
		device_type => '"ios"',
		ip          => '"10.1.2.3"',
		locale      => '"US"',
		device_id   => '"123-45-6789"');
	for my $k (keys %f)
	{
		next if $k eq 'uid';
		if (defined $f{$k}) { $e{$k} = $f{$k}; }
		else                { delete $e{$k}; }
	}
	my @order = qw(user_id app_version device_type ip locale device_id);
	my @keys  = (@order, sort grep { my $k = $_; !grep { $_ eq $k } @order } keys %e);
	return '{' . join(',', map { "\"$_\":$e{$_}" } grep { exists $e{$_} } @keys) . '}';
}

my $deep = 100_000;

# body => regex its dead letter's error must match
my @bad = (
	[ 'not JSON', 'this is not json {', qr/json/i ],
	[ 'JSON array', '[1, 2, 3]', qr/object|array/i ],
	[ 'JSON string', '"just a string"', qr/object|string/i ],
	[ 'missing user_id', event_json(user_id => undef), qr/user_id/ ],
	[ 'empty user_id', event_json(user_id => '""'), qr/user_id/ ],
	[ 'numeric user_id', event_json(user_id => '12345'), qr/user_id/ ],
	[ 'locale object', event_json(uid => 'bad-locale', locale => '{"a": 1}'), qr/locale/ ],
	[ 'NUL escape', event_json(uid => 'nul\u0000byte'), qr/u0000|unicode|escape|nul/i ],
	[ 'lone surrogate', event_json(uid => 'half\ud800'), qr/surrogate|unicode/i ],
	[
		'deep nesting in a field',
		event_json(uid => 'deep-field', extra => ('[' x $deep) . (']' x $deep)),
		qr/deep|depth|nest|level/i
	],
	[
		'deep nesting at top level', ('[' x $deep) . (']' x $deep),
		qr/deep|depth|nest|level|object|array/i
	],
	[
		'device_type too long', event_json(uid => 'long-device', device_type => '"' . ('x' x 33) . '"'),
		qr/device_type.*(long|exceed|32)|(long|exceed|32).*device_type/is
	],
	[ 'app_version 4 parts', event_json(uid => 'v4', app_version => '"1.2.3.4"'), qr/app_version/ ],
	[ 'app_version letters', event_json(uid => 'vxy', app_version => '"x.y"'), qr/app_version/ ],
	[ 'app_version out of range', event_json(uid => 'v1000', app_version => '"1000.0"'), qr/app_version/ ],
	[ 'create_date impossible', event_json(uid => 'd1', create_date => '"2023-13-45"'), qr/create_date/ ],
	[ 'create_date not a date', event_json(uid => 'd2', create_date => '"not a date"'), qr/create_date/ ],
);

# valid but unusual: each must become exactly one row
my $sql_uid  = q{x'); DROP TABLE user_logins; --};
my $sql_dev  = q{ios'--};
my $utf_uid  = "user-Z\xc3\xbcrich-\xf0\x9f\x98\x80";    # user-Zürich-😀
my $utf_loc  = "Z\xc3\xbcrich";                           # Zürich
my $big_pad  = 'p' x (1_000_000 - 200);
my @special = (
	[ 'near 1 MiB body', event_json(uid => 'big-body', padding => qq{"$big_pad"}) ],
	[ 'SQL-looking strings', event_json(uid => $sql_uid, device_type => qq{"$sql_dev"}) ],
	[ 'non-ASCII text', event_json(uid => $utf_uid, locale => qq{"$utf_loc"}) ],
	[ 'explicit create_date', event_json(uid => 'dated', create_date => '"2021-06-01"') ],
);
cmp_ok(length($special[0][1]), '>', 999_000, 'big body is close to 1 MiB');
cmp_ok(length($special[0][1]), '<=', 1_048_576, 'big body is within the SQS limit');

my $dir   = PostgreSQL::Test::Utils::tempdir();
my $lines = "$dir/odd.txt";
open my $fh, '>:raw', $lines or die "$lines: $!";
print $fh "$_->[1]\n" for @bad, @special;
close $fh;

my $emu  = start_emulator();
my $url  = create_queue('bulk');
my $node = new_node('bulk', queue_url => $url);

is(send_generated($url, $N_GOOD, $SEED), $N_GOOD, "$N_GOOD generated events sent");
is(send_lines($url, $lines), @bad + @special, 'odd messages sent');
my $total = $N_GOOD + @bad + @special;
is_deeply([ queue_depth($url) ], [ $total, 0, 0 ], "queue holds $total messages");

my $r = drain($node);
is_deeply(
	$r,
	{
		received      => $total,
		inserted      => $N_GOOD + @special,
		duplicates    => 0,
		dead_lettered => scalar @bad
	},
	'drain counts: every good message a row, every bad one a dead letter');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'queue empty after the drain');

is($node->safe_psql('postgres', 'SELECT count(*) FROM user_logins'),
	$N_GOOD + @special, 'row count');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	scalar @bad, 'dead letter count');

is(rows_mismatch($node, generate_events($N_GOOD, $SEED)), 0,
	'generated events stored exactly, masks and versions included');

for my $b (@bad)
{
	my ($what, $body, $re) = @$b;
	my $md5 = md5_hex($body);
	my $err = $node->safe_psql('postgres',
		"SELECT error FROM sqs_ingest.dead_letters WHERE md5(body) = '$md5'");
	isnt($err, '', "$what: dead letter keeps the body verbatim");
	like($err, $re, "$what: error says why") if $err ne '';
}

is( $node->safe_psql(
		'postgres',
		q{SELECT device_type, locale, app_version FROM user_logins WHERE user_id = 'big-body'}),
	'ios|US|1002003',
	'near-1 MiB body stored as a row');
is( $node->safe_psql(
		'postgres',
		qq{SELECT device_type FROM user_logins WHERE user_id = \$q\$$sql_uid\$q\$}),
	$sql_dev,
	'SQL-looking strings stored verbatim');
is($node->safe_psql('postgres', q{SELECT to_regclass('public.user_logins') IS NOT NULL}),
	't', 'and the table is still there');
is( $node->safe_psql(
		'postgres', qq{SELECT locale FROM user_logins WHERE user_id = '$utf_uid'}),
	$utf_loc,
	'non-ASCII text stored intact');
is( $node->safe_psql(
		'postgres', q{SELECT create_date FROM user_logins WHERE user_id = 'dated'}),
	'2021-06-01',
	'explicit create_date used as is');

is_deeply(
	drain($node),
	{ received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'nothing left to drain');

done_testing();
