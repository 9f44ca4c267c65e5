
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A standby has nowhere to write: its workers do not start and nothing is
# taken from the queue. Once promoted, they start and consume.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu     = start_emulator();
my $url     = create_queue('standby-queue');
my $primary = worker_node('primary', workers => 0, queue_url => $url,
	conf => "wal_level = replica\nmax_wal_senders = 4\n");
$primary->restart;
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "sqs_ingest.workers = 1\n");
$standby->start;
$primary->wait_for_catchup($standby);

is(send_generated($url, 30, 901), 30, '30 events sent');

# give a worker every chance to start, were it going to
$standby->safe_psql('postgres', 'SELECT pg_sleep(3)');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'"),
	'0', 'no worker runs on the standby');
my ($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 30, 'nothing taken from the queue');

$standby->promote;
ok( $standby->poll_query_until('postgres',
		"SELECT count(*) = 30 FROM user_logins"),
	'once promoted, the worker stores the 30 events');
is($standby->safe_psql('postgres', 'SELECT count(DISTINCT user_id) FROM user_logins'),
	'30', 'each once');
ok(wait_for_depth($url, 0, 0, 0), 'the queue is empty');

done_testing();
