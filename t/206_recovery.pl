
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Personal data recoverable with a key the server never sees: the encrypt
# transform through real drains.  The login events with the recovery key
# file fill encrypted_ip and encrypted_device_id beside the masks; every
# ciphertext decrypts with pgcrypto to the original, one with gpg too; the
# key file is checked and read again when it changes (rotation).  A
# catalog pipeline encrypting and masking side by side turns hostile values
# into dead letters naming the column, and after its key is rotated each
# value decrypts with its own secret key.  sqs_ingest_recover() returns the
# value with exactly one log row, and only to a role granted it.

use strict;
use warnings;
use lib 't';

use File::Copy;
use File::Temp qw(tempdir);
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $keys = repo_root() . '/test/keys';
sub slurp_key { my ($f) = @_; return PostgreSQL::Test::Utils::slurp_file("$keys/$f"); }
my ($pub, $sec, $rotated_pub, $rotated_sec) =
  map { slurp_key($_) } qw(recovery.pub.asc recovery.sec.asc rotated.pub.asc rotated.sec.asc);
my $key_id         = 'D41BFFE2C7D64DA9';
my $rotated_key_id = '35850ADA4828AC94';

sub sql_literal { my ($v) = @_; $v =~ s/'/''/g; return "'$v'"; }

my $emu  = start_emulator();
my $url  = create_queue('login-queue');
my $node = new_node('recovery', queue_url => $url);

# the key file lives with the server's files, owned by its user, chmod 600
my $key_file = $node->data_dir . '/recovery_key.asc';
copy("$keys/recovery.pub.asc", $key_file) or die "copy: $!";
chmod 0600, $key_file;
$node->safe_psql('postgres',
	'ALTER TABLE user_logins ADD COLUMN encrypted_ip bytea, ADD COLUMN encrypted_device_id bytea');
set_gucs($node, { 'sqs_ingest.recovery_key_file' => $key_file });

# --- the login events, encrypted and masked ----------------------------------------

my $events = sample_events();
my @good = grep { exists $_->{user_id} } @$events;
is(send_json_array($url, sample_file()), 100, 'sample sent');
is_deeply(drain($node),
	{ received => 100, inserted => 99, duplicates => 0, dead_lettered => 1 },
	'drain: 99 rows, 1 dead letter, as without encryption');

my $sec_sql = sql_literal($sec);
my $check = sub {
	my ($secret, $where) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE (masked_ip IS NULL) <> (encrypted_ip IS NULL)
                           OR (masked_device_id IS NULL) <> (encrypted_device_id IS NULL)) || ' ' ||
       count(*) FILTER (WHERE sqs_ingest_mask(pgp_pub_decrypt(encrypted_ip, dearmor($secret))) <> masked_ip
                           OR sqs_ingest_mask(pgp_pub_decrypt(encrypted_device_id, dearmor($secret)))
                              <> masked_device_id) || ' ' ||
       count(encrypted_ip) || ' ' || count(DISTINCT encrypted_ip)
FROM user_logins WHERE $where});
};
my $with_ip = grep { defined $_->{ip} } @good;
is($check->($sec_sql, 'true'), "0 0 $with_ip $with_ip",
	'every value is encrypted beside its mask, decrypts with pgcrypto to the original, and each ciphertext differs');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT pgp_key_id(encrypted_ip), ',') FROM user_logins}),
	$key_id, 'the values carry the id of the key they were encrypted to');

# one sample through gpg (scripts/install-deps.sh installs it), in a keyring
# of its own
{
	my $home = tempdir(CLEANUP => 1);
	chmod 0700, $home;
	local $ENV{GNUPGHOME} = $home;
	system('gpg', '--batch', '--quiet', '--import', "$keys/recovery.sec.asc") == 0
	  or die 'gpg --import failed (is gnupg installed?)';
	my $sample = $good[0];
	my $b64 = $node->safe_psql('postgres',
		"SELECT encode(encrypted_ip, 'base64') FROM user_logins WHERE user_id = "
		  . sql_literal($sample->{user_id}));
	my $file = "$home/value.pgp";
	open my $fh, '>:raw', $file or die $!;
	print $fh decode_base64($b64);
	close $fh;
	my $plain = `gpg --batch --quiet --decrypt $file 2>/dev/null`;
	is($plain, $sample->{ip}, 'gpg --decrypt reads a stored value back');
	# gpg started an agent for the keyring: it must not outlive the test
	system('gpgconf', '--kill', 'gpg-agent');
}

# --- audited recovery --------------------------------------------------------------

$node->safe_psql(
	'postgres', q{
CREATE ROLE privacy_officer LOGIN;
CREATE ROLE analyst LOGIN;
GRANT EXECUTE ON FUNCTION sqs_ingest_recover(bytea, bytea, text) TO privacy_officer;
GRANT SELECT ON user_logins TO privacy_officer, analyst;
});
my $who = sql_literal($good[1]{user_id});
my $recover_sql =
  "SELECT sqs_ingest_recover(encrypted_ip, dearmor($sec_sql), 'ticket 7: abuse report') "
  . "FROM user_logins WHERE user_id = $who";
is($node->safe_psql('postgres', $recover_sql, extra_params => [ '-U', 'privacy_officer' ]),
	$good[1]{ip}, 'sqs_ingest_recover returns the original value');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) || ' ' || string_agg(recovered_by || '/' || reason || '/' || key_id || '/' ||
       (value_digest = (SELECT sha256(encrypted_ip) FROM user_logins WHERE user_id = $who)), ',')
FROM sqs_ingest.recovery_log}),
	"1 privacy_officer/ticket 7: abuse report/$key_id/true",
	'exactly one log row: who, why, which key, which value (by digest)');
my ($ret, $out, $err) = $node->psql('postgres', $recover_sql, extra_params => [ '-U', 'analyst' ]);
like($err, qr/permission denied for function sqs_ingest_recover/, 'a role without the grant is refused');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT sqs_ingest_recover(encrypted_ip, dearmor($sec_sql), '') FROM user_logins WHERE user_id = $who",
	extra_params => [ '-U', 'privacy_officer' ]);
like($err, qr/a reason for the recovery is required/, 'an empty reason is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sqs_ingest.recovery_log'),
	'1', 'refusals log nothing');

# --- the key file: checked, read again when it changes ---------------------------

chmod 0644, $key_file;
send_generated($url, 3, 11);
like(drain_error($node), qr/has group or world access/,
	'a key file others can read (or replace) is refused');
chmod 0600, $key_file;
copy("$keys/rotated.pub.asc", $key_file) or die "copy: $!";
chmod 0600, $key_file;
is(drain($node)->{inserted}, 3, 'the generated events are stored once the file is fixed');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT pgp_key_id(encrypted_ip), ',' ORDER BY pgp_key_id(encrypted_ip)) FROM user_logins}),
	join(',', sort($key_id, $rotated_key_id)),
	'a new key in the file encrypts the next values; the old ones keep their key id');
is($check->(sql_literal($rotated_sec), "pgp_key_id(encrypted_ip) = '$rotated_key_id'"),
	'0 0 3 3', 'the values under the new key decrypt with its secret key');

# without the setting, the login mapping leaves the columns alone
set_gucs($node, { 'sqs_ingest.recovery_key_file' => undef });
send_generated($url, 2, 12);
is(drain($node)->{inserted}, 2, 'stored without a recovery key');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM user_logins WHERE encrypted_ip IS NULL AND masked_ip IS NOT NULL'),
	'2', 'no key set: nothing encrypted');

# --- a catalog pipeline: encrypt and mask side by side, hostile values -----------

my $vault_url = create_queue('vault');
$node->safe_psql(
	'postgres', qq{
CREATE TABLE vault (id int, ip bytea, masked_ip text);
SELECT sqs_ingest_create_pipeline('vault', '$vault_url', 'vault',
    '{"id": {"path": "\$.id"},
      "ip": {"path": "\$.ip", "transform": "encrypt"},
      "masked_ip": {"path": "\$.ip", "transform": "mask"}}',
    jsonb_build_object('recovery_key', @{[ sql_literal($pub) ]}, 'enabled', false));
});
my $long = 'x' x 70000;
is( send_events(
		$vault_url,
		[
			(map { { id => $_, ip => "10.0.0.$_" } } 1 .. 5),
			{ id => 6, ip => { v4 => '10.0.0.6' } },
			{ id => 7, ip => $long },
			{ id => 8, ip => 8 },
		]),
	8,
	'vault: 8 messages sent, 2 of them hostile');
is( $node->safe_psql('postgres',
		q{SELECT received || ' ' || inserted || ' ' || dead_lettered FROM sqs_ingest_drain('vault')}),
	'8 6 2', 'vault: 6 stored, 2 dead letters');
like(
	$node->safe_psql('postgres',
		q{SELECT string_agg(error, ' / ' ORDER BY error) FROM sqs_ingest.dead_letters WHERE pipeline = 'vault'}),
	qr/^column "ip": \$\.ip is 70000 bytes long, more than the 65536 bytes a value to encrypt may have \/ column "ip": \$\.ip is an object, which cannot be encrypted$/,
	'vault: the dead letters name the column and why');
is( $node->safe_psql('postgres',
		qq{SELECT string_agg(id || '=' || convert_from(pgp_pub_decrypt_bytea(ip, dearmor($sec_sql)), 'UTF8')
                            || (masked_ip = sqs_ingest_mask(convert_from(pgp_pub_decrypt_bytea(ip, dearmor($sec_sql)), 'UTF8'))),
                            ',' ORDER BY id) FROM vault}),
	'1=10.0.0.1true,2=10.0.0.2true,3=10.0.0.3true,4=10.0.0.4true,5=10.0.0.5true,8=8true',
	'vault: each value decrypts to the original, its mask beside it (a number as its text)');

# key rotation: alter the pipeline's key; old and new values coexist
$node->safe_psql('postgres',
	"SELECT sqs_ingest_alter_pipeline('vault', options => jsonb_build_object('recovery_key', "
	  . sql_literal($rotated_pub) . '))');
send_events($vault_url, [ map { { id => $_, ip => "10.0.1.$_" } } 11 .. 13 ]);
is($node->safe_psql('postgres', q{SELECT inserted FROM sqs_ingest_drain('vault')}),
	'3', 'vault: stored under the rotated key');
my $rotated_sql = sql_literal($rotated_sec);
is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(id || ':' || sqs_ingest_recover(ip,
           dearmor(CASE pgp_key_id(ip) WHEN '$key_id' THEN $sec_sql ELSE $rotated_sql END), 'rotation check'),
       ',' ORDER BY id)
FROM vault WHERE id IN (1, 11)}),
	'1:10.0.0.1,11:10.0.1.11',
	'each value decrypts with the secret key of the id it carries');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT sqs_ingest_recover(ip, dearmor($sec_sql), 'wrong key') FROM vault WHERE id = 11");
like($err, qr/value was encrypted to key $rotated_key_id, which the secret key given does not hold/,
	'the old secret key does not open a value under the new key, and says which key it needs');

# --- damaged input: a clean error or the value, never a crash ----------------------

# 1,000 calls, alternately with a damaged ciphertext and a damaged secret key
# (bytes replaced, bits flipped, cut short, doubled)
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION damaged(b bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE pos int;
BEGIN
  FOR i IN 1 .. 1 + (random() * 3)::int LOOP
    EXIT WHEN length(b) < 2;
    pos := (random() * (length(b) - 1))::int;
    CASE (random() * 3)::int
      WHEN 0 THEN b := set_byte(b, pos, (random() * 255)::int);
      WHEN 1 THEN b := set_byte(b, pos, get_byte(b, pos) # (1 << (random() * 7)::int));
      WHEN 2 THEN b := substr(b, 1, pos);
      ELSE b := b || b;
    END CASE;
  END LOOP;
  RETURN b;
END $$;
CREATE TABLE damage_results (value text, error text);
});
$node->safe_psql(
	'postgres', qq{
SELECT setseed(0.18);
DO \$\$
DECLARE
  ct bytea := (SELECT ip FROM vault WHERE id = 1);
  sk bytea := dearmor($sec_sql);
BEGIN
  FOR i IN 1 .. 1000 LOOP
    BEGIN
      INSERT INTO damage_results (value)
      VALUES (CASE WHEN i % 2 = 0 THEN sqs_ingest_recover(damaged(ct), sk, 'damage')
                   ELSE sqs_ingest_recover(ct, damaged(sk), 'damage') END);
    EXCEPTION WHEN OTHERS THEN
      INSERT INTO damage_results (error) VALUES (SQLERRM);
    END;
  END LOOP;
END \$\$;
});
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) || ' ' || count(*) FILTER (WHERE value IS NOT NULL AND value <> '10.0.0.1') || ' ' ||
       count(*) FILTER (WHERE error !~ '^(ciphertext is not an OpenPGP message that sqs_ingest can decrypt|ciphertext fails its integrity check|secret key is not a valid OpenPGP secret key|value was encrypted to key [0-9A-F]{16}, which the secret key given does not hold|OpenSSL failed in an OpenPGP operation|recovered value is not valid text in the database.s encoding)$')
FROM damage_results}),
	'1000 0 0',
	'1,000 damaged ciphertexts and keys: each the original value or a clean error, never another value');

# --- a worker: the login mapping follows the setting as it is reloaded ----------

$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'sqs_ingest'\nsqs_ingest.workers = 1\nsqs_ingest.wait_time_seconds = 1\n");
$node->restart;
wait_for_workers($node, 1);
my $seed = 20;
my $worker_round = sub {
	my ($want_key) = @_;
	my $events = generate_events(3, ++$seed);
	my $ids = join ',', map { sql_literal($_->{user_id}) } @$events;
	send_generated($url, 3, $seed);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM user_logins WHERE user_id IN ($ids)")
	  or die 'the worker did not store the events';
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(DISTINCT coalesce(pgp_key_id(encrypted_ip), 'none'), ','), 'none') "
		  . "FROM user_logins WHERE user_id IN ($ids)");
};
is($worker_round->(), 'none', 'worker: no key set, nothing encrypted');
# A reload reaches the worker asynchronously: a batch already on its way
# when the signal arrives may still be stored under the settings before it.
# One round first lets the reload land; the next round shows its effect.
set_gucs($node, { 'sqs_ingest.recovery_key_file' => $key_file });
$worker_round->();
is($worker_round->(), $rotated_key_id, 'worker: the key set by a reload encrypts the next batches');
set_gucs($node, { 'sqs_ingest.recovery_key_file' => undef });
$worker_round->();
is($worker_round->(), 'none', 'worker: the key reset by a reload, the columns are left alone again');

no_crash($node, 0, "encryption and recovery");
$node->stop;
done_testing();
