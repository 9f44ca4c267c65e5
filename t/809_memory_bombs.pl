
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A worker's memory is bounded by its configuration, not by what producers
# send.  Explode bombs (messages of thousands of records, of a hundred
# thousand array elements) and a backlog of large bodies go through
# pipeline workers and a drain, each in a process of its own whose peak
# resident memory (VmHWM) is read from /proc: each stays far below what
# mapping a whole batch at once, or holding a batch of large bodies, takes.
# A message with more elements than max_rows_per_message is a dead letter
# saying so; what a pipeline's owner may set that costs memory is capped by
# superuser settings, refused above the cap and clamped to it when a
# superuser lowers it later.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use List::Util qw(max);
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu = start_emulator();
my $records_url  = create_queue('records');
my $elements_url = create_queue('elements');
my $bodies_url   = create_queue('bodies');
my $small_url    = create_queue('small');
my $drained_url  = create_queue('drained');

# no settings-based workers: only the pipelines run, one worker each
my $node = worker_node(
	'memory_bombs',
	workers  => 0,
	conf     => "shared_buffers = 16MB\n",
	settings => {
		'sqs_ingest.endpoint'             => $emu->endpoint,
		'sqs_ingest.retry_interval'       => 2,
		'sqs_ingest.max_rows_per_message' => 5000,
		'sqs_ingest.max_batch_bytes'      => '1MB',
		# batches are cut by count or bytes, not by time
		'sqs_ingest.batch_timeout' => '5s',
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the peak resident memory of a process, in MB, or 0 if it is gone
sub peak_mb
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return 0;
	my $status = do { local $/; <$fh> };
	return $status =~ /^VmHWM:\s+(\d+) kB/m ? int($1 / 1024) : 0;
}

# The peak is under the bound.  An AddressSanitizer build
# (scripts/sanitize.sh) pads every allocation and holds freed memory back:
# its memory is not the worker's.
sub peak_under
{
	my ($what, $peak, $bound_mb) = @_;
  SKIP:
	{
		skip 'memory is the sanitizer\'s under AddressSanitizer', 1
		  if $ENV{SQS_INGEST_SERVER_PRELOAD};
		cmp_ok($peak, '<', $bound_mb, "$what: peak memory under $bound_mb MB ($peak MB)");
	}
	return;
}

# the peak memory of a pipeline's worker
sub worker_peak
{
	my ($pipeline) = @_;
	return peak_mb(sql("SELECT pid FROM sqs_ingest.stats WHERE pipeline = '$pipeline'"));
}

sub wait_for
{
	my ($query, $what) = @_;
	ok($node->poll_query_until('postgres', $query), $what);
}

my $file_seq = 0;

# send the given bodies, one message a line
sub send_bodies
{
	my ($url, @bodies) = @_;
	my $file = "$PostgreSQL::Test::Utils::tmp_check/bodies_" . ++$file_seq . '.jsonl';
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh "$_\n" for @bodies;
	close $fh;
	return send_lines($url, $file);
}

sql(q{
CREATE TABLE records (id text, kind text, seq int);
CREATE TABLE elements (n int);
CREATE TABLE bodies (id text, pad text);
CREATE ROLE pipeline_owner;
GRANT USAGE ON SCHEMA sqs_ingest TO pipeline_owner;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb)
    TO pipeline_owner;
GRANT INSERT ON records, elements, bodies TO pipeline_owner;
});
sql("SELECT sqs_ingest_grant_queue('$small_url', 'pipeline_owner')");

### what a pipeline's owner may set is capped

my $create = q{SET ROLE pipeline_owner;
SELECT sqs_ingest_create_pipeline('%s', '%s', 'records',
    '{"id": {"path": "$.id"}, "kind": {"path": "$.k"}, "seq": {"path": "$.s"}}',
    '%s')};
for my $case (
	[ '{"batch_size": 1001}',            'batch_size',           'sqs_ingest.max_pipeline_batch_size allows at most 1000' ],
	[ '{"max_inflight": 33}',            'max_inflight',         'sqs_ingest.max_pipeline_inflight allows at most 32' ],
	[ '{"explode": "$.Records[*]", "max_rows_per_message": 5001}',
		'max_rows_per_message', 'sqs_ingest.max_rows_per_message allows at most 5000' ])
{
	my ($options, $key, $detail) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres', sprintf($create, 'greedy', $small_url, $options));
	isnt($ret, 0, "$key above its cap: refused");
	like($err, qr/pipeline option "$key" is above its cap/, "$key: the error names the option");
	like($err, qr/\Q$detail\E/, "$key: and the setting that caps it");
}
is(sql(q{SELECT count(*) FROM sqs_ingest.pipelines}), '0', 'no pipeline was created');

sql(sprintf($create, 'small', $small_url,
		'{"explode": "$.Records[*]", "max_rows_per_message": 3, "batch_size": 1000}'));
my ($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE pipeline_owner; SELECT sqs_ingest_alter_pipeline('small', options => '{"batch_size": 5000}')});
like($err, qr/pipeline option "batch_size" is above its cap/, 'altering an option above its cap: refused');

### the pipeline's own row cap

sub records_body
{
	my ($n, $tag) = @_;
	return '{"Records":[' . join(',', map { qq({"id":"$tag-$_","k":"x","s":$_}) } 1 .. $n) . ']}';
}
is(send_bodies($small_url, records_body(3, 'three'), records_body(4, 'four')), 2, 'two small messages sent');
wait_for(q{SELECT count(*) = 3 FROM records WHERE id LIKE 'three-%'}, 'three records: three rows');
wait_for(q{SELECT count(*) = 1 FROM sqs_ingest.dead_letters WHERE pipeline = 'small'},
	'four records: a dead letter');
like(sql(q{SELECT error FROM sqs_ingest.dead_letters WHERE pipeline = 'small'}),
	qr/^\$\.Records\[\*\] finds more than 3 elements in the body, the most rows one message may make \(max_rows_per_message\)$/,
	'the dead letter names the cap');
is(sql(q{SELECT count(*) FROM records WHERE id LIKE 'four-%'}), '0', 'and none of its rows is stored');

### a cap lowered later is obeyed at the next reload

set_gucs($node, { 'sqs_ingest.max_pipeline_batch_size' => 10 });
($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE pipeline_owner; SELECT sqs_ingest_alter_pipeline('small', options => '{"workers": 1}')});
is($ret, 0, 'a lowered cap does not keep the owner from changing other options');
my @small = map { records_body(1, "clamped$_") } 1 .. 100;
is(send_bodies($small_url, @small), 100, '100 one-record messages sent');
wait_for(q{SELECT count(*) = 100 FROM records WHERE id LIKE 'clamped%'}, 'all stored');
my $batches = sql(q{SELECT count(DISTINCT xmin::text) FROM records WHERE id LIKE 'clamped%'});
# a batch is stored once it has 10, and a receive brings up to 10 more
cmp_ok($batches, '>=', 6, "stored in batches of fewer than 20 ($batches transactions)");
set_gucs($node, { 'sqs_ingest.max_pipeline_batch_size' => undef });
sql(q{SELECT sqs_ingest_drop_pipeline('small')});

### 20 messages of 5,000 records: 100,000 rows

sql(q{SELECT sqs_ingest_create_pipeline('records', '} . $records_url . q{', 'records',
    '{"id": {"path": "$.id"}, "kind": {"path": "$.k"}, "seq": {"path": "$.s"}}',
    '{"explode": "$.Records[*]", "max_rows_per_message": 5000}')});
is(send_bodies($records_url, map { records_body(5000, "r$_") } 1 .. 20), 20, '20 messages of 5,000 records sent');
wait_for(q{SELECT count(*) = 100000 FROM records WHERE id LIKE 'r%'}, '100,000 rows stored');
# 625 MB before each message was mapped in memory of its own
peak_under('records worker', worker_peak('records'), 100);

### the same through sqs_ingest_drain(): its worker sampled while it runs

sql(q{SELECT sqs_ingest_create_pipeline('drained', '} . $drained_url . q{', 'records',
    '{"id": {"path": "$.id"}, "kind": {"path": "$.k"}, "seq": {"path": "$.s"}}',
    '{"explode": "$.Records[*]", "max_rows_per_message": 5000, "workers": 0}')});
is(send_bodies($drained_url, map { records_body(5000, "d$_") } 1 .. 20), 20, '20 more messages of 5,000 records sent');
my ($stdout, $stderr) = ('', '');
my $drain = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'),
	  '-c', q{SELECT inserted FROM sqs_ingest_drain('drained')} ],
	'>', \$stdout, '2>', \$stderr);
my $drain_peak = 0;
while ($drain->pumpable)
{
	my $pid = sql(q{SELECT pid FROM sqs_ingest.stats WHERE kind = 'drain'});
	$drain_peak = max($drain_peak, peak_mb($pid)) if $pid;
	$drain->pump_nb;
	usleep(20_000);
}
$drain->finish;
is($stdout, "100000\n", 'the drain stored 100,000 rows');
cmp_ok($drain_peak, '>', 0, 'its worker was sampled');
# 487 MB before
peak_under('drain worker', $drain_peak, 100);

### 4 messages of 125,000 array elements: dead letters, counted before mapping

sql(q{SELECT sqs_ingest_create_pipeline('elements', '} . $elements_url . q{', 'elements',
    '{"n": {"path": "$"}}', '{"explode": "$.Records[*]"}')});
my $elements = '{"Records":[' . join(',', (7) x 125000) . ']}';
is(send_bodies($elements_url, ($elements) x 4), 4, '4 messages of 125,000 elements sent');
wait_for(q{SELECT count(*) = 4 FROM sqs_ingest.dead_letters WHERE pipeline = 'elements'},
	'each is a dead letter');
is(sql(q{SELECT count(*) FROM sqs_ingest.dead_letters WHERE pipeline = 'elements'
         AND error LIKE '$.Records[*] finds more than 5000 elements in the body, %(max_rows_per_message)'}),
	'4', 'naming the cap of sqs_ingest.max_rows_per_message');
is(sql(q{SELECT count(*) FROM elements}), '0', 'no row of them');
ok(wait_for_depth($elements_url, 0, 0, 0), 'and they are deleted from SQS');
# 1.4 GB before the row cap
peak_under('elements worker', worker_peak('elements'), 100);

### 200 bodies of 200 kB: batches cut by sqs_ingest.max_batch_bytes (1 MB)

sql(q{SELECT sqs_ingest_create_pipeline('bodies', '} . $bodies_url . q{', 'bodies',
    '{"id": {"path": "$.id"}}')});
my $pad = 'x' x (200 * 1024);
is(send_bodies($bodies_url, map { qq({"id":"b$_","pad":"$pad"}) } 1 .. 200), 200,
	'200 bodies of 200 kB sent');
wait_for(q{SELECT count(*) = 200 FROM bodies}, 'all stored');
$batches = sql(q{SELECT count(DISTINCT xmin::text) FROM bodies});
cmp_ok($batches, '>=', 10, "in many transactions ($batches), not one batch of 40 MB");
# 97 MB before batches were cut by bytes
peak_under('bodies worker', worker_peak('bodies'), 70);

$node->stop;
done_testing();
