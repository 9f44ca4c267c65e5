
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Token files bigger than a buffer's first guess (web identity tokens of a
# few KiB are common) leave no copy of themselves in the worker's memory:
# once the worker has its credentials, no part of the token is found in
# its private memory, freed or not.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my @tokens = map { ("webid-$_", "container-$_") } 1 .. 20;
$ENV{SQS_TEST_SESSION_TOKEN} = 'tool-token';
my $emu = start_emulator(session_token => [ 'tool-token', @tokens ]);
my $url = create_queue('token-memory');

# 3 KiB of characters a JWT has, none of them percent-encoded in a form
my @chars = ('A' .. 'Z', 'a' .. 'z', '0' .. '9', '-', '_');
srand(605);
my $jwt       = join '', map { $chars[ int(rand(@chars)) ] } 1 .. 3072;
my $container = join '', map { $chars[ int(rand(@chars)) ] } 1 .. 3072;
my $aws = start_standins(web_identity_token => $jwt, container_auth => $container);
my $dir = PostgreSQL::Test::Utils::tempdir;

sub write_file
{
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $content;
	close $fh;
	return $path;
}

# how many of the 32-byte pieces of $secret (one every 64 bytes) occur in
# the private writable memory of process $pid
sub pieces_in_memory
{
	my ($pid, $secret) = @_;
	my @needles;
	for (my $i = 0; $i + 32 <= length $secret; $i += 64)
	{
		push @needles, substr($secret, $i, 32);
	}
	my $found = 0;
	open my $maps, '<', "/proc/$pid/maps" or die "cannot read maps of $pid: $!";
	open my $mem, '<:raw', "/proc/$pid/mem" or die "cannot read memory of $pid: $!";
	while (my $line = <$maps>)
	{
		my ($from, $to, $perms) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/
		  or next;
		next unless $perms =~ /^rw.p/;
		my $size = hex($to) - hex($from);
		next if $size > 512 * 1024 * 1024;
		sysseek($mem, hex($from), 0) or next;
		my $data = '';
		my $n    = sysread($mem, $data, $size);
		next unless $n;
		for my $needle (@needles)
		{
			my $at = 0;
			while (($at = index($data, $needle, $at)) >= 0)
			{
				$found++;
				$at++;
			}
		}
	}
	return $found;
}

my $node = worker_node(
	'tokenmem',
	queue_url => $url,
	workers   => 0,
	settings  => { 'sqs_ingest.endpoint' => $emu->endpoint });
set_gucs(
	$node,
	{
		'sqs_ingest.access_key_id'     => undef,
		'sqs_ingest.secret_access_key' => undef,
	});
$node->append_conf('postgresql.conf', "sqs_ingest.workers = 1\n");

sub check_source
{
	my ($source, $secret, %env) = @_;
	restart_with_env($node, %env);
	wait_for_workers($node, 1);
	is(worker_stat($node, 'credential_source'), $source,
		"$source: the worker has its credentials");
	my $pid = worker_pid($node, 0);
	# the scan finds what the worker does keep: its queue URL
	cmp_ok(pieces_in_memory($pid, $url), '>', 0,
		"$source: the scan of the worker's memory finds its queue URL");
	is(pieces_in_memory($pid, $secret), 0,
		"$source: no piece of the 3 KiB token is left in the worker's memory");
	return;
}

check_source(
	'web-identity', $jwt,
	AWS_WEB_IDENTITY_TOKEN_FILE => write_file("$dir/web-identity-token", "$jwt\n"),
	AWS_ROLE_ARN          => 'arn:aws:iam::000000000000:role/sqs-ingest-test-role',
	AWS_ROLE_SESSION_NAME => 'tap',
	AWS_ENDPOINT_URL_STS  => $aws->endpoint);

check_source(
	'container', $container,
	AWS_CONTAINER_CREDENTIALS_FULL_URI     => $aws->endpoint . '/container/creds',
	AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE =>
	  write_file("$dir/container-token", "$container\n"));

$node->stop;
done_testing();
