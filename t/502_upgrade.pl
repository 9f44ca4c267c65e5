
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Upgrading like any extension: a cluster runs version 1.0 of the SQL
# objects with the current library and a worker ingesting; ALTER EXTENSION
# sqs_ingest UPDATE runs while messages keep arriving; ingestion goes on,
# nothing lost or doubled. Then the objects of the updated install must be
# the same as those of a fresh install of the default version: an upgrade
# script that forgets (or adds) something shows up here, object by object.
# The update changes the ledger's key to byte order (COLLATE "C", rebuilding
# its index): the ids stored before it are still there, and a message stored
# before the update and redelivered after it is still a duplicate.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use SqsIngestWorker;
use Test::More;

my $emu  = start_emulator();
my $url  = create_queue('upgrade-queue');
my $node = worker_node('upgrade', queue_url => $url, extension_version => '1.0');

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $default_version = sql(
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'sqs_ingest'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'sqs_ingest'}),
	'1.0', 'the cluster starts at version 1.0');
isnt($default_version, '1.0', "the default version ($default_version) is newer");

### ingest on 1.0

my $before = generate_events(300, 5021);
is(send_events($url, $before), 300, '300 events sent before the update');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', 300),
	'the worker stores them on 1.0');

### a ledger to keep: messages stored on 1.0 whose deletes failed

# Drained from a queue of their own into a table of their own (the
# session's settings), through a proxy that refuses every entry of every
# delete call (the calls answered, so the drain ends well): they stay
# in SQS and come back after the update.
my $dup_url = create_queue('upgrade-dups');
my $proxy   = start_proxy($emu);
sql('CREATE TABLE dup_logins (LIKE user_logins)');
my $dup_session =
    "SET sqs_ingest.queue_url = '$dup_url'; "
  . "SET sqs_ingest.endpoint = '" . $proxy->endpoint . "'; "
  . "SET sqs_ingest.target_table = 'public.dup_logins'; "
  . "SET sqs_ingest.visibility_timeout = 2; ";
is(send_generated($dup_url, 20, 5025), 20, '20 events sent to a second queue');
$proxy->set_fault({ deleteFailure => 'failed-entries' });
is_deeply(
	drain($node, undef, $dup_session),
	{ received => 20, inserted => 20, duplicates => 0, dead_lettered => 0 },
	'a drain on 1.0 stores them although their deletes fail');
$proxy->clear_faults;
sql('CREATE TABLE ledger_before AS SELECT message_id FROM sqs_ingest.processed');
cmp_ok(sql('SELECT count(*) FROM ledger_before'),
	'>=', 320, 'the ledger holds the ids stored on 1.0');

### update while messages arrive

my $during = generate_events(600, 5022);
my $sender = send_in_background($emu, $url, $during, chunk => 100, pause => 0.5);
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) > 300 FROM user_logins'),
	'the worker is storing the second stream');
sql('ALTER EXTENSION sqs_ingest UPDATE');
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'sqs_ingest'}),
	$default_version, "ALTER EXTENSION sqs_ingest UPDATE reaches $default_version");
ok($sender->finish, 'the second stream was sent in full');

my $after = generate_events(300, 5023);
is(send_events($url, $after), 300, '300 events sent after the update');
my @all = (@$before, @$during, @$after);
my $total = scalar @all;
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM user_logins', $total),
	"the worker stores every event: $total rows");
ok(wait_for_depth($url, 0, 0, 0), 'the queue ends empty');
is(rows_digest($node), user_ids_digest(\@all), 'each event stored exactly once');
is(sql('SELECT count(*) FROM sqs_ingest.processed'), $total + 20,
	'the ledger holds each message once');
is(sql('SELECT count(*) FROM sqs_ingest.dead_letters'), '0', 'no dead letters');
is(rows_mismatch($node, \@all), 0, 'rows equal the events, masks included');

# A drain after the update goes through the updated objects.
my $late = generate_events(50, 5024);
sql('ALTER SYSTEM SET sqs_ingest.workers = 0');
$node->restart;
is(send_events($url, $late), 50, '50 more events sent, no worker running');
my $r = drain($node);
is($r->{inserted}, 50, 'sqs_ingest_drain() stores them on the updated version');
is(rows_digest($node), user_ids_digest([ @all, @$late ]), 'still each event once');

### the ledger after the update

is( sql(
		q{SELECT attname, attcollation::pg_catalog.regcollation FROM pg_catalog.pg_attribute
		  WHERE attrelid IN ('sqs_ingest.processed'::regclass, 'sqs_ingest.dead_letters'::regclass)
		    AND attname = 'message_id' ORDER BY attrelid::regclass::text}),
	qq{message_id|"C"\nmessage_id|"C"},
	'the ledger\'s and the dead letters\' message ids compare in byte order');
is( sql(
		q{SELECT count(*) FROM ledger_before b
		  WHERE NOT EXISTS (SELECT FROM sqs_ingest.processed p WHERE p.message_id = b.message_id)}),
	'0',
	'every id in the ledger before the update is in it after');
ok(wait_for_depth($dup_url, 20, 0, 0), 'the 20 undeleted messages are visible again');
is_deeply(
	drain($node, undef, $dup_session),
	{ received => 20, inserted => 0, duplicates => 20, dead_lettered => 0 },
	'stored on 1.0, redelivered after the update: 20 duplicates');
is(sql('SELECT count(*) FROM dup_logins'), '20', 'none of them stored twice');
is_deeply([ queue_depth($dup_url) ], [ 0, 0, 0 ], 'and now deleted');

# The ledger's statements compare message ids as the index does (an
# implicit "C" beats the default collation of their text[] parameter):
# the ledger insert still arbitrates on the primary key, a lookup uses it.
my $plan = sql(
	q{PREPARE ledger(text[]) AS
	    WITH ids AS (SELECT * FROM pg_catalog.unnest($1) WITH ORDINALITY AS u(message_id, position)),
	    fresh AS (INSERT INTO sqs_ingest.processed (message_id, processed_at)
	              SELECT message_id, pg_catalog.now() FROM ids
	              ON CONFLICT (message_id) DO NOTHING RETURNING message_id)
	    SELECT ids.position::pg_catalog.int4 FROM ids JOIN fresh
	    ON ids.message_id OPERATOR(pg_catalog.=) fresh.message_id;
	  EXPLAIN (COSTS OFF) EXECUTE ledger('{a,b}');});
like($plan, qr/Conflict Arbiter Indexes: processed_pkey/,
	'the ledger insert arbitrates on the primary key');
$plan = sql(
	q{SET enable_seqscan = off; SET enable_bitmapscan = off;
	  PREPARE lookup(text[]) AS SELECT FROM sqs_ingest.processed
	    WHERE message_id OPERATOR(pg_catalog.=) ANY ($1);
	  EXPLAIN (COSTS OFF) EXECUTE lookup('{a,b}');});
like($plan, qr/Index Only Scan using processed_pkey/,
	'a lookup by message id with a text[] parameter uses the primary key');

### the updated objects equal a fresh install's

# One line per member object of the extension and per thing that defines it
# (function definitions, columns, constraints, indexes, privileges,
# comments, configuration-dump filters), with nothing that depends on OIDs;
# a function's definition continues on lines indented by four spaces.
my $objects_sql = q{
WITH members AS (
  SELECT d.classid, d.objid, d.objsubid
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
  WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
    AND d.deptype = 'e' AND e.extname = 'sqs_ingest'
), rels AS (
  SELECT c.oid, c.oid::pg_catalog.regclass::pg_catalog.text AS name
  FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.objid
  WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
)
SELECT string_agg(line, E'\n' ORDER BY line)
FROM (
  SELECT o.type || ' ' || o.identity
    || coalesce(' acl=' || p.proacl::pg_catalog.text, '')
    || coalesce(E'\n    ' || pg_catalog.replace(pg_catalog.rtrim(pg_catalog.pg_get_functiondef(p.oid), E'\n'),
                                              E'\n', E'\n    '), '') AS line
  FROM members m
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(m.classid, m.objid, m.objsubid) o
  LEFT JOIN pg_catalog.pg_proc p
    ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
  UNION ALL
  SELECT 'relation ' || r.name || ' kind=' || c.relkind::pg_catalog.text
    || ' persistence=' || c.relpersistence::pg_catalog.text
    || ' acl=' || coalesce(c.relacl::pg_catalog.text, '-')
    || ' options=' || coalesce(c.reloptions::pg_catalog.text, '-')
    || coalesce(' view=' || pg_catalog.pg_get_viewdef(c.oid), '')
  FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid
  UNION ALL
  SELECT 'relation ' || r.name || ' column ' || a.attnum || ' ' || a.attname || ' '
    || pg_catalog.format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    || coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
    || coalesce(' acl=' || a.attacl::pg_catalog.text, '')
    || CASE WHEN a.attcollation <> 0
         THEN ' collate ' || a.attcollation::pg_catalog.regcollation::pg_catalog.text ELSE '' END
  FROM rels r
  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  UNION ALL
  SELECT 'relation ' || r.name || ' constraint ' || con.conname || ' '
    || pg_catalog.pg_get_constraintdef(con.oid)
  FROM rels r JOIN pg_catalog.pg_constraint con ON con.conrelid = r.oid
  UNION ALL
  SELECT 'relation ' || r.name || ' index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM rels r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
  UNION ALL
  SELECT 'relation ' || r.name || ' trigger ' || pg_catalog.pg_get_triggerdef(t.oid)
  FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::pg_catalog.text, '-')
  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'sqs_ingest'
  UNION ALL
  SELECT 'comment on ' || o.type || ' ' || o.identity || ': ' || ds.description
  FROM pg_catalog.pg_description ds
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(ds.classoid, ds.objoid, ds.objsubid) o
  WHERE (ds.classoid, ds.objoid) IN (SELECT classid, objid FROM members)
     OR o.schema = 'sqs_ingest' OR o.identity = 'sqs_ingest'
  UNION ALL
  SELECT 'configuration dump of ' || cfg.tab::pg_catalog.regclass::pg_catalog.text
    || ' where ' || coalesce(cfg.cnd, '-')
  FROM pg_catalog.pg_extension e
  CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig),
                                pg_catalog.unnest(e.extcondition)) AS cfg(tab, cnd)
  WHERE e.extname = 'sqs_ingest'
  UNION ALL
  SELECT 'extension version ' || e.extversion || ' relocatable=' || e.extrelocatable
    || ' schema=' || e.extnamespace::pg_catalog.regnamespace::pg_catalog.text
  FROM pg_catalog.pg_extension e WHERE e.extname = 'sqs_ingest'
) lines};

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pgcrypto; CREATE EXTENSION sqs_ingest');
my @updated = split /\n(?!    )/, $node->safe_psql('postgres', $objects_sql);
my @fresh   = split /\n(?!    )/, $node->safe_psql('fresh',    $objects_sql);
cmp_ok(scalar @fresh, '>', 10, 'the catalog dump lists the extension\'s objects');

my %in_fresh   = map { $_ => 1 } @fresh;
my %in_updated = map { $_ => 1 } @updated;
my @missing    = grep { !$in_updated{$_} } @fresh;
my @extra      = grep { !$in_fresh{$_} } @updated;
ok(!@missing && !@extra,
	"1.0 updated to $default_version has the same objects as a fresh $default_version install")
  or diag(
	"sqs_ingest--1.0--$default_version.sql does not give what a fresh install gives.\n"
	  . "In a fresh install only (the upgrade script misses or changes it):\n  "
	  . (join("\n  ", @missing) || '(none)') . "\n"
	  . "In the updated install only (the fresh install misses or changes it):\n  "
	  . (join("\n  ", @extra) || '(none)'));

$node->stop;
done_testing();
