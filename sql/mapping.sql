--
-- Mapping of message bodies to rows, and the reason when they cannot be
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
RESET client_min_messages;
SET sqs_ingest.mask_key = 'test-mask-key';
SET DateStyle = ISO;

-- no target table yet: the error says how to create it
SELECT * FROM sqs_ingest_preview('{"user_id": "u"}');

\i examples/user_logins.sql

-- the first event of the real sample
SELECT user_id, device_type, locale, app_version, create_date, error,
       masked_ip = encode(hmac('199.172.111.135', 'test-mask-key', 'sha256'), 'hex') AS ip_masked,
       masked_device_id = encode(hmac('593-47-5928', 'test-mask-key', 'sha256'), 'hex') AS device_id_masked
FROM sqs_ingest_preview('{"user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae", "app_version": "2.3.0", "device_type": "android", "ip": "199.172.111.135", "locale": "RU", "device_id": "593-47-5928"}',
                        '2022-12-01 10:00:00+00');

-- every event of the real sample: 99 rows, 1 dead letter
\set sample `cat "${SQS_INGEST_SAMPLE:-test/data/fetch_sample_data.json}"`
SELECT p.error IS NULL AS row_ok, count(*) AS events,
       count(p.locale) AS with_locale,
       bool_and(p.masked_ip = encode(hmac(e->>'ip', 'test-mask-key', 'sha256'), 'hex')) AS ip_masked,
       bool_and(p.app_version::int = sqs_ingest_version_number(e->>'app_version')) AS versions_encoded,
       min(p.error) AS error
FROM jsonb_array_elements(:'sample'::jsonb) AS e,
     LATERAL sqs_ingest_preview(e::text, '2022-12-01 10:00:00+00') AS p
GROUP BY 1 ORDER BY 1;

-- create_date: the body's when present, else the UTC date the message was sent
SELECT create_date FROM sqs_ingest_preview('{"user_id": "u", "create_date": "2021-06-01"}');
SELECT create_date FROM sqs_ingest_preview('{"user_id": "u"}', '2024-03-01 00:30:00+01');
SELECT create_date FROM sqs_ingest_preview('{"user_id": "u"}', '2024-02-29 23:59:59.999+00');
SELECT create_date FROM sqs_ingest_preview('{"user_id": "u", "create_date": "2024-02-29"}');

-- absent, null and unknown fields
SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, error
FROM sqs_ingest_preview('{"user_id": "u", "locale": null, "ip": null, "extra": {"deep": [1, 2]}, "n": 1}');

-- strings stored verbatim: SQL-looking, non-ASCII, escapes
SELECT user_id, device_type, locale
FROM sqs_ingest_preview('{"user_id": "''); DROP TABLE user_logins; --", "device_type": "Zürich 😀", "locale": "tab\tquote\"nl\n"}');
SELECT count(*) AS table_still_there FROM user_logins;

-- app_version as a JSON number
SELECT app_version, error FROM sqs_ingest_preview('{"user_id": "u", "app_version": 2.3}');

-- a repeated key keeps the last value, as jsonb does
SELECT user_id FROM sqs_ingest_preview('{"user_id": "first", "user_id": "last"}');

-- bad input: each one a dead letter with its reason
SELECT body, (sqs_ingest_preview(body)).error
FROM (VALUES
    ('not json at all'),
    ('{"user_id": "u",'),
    (''),
    ('[1, 2, 3]'),
    ('"just a string"'),
    ('42'),
    ('null'),
    ('{}'),
    ('{"foo": "oops_wrong_msg_type", "bar": "123"}'),
    ('{"user_id": ""}'),
    ('{"user_id": null}'),
    ('{"user_id": 12345}'),
    ('{"user_id": ["u"]}'),
    ('{"user_id": "u", "locale": {"lang": "en"}}'),
    ('{"user_id": "u", "device_type": true}'),
    ('{"user_id": "u", "ip": 3232235777}'),
    ('{"user_id": "u", "device_id": [1]}'),
    ('{"user_id": "u", "app_version": false}'),
    ('{"user_id": "u\u0000x"}'),
    ('{"user_id": "u", "locale": "\ud800"}'),
    ('{"user_id": "u", "locale": "\udc00\ud800"}'),
    ('{"user_id": "u", "device_type": "a-device-type-that-is-much-too-long"}'),
    ('{"user_id": "u", "locale": "ññññññññññññññññññññññññññññññññ"}'),
    ('{"user_id": "u", "locale": "ñññññññññññññññññññññññññññññññññ"}'),
    ('{"user_id": "u", "app_version": "1.2.3.4"}'),
    ('{"user_id": "u", "app_version": "x.y"}'),
    ('{"user_id": "u", "app_version": "1000.0"}'),
    ('{"user_id": "u", "app_version": 3}'),
    ('{"user_id": "u", "create_date": "2023-13-45"}'),
    ('{"user_id": "u", "create_date": "2023-02-29"}'),
    ('{"user_id": "u", "create_date": "not a date"}'),
    ('{"user_id": "u", "create_date": "2023-01-02T10:00:00Z"}'),
    ('{"user_id": "u", "create_date": 20230102}')
) AS t(body);

-- nesting deep enough to exhaust the stack is refused, not a crash
SELECT (sqs_ingest_preview('{"user_id": "u", "x": ' || repeat('[', 100000) || repeat(']', 100000) || '}')).error;
SELECT (sqs_ingest_preview(repeat('[', 100000) || repeat(']', 100000))).error;
-- 1000 levels in all are fine, the body's object being the first
SELECT (sqs_ingest_preview('{"user_id": "u", "x": ' || repeat('[', 999) || repeat(']', 999) || '}')).error IS NULL AS depth_1000_ok;
SELECT (sqs_ingest_preview('{"user_id": "u", "x": ' || repeat('[', 1000) || repeat(']', 1000) || '}')).error AS depth_1001;
-- many brackets inside strings are harmless
SELECT (sqs_ingest_preview('{"user_id": "u", "x": "' || repeat('[', 5000) || '"}')).error IS NULL AS brackets_in_string_ok;

-- a body near the 1 MiB SQS limit, the bulk in an ignored field
SELECT user_id, error FROM sqs_ingest_preview('{"user_id": "big", "padding": "' || repeat('p', 1048000) || '"}');

-- the column types come from the catalog
ALTER TABLE user_logins ALTER COLUMN app_version TYPE text, ALTER COLUMN create_date TYPE timestamptz;
SET TimeZone = 'UTC';
SELECT app_version, create_date, error FROM sqs_ingest_preview('{"user_id": "u", "app_version": "v2-beta", "create_date": "2021-06-01"}');
ALTER TABLE user_logins ALTER COLUMN app_version TYPE bigint USING NULL, ALTER COLUMN create_date TYPE text;
SELECT app_version, create_date, error FROM sqs_ingest_preview('{"user_id": "u", "app_version": "1.2.3"}', '2022-01-01 00:00:00+00');
ALTER TABLE user_logins ALTER COLUMN app_version TYPE smallint USING NULL;
SELECT error FROM sqs_ingest_preview('{"user_id": "u"}');
ALTER TABLE user_logins ALTER COLUMN app_version TYPE integer USING NULL, ALTER COLUMN create_date TYPE date USING NULL;
ALTER TABLE user_logins ALTER COLUMN masked_ip TYPE varchar(32);
SELECT error FROM sqs_ingest_preview('{"user_id": "u"}');
ALTER TABLE user_logins ALTER COLUMN masked_ip TYPE varchar(256);
ALTER TABLE user_logins DROP COLUMN locale;
SELECT error FROM sqs_ingest_preview('{"user_id": "u"}');
ALTER TABLE user_logins ADD COLUMN locale varchar(32);

-- another target table, schema-qualified
CREATE SCHEMA events;
CREATE TABLE events.logins (LIKE user_logins);
SET sqs_ingest.target_table = 'events.logins';
SELECT user_id, error FROM sqs_ingest_preview('{"user_id": "u"}');
SET sqs_ingest.target_table = 'events.no_such_table';
SELECT user_id, error FROM sqs_ingest_preview('{"user_id": "u"}');
RESET sqs_ingest.target_table;
DROP SCHEMA events CASCADE;
DROP TABLE user_logins;
