
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The drain against a hostile endpoint whose ReceiveMessage answers carry
# values no real queue sends: timestamps and receive counts outside their
# types' ranges, a Body that is a JSON number or object or not UTF-8, a
# MessageId too long for the ledger's index, more messages than asked for.
# Each message ends as a row or a dead letter — none lost, none stored with
# a value a dump cannot restore — and one bad message never fails its
# neighbours.

use strict;
use warnings;
use lib 't';

use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu     = start_emulator();
my $url     = create_queue('hostile-messages');
my $hostile = start_hostile($emu);
my $node    = new_node(
	'hostile_messages',
	queue_url => $url,
	settings  => hostile_settings($hostile));

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub q_lit { my ($v) = @_; $v =~ s/'/''/g; return "'$v'"; }

# how the synthetic message of a case ended: 'row', 'dead letter', 'both'
# or 'nothing'
sub fate
{
	my ($m) = @_;
	my $row = sql('SELECT count(*) FROM public.user_logins WHERE user_id = '
		  . q_lit($m->{user_id}));
	my $dl = sql('SELECT count(*) FROM sqs_ingest.dead_letters WHERE message_id = '
		  . q_lit($m->{MessageId}));
	return $row && $dl ? 'both' : $row ? 'row' : $dl ? 'dead letter' : 'nothing';
}

sub deleted
{
	my ($stats, $m) = @_;
	return scalar grep { $_ eq $m->{ReceiptHandle} } @{ $stats->{syntheticDeleted} };
}


my $cases = $hostile->cases;
my @cases = grep { $cases->{$_}{invents} } sort keys %$cases;
my $max_asked = 3;

for my $case (@cases)
{
	$hostile->reset_stats;
	$hostile->script({ ReceiveMessage => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my $r = try_drain($node, $case eq 'too-many' ? $max_asked : undef, timeout => 120);
	note("$case: " . ($r->{ok} ? "drain returned @{$r->{result}}{qw(received inserted dead_lettered)}; $r->{stderr}" : $r->{stderr}));
	is($hostile->served('ReceiveMessage', $case), 1, "$case: served once");
	no_crash($node, $offset, $case) or next;
	my $stats = $hostile->stats;
	my @msgs = grep { $_->{case} eq $case } @{ $stats->{synthetic} };

	if ($case eq 'too-many')
	{
		my $stored = grep { fate($_) ne 'nothing' } @msgs;
		cmp_ok($stored, '<=', $max_asked,
			"$case: no more messages stored than the drain asked for");
		next;
	}
	# one message's over-long identifier is that message's problem only
	if ($case eq 'message-id-long')
	{
		ok($r->{ok}, "$case: the drain succeeds");
		is(fate($msgs[1]), 'row', "$case: the neighbour of the long id is stored");
		is(sql('SELECT count(*) FROM sqs_ingest.dead_letters WHERE strpos(body, '
			  . q_lit($msgs[0]{user_id}) . q{) > 0 AND error LIKE 'MessageId is % characters long%'}),
			'1', "$case: the long id is a dead letter saying why");
		ok(deleted($stats, $_), "$case: message $_->{user_id} deleted once handled") for @msgs;
		next;
	}
	if ($case eq 'receipt-handle-long')
	{
		ok($r->{ok}, "$case: the drain succeeds");
		is(fate($msgs[1]), 'row', "$case: the neighbour of the long handle is stored");
		ok(deleted($stats, $msgs[1]), "$case: and deleted");
		is(fate($msgs[0]), 'nothing', "$case: a message that cannot be deleted is not stored");
		like(slurp_file($node->logfile, $offset),
			qr/SQS returned 1 message whose ReceiptHandle is longer than 1024 characters/,
			"$case: it is logged");
		next;
	}
	if ($case eq 'body-md5-wrong')
	{
		is(sql('SELECT error FROM sqs_ingest.dead_letters WHERE message_id = '
			  . q_lit($msgs[0]{MessageId})),
			q{body does not match its MD5OfBody "} . md5_hex('something else')
			  . q{": it was changed after SQS took it in},
			"$case: the mismatch is a dead letter naming it");
		is(fate($msgs[1]), 'row', "$case: its neighbour is stored");
	}
	if ($case eq 'body-invalid-utf8' && !$r->{ok})
	{
		like($r->{stderr}, qr/ERROR:  .*(ReceiveMessage|SQS)/,
			"$case: a clean error naming the call");
		is(fate($msgs[0]), 'nothing', "$case: nothing stored");
		next;
	}
	for my $m (@msgs)
	{
		like(fate($m), qr/^(row|dead letter)$/,
			"$case: message $m->{user_id} is a row or a dead letter");
		ok(deleted($stats, $m), "$case: message $m->{user_id} deleted once handled");
	}
	if ($case eq 'body-number')
	{
		is(sql('SELECT body FROM sqs_ingest.dead_letters WHERE message_id = '
			  . q_lit($msgs[0]{MessageId})),
			'12345', "$case: the dead letter keeps the body's JSON text");
	}
	if ($case eq 'body-object')
	{
		my $uid = q_lit($msgs[0]{user_id});
		is(sql("SELECT count(*) FROM public.user_logins WHERE user_id = $uid")
			  + sql('SELECT count(*) FROM sqs_ingest.dead_letters WHERE strpos(body, '
				  . "$uid) > 0"),
			1, "$case: the body's content is kept");
	}
	my $uids = join ',', map { q_lit($_->{user_id}) } @msgs;
	my $mids = join ',', map { q_lit($_->{MessageId}) } @msgs;
	is(sql(qq{SELECT count(*) FROM public.user_logins WHERE user_id IN ($uids)
	          AND (create_date < '1970-01-01' OR create_date >= '10000-01-01')}),
		'0', "$case: no create_date out of range");
	is(sql(qq{SELECT count(*) FROM sqs_ingest.dead_letters WHERE message_id IN ($mids)
	          AND (sent_at < '1970-01-01' OR sent_at >= '10000-01-01' OR receive_count < 0)}),
		'0', "$case: no dead letter's sent_at or receive_count out of range");
}

# What was stored survives a dump and restore.
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->safe_psql('restored', $TARGET_TABLE_DDL);
my $dump = PostgreSQL::Test::Utils::tempdir() . '/user_logins.sql';
$node->command_ok(
	[ 'pg_dump', '-d', $node->connstr('postgres'), '--data-only', '-t', 'public.user_logins', '-f', $dump ],
	'dump the target table');
$node->command_ok(
	[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores');

$node->stop;
done_testing();
