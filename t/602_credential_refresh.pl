
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Temporary credentials from the chain (here the EC2 instance metadata
# stand-in, vending 60-second credentials) are replaced before they expire
# while a worker keeps ingesting; a failed refresh is logged once and the
# current credentials are used until they expire; once the source answers
# again, ingestion resumes with new credentials.

use strict;
use warnings;
use lib 't';

use Digest::SHA qw(hmac_sha256_base64);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my @tokens = ('tool-token', map { "imds-$_" } 1 .. 50);
$ENV{SQS_TEST_SESSION_TOKEN} = 'tool-token';
my $emu = start_emulator(session_token => \@tokens);
my $url = create_queue('refresh');
my $aws = start_standins(lifetime => 60);

my $node;
{
	local $ENV{AWS_EC2_METADATA_DISABLED};
	delete $ENV{AWS_EC2_METADATA_DISABLED};
	local $ENV{AWS_EC2_METADATA_SERVICE_ENDPOINT} = $aws->endpoint;
	$node = new_node(
		'refresh',
		queue_url      => $url,
		credentials    => 0,
		shared_preload => 1,
		conf           => "sqs_ingest.workers = 1\n"
		  . "sqs_ingest.wait_time_seconds = 1\n"
		  . "sqs_ingest.retry_interval = 2\n");
}

sub token_seen
{
	my ($token) = @_;
	return slurp_file($emu->logfile) =~ /^session token in use: \Q$token\E$/m;
}

sub wait_rows
{
	my ($n) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM public.user_logins");
}

sub log_count
{
	my ($re) = @_;
	my @hits = slurp_file($node->logfile) =~ /$re/g;
	return scalar @hits;
}

my $refresh_warning = qr/WARNING:  could not refresh AWS credentials from EC2 instance metadata/;

### first credentials

is(send_generated($url, 5, 611), 5, '5 events sent');
ok(wait_rows(5), 'the worker stores them with credentials from IMDS');
is( $node->safe_psql(
		'postgres', "SELECT credential_source FROM sqs_ingest.stats WHERE kind = 'worker'"),
	'imds',
	'sqs_ingest.stats shows where the credentials come from');
ok(token_seen('imds-1'), 'the emulator saw the first session token');
# (the worker started before its queue was set: that failure counts once)
my $counters_before = $node->safe_psql('postgres',
	"SELECT sqs_errors, retries FROM sqs_ingest.stats WHERE kind = 'worker'");

### refreshed before they expire, without a pause in ingestion

ok(poll_standin(sub { $_[0]->{imds_credentials} >= 2 }),
	'credentials fetched again before they expire');
is(send_generated($url, 5, 612), 5, '5 more events sent');
ok(wait_rows(10), 'ingestion goes on');
ok(token_seen('imds-2'), 'the emulator sees the refreshed session token');
is( $node->safe_psql(
		'postgres', "SELECT sqs_errors, retries FROM sqs_ingest.stats WHERE kind = 'worker'"),
	$counters_before,
	'no failed request and no retry across the refresh');

### a failed refresh: logged once, the current credentials kept until expiry

$aws->fail({ imds => JSON::PP::true });
ok(poll_log($refresh_warning), 'a failed refresh is logged');
like(slurp_file($node->logfile), qr/could not refresh.*\n.*DETAIL: .*stay in use until they expire.*\n.*HINT: .*AWS_EC2_METADATA_DISABLED/,
	'with what stays in use and a hint');
is(send_generated($url, 3, 613), 3, '3 events sent while the source fails');
ok(wait_rows(13), 'the still-valid credentials keep ingestion going');
ok(poll_log(qr/no AWS credentials for sqs_ingest/),
	'once expired, the chain is tried again and its failure reported');
is(log_count($refresh_warning), 1, 'the failed refresh was logged once');

### the source answers again

my $fetched = $aws->stats->{imds_credentials};
$aws->fail({});
is(send_generated($url, 4, 614), 4, '4 events sent after the source recovered');
ok(wait_rows(17), 'ingestion resumes');
my $now = $aws->stats->{imds_credentials};
ok($now > $fetched, 'new credentials were fetched');
ok(token_seen("imds-$now"), 'and are the ones in use');
my ($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'queue empty');

# each set of credentials came with its own secret, as AWS's do
my $vended = join '|', map { quotemeta(substr(hmac_sha256_base64("imds-$_", $TEST_SECRET_ACCESS_KEY), 0, 40)) } 1 .. 50;
my @leaks = grep { /sqs-ingest-test-secret|imds-\d|$vended/ } split /\n/,
  slurp_file($node->logfile);
is_deeply(\@leaks, [], 'neither secret nor session token in the server log');

done_testing();

# poll the stand-in's counters until check() holds (3 minutes at most)
sub poll_standin
{
	my ($check) = @_;
	for (1 .. 360)
	{
		return 1 if $check->($aws->stats);
		select(undef, undef, undef, 0.5);
	}
	return 0;
}

# poll the server log until it matches (3 minutes at most)
sub poll_log
{
	my ($re) = @_;
	for (1 .. 360)
	{
		return 1 if slurp_file($node->logfile) =~ $re;
		select(undef, undef, undef, 0.5);
	}
	return 0;
}
