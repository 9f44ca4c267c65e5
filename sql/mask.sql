--
-- Masking: byte-identical to pgcrypto, keyed, never shown
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
RESET client_min_messages;

SET sqs_ingest.mask_key = 'test-mask-key';

-- the mask is encode(hmac(value, key, 'sha256'), 'hex'), for any text
SELECT v AS value,
       sqs_ingest_mask(v) = encode(hmac(v, 'test-mask-key', 'sha256'), 'hex') AS same_as_pgcrypto,
       sqs_ingest_mask(v) ~ '^[0-9a-f]{64}$' AS hex64
FROM (VALUES ('199.172.111.135'), ('593-47-5928'), (''), ('Zürich ✓ 😀'),
             ('''); DROP TABLE user_logins; --')) AS t(v);
SELECT sqs_ingest_mask(repeat('x', 1000000)) = encode(hmac(repeat('x', 1000000), 'test-mask-key', 'sha256'), 'hex') AS long_value_same;

-- identical inputs give identical masks, different ones differ
SELECT sqs_ingest_mask('10.0.0.1') = sqs_ingest_mask('10.0.0.1') AS stable,
       sqs_ingest_mask('10.0.0.1') <> sqs_ingest_mask('10.0.0.2') AS distinct_values;

-- a new key takes effect at once
SELECT sqs_ingest_mask('10.0.0.1') AS before_key_change \gset
SET sqs_ingest.mask_key = 'another-key';
SELECT sqs_ingest_mask('10.0.0.1') <> :'before_key_change' AS key_change_applies,
       sqs_ingest_mask('10.0.0.1') = encode(hmac('10.0.0.1', 'another-key', 'sha256'), 'hex') AS same_as_pgcrypto;

-- RFC 4231 HMAC-SHA256 known answers: test case 1 (key 0x0b x 20) and 2
SELECT set_config('sqs_ingest.mask_key', repeat(chr(11), 20), false) IS NOT NULL AS key_set;
SELECT sqs_ingest_mask('Hi There') =
       'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' AS rfc4231_case1;
SET sqs_ingest.mask_key = 'Jefe';
SELECT sqs_ingest_mask('what do ya want for nothing?') =
       '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' AS rfc4231_case2;

-- unkeyed SHA-256, pgcrypto's digest(), when chosen explicitly
SET sqs_ingest.mask_algorithm = 'sha256';
SELECT sqs_ingest_mask(v) = encode(digest(v, 'sha256'), 'hex') AS same_as_digest
FROM (VALUES ('199.172.111.135'), (''), ('Zürich')) AS t(v);
SELECT sqs_ingest_mask('abc') =
       'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' AS fips180_abc;
RESET sqs_ingest.mask_algorithm;

-- HMAC without a key refuses to run
SET sqs_ingest.mask_key = '';
SELECT sqs_ingest_mask('199.172.111.135');
SET sqs_ingest.mask_algorithm = 'md5';

-- secrets are never shown, even to a superuser
SET sqs_ingest.mask_key = 'do-not-print-me';
SET sqs_ingest.secret_access_key = 'do-not-print-me-either';
SHOW sqs_ingest.mask_key;
SHOW sqs_ingest.secret_access_key;
SHOW sqs_ingest.session_token;
SELECT name, setting FROM pg_settings
WHERE name IN ('sqs_ingest.mask_key', 'sqs_ingest.secret_access_key', 'sqs_ingest.access_key_id')
ORDER BY name;
SELECT count(*) AS secrets_in_settings FROM pg_settings WHERE setting LIKE '%do-not-print%';
RESET sqs_ingest.mask_key;
RESET sqs_ingest.secret_access_key;

-- the prefix is reserved
SET sqs_ingest.no_such_setting = 1;
