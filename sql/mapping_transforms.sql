--
-- The mapping's transforms on every kind of value and column they accept
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
RESET client_min_messages;
SET sqs_ingest.mask_key = 'test-mask-key';
SET DateStyle = ISO;
SET TimeZone = 'UTC';

CREATE TABLE tx (t text, vc varchar(64), c char(64), i int, b bigint, n numeric, d date);

-- mask: a JSON string or number, a message field (dates in ISO form), an
-- attribute, the value of an else; into text, varchar(64), char(64)
SELECT mapped->>'t' = encode(hmac('10.0.0.1', 'test-mask-key', 'sha256'), 'hex') AS string_masked,
       mapped->>'vc' = encode(hmac('12.5', 'test-mask-key', 'sha256'), 'hex') AS number_masked,
       mapped->>'c' = encode(hmac('2024-02-03', 'test-mask-key', 'sha256'), 'hex') AS date_masked
FROM sqs_ingest_preview_mapping('{"ip": "10.0.0.1", "n": 12.5}', 'tx',
    '{"t": {"path": "$.ip", "transform": "mask"}, "vc": {"path": "$.n", "transform": "mask"},
      "c": {"message": "sent_date", "transform": "mask"}}',
    NULL, '2024-02-03 04:05:06+00');
SELECT mapped->>'t' = encode(hmac('1', 'test-mask-key', 'sha256'), 'hex') AS count_masked,
       mapped->>'vc' = encode(hmac('dev-1', 'test-mask-key', 'sha256'), 'hex') AS attribute_masked,
       mapped->>'c' = encode(hmac('fallback', 'test-mask-key', 'sha256'), 'hex') AS else_masked
FROM sqs_ingest_preview_mapping('{"y": "fallback"}', 'tx',
    '{"t": {"message": "receive_count", "transform": "mask"},
      "vc": {"message_attribute": "device", "transform": "mask"},
      "c": {"path": "$.x", "else": {"path": "$.y", "transform": "mask"}}}',
    NULL, NULL, '{"device": "dev-1"}');
-- only the rule that made the value transforms it
SELECT mapped->>'t' AS not_masked
FROM sqs_ingest_preview_mapping('{"x": "plain", "y": "other"}', 'tx',
    '{"t": {"path": "$.x", "else": {"path": "$.y", "transform": "mask"}}}');
SELECT error FROM sqs_ingest_preview_mapping('{"ip": [1]}', 'tx', '{"vc": {"path": "$.ip", "transform": "mask"}}');
SELECT * FROM sqs_ingest_preview_mapping('{}', 'tx', '{"d": {"path": "$.x", "transform": "mask"}}');
-- the unkeyed algorithm, chosen explicitly
SET sqs_ingest.mask_algorithm = 'sha256';
SELECT mapped->>'t' = encode(digest('10.0.0.1', 'sha256'), 'hex') AS digest_masked
FROM sqs_ingest_preview_mapping('{"ip": "10.0.0.1"}', 'tx', '{"t": {"path": "$.ip", "transform": "mask"}}');
RESET sqs_ingest.mask_algorithm;
-- no key: a mapping that masks is refused, one that does not runs
SET sqs_ingest.mask_key = '';
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "10.0.0.1"}', 'tx', '{"t": {"path": "$.ip", "transform": "mask"}}');
SELECT mapped FROM sqs_ingest_preview_mapping('{"ip": "10.0.0.1"}', 'tx', '{"t": {"path": "$.ip"}}');
SET sqs_ingest.mask_key = 'test-mask-key';

-- version_number: into integer, bigint, numeric; text keeps it as written
SELECT mapped FROM sqs_ingest_preview_mapping('{"v": "1.2.3", "w": 4.5}', 'tx',
    '{"i": {"path": "$.v", "transform": "version_number"}, "b": {"path": "$.w", "transform": "version_number"},
      "n": {"path": "$.v", "transform": "version_number"}, "t": {"path": "$.v", "transform": "version_number"}}');
SELECT body, error FROM (VALUES ('{"v": true}'), ('{"v": {"a": 1}}'), ('{"v": "1.2.3.4"}'), ('{"v": 1}')) AS t(body),
    LATERAL sqs_ingest_preview_mapping(body, 'tx', '{"i": {"path": "$.v", "transform": "version_number"}}') AS p;
-- a message field is turned into text first
SELECT error FROM sqs_ingest_preview_mapping('{}', 'tx', '{"i": {"message": "receive_count", "transform": "version_number"}}');
SELECT * FROM sqs_ingest_preview_mapping('{}', 'tx', '{"d": {"path": "$.x", "transform": "version_number"}}');

-- encrypt: into bytea only, checked before any key is looked for
SELECT * FROM sqs_ingest_preview_mapping('{}', 'tx', '{"t": {"path": "$.x", "transform": "encrypt"}}');
SELECT * FROM sqs_ingest_preview_mapping('{}', 'tx', '{"t": {"path": "$.x", "transform": 1}}');

DROP TABLE tx;
