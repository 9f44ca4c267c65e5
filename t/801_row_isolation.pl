
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# One bad message stays one bad message, whatever the target raises: a
# deferred constraint, a trigger's custom SQLSTATE. Only the rejected
# message becomes a dead letter, found by bisection rather than one
# statement per row; errors about the table itself fail the batch and leave
# every message in SQS. A message received too often becomes a dead letter.
# Reasons quoting multibyte text are cut on a character boundary.

use strict;
use warnings;
use lib 't';

use File::Temp qw(tempfile);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu  = start_emulator();
my $node = new_node('isolation', queue_url => $emu->queue_url('unused'));

sub sql { return $node->safe_psql('postgres', $_[0]); }

# a fresh queue holding one message per line of @bodies, set as the queue
sub queue_with
{
	my ($name, @bodies) = @_;
	my $url = create_queue($name);
	my ($fh, $file) = tempfile(UNLINK => 1);
	binmode $fh;
	print $fh map { "$_\n" } @bodies;
	close $fh;
	is(send_lines($url, $file), scalar(@bodies), "$name: messages sent");
	set_gucs($node, { 'sqs_ingest.queue_url' => $url });
	return $url;
}

sub login
{
	my ($uid, $device) = @_;
	$device //= 'ios';
	return qq({"user_id":"$uid","device_type":"$device","ip":"10.0.0.1","device_id":"d-$uid","locale":"US","app_version":"1.2.3"});
}

sub reset_tables
{
	sql('TRUNCATE user_logins, sqs_ingest.processed, sqs_ingest.dead_letters');
}

### a deferred foreign key: checked in the batch, not at commit

sql(q{
CREATE TABLE devices (device_type varchar(32) PRIMARY KEY);
INSERT INTO devices VALUES ('ios'), ('android');
ALTER TABLE user_logins ADD CONSTRAINT known_device FOREIGN KEY (device_type)
  REFERENCES devices DEFERRABLE INITIALLY DEFERRED;
});
my @good = map { login("fk-$_", $_ % 2 ? 'ios' : 'android') } 1 .. 40;
my $url = queue_with('deferred', @good[0 .. 19], login('fk-toaster', 'toaster'), @good[20 .. 39]);
my $r = drain($node);
is_deeply($r, { received => 41, inserted => 40, duplicates => 0, dead_lettered => 1 },
	'deferred constraint: only the violating message is a dead letter');
like(sql(q{SELECT message_id IS NOT NULL, error FROM sqs_ingest.dead_letters}),
	qr/^t\|target table rejected the row: .*known_device.*\(SQLSTATE 23503\)$/,
	'its reason names the constraint and the SQLSTATE');
is(sql(q{SELECT count(*) FROM user_logins WHERE user_id LIKE 'fk-%'}), '40',
	'the rest of the batch is stored');
ok(wait_for_depth($url, 0, 0, 0), 'every message deleted from SQS');
sql('ALTER TABLE user_logins DROP CONSTRAINT known_device');
reset_tables();

### a trigger raising a custom SQLSTATE; statements counted by a sequence

sql(q{
CREATE SEQUENCE insert_statements;
CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.user_id LIKE 'poison%' THEN
    RAISE EXCEPTION 'poisoned login %', NEW.user_id USING ERRCODE = 'SI001';
  END IF;
  RETURN NEW;
END $$;
CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('public.insert_statements');
  RETURN NULL;
END $$;
CREATE TRIGGER reject_poison BEFORE INSERT ON user_logins
  FOR EACH ROW EXECUTE FUNCTION reject_poison();
CREATE TRIGGER count_statement BEFORE INSERT ON user_logins
  FOR EACH STATEMENT EXECUTE FUNCTION count_statement();
});
my @many = map { login("ok-$_") } 1 .. 200;
$url = queue_with('custom-sqlstate', @many[0 .. 99], login('poison-1'), @many[100 .. 199]);
$r = drain($node);
is_deeply($r, { received => 201, inserted => 200, duplicates => 0, dead_lettered => 1 },
	'custom SQLSTATE from a trigger: only that message is a dead letter');
is( sql(q{SELECT error FROM sqs_ingest.dead_letters}),
	'target table rejected the row: poisoned login poison-1 (SQLSTATE SI001)',
	'with the trigger\'s message and code');
is(sql(q{SELECT count(*) FROM user_logins WHERE user_id LIKE 'ok-%'}), '200',
	'the other 200 are stored');
my $statements = sql(q{SELECT last_value FROM insert_statements});
cmp_ok($statements, '<', 40,
	"the rejected row was found by bisection ($statements insert statements for 200 rows, not one per row)");
ok(wait_for_depth($url, 0, 0, 0), 'every message deleted from SQS');
reset_tables();

### an error about the table itself fails the batch

sql(q{
CREATE OR REPLACE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'no inserts for now' USING ERRCODE = 'insufficient_privilege';
END $$;
});
set_gucs($node, { 'sqs_ingest.visibility_timeout' => 1 });
$url = queue_with('table-error', map { login("te-$_") } 1 .. 5);
like(drain_error($node), qr/no inserts for now/,
	'a privilege error from the table fails the drain');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0',
	'and makes no dead letter');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), '0', 'nor a ledger entry');
sql('DROP TRIGGER reject_poison ON user_logins; DROP TRIGGER count_statement ON user_logins');

### received too often

# the messages of the failed drain come back after the visibility timeout;
# receive them twice more without deleting them
set_gucs($node, { 'sqs_ingest.max_receive_count' => 2 });
ok(wait_for_depth($url, 5, 0, 0), 'the messages of the failed drain are back');
is(scalar(@{ receive_messages($url, max => 10, visibility_timeout => 1) }),
	5, 'received once more by another consumer');
ok(wait_for_depth($url, 5, 0, 0), 'and back again');
$r = drain($node);
is_deeply($r, { received => 5, inserted => 0, duplicates => 0, dead_lettered => 5 },
	'received more often than sqs_ingest.max_receive_count: dead letters');
is( sql(q{SELECT DISTINCT error FROM sqs_ingest.dead_letters}),
	'received 3 times, more than sqs_ingest.max_receive_count (2)',
	'the reason gives the count and the setting');
is( sql(q[SELECT count(*) FROM sqs_ingest.dead_letters WHERE body LIKE '{"user_id":"te-%']),
	'5', 'the bodies are kept whole');
ok(wait_for_depth($url, 0, 0, 0), 'and they leave SQS');
set_gucs($node, { 'sqs_ingest.max_receive_count' => undef });
reset_tables();

### multibyte text quoted in a reason is cut on a character boundary

my $long_date = ('a' x 63) . ("\x{c3}\x{a9}" x 10);    # "é", two bytes each
$url = queue_with('utf8-clip',
	qq({"user_id":"clip","app_version":"$long_date"}), login('clip-ok'));
$r = drain($node);
is($r->{dead_lettered}, 1, 'the unparsable version is a dead letter');
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT convert_from(convert_to(error, 'UTF8'), 'UTF8') FROM sqs_ingest.dead_letters});
is($ret, 0, 'the reason is valid UTF-8') or diag($err);
is($out,
	'column "app_version": $.app_version "' . ('a' x 63)
	  . '..." is not a version of the form M.m or M.m.p with parts 0 to 999',
	'cut before the character that would straddle the limit');

$node->stop;
done_testing();
