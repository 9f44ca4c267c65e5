-- The login events' table with the personal data recoverable as well as
-- masked: with sqs_ingest.recovery_key_file set (an RSA OpenPGP public key),
-- the login mapping fills encrypted_ip and encrypted_device_id with ip and
-- device_id encrypted to that key, beside their masks.  Only the holder of
-- the secret key can read them back, through sqs_ingest_recover() (logged
-- in sqs_ingest.recovery_log), pgcrypto's pgp_pub_decrypt_bytea() or
-- gpg --decrypt.  docs/security.md, "Recovering personal data".
CREATE TABLE public.user_logins(
    user_id             varchar(128),
    device_type         varchar(32),
    masked_ip           varchar(256),
    masked_device_id    varchar(256),
    locale              varchar(32),
    app_version         integer,
    create_date         date,
    encrypted_ip        bytea,
    encrypted_device_id bytea
);

-- who may see the ciphertexts is a matter of column grants, for example:
-- REVOKE SELECT (encrypted_ip, encrypted_device_id) ON public.user_logins FROM analysts;
