
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Credential endpoints are untrusted like SQS: a garbled, oversized or
# hostile answer from the instance metadata service, the container endpoint
# or STS ends as a clear error naming the source, never a crash, a hang or
# a header built from what the endpoint sent.

use strict;
use warnings;
use lib 't';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my @tokens = ('tool-token', map { ("imds-$_", "container-$_", "webid-$_") } 1 .. 20);
$ENV{SQS_TEST_SESSION_TOKEN} = 'tool-token';
my $emu = start_emulator(session_token => \@tokens);
my $url = create_queue('hostile-credentials');
my $aws = start_standins(web_identity_token => 'jwt-for-the-tests');
my $dir = PostgreSQL::Test::Utils::tempdir;

my $node = new_node('hostile', queue_url => $url, credentials => 0);

open my $fh, '>', "$dir/jwt" or die;
print $fh "jwt-for-the-tests\n";
close $fh;

my %imds = (
	AWS_EC2_METADATA_DISABLED         => undef,
	AWS_EC2_METADATA_SERVICE_ENDPOINT => $aws->endpoint);
my %container = (AWS_CONTAINER_CREDENTIALS_FULL_URI => $aws->endpoint . '/container/creds');
my %webid = (
	AWS_WEB_IDENTITY_TOKEN_FILE => "$dir/jwt",
	AWS_ROLE_ARN                => 'arn:aws:iam::000000000000:role/sqs-ingest-test-role',
	AWS_ENDPOINT_URL_STS        => $aws->endpoint);

my @cases = (
	[ \%imds, { imds => 'garbage' }, qr/EC2 instance metadata.*is not a JSON document/s ],
	[ \%imds, { imds => 'huge' }, qr/EC2 instance metadata.*exceeds 65536 bytes/s ],
	[ \%imds, { imds => 'control' }, qr/EC2 instance metadata.*characters or lengths that AWS credentials never have/s ],
	[ \%container, { container => 'garbage' }, qr/container credentials.*is not a JSON document/s ],
	[ \%container, { container => 'control' }, qr/container credentials.*characters or lengths/s ],
	[ \%webid, { sts => 'doctype' }, qr/web identity.*declares a DTD or entities/s ],
	[ \%webid, { sts => 'garbage' }, qr/web identity.*not well-formed XML/s ],
	[ \%webid, { sts => 'huge' }, qr/web identity.*exceeds 65536 bytes/s ],
	[ \%webid, { sts => JSON::PP::true }, qr/web identity.*STS answered HTTP 500: InternalFailure/s ],
);

my $seed = 630;
for my $case (@cases)
{
	my ($env, $mode, $expect) = @$case;
	my $what = join(',', map { "$_=$mode->{$_}" } sort keys %$mode);
	restart_with_env($node, %$env);
	$aws->fail($mode);
	my $err = drain_error($node);
	like($err, qr/could not get AWS credentials from/, "$what: refused");
	like($err, $expect, "$what: the reason is named");
	unlike($err, qr/evil|X-Injected|aaaaaaaaaa/, "$what: nothing of the answer's payload is echoed");

	# the same source, healed, works in the same server
	$aws->fail({});
	is(send_generated($url, 2, ++$seed), 2, "$what: 2 events sent");
	is(drain($node)->{inserted}, 2, "$what: healed, the same source works");
}

my ($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'queue empty');

done_testing();
