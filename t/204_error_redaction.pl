
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# AWS error messages reach the log, the caller and sqs_ingest.stats
# clipped on a character boundary and redacted: an endpoint that answers
# with SignatureDoesNotMatch quoting the canonical request and the string
# to sign, or echoing the Authorization and X-Amz-Security-Token headers it
# received, gets none of them into any of those places.  The error code
# is the endpoint's text too: one with a line break and credentials in it
# is redacted the same way.

use strict;
use warnings;
use lib 't';

use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $TOKEN = 'token-SECRET-204-' . ('Zx9' x 30);

# An endpoint that answers every request with an AWS error quoting what it
# received, in turn: the canonical request, the Authorization header, a
# long message of two-byte characters, and an error code that echoes the
# credentials and forges a second log line.
my $listener = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Proto     => 'tcp',
	Listen    => 16,
	ReuseAddr => 1) or die "listen: $!";
my $port = $listener->sockport;
my $pid  = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0)
{
	my $n = 0;
	while (my $c = $listener->accept)
	{
		my $head = '';
		while ($head !~ /\r\n\r\n/)
		{
			my $got = sysread($c, $head, 4096, length $head);
			last unless $got;
		}
		my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
		my ($rest) = $head =~ /\r\n\r\n(.*)\z/s;
		my $body = $rest // '';
		while (defined $len && length($body) < $len)
		{
			my $got = sysread($c, $body, $len - length($body), length $body);
			last unless $got;
		}
		my ($auth)  = $head =~ /^authorization:\s*([^\r\n]*)/mi;
		my ($token) = $head =~ /^x-amz-security-token:\s*([^\r\n]*)/mi;
		my ($date)  = $head =~ /^x-amz-date:\s*([^\r\n]*)/mi;
		$auth //= ''; $token //= ''; $date //= '';
		# a drain picks the answer by its queue name, the worker takes turns
		my $variant = $body =~ /hostile-(\d)/ ? $1 : $n % 4;
		my $code_tail = '';
		my ($type, $message);
		if ($variant == 0)
		{
			$type = 'SignatureDoesNotMatch';
			$message =
			    "The request signature we calculated does not match the signature you provided. "
			  . "Check your AWS Secret Access Key and signing method.\n\n"
			  . "The Canonical String for this request should have been\n'POST\n/\n\n"
			  . "host:127.0.0.1:$port\nx-amz-date:$date\nx-amz-security-token:$token\n\n"
			  . "host;x-amz-date;x-amz-security-token\n'\n\n"
			  . "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n$date\n'";
		}
		elsif ($variant == 1)
		{
			$type = 'IncompleteSignature';
			$message = "Authorization header requires 'Credential' parameter. Authorization=$auth "
			  . "X-Amz-Security-Token=$token";
		}
		elsif ($variant == 2)
		{
			$type = 'InvalidParameterValue';
			$message = ("\x{e9}" x 600) . " $token";
		}
		else
		{
			$type = 'InvalidParameterValue';
			$code_tail = " SecretAccessKey=$TEST_SECRET_ACCESS_KEY $TEST_ACCESS_KEY_ID\n"
			  . "LOG:  FORGED-204 Authorization=$auth $token";
			$message = 'The code says more than it should.';
		}
		$n++;
		my $doc = JSON::PP->new->utf8->encode(
			{ __type => "com.amazon.coral.service#$type$code_tail", message => $message });
		print $c "HTTP/1.1 400 Bad Request\r\n"
		  . "Content-Type: application/x-amz-json-1.0\r\n"
		  . "Content-Length: " . length($doc) . "\r\nConnection: close\r\n\r\n$doc";
		close $c;
	}
	POSIX::_exit(0);
}
close $listener;
END { kill 'KILL', $pid if $pid; }

my $url  = "http://127.0.0.1:$port/000000000000/hostile";
my $node = worker_node(
	'redaction',
	queue_url => $url,
	workers   => 1,
	# every call fails: the worker spends its time between retries
	state     => 'backing off',
	settings  => {
		'sqs_ingest.session_token'  => $TOKEN,
		'sqs_ingest.retry_interval' => 1
	});
my $log_start = log_offset($node);

my @secrets = ($TEST_ACCESS_KEY_ID, $TEST_SECRET_ACCESS_KEY, $TOKEN, 'Zx9Zx9Zx9');
my @request_material = (
	'FORGED-204',           'x-amz-security-token', 'X-Amz-Security-Token', 'Canonical String', 'String-to-Sign',
	'Credential=', 'Signature=', 'SignedHeaders', 'AWS4-HMAC-SHA256', 'host:127');

sub found
{
	my ($text) = @_;
	return join(', ', grep { index($text, $_) >= 0 } @secrets, @request_material);
}

my @errors;
for my $variant (0 .. 3)
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET sqs_ingest.queue_url = '$url-$variant'; SELECT * FROM sqs_ingest_drain()");
	push @errors, $err;
}
like($errors[0], qr/does not match the signature you provided/,
	'SignatureDoesNotMatch: the useful first sentence reaches the caller');
like($errors[1], qr/requires 'Credential' parameter.*\[redacted\]/,
	'an echoed Authorization header is cut and marked as redacted');
like($errors[2], qr/\x{c3}\x{a9}\x{c3}\x{a9}\.\.\./,
	'a long message is clipped after whole characters');
unlike($errors[2], qr/\x{c3}\.\.\./, 'never in the middle of one');
like($errors[3], qr/AWS error code: InvalidParameterValue \[redacted\][^\n]*; HTTP status 400\./,
	'an error code is cut before the credentials it echoes and its line break');
is(found(join("\n", @errors)), '', 'no secret or request material in the errors the caller sees');

ok( $node->poll_query_until(
		'postgres', q{SELECT last_error IS NOT NULL AND sqs_errors >= 4
		FROM sqs_ingest.stats WHERE kind = 'worker'}),
	'the worker met all four answers');
my $stats = $node->safe_psql('postgres',
	q{SELECT last_error FROM sqs_ingest.stats WHERE kind = 'worker'});
is(found($stats), '', 'no secret or request material in sqs_ingest.stats.last_error');

my $log = log_since($node, $log_start);
like($log, qr/SQS ReceiveMessage failed/, 'the failures are logged');
is(found($log), '', 'no secret or request material in the server log');
ok(utf8::decode(my $copy = $log), 'the log is valid UTF-8');

done_testing();
