
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Proxies from the server's environment, as libcurl reads them: http_proxy
# for http endpoints, HTTPS_PROXY (a CONNECT tunnel) for https ones,
# NO_PROXY for the hosts to reach directly.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $N = 5;

my $certs = make_certificates(PostgreSQL::Test::Utils::tempdir());
my $emu   = start_emulator();
my $url   = create_queue('proxied');
my $tls   = start_hostile($emu, cert => $certs->{cert}, key => $certs->{key});
my $proxy = start_http_proxy();
my $node  = new_node('proxied', queue_url => $url);
my $seed  = 7110;

sub drains_all
{
	my ($what) = @_;
	is(send_generated($url, $N, ++$seed), $N, "$what: $N events sent");
	is_deeply(
		drain($node),
		{ received => $N, inserted => $N, duplicates => 0, dead_lettered => 0 },
		"$what: drained");
	is(rows_mismatch($node, generate_events($N, $seed)), 0, "$what: rows as sent");
	return;
}

restart_with_env($node, http_proxy => $proxy->endpoint);
$proxy->reset_stats;
drains_all('http_proxy');
my $stats = $proxy->stats;
cmp_ok($stats->{http}, '>=', 2, 'http_proxy: requests went through the proxy');
ok($stats->{targets}{ '127.0.0.1:' . $emu->port }, 'http_proxy: to the emulator');

restart_with_env($node, http_proxy => $proxy->endpoint, NO_PROXY => '127.0.0.1');
$proxy->reset_stats;
drains_all('NO_PROXY');
is_deeply($proxy->stats, { connect => 0, http => 0, targets => {} },
	'NO_PROXY: nothing went through the proxy');

set_gucs($node,
	{ 'sqs_ingest.endpoint' => $tls->endpoint, 'sqs_ingest.ca_file' => $certs->{ca} });
restart_with_env($node, HTTPS_PROXY => $proxy->endpoint);
$proxy->reset_stats;
drains_all('HTTPS_PROXY');
$stats = $proxy->stats;
cmp_ok($stats->{connect}, '>=', 1, 'HTTPS_PROXY: a CONNECT tunnel through the proxy');
ok($stats->{targets}{ '127.0.0.1:' . $tls->port }, 'HTTPS_PROXY: to the TLS endpoint');

$node->stop;
done_testing();
