
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The test harness itself: the SQS emulator checks SigV4 signatures as
# libcurl's CURLOPT_AWS_SIGV4 makes them (the curl command line uses the same
# code as the extension), answers like SQS, serves many long polls at once,
# and the fault proxy forwards signed requests intact and injects failures.
# No cluster needed.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;
use Time::HiRes qw(time);

my $emu = start_emulator();
my $url = create_queue('harness');

# One signed call with curl: returns (HTTP status, headers, body, exit code).
sub curl_sqs
{
	my (%o) = @_;
	my @cmd = (
		'curl', '-sS', '-D', '-', '--max-time', '30',
		'-H', 'Content-Type: application/x-amz-json-1.0',
		'-H', "X-Amz-Target: AmazonSQS.$o{action}",
		'-d', $o{body} // '{}');
	push @cmd, '--aws-sigv4', 'aws:amz:us-east-1:sqs', '--user',
	  ($o{key} // $TEST_ACCESS_KEY_ID) . ':' . ($o{secret} // $TEST_SECRET_ACCESS_KEY)
	  unless $o{unsigned};
	push @cmd, '-H', "X-Amz-Security-Token: $o{token}" if defined $o{token};
	push @cmd, ($o{endpoint} // $emu->endpoint) . '/';
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	my ($head, $body) = split /\r\n\r\n/, $out, 2;
	my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
	return ($status // 0, $head // '', $body // '', $rc);
}

sub error_type
{
	my ($body) = @_;
	my $doc = eval { decode_json($body) } // {};
	return $doc->{__type} // '';
}

### signatures

my ($st, $head, $body) = curl_sqs(action => 'ListQueues');
is($st, 200, 'curl --aws-sigv4 request accepted');
like($body, qr{\Q$url\E}, 'ListQueues lists the queue');

($st, $head, $body) = curl_sqs(action => 'ListQueues', secret => 'wrong');
is($st, 403, 'wrong secret: 403');
is(error_type($body), 'com.amazon.coral.service#SignatureDoesNotMatch',
	'wrong secret: SignatureDoesNotMatch');
like($body, qr/request signature we calculated does not match/,
	'wrong secret: AWS message');
like($head, qr/^x-amzn-query-error: SignatureDoesNotMatch;Sender/mi,
	'wrong secret: x-amzn-query-error header');

($st, $head, $body) = curl_sqs(action => 'ListQueues', key => 'AKIDNOBODY');
is($st, 403, 'unknown key: 403');
is(error_type($body), 'com.amazon.coral.service#InvalidClientTokenId',
	'unknown key: InvalidClientTokenId');

($st, $head, $body) = curl_sqs(action => 'ListQueues', unsigned => 1);
is($st, 403, 'unsigned: 403');
is(error_type($body),
	'com.amazon.coral.service#MissingAuthenticationTokenException',
	'unsigned: MissingAuthenticationTokenException');

($st, $head, $body) = curl_sqs(action => 'ListQueues', token => 'any-token');
is($st, 200, 'a session token header is accepted when none is required');

my $tok = start_emulator(session_token => 'session-123', default => 0);
($st, $head, $body) =
  curl_sqs(action => 'ListQueues', endpoint => $tok->endpoint);
is(error_type($body), 'com.amazon.coral.service#InvalidClientTokenId',
	'--session-token: a request without the token is refused');
($st, $head, $body) = curl_sqs(
	action   => 'ListQueues',
	endpoint => $tok->endpoint,
	token    => 'session-123');
is($st, 200, '--session-token: the signed token is accepted');
$tok->stop;

### answers like SQS

($st, $head, $body) = curl_sqs(
	action => 'ReceiveMessage',
	body   => encode_json({ QueueUrl => $url, WaitTimeSeconds => 0 }));
is($st,   200,  'empty receive: 200');
# local-aws-sqs sends no body where SQS sends {}; the front passes that on,
# and the extension reads an empty 200 as an empty document
is($body, '', 'empty receive: the emulator\'s empty body, passed on as it is');

($st, $head, $body) = curl_sqs(
	action => 'GetQueueAttributes',
	body   => encode_json({ QueueUrl => $emu->queue_url('missing'), AttributeNames => ['All'] }));
is(error_type($body), 'com.amazonaws.sqs#QueueDoesNotExist', 'unknown queue: QueueDoesNotExist');

is(send_generated($url, 5, 1), 5, '5 messages sent');
my $got = receive_messages($url, max => 2, visibility_timeout => 30, wait => 0);
is(scalar @$got, 2, '2 received');
ok($got->[0]{Attributes}{SentTimestamp}, 'SentTimestamp attribute present');
is_deeply([ queue_depth($url) ], [ 3, 2, 0 ],
	'depth counts in-flight messages apart from visible ones');

($st, $head, $body) = curl_sqs(
	action => 'ReceiveMessage',
	body   => encode_json({
		QueueUrl => $url, MaxNumberOfMessages => 1,
		MessageSystemAttributeNames => ['SentTimestamp'] }));
like($body, qr/"SentTimestamp"/, 'MessageSystemAttributeNames honoured');

sqs_tool('purge', $url);
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'purge empties the queue at once');

### long polls

my $t0 = time();
my $h = IPC::Run::start([ 'node', repo_root() . '/test/sqs-tool.js',
	'--endpoint', $emu->endpoint, 'receive', $url, '--wait', '10' ],
	'>', \my $lp_out, '2>', \my $lp_err);
sleep 1;
send_generated($url, 1, 2);
$h->finish;
my $elapsed = time() - $t0;
is(scalar @{ decode_json($lp_out) }, 1, 'long poll got the message');
cmp_ok($elapsed, '<', 8, 'long poll answered when the message came, not at the end of the wait');
sqs_tool('purge', $url);

# as many concurrent long polls as the extension may keep in flight
my $n = 80;
my $poll = encode_json({ QueueUrl => $url, WaitTimeSeconds => 2, MaxNumberOfMessages => 10 });
my @cmd = ('curl', '-s', '-Z', '--parallel-max', $n, '--max-time', '20',
	'--aws-sigv4', 'aws:amz:us-east-1:sqs',
	'--user', "$TEST_ACCESS_KEY_ID:$TEST_SECRET_ACCESS_KEY",
	'-H', 'Content-Type: application/x-amz-json-1.0',
	'-H', 'X-Amz-Target: AmazonSQS.ReceiveMessage',
	'-d', $poll, '-w', '%{http_code}\n',
	map { ('-o', '/dev/null', $emu->endpoint . '/') } 1 .. $n);
$t0 = time();
my ($out, $err) = ('', '');
IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
$elapsed = time() - $t0;
my @codes = split /\n/, $out;
is(scalar(grep { $_ eq '200' } @codes), $n, "$n concurrent long polls all answered 200");
cmp_ok($elapsed, '<', 10, "$n concurrent long polls served together (${\ sprintf '%.1f', $elapsed} s)");

### fault proxy

my $proxy = start_proxy($emu);
($st, $head, $body) = curl_sqs(action => 'ListQueues', endpoint => $proxy->endpoint);
is($st, 200, 'signed request passes the proxy intact (Host kept)');

$proxy->set_fault({ delayMs => 700 });
$t0 = time();
curl_sqs(action => 'ListQueues', endpoint => $proxy->endpoint);
cmp_ok(time() - $t0, '>=', 0.7, 'delayMs delays the request');

$proxy->set_fault({ receiveFailure => 'http500', receiveFailureCount => 1 });
($st, $head, $body) = curl_sqs(
	action => 'ReceiveMessage', endpoint => $proxy->endpoint,
	body => encode_json({ QueueUrl => $url }));
is($st, 500, 'receiveFailure http500: 500');
is(error_type($body), 'InternalError', 'receiveFailure http500: InternalError');
($st) = curl_sqs(
	action => 'ReceiveMessage', endpoint => $proxy->endpoint,
	body => encode_json({ QueueUrl => $url }));
is($st, 200, 'receiveFailureCount: only the first call fails');

send_generated($url, 2, 3);
$got = receive_messages($url, max => 2, visibility_timeout => 30, wait => 1);
my $del = encode_json({
	QueueUrl => $url,
	Entries  => [ map { { Id => "e$_", ReceiptHandle => $got->[$_]{ReceiptHandle} } } 0 .. $#$got ] });

$proxy->set_fault({ deleteFailure => 'failed-entries' });
($st, $head, $body) = curl_sqs(action => 'DeleteMessageBatch', endpoint => $proxy->endpoint, body => $del);
my $doc = decode_json($body);
is($st, 200, 'failed-entries: 200');
is_deeply([ sort map { $_->{Id} } @{ $doc->{Failed} } ], [ 'e0', 'e1' ], 'failed-entries: every entry failed');
is_deeply([ queue_depth($url) ], [ 0, 2, 0 ], 'failed-entries: nothing deleted');

$proxy->set_fault({ deleteFailure => 'reset' });
my $rc;
($st, $head, $body, $rc) = curl_sqs(action => 'DeleteMessageBatch', endpoint => $proxy->endpoint, body => $del);
isnt($rc, 0, 'reset: the connection is cut');

$proxy->clear_faults;
($st, $head, $body) = curl_sqs(action => 'DeleteMessageBatch', endpoint => $proxy->endpoint, body => $del);
is(scalar @{ decode_json($body)->{Successful} }, 2, 'faults cleared: delete goes through');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'queue empty');

my $stats = $proxy->stats;
is($stats->{DeleteMessageBatch}{failed},    2, 'stats: failed deletes counted');
is($stats->{DeleteMessageBatch}{forwarded}, 1, 'stats: forwarded deletes counted');
is($stats->{ReceiveMessage}{failed},        1, 'stats: failed receives counted');

### restart on the same port

$emu->stop;
($st, $head, $body, $rc) = curl_sqs(action => 'ListQueues');
isnt($rc, 0, 'emulator stopped: connection refused');
$emu->start;
($st) = curl_sqs(action => 'ListQueues');
is($st, 200, 'emulator restarted on the same port');

done_testing();
