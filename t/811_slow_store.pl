
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A store much longer than a receive's timeout (a statement-level trigger
# sleeping 35 s) while receives long-poll: SQS answers them during the
# store, and those answers are read once the store is over instead of being
# thrown away as timeouts, which would leave their messages hidden for a
# visibility timeout and bring them back with a higher receive count. Every
# row's receive count is 1, none is stored twice.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('slow-store');
my $node = worker_node(
	'slowstore',
	workers  => 0,
	settings => {
		'sqs_ingest.endpoint'        => $emu->endpoint,
		'sqs_ingest.request_timeout' => '1s',
	});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the first store sleeps 35 s, longer than a receive's long poll (20 s)
# and timeout (1 s) together
sql(q{
CREATE TABLE received (user_id text, receive_count int);
CREATE TABLE sleep_once (pending bool);
INSERT INTO sleep_once VALUES (true);
CREATE FUNCTION sleep_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM public.sleep_once) THEN
        DELETE FROM public.sleep_once;
        PERFORM pg_catalog.pg_sleep(35);
    END IF;
    RETURN NULL;
END$$;
CREATE TRIGGER sleep_once AFTER INSERT ON received
    FOR EACH STATEMENT EXECUTE FUNCTION sleep_once();});
sql(qq{
SELECT sqs_ingest_create_pipeline('slow', '$url', 'received',
    '{"user_id": {"path": "\$.user_id"}, "receive_count": {"message": "receive_count"}}',
    '{"max_inflight": 4, "batch_size": 20, "wait_time_seconds": 20, "visibility_timeout": 60}');});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM sqs_ingest.stats WHERE pipeline = 'slow' AND state = 'polling'}),
	'the pipeline worker polls');

is(send_generated($url, 5, 811), 5, 'five events sent');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'}),
	'their store sleeps');
# the receives in flight are answered now, during the store
is(send_generated($url, 30, 812), 30, 'thirty more events sent during the store');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM received', 35),
	'all 35 stored');
is(sql('SELECT count(*), count(DISTINCT user_id) FROM received'), '35|35', 'each once');
is(sql('SELECT string_agg(DISTINCT receive_count::text, \',\') FROM received'), '1',
	'every message received once: no answer was thrown away');
ok(wait_for_depth($url, 0, 0, 0), 'queue empty');
is(sql(q{SELECT duplicates FROM sqs_ingest.stats WHERE pipeline = 'slow'}), '0', 'no duplicates');

$node->stop;
done_testing();
