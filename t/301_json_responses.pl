
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Every byte of a response is untrusted: an endpoint that answers with
# empty, wrong-shaped or malformed documents makes a clean error naming what
# is wrong, never a crash and never a silently empty queue.

use strict;
use warnings;
use lib 't';

use Digest::MD5 qw(md5_hex);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use ScriptedEndpoint;
use SqsIngestTest;
use Test::More;

my $ep   = ScriptedEndpoint->start;
my $node = new_node('json_responses', queue_url => $ep->queue_url);

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $event = {
	user_id     => 'u-1',
	device_type => 'android',
	ip          => '10.0.0.1',
	device_id   => 'd-1',
	locale      => 'RU',
	app_version => '2.3.0',
	create_date => '2020-06-01'
};
my $body = encode_json($event);

# a ReceiveMessage document with the given messages (hash overrides)
sub messages
{
	my @m = map {
		my %m = (
			MessageId     => "m-$_->{n}",
			ReceiptHandle => "rh-$_->{n}",
			Body          => $body,
			MD5OfBody     => md5_hex($body),
			Attributes    => {
				SentTimestamp           => '1700000000000',
				ApproximateReceiveCount => '1'
			});
		%m = (%m, %{ $_->{set} // {} });
		delete $m{$_} for @{ $_->{drop} // [] };
		\%m;
	} @_;
	return encode_json({ Messages => \@m });
}

my $deleted_ok = encode_json({ Successful => [ { Id => '0' } ] });

sub no_signal_death
{
	my ($what) = @_;
	my $log = slurp_file($node->logfile);
	unlike($log, qr/terminated by signal/, "$what: no process killed by a signal");
	is(sql('SELECT 1'), '1', "$what: the server accepts connections");
}

### empty 200 bodies: an empty object, as the SDKs read it

$ep->answer('ReceiveMessage', 200, '');
is_deeply(
	drain($node),
	{ received => 0, inserted => 0, duplicates => 0, dead_lettered => 0 },
	'an empty 200 to ReceiveMessage is an empty queue');
ok($ep->count('ReceiveMessage') >= 1, 'the endpoint was asked');

$ep->answer('GetQueueAttributes', 200, '');
is(sql('SELECT visible IS NULL AND not_visible IS NULL FROM sqs_ingest_queue_depth()'),
	't', 'an empty 200 to GetQueueAttributes: counts unknown');
$ep->answer('GetQueueAttributes', 200,
	'{"Attributes":{"ApproximateNumberOfMessages":"7","ApproximateNumberOfMessagesNotVisible":"2"}}');
is(sql('SELECT visible, not_visible, delayed IS NULL FROM sqs_ingest_queue_depth()'),
	'7|2|t', 'queue depth decoded');

# stored, then the delete is answered with an empty body: reported, not a crash
$ep->answer('ReceiveMessage', 200, messages({ n => 1 }));
$ep->answer('DeleteMessageBatch', 200, '');
is_deeply(
	drain($node, 1),
	{ received => 1, inserted => 1, duplicates => 0, dead_lettered => 0 },
	'a message is stored although its delete is answered with an empty body');
like(slurp_file($node->logfile), qr/could not delete 1 stored messages? from SQS/,
	'the failed delete is logged');
no_signal_death('empty bodies');

### wrong shapes are protocol errors that name the problem

my @cases = (
	[ 'null document',       'null',                      qr/response is null, not a JSON object/ ],
	[ 'array document',      '[]',                        qr/response is an array, not a JSON object/ ],
	[ 'Messages a string',   '{"Messages":"none"}',       qr/"Messages" is a string, not an array/ ],
	[ 'Messages a number',   '{"Messages":0}',            qr/"Messages" is a number, not an array/ ],
	[ 'Messages null',       '{"Messages":null}',         qr/"Messages" is null, not an array/ ],
	[ 'message not object',  '{"Messages":[1]}',          qr/message 1 is a number, not an object/ ],
	[ 'no ReceiptHandle',    messages({ n => 1, drop => ['ReceiptHandle'] }), qr/message 1 has no ReceiptHandle/ ],
	[ 'no MessageId',        messages({ n => 1, drop => ['MessageId'] }),     qr/message 1 has no MessageId/ ],
	[ 'MessageId a number',  '{"Messages":[{"MessageId":5,"ReceiptHandle":"r"}]}', qr/MessageId of message 1 is a number, not a string/ ],
	[ 'more than asked for', messages(map { { n => $_ } } 1 .. 3), qr/more than the 1 messages asked for/ ],
	[ 'truncated',           substr(messages({ n => 1 }), 0, 40), qr/not valid JSON/ ],
	[ 'not JSON',            '<html>busy</html>',          qr/not valid JSON/ ],
	[ 'invalid UTF-8',       "{\"Messages\":[],\"x\":\"\xC3\x28\"}", qr/not valid UTF-8/ ],
	[ 'NUL byte',            "{\"Messages\":[]}\0",       qr/NUL byte/ ],
	[ 'deeply nested',       '{"x":' . ('[' x 5000) . (']' x 5000) . '}', qr/nests deeper than/ ],
	[ 'escaped NUL',         '{"Messages":[],"x":"\u0000"}', qr/not valid JSON/ ],
);
for my $case (@cases)
{
	my ($name, $doc, $expect) = @$case;
	$ep->answer('ReceiveMessage', 200, $doc);
	my $err = drain_error($node, 1);
	ok(defined $err, "$name: the drain fails");
	like($err // '', qr/unexpected response/, "$name: reported as an unexpected response");
	like($err // '', $expect, "$name: names what is wrong");
}
is(sql('SELECT count(*) FROM public.user_logins'), '1', 'nothing stored by a bad response');
no_signal_death('wrong shapes');

### non-string bodies are kept as their JSON text

$ep->answer('DeleteMessageBatch', 200, $deleted_ok);
$ep->answer('ReceiveMessage', 200,
	messages({ n => 2, set => { Body => { %$event, user_id => 'u-object' } }, drop => ['MD5OfBody'] }));
is(drain($node, 1)->{inserted}, 1, 'an object Body is mapped as the JSON it is');
is(sql("SELECT count(*) FROM public.user_logins WHERE user_id = 'u-object'"), '1',
	'its row is stored');

$ep->answer('ReceiveMessage', 200, messages({ n => 3, set => { Body => 42 }, drop => ['MD5OfBody'] }));
is(drain($node, 1)->{dead_lettered}, 1, 'a number Body is a dead letter');
is(sql("SELECT body FROM sqs_ingest.dead_letters WHERE message_id = 'm-3'"), '42',
	'with its text kept');

### a body that does not match its MD5 is a dead letter naming the mismatch

$ep->answer('ReceiveMessage', 200, messages({ n => 4, set => { MD5OfBody => md5_hex('other') } }));
is(drain($node, 1)->{dead_lettered}, 1, 'a body that does not match its MD5 is a dead letter');
is(sql("SELECT error FROM sqs_ingest.dead_letters WHERE message_id = 'm-4'"),
	'body does not match its MD5OfBody "' . md5_hex('other') . '": it was changed after SQS took it in',
	'its reason names the mismatch');

### one message's identifier too long fails that message only

$ep->answer('DeleteMessageBatch', 200, encode_json({ Successful => [ { Id => '0' }, { Id => '1' } ] }));
$ep->answer('ReceiveMessage', 200,
	messages({ n => 41, set => { MessageId => 'x' x 101 } }, { n => 42, set => { Body => encode_json({ %$event, user_id => 'u-42' }) }, drop => ['MD5OfBody'] }));
is_deeply(drain($node, 2), { received => 2, inserted => 1, duplicates => 0, dead_lettered => 1 },
	'a MessageId of 101 characters: its neighbour is stored, it is a dead letter');
is(sql(q{SELECT error FROM sqs_ingest.dead_letters WHERE message_id = repeat('x', 101)}),
	'MessageId is 101 characters long, more than the 100 of SQS\'s', 'saying why');
$ep->answer('DeleteMessageBatch', 200, $deleted_ok);
$ep->answer('ReceiveMessage', 200, '{}');
$ep->answer_once('ReceiveMessage', 200,
	messages({ n => 43, set => { ReceiptHandle => 'x' x 1025 } }, { n => 44, set => { Body => encode_json({ %$event, user_id => 'u-44' }) }, drop => ['MD5OfBody'] }));
is_deeply(drain($node, 2), { received => 1, inserted => 1, duplicates => 0, dead_lettered => 0 },
	'a ReceiptHandle of 1025 characters: its neighbour is stored, it is left out');
like(slurp_file($node->logfile), qr/SQS returned 1 message whose ReceiptHandle is longer than 1024 characters/,
	'it is logged');

### values the database cannot hold never reach it

$ep->answer('ReceiveMessage', 200, messages({
	n => 5,
	set => {
		Body       => encode_json({ %$event, user_id => 'u-range', create_date => undef }),
		Attributes => { SentTimestamp => '9223372036854775807', ApproximateReceiveCount => '9223372036854775807' } },
	drop => ['MD5OfBody'] }));
is(drain($node, 1)->{dead_lettered}, 1, 'out-of-range SentTimestamp and count: a dead letter');
like(sql("SELECT error FROM sqs_ingest.dead_letters WHERE message_id = 'm-5'"),
	# in the order of the Attributes object, which Perl's hash order varies
	qr/^(?=.*SentTimestamp 9223372036854775807 is outside the range)(?=.*ApproximateReceiveCount 9223372036854775807 is outside the range)/s,
	'its reason names both values');
is(sql("SELECT sent_at IS NULL AND coalesce(receive_count, -1) = -1 FROM sqs_ingest.dead_letters WHERE message_id = 'm-5'"),
	't', 'both stored as unknown, not wrapped');
is(sql("SELECT count(*) FROM public.user_logins WHERE create_date > '9999-12-31' OR create_date < '1970-01-01'"),
	'0', 'no out-of-range date stored');
no_signal_death('out-of-range values');

### a batch answer must account for every entry

$ep->answer('ReceiveMessage', 200, messages({ n => 6 }));
$ep->answer('DeleteMessageBatch', 200, '{"Successful":[{"Id":"7"}]}');
is(drain($node, 1)->{inserted}, 1, 'stored although the delete answer is wrong');
like(slurp_file($node->logfile), qr/entry Id "7" was not in the request/,
	'the wrong delete answer is logged with what is wrong');
no_signal_death('batch answers');

$ep->stop;
done_testing();
