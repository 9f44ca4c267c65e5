
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# HTTPS against a local TLS endpoint: a certificate that the CA bundle
# (sqs_ingest.ca_file, or the system's) does not vouch for is refused with
# an error that says so and points at ca_file; one it vouches for is
# accepted and messages flow. No setting turns verification off.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N = 10;

# a directory of this file's own: other files write certificates too
my $dir   = PostgreSQL::Test::Utils::tempdir();
my $certs = make_certificates($dir);
my $emu   = start_emulator();
my $url   = create_queue('tls');
my $tls   = start_hostile($emu, cert => $certs->{cert}, key => $certs->{key});
like($tls->endpoint, qr{^https://127\.0\.0\.1:\d+$}, 'a TLS front for the emulator');

my $node = new_node(
	'tls',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'        => $tls->endpoint,
		'sqs_ingest.connect_timeout' => 2000,
		'sqs_ingest.request_timeout' => 5000,
	});
is(send_generated($url, $N, 7100), $N, "$N events sent");

sub refused
{
	my ($what, $re_msg) = @_;
	my $err = drain_error($node);
	note("$what: " . ($err // '(no error)'));
	ok(defined $err, "$what: the drain fails");
	like($err // '', $re_msg, "$what: the error says why");
	like($err // '', qr/HINT:  .*sqs_ingest\.ca_file/, "$what: the hint names sqs_ingest.ca_file");
	is_deeply([ queue_depth($url) ], [ $N, 0, 0 ], "$what: nothing received");
}

# the system's CAs do not know the test CA
refused('system CA bundle', qr/ERROR:  .*TLS verification of the endpoint failed/);

# nor does another CA
set_gucs($node, { 'sqs_ingest.ca_file' => $certs->{other_ca} });
refused('a CA bundle that did not issue the certificate',
	qr/ERROR:  .*TLS verification of the endpoint failed/);

# a bundle that is not there is a setting to fix
set_gucs($node, { 'sqs_ingest.ca_file' => "$dir/no-such-ca.pem" });
refused('a CA bundle that does not exist', qr/ERROR:  could not read sqs_ingest\.ca_file/);

# the right CA, but the endpoint named by a host name the certificate does
# not carry: host names are verified too
set_gucs($node,
	{
		'sqs_ingest.ca_file'  => $certs->{ca},
		'sqs_ingest.endpoint' => 'https://localhost:' . $tls->port,
	});
refused('a host name the certificate does not name',
	qr/ERROR:  .*TLS verification of the endpoint failed/);

set_gucs($node, { 'sqs_ingest.endpoint' => $tls->endpoint });
is_deeply(
	drain($node),
	{ received => $N, inserted => $N, duplicates => 0, dead_lettered => 0 },
	'with the CA that issued the certificate, messages flow');
is(rows_mismatch($node, generate_events($N, 7100)), 0, 'rows as sent');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'queue empty');

# The workers use the same setting.
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'sqs_ingest'\nsqs_ingest.workers = 1\n");
$node->restart;
is(send_generated($url, $N, 7101), $N, "$N more events sent");
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) FROM public.user_logins', 2 * $N),
	'the worker ingests over HTTPS');
is(rows_mismatch($node, generate_events($N, 7101)), 0, 'rows as sent');

$node->stop;
done_testing();
