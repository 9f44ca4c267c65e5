
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A role that owns the database (and so schema public) and the target table
# tries to become superuser through sqs_ingest: functions and an operator in
# public that would win name resolution over the built-ins the statements
# use (an exact-type unnest(text[]) beats pg_catalog.unnest(anyarray)), and
# a trigger on the target table.  Messages flow through the worker and
# through a drain called by a superuser; the role is still not superuser,
# the rows arrived, the impostors were never called, the trigger ran as its
# owner and its failure is a dead letter with its reason.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('hijack-worker');
my $url2 = create_queue('hijack-drain');
my $node = worker_node('hijack', queue_url => $url);

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the table was owned by the bootstrap superuser when the worker started
like(slurp_file($node->logfile),
	qr/WARNING:  sqs_ingest runs the code of target table user_logins as superuser/,
	'the worker warns that the target table code would run as a superuser');

sql(q{
CREATE ROLE mallory LOGIN;
ALTER DATABASE postgres OWNER TO mallory;
ALTER TABLE public.user_logins OWNER TO mallory;
});

# everything below is created by mallory itself
$node->safe_psql('postgres', <<'SQL', extra_params => [ '-U', 'mallory' ]);
CREATE TABLE public.attempts (via text, who text, outcome text);
GRANT INSERT ON public.attempts TO PUBLIC;

CREATE FUNCTION public.escalate(via text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER ROLE mallory SUPERUSER';
  INSERT INTO public.attempts VALUES (via, current_user, 'ESCALATED');
EXCEPTION WHEN others THEN
  INSERT INTO public.attempts VALUES (via, current_user, SQLERRM);
END $$;

CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.escalate('unnest');
  RETURN QUERY SELECT pg_catalog.unnest($1);
END $$;

CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.escalate('now');
  RETURN pg_catalog.now();
END $$;

CREATE FUNCTION public.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.escalate('operator');
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq);

CREATE FUNCTION public.tstz_lt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.escalate('operator');
  RETURN $1 OPERATOR(pg_catalog.<) $2;
END $$;
CREATE OPERATOR public.< (LEFTARG = timestamptz, RIGHTARG = timestamptz,
                          FUNCTION = public.tstz_lt);

CREATE FUNCTION public.user_logins_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM public.escalate('trigger');
  IF NEW.user_id LIKE 'reject-%' THEN
    RAISE EXCEPTION 'refused by the owner''s trigger: %', NEW.user_id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER user_logins_trigger BEFORE INSERT ON public.user_logins
  FOR EACH ROW EXECUTE FUNCTION public.user_logins_trigger();
SQL

### through the worker

# the rows that pass first, alone: a batch whose insert is rolled back
# would roll an escalation back with it
my $events = generate_events(20, 201);
is(send_events($url, $events), 20, '20 events sent to the worker queue');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 20),
	'the worker stored 20 rows');
is(send_events($url, [ { %{ $events->[0] }, user_id => 'reject-worker' } ]),
	1, 'an event the trigger refuses sent');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM sqs_ingest.dead_letters', 1),
	'the worker stored it as a dead letter');
like(sql(q{SELECT error FROM sqs_ingest.dead_letters WHERE body LIKE '%reject-worker%'}),
	qr/refused by the owner's trigger: reject-worker/,
	'the trigger\'s refusal is a dead letter with its reason');

### through a drain called by a superuser

my $events2 = generate_events(10, 202);
is(send_events($url2, $events2), 10, '10 events sent to the drain queue');
my $r = drain($node, undef, "SET sqs_ingest.queue_url = '$url2';");
is($r->{inserted} . '/' . $r->{dead_lettered}, '10/0',
	'the superuser\'s drain stored 10 rows');
send_events($url2, [ { %{ $events2->[0] }, user_id => 'reject-drain' } ]);
$r = drain($node, undef, "SET sqs_ingest.queue_url = '$url2';");
is($r->{inserted} . '/' . $r->{dead_lettered}, '0/1',
	'and the refused one as a dead letter');
is(sql('SELECT sqs_ingest_prune_processed()'), '0', 'ledger pruning ran');

### nothing escalated

is(sql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'mallory is still not a superuser');
is(sql(q{SELECT count(*) FROM attempts WHERE outcome = 'ESCALATED'}), '0',
	'no escalation attempt succeeded');
is(sql(q{SELECT count(*) FROM attempts WHERE via <> 'trigger'}), '0',
	'the impostor unnest, now and operators were never called');
is(sql(q{SELECT string_agg(DISTINCT who, ',') FROM attempts WHERE via = 'trigger'}),
	'mallory', 'the trigger ran as the table owner, not as a superuser');
like(sql(q{SELECT min(outcome) FROM attempts WHERE via = 'trigger'}),
	qr/superuser|permission denied|restricted/,
	'the trigger\'s ALTER ROLE failed for lack of rights');
is(sql(q{SELECT count(*) FROM user_logins}), '30', 'all 30 accepted rows arrived');
ok(wait_for_depth($url, 0, 0, 0), 'worker queue empty');

done_testing();
