
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Credential endpoints over HTTPS are verified against the same CA bundle
# as SQS (sqs_ingest.ca_file, else the system's): STS and a container
# endpoint behind a TLS front whose certificate a test CA issued are refused
# until ca_file names that CA, then used.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $certs = make_certificates(PostgreSQL::Test::Utils::tempdir);
my @tokens = ('tool-token', map { ("webid-$_", "container-$_") } 1 .. 10);
$ENV{SQS_TEST_SESSION_TOKEN} = 'tool-token';
my $emu = start_emulator(session_token => \@tokens);
my $url = create_queue('credentials-tls');
my $aws = start_standins(web_identity_token => 'jwt-for-the-tests');
my $tls = start_hostile($aws, cert => $certs->{cert}, key => $certs->{key});
like($tls->endpoint, qr{^https://}, 'a TLS front for the credential stand-ins');

my $dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$dir/jwt" or die;
print $fh "jwt-for-the-tests\n";
close $fh;

my $node = new_node('credentials-tls', queue_url => $url, credentials => 0);
restart_with_env(
	$node,
	AWS_WEB_IDENTITY_TOKEN_FILE => "$dir/jwt",
	AWS_ROLE_ARN                => 'arn:aws:iam::000000000000:role/sqs-ingest-test-role',
	AWS_ENDPOINT_URL_STS        => $tls->endpoint);

is(send_generated($url, 3, 641), 3, '3 events sent');
like(drain_error($node), qr/could not get AWS credentials from web identity/,
	'STS behind a certificate the system bundle does not vouch for: refused');
is($aws->stats->{web_identity}, 0, 'nothing reached STS');

set_gucs($node, { 'sqs_ingest.ca_file' => $certs->{other_ca} });
like(drain_error($node), qr/could not get AWS credentials from web identity/,
	'a CA bundle that did not issue it: refused');

set_gucs($node, { 'sqs_ingest.ca_file' => $certs->{ca} });
is(drain($node)->{inserted}, 3, 'with sqs_ingest.ca_file naming its CA, STS over HTTPS is used');
is($aws->stats->{web_identity}, 1, 'one AssumeRoleWithWebIdentity');

restart_with_env(
	$node,
	AWS_CONTAINER_CREDENTIALS_FULL_URI => $tls->endpoint . '/container/creds');
is(send_generated($url, 2, 642), 2, '2 more events sent');
is(drain($node)->{inserted}, 2, 'a container endpoint over HTTPS on any host, verified the same way');
is($aws->stats->{container}, 1, 'one container credentials fetch');

done_testing();
