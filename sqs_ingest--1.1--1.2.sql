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
