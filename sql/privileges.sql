--
-- Privileges: nothing that touches personal data or the mask for PUBLIC
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
DROP ROLE IF EXISTS regress_sqs_analyst;
DROP ROLE IF EXISTS regress_sqs_monitor;
RESET client_min_messages;

CREATE ROLE regress_sqs_analyst;
CREATE ROLE regress_sqs_monitor IN ROLE pg_monitor;
SET sqs_ingest.mask_key = 'test-mask-key';

SET ROLE regress_sqs_analyst;
SELECT * FROM sqs_ingest_drain();
SELECT sqs_ingest_mask('199.172.111.135');
SELECT * FROM sqs_ingest_preview('{"user_id": "u"}');
SELECT * FROM sqs_ingest_stats();
SELECT * FROM sqs_ingest_queue_depth();
SELECT sqs_ingest_prune_processed();
SELECT * FROM sqs_ingest.processed;
SELECT * FROM sqs_ingest.dead_letters;
SELECT * FROM sqs_ingest.stats;
-- the secrets cannot be read
SHOW sqs_ingest.mask_key;
SHOW sqs_ingest.secret_access_key;
SHOW sqs_ingest.access_key_id;
SHOW sqs_ingest.session_token;
SELECT current_setting('sqs_ingest.mask_key');
SELECT name FROM pg_settings WHERE name LIKE 'sqs_ingest.%' ORDER BY name;
-- nor set
SET sqs_ingest.mask_key = 'mine';
SET sqs_ingest.queue_url = 'http://attacker.example/000000000000/q';
-- the version encoding is not secret
SELECT sqs_ingest_version_number('2.3.0');
RESET ROLE;

-- pg_monitor members may watch the workers, nothing more
SET ROLE regress_sqs_monitor;
SET client_min_messages TO warning;
SELECT count(*) >= 0 AS stats_readable FROM sqs_ingest.stats;
RESET client_min_messages;
SELECT sqs_ingest_mask('199.172.111.135');
SELECT * FROM sqs_ingest.dead_letters;
RESET ROLE;

-- what PUBLIC may execute among the extension's functions
SELECT p.proname, has_function_privilege('regress_sqs_analyst', p.oid, 'EXECUTE') AS analyst_may_execute
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sqs_ingest'
ORDER BY 1;

-- the bookkeeping tables are dumped with the data
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
JOIN pg_class c ON c.oid = cfg.oid WHERE e.extname = 'sqs_ingest' ORDER BY 1;

DROP ROLE regress_sqs_analyst;
DROP ROLE regress_sqs_monitor;

-- the previews check INSERT on the target before touching it
CREATE ROLE regress_sqs_previewer;
GRANT EXECUTE ON FUNCTION sqs_ingest_preview(text, timestamptz),
  sqs_ingest_preview_mapping(text, regclass, jsonb, jsonb, timestamptz, jsonb)
  TO regress_sqs_previewer;
CREATE TABLE regress_sqs_target (user_id text);
SET sqs_ingest.target_table = 'regress_sqs_target';
SET sqs_ingest.mask_key = 'test-mask-key';
SET ROLE regress_sqs_previewer;
SELECT * FROM sqs_ingest_preview_mapping('{"user_id": "u"}', 'regress_sqs_target', NULL);
SELECT error FROM sqs_ingest_preview('{"user_id": "u"}');
RESET ROLE;
GRANT INSERT ON regress_sqs_target TO regress_sqs_previewer;
SET ROLE regress_sqs_previewer;
SELECT * FROM sqs_ingest_preview_mapping('{"user_id": "u"}', 'regress_sqs_target', NULL);
-- nor a way around EXECUTE on the mask
SELECT * FROM sqs_ingest_preview_mapping('{"user_id": "u"}', 'regress_sqs_target',
  '{"user_id": {"path": "$.user_id", "transform": "mask"}}');
RESET ROLE;
CREATE TABLE regress_sqs_logins (user_id varchar(128), device_type varchar(32),
  masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),
  app_version integer, create_date date);
GRANT INSERT ON regress_sqs_logins TO regress_sqs_previewer;
SET sqs_ingest.target_table = 'regress_sqs_logins';
SET ROLE regress_sqs_previewer;
SELECT error FROM sqs_ingest_preview('{"user_id": "u", "ip": "10.0.0.1"}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sqs_ingest_mask(text) TO regress_sqs_previewer;
SET ROLE regress_sqs_previewer;
SELECT masked_ip IS NOT NULL AS masked, error FROM sqs_ingest_preview('{"user_id": "u", "ip": "10.0.0.1"}');
RESET ROLE;
DROP TABLE regress_sqs_logins;
SET sqs_ingest.target_table = 'regress_sqs_target';
SET ROLE regress_sqs_previewer;
SELECT * FROM sqs_ingest_preview_mapping('{"user_id": "u"}', 'regress_sqs_target',
  '{"user_id": {"path": "$.user_id", "transform": "mask"}}');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION sqs_ingest_mask(text) FROM regress_sqs_previewer;
RESET sqs_ingest.target_table;
DROP TABLE regress_sqs_target;
REVOKE EXECUTE ON FUNCTION sqs_ingest_preview(text, timestamptz),
  sqs_ingest_preview_mapping(text, regclass, jsonb, jsonb, timestamptz, jsonb)
  FROM regress_sqs_previewer;
DROP ROLE regress_sqs_previewer;

-- all pg_monitor may use of the extension: the statistics and the queue depth
SELECT p.proname AS monitor_may_execute
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sqs_ingest'
WHERE has_function_privilege('pg_monitor', p.oid, 'EXECUTE')
ORDER BY 1;
SELECT c.relname AS monitor_may_read
FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sqs_ingest'
WHERE c.relkind IN ('r', 'v', 'p') AND
      (has_table_privilege('pg_monitor', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))
ORDER BY 1;
