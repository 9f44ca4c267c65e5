
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Failures of the database or of the configuration fail the drain with a
# clear error and consume nothing; the functions are not open to everyone.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $VT = 2;
my $N  = 10;

my $emu  = start_emulator();
my $url  = create_queue('errors');
my $node = new_node('errors',
	queue_url => $url,
	settings  => { 'sqs_ingest.visibility_timeout' => $VT });

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub in_sqs
{
	my ($v, $nv) = queue_depth($url);
	return $v + $nv;
}

my $seed = 500;

### target table missing: a database failure, the batch stays in SQS

is(send_generated($url, $N, ++$seed), $N, "$N events sent");
sql('DROP TABLE public.user_logins');
my $err = drain_error($node);
note($err // '(no error)');
ok(defined $err, 'drain fails without the target table');
like($err // '', qr/user_logins/, 'error names the table');
is(in_sqs($url), $N, 'every message still in SQS');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), '0', 'ledger empty');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0',
	'no dead letters: a missing table is not bad input');

sql($TARGET_TABLE_DDL);
ok(wait_for_depth($url, $N, 0, 0), 'messages visible again');
is_deeply(
	drain($node),
	{ received => $N, inserted => $N, duplicates => 0, dead_lettered => 0 },
	'with the table back, the drain stores them');
is_deeply([ queue_depth($url) ], [ 0, 0, 0 ], 'queue empty');

### configuration errors: nothing is received

is(send_generated($url, $N, ++$seed), $N, "$N more events sent");

my @cases = (
	[
		'no credentials',
		{ 'sqs_ingest.access_key_id' => '', 'sqs_ingest.secret_access_key' => '' },
		qr/credential|access.key/i
	],
	[
		'wrong secret',
		{ 'sqs_ingest.secret_access_key' => 'not-the-secret' },
		qr/signature/i
	],
	[
		'unknown access key',
		{ 'sqs_ingest.access_key_id' => 'AKIDUNKNOWN' },
		qr/security token|InvalidClientTokenId|access key/i
	],
	[
		'queue that does not exist',
		{ 'sqs_ingest.queue_url' => $emu->queue_url('no-such-queue') },
		qr/not exist|NonExistentQueue|QueueDoesNotExist/i
	],
	[
		'endpoint nobody listens on',
		{ 'sqs_ingest.endpoint' => 'http://127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port() },
		qr/connect|refused|unreachable/i
	],
);

my %good = (
	'sqs_ingest.access_key_id'     => $TEST_ACCESS_KEY_ID,
	'sqs_ingest.secret_access_key' => $TEST_SECRET_ACCESS_KEY,
	'sqs_ingest.queue_url'         => $url,
	'sqs_ingest.endpoint'          => undef,
	'sqs_ingest.mask_key'          => $TEST_MASK_KEY,
);

for my $case (@cases)
{
	my ($what, $gucs, $re) = @$case;
	set_gucs($node, $gucs);
	$err = drain_error($node);
	note("$what: " . ($err // '(no error)'));
	ok(defined $err, "$what: drain fails");
	like($err // '', $re, "$what: error says why");
	unlike($err // '', qr/\Q$TEST_SECRET_ACCESS_KEY\E|not-the-secret/,
		"$what: error does not show the secret");
	is_deeply([ queue_depth($url) ], [ $N, 0, 0 ], "$what: nothing consumed");
	set_gucs($node, \%good);
}

# Without a key the pipeline cannot mask; whether it finds out before or
# after receiving, nothing may be stored or deleted.
set_gucs($node, { 'sqs_ingest.mask_key' => '' });
$err = drain_error($node);
note($err // '(no error)');
ok(defined $err, 'empty mask_key: drain fails');
like($err // '', qr/mask_key/, 'empty mask_key: error names the setting');
like($err // '', qr/HINT:/, 'empty mask_key: error has a hint');
is(in_sqs($url), $N, 'empty mask_key: every message still in SQS');
is(sql('SELECT count(*) FROM user_logins'), $N, 'empty mask_key: nothing stored');
set_gucs($node, \%good);

ok(wait_for_depth($url, $N, 0, 0), 'messages visible');
is_deeply(
	drain($node),
	{ received => $N, inserted => $N, duplicates => 0, dead_lettered => 0 },
	'with the configuration repaired, the drain stores them');

### privileges

sql('CREATE ROLE alice LOGIN');
is(send_generated($url, 1, ++$seed), 1, 'one more event sent');
for my $call ('sqs_ingest_drain()', q{sqs_ingest_mask('1.2.3.4')})
{
	my ($ret, $out, $stderr) =
	  $node->psql('postgres', "SELECT * FROM $call", extra_params => [ '-U', 'alice' ]);
	isnt($ret, 0, "non-superuser cannot call $call");
	like($stderr, qr/permission denied for function sqs_ingest_/,
		"$call: permission denied");
}
is_deeply([ queue_depth($url) ], [ 1, 0, 0 ], 'nothing consumed by the refused call');

# Secrets are superuser-only settings: with the library loaded (as it is
# for the background worker), other roles cannot read them.
my $pre = new_node('preloaded',
	shared_preload => 1,
	conf           => "sqs_ingest.workers = 0\n");
$pre->safe_psql('postgres', 'CREATE ROLE bob LOGIN');
for my $guc ('sqs_ingest.secret_access_key', 'sqs_ingest.mask_key')
{
	my ($ret, $out, $stderr) =
	  $pre->psql('postgres', "SHOW $guc", extra_params => [ '-U', 'bob' ]);
	unlike($out, qr/\Q$TEST_SECRET_ACCESS_KEY\E|\Q$TEST_MASK_KEY\E/,
		"$guc hidden from other roles");
	like($stderr, qr/permission denied|must be superuser|privileges of pg_read_all_settings/,
		"$guc: reading it is refused");
}

done_testing();
