/* sqs_ingest--1.0.sql */

\echo Use "CREATE EXTENSION sqs_ingest" to load this file. \quit

CREATE SCHEMA sqs_ingest;
REVOKE ALL ON SCHEMA sqs_ingest FROM PUBLIC;

-- Ledger of every handled SQS message id, written in the same transaction
-- as the rows: a redelivered message is found here and skipped.
CREATE TABLE sqs_ingest.processed (
    message_id   text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
-- ids arrive in time order: a BRIN index serves pruning at almost no cost
CREATE INDEX processed_processed_at_idx ON sqs_ingest.processed USING brin (processed_at);
COMMENT ON TABLE sqs_ingest.processed IS
    'SQS message ids already stored (as a row or a dead letter); pruned after sqs_ingest.processed_retention';

-- Messages that could not become a row, kept whole with the reason.
-- The body is raw input: it may hold unmasked personal data.
CREATE TABLE sqs_ingest.dead_letters (
    message_id    text PRIMARY KEY,
    body          text,
    error         text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    receive_count integer,
    queue_url     text
);
CREATE INDEX dead_letters_received_at_idx ON sqs_ingest.dead_letters (received_at);
COMMENT ON TABLE sqs_ingest.dead_letters IS
    'SQS messages rejected by sqs_ingest, with the reason; bodies are raw and may hold personal data';

REVOKE ALL ON sqs_ingest.processed, sqs_ingest.dead_letters FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('sqs_ingest.processed', '');
SELECT pg_catalog.pg_extension_config_dump('sqs_ingest.dead_letters', '');

CREATE FUNCTION sqs_ingest_drain(max_messages bigint DEFAULT NULL)
RETURNS TABLE (received bigint, inserted bigint, duplicates bigint, dead_lettered bigint)
AS 'MODULE_PATHNAME', 'sqs_ingest_drain'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_drain(bigint) IS
    'drain the SQS queue into the target table now; messages are deleted from SQS when the transaction commits';

CREATE FUNCTION sqs_ingest_mask(value text)
RETURNS text
AS 'MODULE_PATHNAME', 'sqs_ingest_mask'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION sqs_ingest_mask(text) IS
    'the mask applied to ip and device_id (HMAC-SHA256 with sqs_ingest.mask_key, hex)';

CREATE FUNCTION sqs_ingest_preview(body text, sent_at timestamptz DEFAULT now())
RETURNS TABLE (user_id text, device_type text, masked_ip text, masked_device_id text,
               locale text, app_version text, create_date text, error text)
AS 'MODULE_PATHNAME', 'sqs_ingest_preview'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION sqs_ingest_preview(text, timestamptz) IS
    'the row a message body would become in the target table, or why it would be a dead letter';

CREATE FUNCTION sqs_ingest_version_number(version text)
RETURNS integer
AS 'MODULE_PATHNAME', 'sqs_ingest_version_number'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION sqs_ingest_version_number(text) IS
    'the integer an app version "M.m" or "M.m.p" is stored as: M*1000000 + m*1000 + p';

CREATE FUNCTION sqs_ingest_stats()
RETURNS TABLE (kind text, worker integer, pid integer, state text,
               received bigint, inserted bigint, duplicates bigint, dead_lettered bigint,
               deleted bigint, delete_failures bigint, sqs_errors bigint, retries bigint,
               last_error text, last_error_at timestamptz, last_batch_at timestamptz,
               started_at timestamptz)
AS 'MODULE_PATHNAME', 'sqs_ingest_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION sqs_ingest_stats() IS
    'counters of each background worker and running drain';

CREATE VIEW sqs_ingest.stats AS SELECT * FROM sqs_ingest_stats();

CREATE FUNCTION sqs_ingest_queue_depth()
RETURNS TABLE (visible bigint, not_visible bigint, delayed bigint)
AS 'MODULE_PATHNAME', 'sqs_ingest_queue_depth'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_queue_depth() IS
    'approximate numbers of messages in the SQS queue: visible, in flight, delayed';

CREATE FUNCTION sqs_ingest_prune_processed()
RETURNS bigint
AS 'MODULE_PATHNAME', 'sqs_ingest_prune_processed'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_prune_processed() IS
    'delete ledger entries older than sqs_ingest.processed_retention now';

-- Masking is a keyed secret and draining moves data: nothing for PUBLIC.
REVOKE ALL ON FUNCTION sqs_ingest_drain(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_mask(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_preview(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_queue_depth() FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_prune_processed() FROM PUBLIC;
REVOKE ALL ON sqs_ingest.stats FROM PUBLIC;

-- Monitoring needs no personal data: the predefined pg_monitor role may watch.
GRANT USAGE ON SCHEMA sqs_ingest TO pg_monitor;
GRANT SELECT ON sqs_ingest.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION sqs_ingest_stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION sqs_ingest_queue_depth() TO pg_monitor;
