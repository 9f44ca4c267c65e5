
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The body mapper on random bodies: well-formed login events, events with
# values of every JSON kind in every member, other documents, and broken
# serialisations (truncated, a byte changed, a key doubled, nested past
# the limit). Under the sanitizer build (scripts/sanitize.sh) this is the
# mapper's memory check inside the server.
#
# For several mappings (the login events', a typed table without a mapping,
# explode, an SNS envelope), every body must give rows or one reason, never
# an error of the query, and the same answer twice. Then the same bodies go
# through SQS and a drain: what is stored and what is dead-lettered must be
# exactly what the preview said, body by body.

use strict;
use warnings;
use lib 't';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N = 1200;
srand(807);

my $json = JSON::PP->new->canonical;

sub pick { return $_[ int(rand(@_)) ]; }

sub random_string
{
	my @pieces = (
		'a', 'Zoë', '東京', "\x{1F600}", ' ', '"', '\\', '/', "\t", "\x{7f}",
		'-', '.', '1', '2024-02-29', '0000-01-01', '1.2.3', '999.999.999',
		'10.0.0.1', '::1', '593-47-5928', 'android', 'ios', "\x{fffd}", 'é');
	my $s = '';
	$s .= pick(@pieces) for 1 .. int(rand(6));
	$s .= 'x' x (100 + int(rand(200))) if rand() < 0.03;
	return $s;
}

sub random_value
{
	my ($depth) = @_;
	my $r = rand();
	return undef if $r < 0.08;
	return pick(JSON::PP::true, JSON::PP::false) if $r < 0.14;
	return pick(0, -1, 7, 2147483648, -9223372036854775808, 1.5, 1e300, -0.0)
	  if $r < 0.28;
	return random_string() if $r < 0.70 || $depth > 3;
	return [ map { random_value($depth + 1) } 1 .. int(rand(4)) ] if $r < 0.85;
	return { map { pick(qw(a b c user_id ip n)) => random_value($depth + 1) }
		  1 .. int(rand(4)) };
}

sub uuidish
{
	return join '-', map { sprintf '%0*x', $_, int(rand(16**($_ > 7 ? 7 : $_))) }
	  8, 4, 4, 4, 12;
}

# a login event, each member usually right, sometimes anything at all
sub login_event
{
	my %good = (
		user_id     => sub { uuidish() },
		device_type => sub { pick('android', 'ios') },
		ip          => sub { join '.', map { int(rand(256)) } 1 .. 4 },
		device_id   => sub { sprintf '%03d-%02d-%04d', rand(1000), rand(100), rand(10000) },
		locale      => sub { pick('RU', 'PH', undef, 'en_US') },
		app_version => sub { pick('2.3.0', '0.2.6', '1.10', '999.999.999', '10.4.1', '1000.0.0') },
		create_date => sub { pick('2022-12-01', '2024-02-29', '0001-01-01', '2023-07-15', '2024-02-30') });
	my %event;
	for my $key (keys %good)
	{
		my $r = rand();
		next if $r < 0.03;
		$event{$key} = $r < 0.95 ? $good{$key}->() : random_value(0);
	}
	$event{ pick(qw(extra Type Message records)) } = random_value(0) if rand() < 0.2;
	return \%event;
}

# a serialisation broken one way or another
sub mutate
{
	my ($text) = @_;
	my $at = int(rand(length $text));
	my $r = rand();
	return substr($text, 0, $at) if $r < 0.25;
	return substr($text, 0, $at) . pick('{', '}', '[', ']', ',', ':', '"', '\\', 'x', '1', ' ')
	  . substr($text, $at + ($r < 0.5 ? 1 : 0))
	  if $r < 0.65;
	return $text =~ s/^\{/{"user_id": "first", /r if $r < 0.75;
	my $levels = pick(999, 1000, 1001, 5000);
	return '{"user_id": "deep", "x": ' . ('[' x $levels) . (']' x $levels) . '}';
}

my @bodies;
for (1 .. $N)
{
	my $r = rand();
	my $body =
	    $r < 0.55 ? $json->encode(login_event())
	  : $r < 0.65 ? $json->encode(
		{ Type => pick('Notification', 'Other'), Message => $json->encode(login_event()) })
	  : $r < 0.72 ? $json->encode({ records => [ map { login_event() } 1 .. int(rand(4)) ] })
	  : $r < 0.80 ? $json->encode([ random_value(0) ])
	  :             mutate($json->encode(login_event()));
	$body = '0' if $body eq '';    # SQS refuses an empty body
	push @bodies, $body;
}
ok(!(grep { /\n/ } @bodies), 'no body spans lines');

my $emu  = start_emulator();
my $url  = create_queue('mapper-random');
my $node = new_node('mapper', queue_url => $url);

# UTF-8, one body per line: as they are (for SQS), and as COPY's text format
my $dir = PostgreSQL::Test::Utils::tempdir();
my $raw_file = "$dir/raw.txt";
my $file = "$dir/bodies.txt";
for ([ $raw_file, sub { $_[0] } ], [ $file, sub { $_[0] =~ s/\\/\\\\/gr =~ s/\t/\\t/gr } ])
{
	my ($path, $encode) = @$_;
	open my $fh, '>:encoding(UTF-8)', $path or die "cannot write $path: $!";
	print $fh $encode->($_), "\n" for @bodies;
	close $fh;
}
$node->safe_psql('postgres', qq{
	CREATE TABLE bodies (id serial PRIMARY KEY, body text NOT NULL);
	COPY bodies (body) FROM '$file';
	CREATE TABLE typed (user_id uuid, ip inet, device_type varchar(7),
	                    app_version numeric(6,2), create_date date, locale char(2),
	                    n int8, a text[], b jsonb, c json, extra bool,
	                    "Message" text, records int4[]);
	CREATE TABLE exploded (user_id text, ip text, version int, created date);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM bodies'), $N, "$N bodies loaded");

my $offset = -s $node->logfile;

my %mappings = (
	login => q{'user_logins', sqs_ingest_fetch_login_mapping()},
	typed => q{'typed'},
	explode => q{'exploded', '{"user_id": {"path": "$.user_id", "required": true},
	            "ip": {"path": "$.ip", "transform": "mask"},
	            "version": {"path": "$.app_version", "transform": "version_number"},
	            "created": {"path": "$.create_date", "type": "string",
	                        "else": {"message": "sent_date"}}}',
	            '{"explode": "$.records"}'},
	sns => q{'user_logins', sqs_ingest_fetch_login_mapping(), '{"envelope": "sns"}'});

for my $name (sort keys %mappings)
{
	my $outcomes = qq{
		SELECT b.id, count(*) AS n,
		       count(*) FILTER (WHERE p.error IS NULL AND p.mapped IS NOT NULL) AS rows,
		       count(*) FILTER (WHERE p.error IS NOT NULL AND p.mapped IS NULL
		                        AND length(p.error) > 0) AS reasons,
		       md5(string_agg(coalesce(p.mapped::text, '') || '|' || coalesce(p.error, ''),
		                      ',' ORDER BY p.mapped::text, p.error)) AS answer
		FROM bodies b
		LEFT JOIN LATERAL sqs_ingest_preview_mapping(b.body, $mappings{$name}) p ON true
		GROUP BY b.id};
	my $summary = $node->safe_psql('postgres', qq{
		WITH o AS ($outcomes)
		SELECT count(*),
		       count(*) FILTER (WHERE rows = n AND reasons = 0),
		       count(*) FILTER (WHERE reasons = 1 AND n = 1),
		       md5(string_agg(answer, ',' ORDER BY id))
		FROM o});
	my ($bodies, $stored, $dead, $answer) = split /\|/, $summary;
	is($bodies, $N, "$name: every body has an outcome");
	is($stored + $dead, $N, "$name: each body gives rows or one reason, nothing else");
	ok($stored > 0 && $dead > 0, "$name: both outcomes occur ($stored stored, $dead dead letters)");
	my $again = $node->safe_psql('postgres', qq{
		WITH o AS ($outcomes) SELECT md5(string_agg(answer, ',' ORDER BY id)) FROM o});
	is($again, $answer, "$name: the same answer twice");
}

# the same bodies through SQS and a drain
is(send_lines($url, $raw_file), $N, "$N bodies sent");

my $received = 0;
for (1 .. 20)
{
	my $r = drain($node);
	$received += $r->{received};
	last if $received >= $N;
}
is($received, $N, 'the drain received every body');

# compare body by body: the reasons, and the rows (create_date aside, which
# falls back to the message's own sent date)
my $mismatch = $node->safe_psql('postgres', q{
	WITH preview AS (
		SELECT b.body, p.mapped, p.error
		FROM bodies b,
		     LATERAL sqs_ingest_preview_mapping(b.body, 'user_logins',
		                                        sqs_ingest_fetch_login_mapping()) p),
	want_dead AS (SELECT body, error FROM preview WHERE error IS NOT NULL),
	got_dead AS (SELECT body, error FROM sqs_ingest.dead_letters),
	want_rows AS (
		SELECT mapped->>'user_id' AS user_id, mapped->>'device_type' AS device_type,
		       mapped->>'masked_ip' AS masked_ip, mapped->>'masked_device_id' AS masked_device_id,
		       mapped->>'locale' AS locale, (mapped->>'app_version')::int AS app_version
		FROM preview WHERE error IS NULL),
	got_rows AS (
		SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version
		FROM public.user_logins)
	SELECT (SELECT count(*) FROM (SELECT * FROM want_dead EXCEPT ALL SELECT * FROM got_dead) x),
	       (SELECT count(*) FROM (SELECT * FROM got_dead EXCEPT ALL SELECT * FROM want_dead) x),
	       (SELECT count(*) FROM (SELECT * FROM want_rows EXCEPT ALL SELECT * FROM got_rows) x),
	       (SELECT count(*) FROM (SELECT * FROM got_rows EXCEPT ALL SELECT * FROM want_rows) x),
	       (SELECT count(*) FROM want_rows), (SELECT count(*) FROM want_dead)});
my ($dead_missing, $dead_extra, $rows_missing, $rows_extra, $rows, $dead) = split /\|/, $mismatch;
ok($rows > 0 && $dead > 0, "the drain had both outcomes to store ($rows rows, $dead dead letters)");
is($dead_missing, 0, 'every body the preview refuses is a dead letter with the same reason');
is($dead_extra,   0, 'no other dead letter');
is($rows_missing, 0, 'every row the preview gives is stored');
is($rows_extra,   0, 'no other row');

no_crash($node, $offset, 'random bodies');

$node->stop;
$emu->stop;
done_testing();
