
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# A table owner's code that runs while a message is mapped, before any
# insert: a domain's CHECK reached through an array column's input (and a
# composite's). It must run as the role the target's code runs as (here
# its owner, a plain role), never as the superuser a drain or worker runs
# as, which would let the owner make herself a superuser; and an error it
# raises must be rolled back, not caught halfway.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('domain-check');
my $node = new_node('domaincheck', queue_url => $url, create_table => 0);

sub sql { return $node->safe_psql('postgres', $_[0]); }

# alice owns the target; its domain's check records who runs it and, run
# by a superuser, makes alice one
sql(q{
CREATE ROLE alice LOGIN;
GRANT CREATE ON SCHEMA public TO alice;
SET ROLE alice;
CREATE TABLE public.who (u text, super bool, v text);
CREATE FUNCTION public.checked(v text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE
	super bool := (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);
BEGIN
	INSERT INTO public.who VALUES (current_user, super, v);
	IF super THEN
		EXECUTE 'ALTER ROLE alice SUPERUSER';
	END IF;
	IF v = 'bad' THEN
		RAISE EXCEPTION 'refused by the check';
	END IF;
	RETURN true;
END $$;
CREATE DOMAIN public.checked_text AS text CHECK (public.checked(VALUE));
CREATE TYPE public.pair AS (a public.checked_text, b int);
CREATE TABLE public.alice_logins (
    user_id          public.checked_text[],
    device_type      text,
    masked_ip        text,
    masked_device_id text,
    locale           text,
    app_version      integer,
    create_date      date);
CREATE TABLE public.alice_pairs (p public.pair);
RESET ROLE;
});

sub alice_is_superuser
{
	return sql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'});
}

# the previews, called by a superuser
my $preview = sql(q{
SELECT string_agg(coalesce(p.error, 'ok'), '; ' ORDER BY b.n)
FROM (VALUES (1, '{"user_id": "{one,two}"}'), (2, '{"user_id": "{bad}"}')) AS b(n, body),
     LATERAL sqs_ingest_preview_mapping(b.body, 'public.alice_logins',
                                        sqs_ingest_fetch_login_mapping()) AS p});
like($preview, qr/^ok; column "user_id": .*refused by the check$/,
	'preview: the check ran, and its error is the dead-letter reason');
is(sql(q{SELECT coalesce(string_agg(DISTINCT u, ','), 'nobody') FROM public.who}),
	'alice', 'preview: the check ran as the table owner');
is(alice_is_superuser(), 'f', 'preview: alice is not a superuser');

is(sql(q{SELECT coalesce((SELECT error FROM sqs_ingest_preview_mapping(
	'{"p": "(bad,1)"}', 'public.alice_pairs')), 'ok')}),
	'column "p": $."p": refused by the check',
	'preview: a composite with a domain field runs the check in a subtransaction too');

# a drain, as the superuser, of the settings-based pipeline into alice's table
sql(q{TRUNCATE public.who});
set_gucs($node, { 'sqs_ingest.target_table' => 'public.alice_logins' });
my $lines = PostgreSQL::Test::Utils::tempdir() . '/bodies';
PostgreSQL::Test::Utils::append_to_file($lines,
	qq({"user_id": "{u$_}", "ip": "10.0.0.$_", "device_id": "d$_", "app_version": "1.0.$_"}\n))
  for 1 .. 5;
PostgreSQL::Test::Utils::append_to_file($lines, qq({"user_id": "{bad}"}\n));
is(send_lines($url, $lines), 6, '6 messages sent');
my $offset = -s $node->logfile;
is_deeply(drain($node),
	{ received => 6, inserted => 5, duplicates => 0, dead_lettered => 1 },
	'drain: 5 rows stored, the one the check refused is a dead letter');
like(sql(q{SELECT error FROM sqs_ingest.dead_letters}), qr/refused by the check/,
	'the dead letter gives the check\'s error');
is(sql(q{SELECT string_agg(DISTINCT u || '/' || super, ',') FROM public.who}),
	'alice/false', 'drain: the check ran as the table owner, not a superuser');
is(alice_is_superuser(), 'f', 'drain: alice is not a superuser');
unlike(slurp_file($node->logfile, $offset), qr/leak|non-empty SPI stack/,
	'no resource leak reported: the failed check was rolled back');

no_crash($node, $offset, 'domain checks');

$node->stop;
$emu->stop;
done_testing();
