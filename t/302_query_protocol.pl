
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The Query protocol (form-encoded requests, XML answers), as the take-home's
# LocalStack 0.14 speaks it: the real sample end to end, signatures checked;
# protocol = auto switching once against an endpoint that speaks only Query
# and staying on JSON against one that speaks both; hostile XML refused.

use strict;
use warnings;
use lib 't';

use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use ScriptedEndpoint;
use SqsIngestTest;
use Test::More;

my $SWITCH = qr/does not speak the AWS JSON protocol: switching to the Query protocol/;

my $events = sample_events();
my @good = grep { exists $_->{user_id} } @$events;

my $emu  = start_emulator();
my $url  = create_queue('query-queue');
my $node = new_node('query', queue_url => $url,
	settings => { 'sqs_ingest.protocol' => 'query' });

sub sql { return $node->safe_psql('postgres', $_[0]); }

### the real sample through the Query protocol

is(send_json_array($url, sample_file()), 100, 'sample sent to the queue');
is_deeply(
	drain($node),
	{ received => 100, inserted => 99, duplicates => 0, dead_lettered => 1 },
	'query: 100 received, 99 inserted, 1 dead letter');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'query: every message deleted');
is(rows_mismatch($node, \@good), 0, 'query: rows equal the events');
is(sql("SELECT count(*) FROM sqs_ingest.dead_letters WHERE sent_at IS NOT NULL AND receive_count = 1"),
	'1', 'query: the dead letter has its SentTimestamp and receive count');
is(sql('SELECT visible, not_visible FROM sqs_ingest_queue_depth()'), '0|0',
	'query: GetQueueAttributes decoded');

# signatures of form-encoded requests are checked
set_gucs($node, { 'sqs_ingest.secret_access_key' => 'not-the-secret' });
like(drain_error($node) // '', qr/signature/i, 'query: a bad signature is refused');
set_gucs($node, { 'sqs_ingest.secret_access_key' => $TEST_SECRET_ACCESS_KEY });

# errors in XML are read: code and message
set_gucs($node, { 'sqs_ingest.queue_url' => $emu->queue_url('no-such-queue') });
my $err = drain_error($node) // '';
like($err, qr/NonExistentQueue/, 'query: the XML error code is reported');
like($err, qr/queue does not exist/, 'query: with its message');
set_gucs($node, { 'sqs_ingest.queue_url' => $url });

### auto against an endpoint that speaks both: JSON, no switch

set_gucs($node, { 'sqs_ingest.protocol' => 'auto' });
is(send_json_array($url, sample_file()), 100, 'sample sent again');
sql('TRUNCATE sqs_ingest.processed, public.user_logins, sqs_ingest.dead_letters');
is(drain($node)->{inserted}, 99, 'auto: the sample stored');
unlike(slurp_file($node->logfile), $SWITCH, 'auto: the JSON endpoint keeps JSON');

### auto against an endpoint that speaks only Query: switch once

my $ep = ScriptedEndpoint->start;
$ep->answer_json_protocol(400,
	'<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>'
	  . '<Message>The action or operation requested is invalid.</Message></Error></ErrorResponse>',
	'text/xml');
my $body = '{"user_id":"q-1","device_type":"ios","ip":"10.1.1.1","device_id":"d","locale":"FR","app_version":"1.2.3","create_date":"2021-01-02"}';
(my $xml_body = $body) =~ s/"/&quot;/g;
sub receive_xml
{
	my @messages = @_;
	return '<?xml version="1.0"?><ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
	  . '<ReceiveMessageResult>' . join('', @messages) . '</ReceiveMessageResult>'
	  . '<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ReceiveMessageResponse>';
}
sub message_xml
{
	my ($n, %o) = @_;
	return "<Message><MessageId>q-$n</MessageId><ReceiptHandle>rh-$n</ReceiptHandle>"
	  . '<MD5OfBody>' . ($o{md5} // md5_hex($body)) . '</MD5OfBody>'
	  . '<Body>' . ($o{body} // $xml_body) . '</Body>'
	  . '<Attribute><Name>SentTimestamp</Name><Value>1700000000000</Value></Attribute>'
	  . '<Attribute><Name>ApproximateReceiveCount</Name><Value>2</Value></Attribute>'
	  . "</Message>";
}
$ep->answer('ReceiveMessage', 200, receive_xml(message_xml(1)), 'text/xml');
$ep->answer('DeleteMessageBatch', 200,
	'<DeleteMessageBatchResponse><DeleteMessageBatchResult><DeleteMessageBatchResultEntry><Id>0</Id>'
	  . '</DeleteMessageBatchResultEntry></DeleteMessageBatchResult></DeleteMessageBatchResponse>',
	'text/xml');
set_gucs($node, { 'sqs_ingest.queue_url' => $ep->queue_url });
my $log_at = -s $node->logfile;
is_deeply(
	drain($node, 1),
	{ received => 1, inserted => 1, duplicates => 0, dead_lettered => 0 },
	'auto: a Query-only endpoint is read after the switch');
is(sql("SELECT locale FROM public.user_logins WHERE user_id = 'q-1'"), 'FR',
	'auto: the XML-escaped body decoded');
my $log = substr(slurp_file($node->logfile), $log_at);
is(scalar(() = $log =~ /$SWITCH/g), 1, 'auto: the switch is logged once');
is($ep->count('json'), 1, 'auto: one JSON request before the switch');
ok($ep->count('DeleteMessageBatch') >= 1, 'auto: the delete went out in the Query protocol');
like($ep->last_request('DeleteMessageBatch') // '',
	qr/Action=DeleteMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2F.*DeleteMessageBatchRequestEntry\.1\.ReceiptHandle=rh-1/,
	'auto: form-encoded request');

### auto: a backend's drains remember a Query-only endpoint and queue

# each drain runs in a new worker process: the calling backend remembers
$log_at = -s $node->logfile;
my $json_before = $ep->count('json');
is( $node->safe_psql('postgres',
		'SELECT received FROM sqs_ingest_drain(1); '
		  . 'SELECT received FROM sqs_ingest_drain(1); '
		  . 'SELECT received FROM sqs_ingest_drain(1);'),
	"1\n1\n1", 'auto: three drains in one session');
is($ep->count('json') - $json_before, 1, 'auto: one session probes once for its drains');
$log = substr(slurp_file($node->logfile), $log_at);
is(scalar(() = $log =~ /$SWITCH/g), 1, 'auto: and switches once');

# another queue URL (or endpoint) in the same session: probed anew
$json_before = $ep->count('json');
is( $node->safe_psql('postgres',
		'SELECT received FROM sqs_ingest_drain(1); '
		  . "SET sqs_ingest.queue_url = '" . $ep->queue_url . "-other'; "
		  . 'SELECT received FROM sqs_ingest_drain(1); '
		  . 'SELECT received FROM sqs_ingest_drain(1);'),
	"1\n1\n1", 'auto: three drains, the last two of another queue');
is($ep->count('json') - $json_before, 2, 'auto: a drain of another queue probes anew');

### hostile XML is refused with a clean error

set_gucs($node, { 'sqs_ingest.protocol' => 'query' });
my $lol = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
  . join('', map { my $p = $_ - 1; "<!ENTITY lol$_ \"" . ("&lol$p;" x 10) . '">' } 1 .. 9)
  . ']><ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>&lol9;</MessageId>'
  . '</Message></ReceiveMessageResult></ReceiveMessageResponse>';
$lol =~ s/&lol0;/&lol;/g;
my @cases = (
	[ 'entity expansion bomb', $lol, qr/declares a DTD or entities/ ],
	[ 'external entity',
		'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
		  . '<ReceiveMessageResponse><ReceiveMessageResult>&x;</ReceiveMessageResult></ReceiveMessageResponse>',
		qr/declares a DTD or entities/ ],
	[ 'external DTD',
		'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:1/x.dtd"><ReceiveMessageResponse/>',
		qr/declares a DTD or entities/ ],
	[ 'undeclared entity', receive_xml('<Message><MessageId>&x;</MessageId></Message>'),
		qr/not well-formed XML/ ],
	[ 'deep nesting', '<ReceiveMessageResponse>' . ('<a>' x 100) . ('</a>' x 100) . '</ReceiveMessageResponse>',
		qr/nests deeper than/ ],
	[ 'very deep nesting', '<ReceiveMessageResponse>' . ('<a>' x 100000) . ('</a>' x 100000) . '</ReceiveMessageResponse>',
		qr/not well-formed XML|nests deeper than/ ],
	[ 'truncated', substr(receive_xml(message_xml(2)), 0, 120), qr/not well-formed XML/ ],
	[ 'JSON instead of XML', '{"Messages":[]}', qr/not well-formed XML/ ],
	[ 'wrong root', '<DeleteMessageBatchResponse/>', qr/is <DeleteMessageBatchResponse>, not <ReceiveMessageResponse>/ ],
	[ 'no ReceiptHandle', receive_xml('<Message><MessageId>m</MessageId><Body>x</Body></Message>'),
		qr/message 1 has no ReceiptHandle/ ],
	[ 'element for text', receive_xml('<Message><MessageId><b>m</b></MessageId><ReceiptHandle>r</ReceiptHandle></Message>'),
		qr/a MessageId holds elements, not text/ ],
	[ 'more than asked for', receive_xml(message_xml(3), message_xml(4)), qr/more than the 1 messages asked for/ ],
	[ 'NUL character reference', receive_xml(message_xml(5, body => 'a&#0;b')), qr/not well-formed XML/ ],
	[ 'invalid UTF-8', receive_xml(message_xml(6, body => "\xC3\x28")), qr/not valid UTF-8/ ],
);
for my $case (@cases)
{
	my ($name, $doc, $expect) = @$case;
	$ep->answer('ReceiveMessage', 200, $doc, 'text/xml');
	my $e = drain_error($node, 1);
	ok(defined $e, "$name: the drain fails");
	like($e // '', qr/unexpected response/, "$name: an unexpected response");
	like($e // '', $expect, "$name: names what is wrong");
}

# an empty 200 is an empty queue here too; out-of-range values are defects
$ep->answer('ReceiveMessage', 200, '', 'text/xml');
is(drain($node, 1)->{received}, 0, 'query: an empty 200 is an empty queue');
(my $range = message_xml(7)) =~ s/1700000000000/99999999999999999999/;
$ep->answer('ReceiveMessage', 200, receive_xml($range), 'text/xml');
is(drain($node, 1)->{dead_lettered}, 1, 'query: an out-of-range SentTimestamp is a dead letter');
like(sql("SELECT error FROM sqs_ingest.dead_letters WHERE message_id = 'q-7'"),
	qr/SentTimestamp 99999999999999999999 is outside the range/, 'query: with the reason');

my $server_log = slurp_file($node->logfile);
unlike($server_log, qr/terminated by signal/, 'no process killed by a signal');
is(sql('SELECT 1'), '1', 'the server accepts connections');

$ep->stop;
done_testing();
