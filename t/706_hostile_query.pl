
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The Query protocol (XML answers) against the hostile endpoint: the drain
# on every hostile ReceiveMessage answer, the drain on answers carrying
# messages no real queue sends, the background worker on every hostile
# DeleteMessageBatch answer and on the XML-only receive answers, and
# sqs_ingest_queue_depth() on every hostile GetQueueAttributes answer.
# Besides what t/701-705 ask of the JSON protocol (no crash, no hang past
# the timeouts, a clean error or a retry, never a fault read as an empty
# queue, every message stored exactly once), no DTD, entity or XInclude is
# ever read: nothing is fetched from the URLs they name, and the text of the
# local file an external entity names shows up nowhere.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu     = start_emulator();
my $hostile = start_hostile($emu);
my $secret  = $hostile->entity_file->{marker};

# the cases that carry a DTD, an entity or an XInclude
my %reads_outside = map { $_ => 1 } qw(doctype-laughs external-entity external-dtd xinclude html);

# No URL was fetched and the local file's text is nowhere in the server's
# log since $offset or in the tables.
sub nothing_read
{
	my ($node, $offset, $what) = @_;
	is($hostile->stats->{fetched}, 0, "$what: nothing fetched");
	unlike(slurp_file($node->logfile, $offset), qr/\Q$secret\E/,
		"$what: the local file's text is not in the log");
	my $found = $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM public.user_logins t WHERE strpos(t::text, '$secret') > 0)
		     + (SELECT count(*) FROM sqs_ingest.dead_letters d WHERE strpos(d::text, '$secret') > 0)});
	is($found, '0', "$what: the local file's text is not in the tables");
	return;
}

sub q_lit { my ($v) = @_; $v =~ s/'/''/g; return "'$v'"; }

my $seed = 7600;
my @all;

### the drain, ReceiveMessage

my $url  = create_queue('hostile-query');
my $node = new_node(
	'hostile_query',
	queue_url => $url,
	settings  => { %{ hostile_settings($hostile) }, 'sqs_ingest.protocol' => 'query' });

my @receive = $hostile->transport_cases('ReceiveMessage', 'query');
cmp_ok(scalar @receive, '>=', 30, 'the endpoint knows the XML receive cases');
for my $x (qw(empty truncated wrong-shape wrong-root missing-result non-xml deep
	doctype-laughs external-entity status-400-body error-200))
{
	ok((grep { $_ eq $x } @receive), "the XML receive cases include $x");
}

# more than one receive takes (10), so that a retry after a fault that
# consumed the first ten still finds messages
my $N = 12;
for my $case (@receive)
{
	my $what = "drain, ReceiveMessage $case";
	push @all, @{ drain_meets_hostile($node, $hostile, $url, $case, $N, ++$seed, what => $what,
		check => sub { nothing_read($node, $_[0], $what) if $reads_outside{$case}; }) };
}
is(rows_mismatch($node, \@all), 0, 'drain: every event stored exactly once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters'),
	'0', 'drain: no dead letters');
ok(wait_for_depth($url, 0, 0, 0), 'drain: queue empty');

### the drain, messages no real queue sends

my $cases = $hostile->cases;
my @invented = grep {
	my $c = $cases->{$_};
	$c->{invents} && grep { $_ eq 'query' } @{ $c->{protocols} }
} sort keys %$cases;
cmp_ok(scalar @invented, '>=', 8, 'the endpoint knows the XML message cases');

sub fate
{
	my ($m) = @_;
	my $row = $node->safe_psql('postgres',
		'SELECT count(*) FROM public.user_logins WHERE user_id = ' . q_lit($m->{user_id}));
	my $dl = $node->safe_psql('postgres',
		'SELECT count(*) FROM sqs_ingest.dead_letters WHERE message_id = ' . q_lit($m->{MessageId}));
	return $row && $dl ? 'both' : $row ? 'row' : $dl ? 'dead letter' : 'nothing';
}

for my $case (@invented)
{
	my $what = "drain, message $case";
	$hostile->reset_stats;
	$hostile->script({ ReceiveMessage => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my $r = try_drain($node, $case eq 'too-many' ? 3 : undef, timeout => 120);
	note("$what: " . ($r->{ok} ? "drain returned @{$r->{result}}{qw(received inserted dead_lettered)}" : $r->{stderr}));
	is($hostile->served('ReceiveMessage', $case), 1, "$what: served once");
	no_crash($node, $offset, $what) or next;
	my $stats = $hostile->stats;
	my @msgs = grep { $_->{case} eq $case } @{ $stats->{synthetic} };
	if (!$r->{ok})
	{
		# refusing the whole answer is as good as isolating the message,
		# for answers SQS never gives; but it must be said, and nothing of
		# the answer stored
		like($r->{stderr}, qr/ERROR:  .*(ReceiveMessage|SQS)/, "$what: a clean error naming the call");
		is(scalar(grep { fate($_) ne 'nothing' } @msgs), 0, "$what: nothing of the answer stored");
		next;
	}
	if ($case eq 'too-many')
	{
		cmp_ok(scalar(grep { fate($_) ne 'nothing' } @msgs), '<=', 3,
			"$what: no more messages stored than the drain asked for");
		next;
	}
	for my $m (@msgs)
	{
		my $fate = fate($m);
		if ($case eq 'message-id-long' && $m == $msgs[0])
		{
			like($fate, qr/^(dead letter|nothing)$/, "$what: the long id is no row");
			next;
		}
		if ($case eq 'receipt-handle-long' && $m == $msgs[0])
		{
			is($fate, 'nothing', "$what: a message that cannot be deleted is not stored");
			next;
		}
		like($fate, qr/^(row|dead letter)$/, "$what: message $m->{user_id} is a row or a dead letter");
		ok((grep { $_ eq $m->{ReceiptHandle} } @{ $stats->{syntheticDeleted} }),
			"$what: message $m->{user_id} deleted once handled");
	}
	if ($case =~ /^(timestamp|receive-count)-/)
	{
		# a value out of range makes a dead letter of a good body too
		is(fate($_), 'dead letter', "$what: message $_->{user_id} is a dead letter") for @msgs;
	}
	my $uids = join ',', map { q_lit($_->{user_id}) } @msgs;
	my $mids = join ',', map { q_lit($_->{MessageId}) } @msgs;
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM public.user_logins WHERE user_id IN ($uids)
	          AND (create_date < '1970-01-01' OR create_date >= '10000-01-01')}),
		'0', "$what: no create_date out of range");
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM sqs_ingest.dead_letters WHERE message_id IN ($mids)
	          AND (sent_at < '1970-01-01' OR sent_at >= '10000-01-01' OR receive_count < 0)}),
		'0', "$what: no dead letter's sent_at or receive_count out of range");
}
$node->stop;

### sqs_ingest_queue_depth(), GetQueueAttributes

my $depth_url  = create_queue('hostile-query-depth');
my $depth_node = new_node(
	'hostile_query_depth',
	queue_url => $depth_url,
	settings  => {
		'sqs_ingest.endpoint'        => $hostile->endpoint,
		'sqs_ingest.protocol'        => 'query',
		'sqs_ingest.connect_timeout' => 1000,
		'sqs_ingest.request_timeout' => 3000,
	});
is(send_generated($depth_url, 3, ++$seed), 3, 'depth: 3 events sent');
my $depth_sql = q{SELECT coalesce(visible::text, 'null') || ' ' ||
  coalesce(not_visible::text, 'null') || ' ' || coalesce(delayed::text, 'null')
  FROM sqs_ingest_queue_depth()};
is($depth_node->safe_psql('postgres', $depth_sql), '3 0 0', 'depth through the endpoint in XML');

# Answers that may be read as counts: an empty document (no counts), a
# complete document with bytes outside the counts. Every other case must
# fail cleanly: a count that is no count is not shown as one.
my %may_answer = map { $_ => 1 } qw(empty invalid-utf8);
my @attribute_cases = $hostile->transport_cases('GetQueueAttributes', 'query');
cmp_ok(scalar @attribute_cases, '>=', 30, 'the endpoint knows the XML attribute cases');
for my $case (@attribute_cases)
{
	my $what = "depth, GetQueueAttributes $case";
	depth_meets_hostile($depth_node, $hostile, $case, $depth_sql, \%may_answer, what => $what,
		check => sub { nothing_read($depth_node, $_[0], $what) if $reads_outside{$case}; });
}
$hostile->clear;
is($depth_node->safe_psql('postgres', $depth_sql), '3 0 0', 'depth read again once the endpoint behaves');
$depth_node->stop;

### the worker, DeleteMessageBatch, and the XML-only receive cases

my $worker_url = create_queue('hostile-query-worker');
my $worker     = worker_node(
	'hostile_query_worker',
	queue_url => $worker_url,
	settings  => {
		%{ hostile_settings($hostile) },
		'sqs_ingest.protocol'          => 'query',
		'sqs_ingest.wait_time_seconds' => 1,
		'sqs_ingest.retry_interval'    => 2,
	});

my @worker_events;
my @worker_cases = (
	(map { [ 'DeleteMessageBatch', $_ ] } $hostile->transport_cases('DeleteMessageBatch', 'query')),
	(map { [ 'ReceiveMessage', $_ ] } grep {
		my $c = $cases->{$_};
		!grep { $_ eq 'json' } @{ $c->{protocols} }
	} $hostile->transport_cases('ReceiveMessage', 'query')));
cmp_ok(scalar @worker_cases, '>=', 40, 'the worker meets the XML delete cases and XML-only receive cases');
for my $wc (@worker_cases)
{
	my ($action, $case) = @$wc;
	push @worker_events, @{ worker_meets_hostile($worker, $hostile, $worker_url, $action, $case, 3, ++$seed,
		check => sub { nothing_read($worker, $_[0], "worker, $action $case") if $reads_outside{$case}; }) };
}
is(rows_digest($worker), user_ids_digest(\@worker_events), 'worker: every event stored exactly once');

$worker->stop;
done_testing();
