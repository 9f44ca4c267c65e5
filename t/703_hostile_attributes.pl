
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# sqs_ingest_queue_depth() against a hostile endpoint answering
# GetQueueAttributes: a broken answer is a clean error naming the call, a
# count outside bigint or below zero is never shown, and nothing crashes or
# hangs past the timeouts.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu     = start_emulator();
my $url     = create_queue('hostile-attributes');
my $hostile = start_hostile($emu);
my $node    = new_node(
	'hostile_attributes',
	queue_url => $url,
	settings  => {
		'sqs_ingest.endpoint'        => $hostile->endpoint,
		'sqs_ingest.connect_timeout' => 1000,
		'sqs_ingest.request_timeout' => 3000,
	});
is(send_generated($url, 3, 7300), 3, '3 events sent');

my $depth_sql = q{SELECT coalesce(visible::text, 'null') || ' ' ||
  coalesce(not_visible::text, 'null') || ' ' || coalesce(delayed::text, 'null')
  FROM sqs_ingest_queue_depth()};
is($node->safe_psql('postgres', $depth_sql), '3 0 0', 'depth through the endpoint');

my @attribute_cases = $hostile->transport_cases('GetQueueAttributes');
cmp_ok(scalar @attribute_cases, '>=', 25, 'the endpoint knows the attribute cases');

# Answers that may be read as counts: an empty document (no counts), a
# complete document with bytes outside the counts, and counts that are not
# counts (shown as NULL). Every other case must fail cleanly.
my %may_answer = map { $_ => 1 } qw(empty invalid-utf8 count-overflow
  count-negative count-not-number count-json-number);

depth_meets_hostile($node, $hostile, $_, $depth_sql, \%may_answer) for @attribute_cases;

$hostile->clear;
is($node->safe_psql('postgres', $depth_sql), '3 0 0', 'depth read again once the endpoint behaves');

$node->stop;
done_testing();
