--
-- Recovery: the encrypt transform, its refusals, and sqs_ingest_recover()
--
-- The keys under test/keys are throwaway RSA 2048 keys (each an RSA primary
-- key with an RSA encryption subkey, no passphrase) and an Ed25519 key with
-- an ECDH subkey, made with gpg --batch --gen-key for these tests only.
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP ROLE IF EXISTS regress_recoverer;
DROP ROLE IF EXISTS regress_nobody;
RESET client_min_messages;
SET sqs_ingest.mask_key = 'test-mask-key';

\set pub `cat test/keys/recovery.pub.asc`
\set sec `cat test/keys/recovery.sec.asc`
\set rotated_pub `cat test/keys/rotated.pub.asc`
\set rotated_sec `cat test/keys/rotated.sec.asc`
\set ecdh_pub `cat test/keys/ecdh.pub.asc`

CREATE TABLE vault (ip bytea, masked_ip text, note text, n bytea);
CREATE TEMP TABLE previews AS
SELECT i, decode(substr(mapped->>'ip', 3), 'hex') AS ct, mapped->>'masked_ip' AS masked,
       decode(substr(mapped->>'n', 3), 'hex') AS n
FROM generate_series(1, 2) AS i,
     sqs_ingest_preview_mapping('{"ip": "203.0.113.7", "n": 42.5, "i": ' || i || '}', 'vault',
         '{"ip": {"path": "$.ip", "transform": "encrypt"},
           "masked_ip": {"path": "$.ip", "transform": "mask"},
           "n": {"path": "$.n", "transform": "encrypt"}}',
         jsonb_build_object('recovery_key', :'pub'));

-- pgcrypto reads the values back; the mask sits beside them; two
-- encryptions of one value differ
SELECT i, convert_from(pgp_pub_decrypt_bytea(ct, dearmor(:'sec')), 'UTF8') AS ip,
       masked = sqs_ingest_mask('203.0.113.7') AS masked,
       convert_from(pgp_pub_decrypt_bytea(n, dearmor(:'sec')), 'UTF8') AS n,
       pgp_key_id(ct) AS key_id
FROM previews ORDER BY i;
SELECT count(DISTINCT ct) AS distinct_ciphertexts FROM previews;

-- what cannot be encrypted is a dead letter naming the column
SELECT mapped, error FROM sqs_ingest_preview_mapping('{"ip": {"v4": "203.0.113.7"}}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));
SELECT mapped, error FROM sqs_ingest_preview_mapping('{"ip": ["203.0.113.7"]}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));
SELECT mapped, error FROM sqs_ingest_preview_mapping(jsonb_build_object('ip', repeat('x', 65537))::text, 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));
SELECT length(pgp_pub_decrypt_bytea(decode(substr(mapped->>'ip', 3), 'hex'), dearmor(:'sec'))) AS longest
FROM sqs_ingest_preview_mapping(jsonb_build_object('ip', repeat('x', 65536))::text, 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));

-- refused: a key of another algorithm, no key, a column that is not bytea,
-- a key that is not one
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'ecdh_pub'));
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}');
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"note": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', '{"recovery_key": 7}');
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', replace(:'pub', 'A', 'B')));
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'sec'));
SELECT * FROM sqs_ingest_preview_mapping('{"ip": "203.0.113.7"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}',
    jsonb_build_object('recovery_key', armor(dearmor(:'pub') || dearmor(:'rotated_pub'))));

-- pipelines: refused at create and alter when the key is missing or unusable
SELECT sqs_ingest_create_pipeline('vault', 'http://127.0.0.1:1/000000000000/vault', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}');
SELECT sqs_ingest_create_pipeline('vault', 'http://127.0.0.1:1/000000000000/vault', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'ecdh_pub'));
SELECT sqs_ingest_create_pipeline('vault', 'http://127.0.0.1:1/000000000000/vault', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'pub'));
SELECT sqs_ingest_alter_pipeline('vault', options => '{"recovery_key": null}');
SELECT sqs_ingest_alter_pipeline('vault', options => jsonb_build_object('recovery_key', :'rotated_pub'));
SELECT name, options->>'recovery_key' = :'rotated_pub' AS rotated FROM sqs_ingest.pipelines;
SELECT sqs_ingest_drop_pipeline('vault');

-- recovery: the value, and one log row saying who, why and which value
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), 'ticket 42') AS recovered FROM previews WHERE i = 1;
SELECT recovered_by = current_user AS by_me, session_role = session_user AS session_me,
       reason, key_id, value_digest = (SELECT sha256(ct) FROM previews WHERE i = 1) AS digest,
       recovered_at > now() - interval '1 hour' AS stamped
FROM sqs_ingest.recovery_log;
-- the armored secret key works too; a NULL value is NULL, recovered from
-- nothing and not logged
SELECT sqs_ingest_recover(ct, convert_to(:'sec', 'UTF8'), 'ticket 43') AS recovered FROM previews WHERE i = 2;
SELECT sqs_ingest_recover(NULL, dearmor(:'sec'), 'ticket 44') AS recovered;
SELECT count(*) AS logged FROM sqs_ingest.recovery_log;

-- refused: no reason, no key, the wrong key, a public key, a damaged value
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), '') FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), ' 	') FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), NULL) FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(ct, NULL, 'ticket 45') FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(ct, dearmor(:'rotated_sec'), 'ticket 46') FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(ct, dearmor(:'pub'), 'ticket 47') FROM previews WHERE i = 1;
SELECT sqs_ingest_recover(overlay(ct placing '\x00'::bytea from length(ct) - 5), dearmor(:'sec'), 'ticket 48')
FROM previews WHERE i = 1;
SELECT sqs_ingest_recover('\x0102'::bytea, dearmor(:'sec'), 'ticket 49');
SELECT count(*) AS still_logged FROM sqs_ingest.recovery_log;

-- a rollback undoes the log row with the recovery
BEGIN;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), 'ticket 50') AS recovered FROM previews WHERE i = 1;
ROLLBACK;
SELECT count(*) AS after_rollback FROM sqs_ingest.recovery_log;

-- where the log cannot be written, nothing is recovered
BEGIN READ ONLY;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), 'ticket 52') AS recovered FROM previews WHERE i = 1;
ROLLBACK;

-- key rotation: each value decrypts with the key it was encrypted to
SELECT sqs_ingest_recover(decode(substr(mapped->>'ip', 3), 'hex'), dearmor(:'rotated_sec'), 'rotation') AS rotated
FROM sqs_ingest_preview_mapping('{"ip": "198.51.100.1"}', 'vault',
    '{"ip": {"path": "$.ip", "transform": "encrypt"}}', jsonb_build_object('recovery_key', :'rotated_pub'));
SELECT key_id FROM sqs_ingest.recovery_log WHERE reason = 'rotation';

-- privileges: not PUBLIC's; a granted role may recover but not touch the log
SELECT has_function_privilege('public', 'sqs_ingest_recover(bytea, bytea, text)', 'EXECUTE') AS public_execute;
SELECT grantee, privilege_type FROM information_schema.role_table_grants
WHERE table_schema = 'sqs_ingest' AND table_name = 'recovery_log' AND grantee <> current_user;
CREATE ROLE regress_nobody;
CREATE ROLE regress_recoverer;
GRANT EXECUTE ON FUNCTION sqs_ingest_recover(bytea, bytea, text) TO regress_recoverer;
GRANT SELECT ON previews TO regress_nobody, regress_recoverer;
-- an auditor's rights on the log: reading it
GRANT USAGE ON SCHEMA sqs_ingest TO regress_recoverer;
GRANT SELECT ON sqs_ingest.recovery_log TO regress_recoverer;
SET ROLE regress_nobody;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), 'curious') FROM previews WHERE i = 1;
RESET ROLE;
SET ROLE regress_recoverer;
SELECT sqs_ingest_recover(ct, dearmor(:'sec'), 'ticket 51') AS recovered FROM previews WHERE i = 1;
DELETE FROM sqs_ingest.recovery_log;
UPDATE sqs_ingest.recovery_log SET reason = 'x';
TRUNCATE sqs_ingest.recovery_log;
INSERT INTO sqs_ingest.recovery_log VALUES (now(), 'x', 'x', 'x', 'x', '\x00');
RESET ROLE;
SELECT recovered_by, reason FROM sqs_ingest.recovery_log WHERE reason = 'ticket 51';

DROP TABLE previews, vault;
REVOKE EXECUTE ON FUNCTION sqs_ingest_recover(bytea, bytea, text) FROM regress_recoverer;
REVOKE SELECT ON sqs_ingest.recovery_log FROM regress_recoverer;
REVOKE USAGE ON SCHEMA sqs_ingest FROM regress_recoverer;
DROP ROLE regress_recoverer;
DROP ROLE regress_nobody;
DELETE FROM sqs_ingest.recovery_log;
