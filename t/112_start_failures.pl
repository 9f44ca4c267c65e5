
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A worker that cannot start: it frees what each attempt allocated (its
# memory contexts stay the same size however often it fails), backs off
# exponentially instead of asking the credential services once a second,
# and checks everything a store needs before it receives anything, so that
# the receive counts of the queue's messages do not climb towards its
# dead-letter queue.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(time usleep);

my $emu   = start_emulator();
my $url   = create_queue('start-failures');
my $proxy = start_proxy($emu);
my $aws   = start_standins(web_identity_token => 'the-token-sts-accepts');
my $dir   = PostgreSQL::Test::Utils::tempdir;

# a token STS refuses: every attempt fails, after one call to STS
my $token_file = "$dir/web-identity-token";
open my $fh, '>', $token_file or die "cannot write $token_file: $!";
print $fh "a-token-sts-refuses\n";
close $fh;
my %webid = (
	AWS_WEB_IDENTITY_TOKEN_FILE => $token_file,
	AWS_ROLE_ARN          => 'arn:aws:iam::000000000000:role/sqs-ingest-test-role',
	AWS_ROLE_SESSION_NAME => 'tap',
	AWS_ENDPOINT_URL_STS  => $aws->endpoint);

my $node = worker_node(
	'startfail',
	queue_url => $url,
	workers   => 0,
	settings  => { 'sqs_ingest.endpoint' => $proxy->endpoint });
$node->append_conf('postgresql.conf', "sqs_ingest.workers = 1\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub receives { return $proxy->stats->{ReceiveMessage}{forwarded} // 0; }

sub sts_calls { return $aws->stats->{sts_rejected}; }

# the total of the worker's memory contexts, as it logs them
sub context_bytes
{
	my ($pid) = @_;
	my $offset = log_offset($node);
	sql("SELECT pg_log_backend_memory_contexts($pid)");
	$node->wait_for_log(qr/Grand total: \d+ bytes/, $offset)
	  or die "no memory context report from $pid";
	log_since($node, $offset) =~ /Grand total: (\d+) bytes/;
	return $1;
}

# the growth of the worker's memory over $seconds of failed attempts,
# after a few attempts to warm its caches up; and how many attempts
sub growth_over
{
	my ($seconds) = @_;
	my $pid = worker_pid($node, 0);
	sleep 5;
	my $retries = worker_stat($node, 'retries');
	my $before  = context_bytes($pid);
	sleep $seconds;
	my $after = context_bytes($pid);
	is(worker_pid($node, 0), $pid, 'the same worker process all along');
	return ($after - $before, worker_stat($node, 'retries') - $retries);
}

### no credentials: memory, then the rate of calls to STS

set_gucs(
	$node,
	{
		'sqs_ingest.access_key_id'     => undef,
		'sqs_ingest.secret_access_key' => undef,
		'sqs_ingest.retry_interval'    => 1,
	});
restart_with_env($node, %webid);
ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND last_error LIKE 'could not get AWS credentials from web identity%'
FROM sqs_ingest.stats WHERE worker = 0}),
	'without credentials the worker backs off, saying why');
my ($growth, $attempts) = growth_over(30);
cmp_ok($attempts, '>=', 20,
	"retrying about every second (retry_interval = 1): $attempts attempts in 30 s");
cmp_ok($growth, '<', 4096,
	"$attempts failed starts without credentials: memory grew by $growth bytes");

# with retry_interval at its default, from a fresh start
set_gucs($node, { 'sqs_ingest.retry_interval' => undef });
my $calls_before = sts_calls();
restart_with_env($node, %webid);
my $t0 = time();
sleep 30;
my $calls = sts_calls() - $calls_before;
my $elapsed = time() - $t0;
cmp_ok($calls, '<=', 8,
	sprintf('%d calls to STS in %.0f s: exponential backoff, not one a second',
		$calls, $elapsed));
cmp_ok($calls, '>=', 3, 'but it does keep trying');
like(slurp_file($node->logfile),
	qr/sqs_ingest worker 0 will retry with exponential backoff, at most every 60 s/,
	'the log says how it retries');
is(receives(), 0, 'nothing was received');

### the target table missing

set_gucs(
	$node,
	{
		'sqs_ingest.access_key_id'     => $TEST_ACCESS_KEY_ID,
		'sqs_ingest.secret_access_key' => $TEST_SECRET_ACCESS_KEY,
		'sqs_ingest.retry_interval'    => 1,
	});
sql('DROP TABLE public.user_logins');
$node->restart;
ok( $node->poll_query_until(
		'postgres', q{
SELECT state = 'backing off' AND last_error LIKE '%user_logins%does not exist%'
FROM sqs_ingest.stats WHERE worker = 0}),
	'without its table the worker backs off');
($growth, $attempts) = growth_over(30);
cmp_ok($attempts, '>=', 20, "$attempts attempts in 30 s");
cmp_ok($growth, '<', 4096,
	"$attempts failed starts without the table: memory grew by $growth bytes");

### the extension not created in sqs_ingest.database

sql('CREATE DATABASE elsewhere');
$node->safe_psql('elsewhere', $TARGET_TABLE_DDL);
set_gucs($node, { 'sqs_ingest.database' => 'elsewhere' });
my $offset = log_offset($node);
$node->restart;
ok( $node->wait_for_log(
		qr/extension "sqs_ingest" does not exist in database "elsewhere"/, $offset),
	'a worker in a database without the extension says so');
is(send_generated($url, 5, 110), 5, '5 events sent');
sleep 5;
is(receives(), 0, 'and receives nothing');
is_deeply([ queue_depth($url) ], [ 5, 0, 0 ], 'the 5 messages wait in SQS, never received');
set_gucs($node, { 'sqs_ingest.database' => undef });
sql($TARGET_TABLE_DDL);

### the ledger's grants missing

sql(q{
CREATE ROLE ingest_worker LOGIN;
GRANT USAGE ON SCHEMA sqs_ingest TO ingest_worker;
GRANT SELECT, DELETE ON sqs_ingest.processed TO ingest_worker;
GRANT SELECT (message_id), INSERT ON sqs_ingest.dead_letters TO ingest_worker;
GRANT INSERT ON public.user_logins TO ingest_worker;});
set_gucs($node, { 'sqs_ingest.role' => 'ingest_worker' });
$offset = log_offset($node);
$node->restart;
ok( $node->wait_for_log(qr/permission denied for table sqs_ingest\.processed/, $offset),
	'a worker whose role may not write the ledger says so');
like(log_since($node, $offset),
	qr/HINT:  GRANT INSERT, SELECT ON sqs_ingest\.processed TO ingest_worker;/,
	'with the grant that fixes it');
my $err = drain_error($node);
like($err, qr/permission denied for table sqs_ingest\.processed/,
	'a drain fails with the same error');
sleep 3;
is(receives(), 0, 'neither the worker nor the drain received anything');
is_deeply([ queue_depth($url) ], [ 5, 0, 0 ], 'the 5 messages still wait in SQS');

sql('GRANT INSERT ON sqs_ingest.processed TO ingest_worker');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 5 FROM user_logins'),
	'once granted, the worker stores them');
is( sql(q{SELECT (SELECT count(*) FROM sqs_ingest.processed) || ' '
                || (SELECT count(*) FROM sqs_ingest.dead_letters)}),
	'5 0', 'each once, none a dead letter');
cmp_ok(receives(), '>', 0, 'the receives were counted where they went');

$node->stop;
done_testing();
