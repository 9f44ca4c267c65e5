
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The AWS credential chain, source by source, against local stand-ins for
# the instance metadata service, the container endpoint and STS: with the
# credential settings empty the server finds its credentials as the AWS
# SDKs do, the SQS emulator checks each request's signature and session
# token, and the first source that yields credentials wins.

use strict;
use warnings;
use lib 't';

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

# every token a source hands out is one the emulator accepts
my @tokens = (
	qw(tool-token settings-token env-token profile-token home-token),
	map { ("imds-$_", "container-$_", "webid-$_", "assumed-$_") } 1 .. 30);
$ENV{SQS_TEST_SESSION_TOKEN} = 'tool-token';
my $emu = start_emulator(session_token => \@tokens);
my $url = create_queue('chain');
my $aws = start_standins(
	container_auth     => 'container-auth-secret',
	web_identity_token => 'jwt-for-the-tests');
my $dir = PostgreSQL::Test::Utils::tempdir;

sub write_file
{
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $content;
	close $fh;
	return $path;
}

my $node = new_node('chain', queue_url => $url, credentials => 0);

sub token_seen
{
	my ($token) = @_;
	return slurp_file($emu->logfile) =~ /^session token in use: \Q$token\E$/m;
}

my $seed = 600;

sub drains_with
{
	my ($name) = @_;
	$seed++;
	is(send_generated($url, 3, $seed), 3, "$name: 3 events sent");
	my $r = drain($node);
	is($r->{inserted}, 3, "$name: the drain stores them");
	return;
}

### nothing: one error listing what was tried

my $err = drain_error($node);
like($err, qr/no AWS credentials for sqs_ingest/, 'no source: a clear error');
like(
	$err,
	qr/the environment \(AWS_ACCESS_KEY_ID is not set\); web identity .*; the shared config and credentials files .*; container credentials .*; EC2 instance metadata \(AWS_EC2_METADATA_DISABLED is true\)/,
	'the error lists every source tried, in order');
like($err, qr/HINT:/, 'with a hint');
unlike($err, qr/sqs-ingest-test-secret/, 'and no secret');
my ($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'queue empty before the tests');

### settings first, then the environment

my %env_keys = (
	AWS_ACCESS_KEY_ID     => $TEST_ACCESS_KEY_ID,
	AWS_SECRET_ACCESS_KEY => $TEST_SECRET_ACCESS_KEY,
	AWS_SESSION_TOKEN     => 'env-token');
restart_with_env($node, %env_keys);
drains_with('environment');
ok(token_seen('env-token'), 'environment: its session token was sent');

set_gucs(
	$node,
	{
		'sqs_ingest.access_key_id'     => $TEST_ACCESS_KEY_ID,
		'sqs_ingest.secret_access_key' => $TEST_SECRET_ACCESS_KEY,
		'sqs_ingest.session_token'     => 'settings-token'
	});
drains_with('settings over the environment');
ok(token_seen('settings-token'), 'the settings win over the environment');
set_gucs($node, { 'sqs_ingest.secret_access_key' => undef });
like(drain_error($node),
	qr/sqs_ingest.access_key_id is set but sqs_ingest.secret_access_key is not/,
	'a key id without its secret is an error, not a fall-through to the chain');
set_gucs(
	$node,
	{
		'sqs_ingest.access_key_id'     => undef,
		'sqs_ingest.secret_access_key' => undef,
		'sqs_ingest.session_token'     => undef
	});

### the environment before instance metadata

my %imds = (
	AWS_EC2_METADATA_DISABLED         => undef,
	AWS_EC2_METADATA_SERVICE_ENDPOINT => $aws->endpoint);
restart_with_env($node, %env_keys, %imds);
drains_with('environment and IMDS');
is($aws->stats->{imds_credentials}, 0, 'the environment wins: IMDS was not asked');

### web identity

my $jwt = write_file("$dir/web-identity-token", "jwt-for-the-tests\n");
my %webid = (
	AWS_WEB_IDENTITY_TOKEN_FILE => $jwt,
	AWS_ROLE_ARN                => 'arn:aws:iam::000000000000:role/sqs-ingest-test-role',
	AWS_ROLE_SESSION_NAME       => 'tap',
	AWS_ENDPOINT_URL_STS        => $aws->endpoint);
restart_with_env($node, %webid);
drains_with('web identity');
is($aws->stats->{web_identity}, 1, 'web identity: one AssumeRoleWithWebIdentity');
ok(token_seen('webid-1'), 'web identity: the STS session token was sent');

write_file("$dir/bad-token", "not-the-jwt\n");
restart_with_env($node, %webid, AWS_WEB_IDENTITY_TOKEN_FILE => "$dir/bad-token");
$err = drain_error($node);
like($err, qr/could not get AWS credentials from web identity/,
	'a web identity token STS refuses: an error naming the source');
like($err, qr/InvalidIdentityToken/, 'with what STS answered');
unlike($err, qr/not-the-jwt/, 'and not the token');

### shared files: a named profile, the default one under HOME, a role

my $creds = write_file(
	"$dir/credentials", <<"EOF");
[default]
aws_access_key_id = AKIDWRONGPROFILE
aws_secret_access_key = wrong-secret

[tests]
aws_access_key_id = $TEST_ACCESS_KEY_ID
aws_secret_access_key = $TEST_SECRET_ACCESS_KEY
aws_session_token = profile-token
EOF
my $config = write_file(
	"$dir/config", <<"EOF");
[profile base]
aws_access_key_id = $TEST_ACCESS_KEY_ID
aws_secret_access_key = $TEST_SECRET_ACCESS_KEY

# a role assumed with the keys of another profile
[profile chained]
role_arn = arn:aws:iam::000000000000:role/sqs-ingest-test-role
source_profile = base
EOF
restart_with_env($node, 
	AWS_PROFILE                 => 'tests',
	AWS_SHARED_CREDENTIALS_FILE => $creds,
	AWS_CONFIG_FILE             => $config);
drains_with('profile tests');
ok(token_seen('profile-token'), 'profile: the named profile\'s keys were used');

restart_with_env($node, 
	AWS_PROFILE                 => 'chained',
	AWS_SHARED_CREDENTIALS_FILE => $creds,
	AWS_CONFIG_FILE             => $config,
	AWS_ENDPOINT_URL_STS        => $aws->endpoint);
drains_with('profile with role_arn and source_profile');
is($aws->stats->{assume_role}, 1, 'role profile: one signed AssumeRole');
ok(token_seen('assumed-1'), 'role profile: the assumed role\'s token was sent');

restart_with_env($node, AWS_PROFILE => 'missing', AWS_SHARED_CREDENTIALS_FILE => $creds,
	AWS_CONFIG_FILE => $config);
like(
	drain_error($node),
	qr/could not get AWS credentials from the shared config and credentials files.*profile "missing"/s,
	'a profile asked for by name that does not exist is an error');

my $home = "$dir/home";
make_path("$home/.aws");
write_file(
	"$home/.aws/config", <<"EOF");
[default]
aws_access_key_id = $TEST_ACCESS_KEY_ID
aws_secret_access_key = $TEST_SECRET_ACCESS_KEY
aws_session_token = home-token
EOF
restart_with_env($node, 
	HOME                        => $home,
	AWS_SHARED_CREDENTIALS_FILE => undef,
	AWS_CONFIG_FILE             => undef);
drains_with('default profile under HOME');
ok(token_seen('home-token'), 'default profile: ~/.aws/config of the server user');

### web identity before the shared files

restart_with_env($node, %webid, AWS_PROFILE => 'tests', AWS_SHARED_CREDENTIALS_FILE => $creds);
my $before = $aws->stats->{web_identity};
drains_with('web identity and a profile');
is($aws->stats->{web_identity}, $before + 1, 'web identity wins over the profile');

### container credentials

my $full_uri = $aws->endpoint . '/container/v2/credentials/task';
restart_with_env($node, 
	AWS_CONTAINER_CREDENTIALS_FULL_URI => $full_uri,
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
drains_with('container');
is($aws->stats->{container}, 1, 'container: one credentials fetch');
ok(token_seen('container-1'), 'container: its session token was sent');

my $auth_file = write_file("$dir/container-auth", "container-auth-secret\n");
restart_with_env($node, 
	AWS_CONTAINER_CREDENTIALS_FULL_URI     => $full_uri,
	AWS_CONTAINER_AUTHORIZATION_TOKEN      => 'wrong',
	AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE => $auth_file);
drains_with('container with a token file');
is($aws->stats->{container}, 2, 'the token file wins over the variable');

restart_with_env($node, 
	AWS_CONTAINER_CREDENTIALS_FULL_URI => $full_uri,
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'wrong-token');
$err = drain_error($node);
like($err, qr/could not get AWS credentials from container credentials.*HTTP 401/s,
	'a wrong authorization token: the endpoint\'s refusal is reported');
unlike($err, qr/wrong-token/, 'without the token');

restart_with_env($node, 
	AWS_CONTAINER_CREDENTIALS_FULL_URI => 'http://192.0.2.1/creds',
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
like(drain_error($node), qr/AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address/,
	'plain http to a host the SDKs do not allow is refused before any connection');

# the host checked is the host libcurl connects to: "127.0.0.1:80@" is a
# user name and password, not the host, and is refused whatever the host
my ($aws_port) = $aws->endpoint =~ /:(\d+)$/;
my $container_path = "/container/v2/credentials/task";
for my $userinfo ('127.0.0.1:80@', 'user:container-pass@', 'user@')
{
	restart_with_env($node,
		AWS_CONTAINER_CREDENTIALS_FULL_URI => "http://${userinfo}127.0.0.1:$aws_port$container_path",
		AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
	$before = $aws->stats->{container};
	$err = drain_error($node);
	like($err, qr/AWS_CONTAINER_CREDENTIALS_FULL_URI must not hold a user name or password/,
		"a container URL with user information ($userinfo) is refused");
	unlike($err, qr/container-pass|container-auth-secret/, 'the refusal quotes neither password nor token');
	is($aws->stats->{container}, $before, 'no request reached the container endpoint');
}

restart_with_env($node,
	AWS_CONTAINER_CREDENTIALS_FULL_URI => 'not a URL',
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
like(drain_error($node), qr/AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL/,
	'a container URL libcurl cannot parse is refused');

# 2130706433 is 127.0.0.1 to libcurl, so to the check as well
restart_with_env($node,
	AWS_CONTAINER_CREDENTIALS_FULL_URI => "http://2130706433:$aws_port$container_path",
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
$before = $aws->stats->{container};
drains_with('container at a loopback address in decimal');
is($aws->stats->{container}, $before + 1, 'the container endpoint was asked');

restart_with_env($node, 
	%imds,
	AWS_CONTAINER_CREDENTIALS_FULL_URI => $full_uri,
	AWS_CONTAINER_AUTHORIZATION_TOKEN  => 'container-auth-secret');
$before = $aws->stats;
drains_with('container and IMDS');
is($aws->stats->{container}, $before->{container} + 1, 'container asked');
is($aws->stats->{imds_credentials}, 0, 'container wins over IMDS');

### EC2 instance metadata

restart_with_env($node, %imds);
drains_with('IMDS');
my $s = $aws->stats;
ok($s->{imds_token} >= 1, 'IMDS: a session token was asked for first (PUT)');
is($s->{imds_unauthorized}, 0, 'IMDS: every GET carried the token');
is($s->{imds_credentials}, 1, 'IMDS: the role\'s credentials were fetched once');
ok(token_seen('imds-1'), 'IMDS: the role\'s session token was sent');

# a host without a metadata service: nothing listens at the address
my $nowhere = 'http://127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
restart_with_env($node, %imds, AWS_EC2_METADATA_SERVICE_ENDPOINT => $nowhere);
like(drain_error($node),
	qr/no AWS credentials for sqs_ingest.*EC2 instance metadata \(\Q$nowhere\E\/latest\/api\/token: /s,
	'no metadata service: the chain falls through to the error, saying IMDS did not answer');

restart_with_env($node, %imds, AWS_EC2_METADATA_DISABLED => 'true');
$before = $aws->stats;
like(drain_error($node), qr/EC2 instance metadata \(AWS_EC2_METADATA_DISABLED is true\)/,
	'AWS_EC2_METADATA_DISABLED=true is honoured');
is_deeply($aws->stats, $before, 'the metadata service was not contacted');

($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'every event was drained');
# What the chain logs; the test's own ALTER SYSTEM statements and the
# reload's report of changed settings are the settings' business.
my @leaks = grep { /sqs-ingest-test-secret|container-auth-secret|jwt-for-the-tests/ }
  grep { !/LOG:  (statement: |parameter ")/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@leaks, [], 'no secret in the server log');

done_testing();
