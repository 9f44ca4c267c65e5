/* sqs_ingest--1.0--1.1.sql */

\echo Use "ALTER EXTENSION sqs_ingest UPDATE TO '1.1'" to load this file. \quit

-- Pipelines: the mapping language -----------------------------------------

CREATE FUNCTION sqs_ingest_fetch_login_mapping()
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'sqs_ingest_fetch_login_mapping'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION sqs_ingest_fetch_login_mapping() IS
    'the mapping of the login events (user_logins) in the mapping language';

CREATE FUNCTION sqs_ingest_preview_mapping(body pg_catalog.text, target pg_catalog.regclass,
                                           mapping pg_catalog.jsonb DEFAULT NULL,
                                           options pg_catalog.jsonb DEFAULT '{}',
                                           sent_at pg_catalog.timestamptz DEFAULT pg_catalog.now(),
                                           attributes pg_catalog.jsonb DEFAULT '{}')
RETURNS TABLE (mapped pg_catalog.jsonb, error pg_catalog.text)
AS 'MODULE_PATHNAME', 'sqs_ingest_preview_mapping'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION sqs_ingest_preview_mapping(text, regclass, jsonb, jsonb, timestamptz, jsonb) IS
    'the rows a message body would become in a table under a mapping, or why it would be a dead letter';

-- a preview masks with the secret key: not for PUBLIC
REVOKE ALL ON FUNCTION sqs_ingest_fetch_login_mapping() FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_preview_mapping(text, regclass, jsonb, jsonb, timestamptz, jsonb) FROM PUBLIC;

-- Pipelines: the catalog ----------------------------------------------------

-- Each row is a pipeline: a queue, a target table, a mapping, options.  Only
-- the functions below write it (as the table's owner); they check the
-- mapping against the target and record who created the pipeline, whose
-- rights its inserts never exceed.
CREATE TABLE sqs_ingest.pipelines (
    name       pg_catalog.text PRIMARY KEY,
    queue_url  pg_catalog.text NOT NULL,
    target     pg_catalog.text NOT NULL,
    mapping    pg_catalog.jsonb,
    options    pg_catalog.jsonb NOT NULL DEFAULT '{}',
    owner      pg_catalog.regrole NOT NULL,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE sqs_ingest.pipelines IS
    'pipelines: each moves one SQS queue into one table through its mapping; change with sqs_ingest_create/alter/drop_pipeline()';
COMMENT ON COLUMN sqs_ingest.pipelines.target IS 'schema-qualified name of the target table';
COMMENT ON COLUMN sqs_ingest.pipelines.mapping IS 'column -> rule; NULL: every column from the body member of its name';
REVOKE ALL ON sqs_ingest.pipelines FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqs_ingest.pipelines', '');

CREATE FUNCTION sqs_ingest_create_pipeline(name pg_catalog.text, queue_url pg_catalog.text,
                                           target pg_catalog.regclass,
                                           mapping pg_catalog.jsonb DEFAULT NULL,
                                           options pg_catalog.jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'sqs_ingest_create_pipeline'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb) IS
    'define a pipeline from an SQS queue into a table; errors on an invalid mapping, naming the column';

CREATE FUNCTION sqs_ingest_alter_pipeline(name pg_catalog.text, queue_url pg_catalog.text DEFAULT NULL,
                                          target pg_catalog.regclass DEFAULT NULL,
                                          mapping pg_catalog.jsonb DEFAULT NULL,
                                          options pg_catalog.jsonb DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'sqs_ingest_alter_pipeline'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb) IS
    'change a pipeline (NULL: unchanged; options are merged, an option set to null is reset)';

CREATE FUNCTION sqs_ingest_drop_pipeline(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'sqs_ingest_drop_pipeline'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_drop_pipeline(text) IS
    'remove a pipeline; its workers stop';

-- defining pipelines moves data with the definer's rights: granted explicitly
REVOKE ALL ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION sqs_ingest_drop_pipeline(text) FROM PUBLIC;

-- A drain commits batch by batch in a background worker of its own.
COMMENT ON FUNCTION sqs_ingest_drain(bigint) IS
    'drain the SQS queue into the target table now, committing batch by batch in a background worker (the caller''s rollback does not undo it)';

-- Secrets live in each server process's private memory, not in the settings
-- a parallel worker receives: whatever masks runs in the leader only.
ALTER FUNCTION sqs_ingest_mask(text) PARALLEL RESTRICTED;
ALTER FUNCTION sqs_ingest_preview(text, timestamptz) PARALLEL RESTRICTED;
ALTER FUNCTION sqs_ingest_preview_mapping(text, regclass, jsonb, jsonb, timestamptz, jsonb) PARALLEL RESTRICTED;

-- Credentials: sqs_ingest.stats shows where each process takes its AWS -----
-- credentials from (settings, environment, web-identity, profile:NAME,
-- container, imds).  A view's columns cannot be added in place.
DROP VIEW sqs_ingest.stats;
DROP FUNCTION sqs_ingest_stats();
CREATE FUNCTION sqs_ingest_stats()
RETURNS TABLE (kind text, worker integer, pid integer, state text,
               received bigint, inserted bigint, duplicates bigint, dead_lettered bigint,
               deleted bigint, delete_failures bigint, sqs_errors bigint, retries bigint,
               last_error text, last_error_at timestamptz, last_batch_at timestamptz,
               started_at timestamptz, credential_source text)
AS 'MODULE_PATHNAME', 'sqs_ingest_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION sqs_ingest_stats() IS
    'counters of each background worker and running drain';
CREATE VIEW sqs_ingest.stats AS SELECT * FROM sqs_ingest_stats();
REVOKE ALL ON FUNCTION sqs_ingest_stats() FROM PUBLIC;
REVOKE ALL ON sqs_ingest.stats FROM PUBLIC;
GRANT SELECT ON sqs_ingest.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION sqs_ingest_stats() TO pg_monitor;

-- Pipelines: draining one, dead letters that say whose they are -------------

ALTER TABLE sqs_ingest.dead_letters ADD COLUMN pipeline pg_catalog.text;
COMMENT ON COLUMN sqs_ingest.dead_letters.pipeline IS
    'the pipeline that rejected the message; "default" for the settings-based one';

CREATE FUNCTION sqs_ingest_drain(pipeline pg_catalog.text, max_messages pg_catalog.int8 DEFAULT NULL)
RETURNS TABLE (received pg_catalog.int8, inserted pg_catalog.int8,
               duplicates pg_catalog.int8, dead_lettered pg_catalog.int8)
AS 'MODULE_PATHNAME', 'sqs_ingest_drain_pipeline'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sqs_ingest_drain(text, bigint) IS
    'drain a pipeline''s queue into its table now, committing batch by batch in a background worker';
REVOKE ALL ON FUNCTION sqs_ingest_drain(text, bigint) FROM PUBLIC;

-- Pipelines: one stats row per pipeline worker, with the pipeline's name ----

DROP VIEW sqs_ingest.stats;
DROP FUNCTION sqs_ingest_stats();
CREATE FUNCTION sqs_ingest_stats()
RETURNS TABLE (kind pg_catalog.text, worker pg_catalog.int4, pid pg_catalog.int4, state pg_catalog.text,
               received pg_catalog.int8, inserted pg_catalog.int8, duplicates pg_catalog.int8,
               dead_lettered pg_catalog.int8, deleted pg_catalog.int8, delete_failures pg_catalog.int8,
               sqs_errors pg_catalog.int8, retries pg_catalog.int8,
               last_error pg_catalog.text, last_error_at pg_catalog.timestamptz,
               last_batch_at pg_catalog.timestamptz, started_at pg_catalog.timestamptz,
               credential_source pg_catalog.text, pipeline pg_catalog.text)
AS 'MODULE_PATHNAME', 'sqs_ingest_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION sqs_ingest_stats() IS
    'counters of each background worker and running drain, with its pipeline';
CREATE VIEW sqs_ingest.stats AS SELECT * FROM @extschema@.sqs_ingest_stats();
REVOKE ALL ON FUNCTION sqs_ingest_stats() FROM PUBLIC;
REVOKE ALL ON sqs_ingest.stats FROM PUBLIC;
GRANT SELECT ON sqs_ingest.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION sqs_ingest_stats() TO pg_monitor;
