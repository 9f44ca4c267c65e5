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
