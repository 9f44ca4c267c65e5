
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# No SQL-visible path and no log line shows a secret (access key id, secret
# access key, session token, mask key), wherever it was set: in
# postgresql.conf, through ALTER SYSTEM, in a *_file setting, or in the
# server's environment.  A pg_monitor member (and a superuser) reads every
# column of pg_settings, pg_file_settings, current_setting() and SHOW ALL;
# the server log at debug5 during a drain, the worker's batches and a
# reload that changes a secret stays clean.  Secret files are checked like
# ssl_key_file.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);

my $TOKEN = 'token-SECRET-203-session';
$ENV{SQS_TEST_SESSION_TOKEN} = $TOKEN;    # the client tool signs with it too
my $emu = start_emulator(session_token => $TOKEN);
my $url = create_queue('secrets');

my %mask = (
	conf   => 'mask-SECRET-203-conf',
	conf2  => 'mask-SECRET-203-reloaded',
	system => 'mask-SECRET-203-alter-system',
	file   => 'mask-SECRET-203-file');
my @secrets = ($TEST_ACCESS_KEY_ID, $TEST_SECRET_ACCESS_KEY, $TOKEN, values %mask);

my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'sqs_ingest'
sqs_ingest.workers = 1
sqs_ingest.retry_interval = 1
sqs_ingest.queue_url = '$url'
sqs_ingest.access_key_id = '$TEST_ACCESS_KEY_ID'
sqs_ingest.secret_access_key = '$TEST_SECRET_ACCESS_KEY'
sqs_ingest.session_token = '$TOKEN'
sqs_ingest.mask_key = '$mask{conf}'
CONF
$node->start;
my $log_start = log_offset($node);

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql('CREATE EXTENSION pgcrypto; CREATE EXTENSION sqs_ingest;');
sql($TARGET_TABLE_DDL);
sql('CREATE ROLE watcher LOGIN IN ROLE pg_monitor');

# everything a role can read about the settings, errors included
sub everything_visible
{
	my ($role) = @_;
	my $all = '';
	# superusers may read pg_file_settings, the configuration files' text
	my @file_settings =
	  $role eq 'watcher' ? ('SELECT row_to_json(f) FROM pg_file_settings f') : ();
	for my $q (
		'SELECT row_to_json(s) FROM pg_settings s',
		@file_settings,
		'SHOW ALL',
		q{SELECT name, current_setting(name) FROM pg_settings},
		q{SELECT current_setting('sqs_ingest.access_key_id'),
		         current_setting('sqs_ingest.secret_access_key'),
		         current_setting('sqs_ingest.session_token'),
		         current_setting('sqs_ingest.mask_key')},
		'SELECT row_to_json(s) FROM sqs_ingest.stats s',
		'SELECT * FROM sqs_ingest_queue_depth()')
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $q, extra_params => [ '-U', $role ]);
		$all .= "$out\n$err\n";
	}
	return $all;
}

sub leaked
{
	my ($text) = @_;
	return join(', ', grep { index($text, $_) >= 0 } @secrets);
}

sub check_nothing_visible
{
	my ($where, $set) = @_;
	my $watcher = everything_visible('watcher');
	is( $node->safe_psql(
			'postgres', "SELECT setting FROM pg_settings WHERE name = '$set'",
			extra_params => [ '-U', 'watcher' ]),
		'(set)',
		"$where: pg_monitor sees that $set is set")
	  if $set;
	is(leaked($watcher), '', "$where: no secret visible to a pg_monitor member");
	is(leaked(everything_visible('postgres')), '',
		"$where: no secret in pg_settings, SHOW or current_setting() for a superuser either");
}

# stores one event and says whether it was masked with $key
sub masked_with
{
	my ($key, $seed) = @_;
	my $event = generate_events(1, $seed)->[0];
	send_events($url, [$event]);
	$node->poll_query_until('postgres',
		"SELECT count(*) FROM user_logins WHERE user_id = '$event->{user_id}'", 1)
	  or return 0;
	# the expected mask is computed here: a statement quoting the key
	# would put it in the server log
	return sql(qq{SELECT masked_ip FROM user_logins WHERE user_id = '$event->{user_id}'})
	  eq hmac_sha256_hex($event->{ip}, $key);
}

### in postgresql.conf

wait_for_workers($node, 1);
ok(masked_with($mask{conf}, 2031), 'postgresql.conf: the worker signs with the token and masks with the key');
check_nothing_visible('postgresql.conf', 'sqs_ingest.secret_access_key');

# a drain, the worker's batches and a reload changing the secret at debug5
sql("ALTER SYSTEM SET log_min_messages = debug5; SELECT pg_reload_conf()");
send_generated($url, 5, 2032);
my $r = drain($node);
cmp_ok($r->{received} + 0, '>=', 0, 'a drain ran at debug5');
$node->append_conf('postgresql.conf', "sqs_ingest.mask_key = '$mask{conf2}'\n");
sql('SELECT pg_reload_conf()');
ok(masked_with($mask{conf2}, 2033), 'reloaded: the worker masks with the new key');
sql("ALTER SYSTEM RESET log_min_messages; SELECT pg_reload_conf()");
check_nothing_visible('reloaded postgresql.conf', 'sqs_ingest.mask_key');

### through ALTER SYSTEM (the statement itself kept out of the log)

$node->safe_psql('postgres',
	"SET log_statement = 'none'; ALTER SYSTEM SET sqs_ingest.mask_key = '$mask{system}'");
sql('SELECT pg_reload_conf()');
ok(masked_with($mask{system}, 2034), 'ALTER SYSTEM: the worker masks with that key');
check_nothing_visible('ALTER SYSTEM', 'sqs_ingest.mask_key');

### in files

my $dir = $node->basedir;
my $mask_file = "$dir/mask_key";
my $secret_file = "$dir/secret_access_key";
for ([ $mask_file, "$mask{file}\n" ], [ $secret_file, "$TEST_SECRET_ACCESS_KEY\n" ])
{
	open my $fh, '>', $_->[0] or die;
	print $fh $_->[1];
	close $fh;
}
chmod 0644, $mask_file;
chmod 0600, $secret_file;
$node->append_conf('postgresql.conf', <<"CONF");
sqs_ingest.mask_key = ''
sqs_ingest.secret_access_key = ''
sqs_ingest.mask_key_file = '$mask_file'
sqs_ingest.secret_access_key_file = '$secret_file'
CONF
$node->safe_psql('postgres', "SET log_statement = 'none'; ALTER SYSTEM RESET sqs_ingest.mask_key");
sql('SELECT pg_reload_conf()');
$node->poll_query_until('postgres',
	q{SELECT current_setting('sqs_ingest.mask_key_file') <> ''})
  or die 'reload not seen';

my ($ret, $out, $err) = $node->psql('postgres', "SELECT sqs_ingest_mask('x')");
like($err, qr/secret file ".*mask_key" of sqs_ingest.mask_key_file has group or world access/,
	'a secret file others can read is refused');
like($err, qr/HINT:  Run chmod 600/, 'with a hint');
is(leaked($err), '', 'the refusal does not quote the file');
chmod 0600, $mask_file;
is(sql(q{SELECT sqs_ingest_mask('x')}), hmac_sha256_hex('x', $mask{file}),
	'once private, the file is the mask key (without its line break)');
ok(masked_with($mask{file}, 2035), 'files: the worker signs and masks with the secrets of the files');
check_nothing_visible('files', 'sqs_ingest.access_key_id');

### in the environment

$node->append_conf('postgresql.conf', <<"CONF");
sqs_ingest.access_key_id = ''
sqs_ingest.secret_access_key_file = ''
sqs_ingest.session_token = ''
CONF
$node->stop;
{
	local $ENV{AWS_ACCESS_KEY_ID}     = $TEST_ACCESS_KEY_ID;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $TEST_SECRET_ACCESS_KEY;
	local $ENV{AWS_SESSION_TOKEN}     = $TOKEN;
	$node->start;
}
wait_for_workers($node, 1);
ok(masked_with($mask{file}, 2036), 'environment: the worker signs with the server\'s AWS_* variables');
check_nothing_visible('environment');

### the whole server log

is(leaked(log_since($node, $log_start)), '',
	'the server log, debug5 drain and reload included, holds no secret');

done_testing();
