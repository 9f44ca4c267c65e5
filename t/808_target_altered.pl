
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The target table changes under a running worker: a column's type, a new
# column, the table dropped and created again. The worker compiles the
# mapping again and prepares its insert again each time (the new compiled
# mapping may well sit where the old one was), storing every event with the
# right values, and no process crashes.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('altered');
my $node = worker_node(
	'altered',
	queue_url => $url,
	settings  => { 'sqs_ingest.wait_time_seconds' => 1 });
my $offset = -s $node->logfile;

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @all;
my $round = 0;

# send a round of events and wait until the table holds every one so far
sub round
{
	my ($what) = @_;
	my $events = generate_events(40, 808 + ++$round);
	push @all, @$events;
	is(send_events($url, $events), 40, "$what: 40 events sent");
	ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', scalar @all),
		"$what: stored");
	is(rows_mismatch($node, \@all), 0, "$what: every row has its values");
}

round('before any change');

sql('ALTER TABLE user_logins ALTER COLUMN app_version TYPE bigint');
round('app_version now bigint');

sql('ALTER TABLE user_logins ALTER COLUMN app_version TYPE numeric');
round('app_version now numeric');

sql("ALTER TABLE user_logins ADD COLUMN note text DEFAULT 'kept'");
round('a column added');
is(sql(q{SELECT count(*) FROM user_logins WHERE note IS DISTINCT FROM 'kept'}), 0,
	'the new column takes its default');

my $saved = sql('SELECT count(*) FROM user_logins');
sql(q{
BEGIN;
CREATE TABLE user_logins_kept AS SELECT user_id, device_type, masked_ip, masked_device_id,
    locale, app_version::integer AS app_version, create_date FROM user_logins;
DROP TABLE user_logins;
} . $TARGET_TABLE_DDL . q{
INSERT INTO user_logins SELECT * FROM user_logins_kept;
DROP TABLE user_logins_kept;
COMMIT;
});
is(sql('SELECT count(*) FROM user_logins'), $saved, 'table dropped and created again');
round('the table created again');

is(worker_stat($node, 'inserted'), scalar @all, 'the worker inserted each event once');
no_crash($node, $offset, 'target altered');

$node->stop;
$emu->stop;
done_testing();
