--
-- Secret settings: the stored value is never the secret, and SET, SET
-- LOCAL, RESET and rollback all restore the right one
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
RESET client_min_messages;

SET sqs_ingest.mask_key = 'regress-key-one';
SELECT sqs_ingest_mask('a') = encode(hmac('a', 'regress-key-one', 'sha256'), 'hex') AS key_one;
SHOW sqs_ingest.mask_key;
SELECT current_setting('sqs_ingest.mask_key');
SELECT name, setting, reset_val, boot_val FROM pg_settings
WHERE name IN ('sqs_ingest.mask_key', 'sqs_ingest.secret_access_key', 'sqs_ingest.session_token',
               'sqs_ingest.access_key_id')
ORDER BY name;

-- a transaction's SET LOCAL, then rollback
BEGIN;
SET LOCAL sqs_ingest.mask_key = 'regress-key-two';
SELECT sqs_ingest_mask('a') = encode(hmac('a', 'regress-key-two', 'sha256'), 'hex') AS key_two;
ROLLBACK;
SELECT sqs_ingest_mask('a') = encode(hmac('a', 'regress-key-one', 'sha256'), 'hex') AS key_one_again;

-- a savepoint rolled back
BEGIN;
SET sqs_ingest.mask_key = 'regress-key-three';
SAVEPOINT s;
SET sqs_ingest.mask_key = 'regress-key-four';
ROLLBACK TO SAVEPOINT s;
SELECT sqs_ingest_mask('a') = encode(hmac('a', 'regress-key-three', 'sha256'), 'hex') AS key_three;
COMMIT;
SELECT sqs_ingest_mask('a') = encode(hmac('a', 'regress-key-three', 'sha256'), 'hex') AS key_three_kept;

-- a function's or a role's SET clause would keep it in a readable catalog
CREATE FUNCTION regress_mask_with_five(v text) RETURNS text LANGUAGE sql
SET sqs_ingest.mask_key = 'regress-key-five' AS 'SELECT sqs_ingest_mask(v)';
ALTER ROLE CURRENT_USER SET sqs_ingest.mask_key = 'regress-key-five';
ALTER DATABASE contrib_regression SET sqs_ingest.mask_key = 'regress-key-five';
SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%regress-key%';

-- RESET: no key any more
RESET sqs_ingest.mask_key;
SHOW sqs_ingest.mask_key;
SELECT sqs_ingest_mask('a');

-- the *_file settings are server-wide
SET sqs_ingest.mask_key_file = '/etc/passwd';
SHOW sqs_ingest.mask_key_file;

-- pointing a session at another queue or endpoint is for superusers, even
-- with GRANT SET ON PARAMETER
CREATE ROLE regress_sqs_redirect;
GRANT SET ON PARAMETER sqs_ingest.queue_url, sqs_ingest.endpoint TO regress_sqs_redirect;
SET ROLE regress_sqs_redirect;
SET sqs_ingest.queue_url = 'http://attacker.example/000000000000/q';
SET sqs_ingest.endpoint = 'http://attacker.example/';
-- the value in force may be set again
SET sqs_ingest.endpoint = '';
RESET sqs_ingest.queue_url;
RESET ROLE;
SET sqs_ingest.queue_url = 'http://127.0.0.1:1/000000000000/q';
SHOW sqs_ingest.queue_url;
RESET sqs_ingest.queue_url;
REVOKE SET ON PARAMETER sqs_ingest.queue_url, sqs_ingest.endpoint FROM regress_sqs_redirect;
DROP ROLE regress_sqs_redirect;
