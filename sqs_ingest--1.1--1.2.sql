/* sqs_ingest--1.1--1.2.sql */

\echo Use "ALTER EXTENSION sqs_ingest UPDATE TO '1.2'" to load this file. \quit

-- Recovery of encrypted personal data (the encrypt transform): every
-- recovery is logged, with who, when and why.  The log is written by
-- sqs_ingest_recover() as its owner; nobody else may change it.
CREATE TABLE sqs_ingest.recovery_log (
    recovered_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recovered_by pg_catalog.name NOT NULL,
    session_role pg_catalog.name NOT NULL,
    reason pg_catalog.text NOT NULL CHECK (pg_catalog.btrim(reason) OPERATOR(pg_catalog.<>) ''),
    key_id pg_catalog.text NOT NULL,
    value_digest pg_catalog.bytea NOT NULL
);
COMMENT ON TABLE sqs_ingest.recovery_log IS
    'One row per value decrypted by sqs_ingest_recover(); value_digest is sha256() of the ciphertext.';
REVOKE ALL ON sqs_ingest.recovery_log FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqs_ingest.recovery_log', '');

CREATE FUNCTION sqs_ingest_recover(ciphertext pg_catalog.bytea, secret_key pg_catalog.bytea,
                                   reason pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'sqs_ingest_recover'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION sqs_ingest_recover(bytea, bytea, text) FROM PUBLIC;

-- Queues granted like tables ------------------------------------------------

-- Which queues the pipelines of roles that are not superusers may read: a
-- grant lets the grantee's pipelines (and those of the roles that have its
-- privileges) receive and delete the queue's messages with the server's AWS
-- identity.  Written by the functions below only, read as the table's owner.
CREATE TABLE sqs_ingest.queue_grants (
    queue      pg_catalog.text NOT NULL,
    queue_url  pg_catalog.text NOT NULL,
    grantee    pg_catalog.regrole NOT NULL,
    granted_by pg_catalog.regrole NOT NULL,
    granted_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (queue, grantee)
);
COMMENT ON TABLE sqs_ingest.queue_grants IS
    'queues granted to roles for their pipelines; change with sqs_ingest_grant_queue/revoke_queue()';
COMMENT ON COLUMN sqs_ingest.queue_grants.queue IS
    'the queue as SQS identifies it: account id/queue name';
COMMENT ON COLUMN sqs_ingest.queue_grants.queue_url IS 'the URL as it was granted';
REVOKE ALL ON sqs_ingest.queue_grants FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqs_ingest.queue_grants', '');

CREATE FUNCTION sqs_ingest_grant_queue(queue_url pg_catalog.text, grantee pg_catalog.regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'sqs_ingest_grant_queue'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_grant_queue(text, regrole) IS
    'superusers only: let a role''s pipelines read a queue (receive and delete its messages with the server''s AWS identity)';

CREATE FUNCTION sqs_ingest_revoke_queue(queue_url pg_catalog.text, grantee pg_catalog.regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'sqs_ingest_revoke_queue'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_revoke_queue(text, regrole) IS
    'superusers only: take a queue grant back; the pipelines it allowed stop';

REVOKE ALL ON FUNCTION sqs_ingest_grant_queue(text, regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_revoke_queue(text, regrole) FROM PUBLIC;

-- The ledger's key in byte order --------------------------------------------

-- A message id is an opaque token: no order but the index's own matters, and
-- byte order (memcmp) serves it as well as the database's collation, which
-- calls strcoll() on every comparison unless that collation is "C".  Fresh
-- installs run this script too.  Rebuilds both primary key indexes (the
-- tables themselves are not rewritten), holding each table's lock while it
-- does.
ALTER TABLE sqs_ingest.processed
    ALTER COLUMN message_id TYPE pg_catalog.text COLLATE pg_catalog."C";
ALTER TABLE sqs_ingest.dead_letters
    ALTER COLUMN message_id TYPE pg_catalog.text COLLATE pg_catalog."C";
