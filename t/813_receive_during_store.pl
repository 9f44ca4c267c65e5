
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Receives stay in flight and are answered while a batch is stored: a
# domain check sleeping 0.5 s per value, run by the input of an array of
# the domain while each message is mapped, makes the first store map for about 10 s;
# messages sent meanwhile are received (sqs_ingest.stats counts them)
# before that store ends, instead of waiting in the sockets until it does.
# Every message is then stored once, received once, and deleted.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;
use Time::HiRes qw(usleep);

my $emu  = start_emulator();
my $url  = create_queue('receive-during-store');
my $node = worker_node(
	'lookstore',
	workers  => 0,
	settings => { 'sqs_ingest.endpoint' => $emu->endpoint });

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub stats
{
	return split /\|/, sql(q{SELECT received, inserted FROM sqs_ingest.stats WHERE pipeline = 'slow'});
}

# each value waits 0.5 s while slow_checks holds a row
sql(q{
CREATE TABLE slow_checks (pending bool);
INSERT INTO slow_checks VALUES (true);
CREATE FUNCTION slow_check(v text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM public.slow_checks) THEN
        PERFORM pg_catalog.pg_sleep(0.5);
    END IF;
    RETURN true;
END$$;
CREATE DOMAIN slow_text AS text CHECK (public.slow_check(VALUE));
CREATE TABLE received (ids slow_text[], receive_count int);});

# bodies {"ids": "{a1}"} ... in a file
sub send_ids
{
	my ($prefix) = @_;
	my $file = PostgreSQL::Test::Utils::tempdir() . "/$prefix";
	PostgreSQL::Test::Utils::append_to_file($file, qq({"ids": "{$prefix$_}"}\n)) for 1 .. 20;
	return send_lines($url, $file);
}

# the first batch is there before the pipeline starts: 20 messages, 10 s
is(send_ids('a'), 20, 'twenty messages sent');
sql(qq{
SELECT sqs_ingest_create_pipeline('slow', '$url', 'received',
    '{"ids": {"path": "\$.ids"}, "receive_count": {"message": "receive_count"}}',
    '{"max_inflight": 2, "batch_size": 20, "wait_time_seconds": 20, "visibility_timeout": 120}');});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'}),
	'the first store runs the slow check');

is(send_ids('b'), 20, 'twenty more messages sent during the store');
my ($received, $inserted);
my $seen      = 0;
my $deadline  = time() + 60;
while (time() < $deadline)
{
	($received, $inserted) = stats();
	if ($inserted == 0 && $received > 20)
	{
		$seen = 1;
		last;
	}
	last if $inserted > 0;
	usleep(100_000);
}
ok($seen,
	"messages received while the first batch was stored ($received received, $inserted inserted)");
sql('DELETE FROM slow_checks');

ok($node->poll_query_until('postgres', 'SELECT count(*) = 40 FROM received'), 'all 40 stored');
is(sql('SELECT count(*), count(DISTINCT ids) FROM received'), '40|40', 'each once');
is(sql(q{SELECT string_agg(DISTINCT receive_count::text, ',') FROM received}), '1',
	'every message received once: none came back after its visibility timeout');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
is(sql(q{SELECT duplicates FROM sqs_ingest.stats WHERE pipeline = 'slow'}), '0', 'no duplicates');

$node->stop;
done_testing();
