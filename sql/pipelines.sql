--
-- Pipelines: the catalog and the functions that change it
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
DROP ROLE IF EXISTS regress_pipeline_admin;
DROP ROLE IF EXISTS regress_pipeline_other;
RESET client_min_messages;
SET sqs_ingest.mask_key = 'test-mask-key';

\i examples/user_logins.sql
CREATE TABLE orders (order_id uuid NOT NULL, amount numeric(12,2), body jsonb);

-- a pipeline with the login mapping, one without a mapping
SELECT sqs_ingest_create_pipeline('logins', 'http://127.0.0.1:1/000000000000/logins',
                                  'user_logins', sqs_ingest_fetch_login_mapping());
SELECT sqs_ingest_create_pipeline('orders', 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders',
                                  'orders', options => '{"workers": 2, "region": "eu-west-1", "batch_size": 500}');
SELECT name, queue_url, target, mapping IS NOT NULL AS has_mapping, options, owner::text = current_user AS owned,
       created_at = updated_at AS unchanged
FROM sqs_ingest.pipelines ORDER BY name;

-- changes: NULL leaves a part as it is, options are merged, null resets one
SELECT sqs_ingest_alter_pipeline('orders', options => '{"enabled": false, "batch_size": null}');
SELECT sqs_ingest_alter_pipeline('orders', mapping => '{"order_id": {"path": "$.id", "required": true}, "body": {"message": "body"}}');
SELECT name, target, mapping, options, updated_at > created_at AS stamped
FROM sqs_ingest.pipelines WHERE name = 'orders';
SELECT sqs_ingest_alter_pipeline('orders', queue_url => 'http://127.0.0.1:1/000000000000/orders2');
SELECT queue_url FROM sqs_ingest.pipelines WHERE name = 'orders';

-- an invalid mapping is refused, naming the column, and nothing changes
SELECT sqs_ingest_create_pipeline('bad', 'http://127.0.0.1:1/q', 'orders', '{"amount": {"path": "$.a", "transform": "mask"}}');
SELECT sqs_ingest_alter_pipeline('orders', mapping => '{"nope": {"path": "$.x"}}');
SELECT sqs_ingest_alter_pipeline('orders', target => 'user_logins');
SELECT mapping FROM sqs_ingest.pipelines WHERE name = 'orders';

-- invalid names, URLs and options
SELECT sqs_ingest_create_pipeline('default', 'http://127.0.0.1:1/q', 'orders');
SELECT sqs_ingest_create_pipeline('has space', 'http://127.0.0.1:1/q', 'orders');
SELECT sqs_ingest_create_pipeline(repeat('x', 49), 'http://127.0.0.1:1/q', 'orders');
SELECT sqs_ingest_create_pipeline('logins', 'http://127.0.0.1:1/q', 'user_logins', sqs_ingest_fetch_login_mapping());
SELECT sqs_ingest_create_pipeline('p', 'ftp://example/q', 'orders');
SELECT sqs_ingest_create_pipeline('p', NULL, 'orders');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'no_such_table');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"workers": 65}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"workers": 1.5}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"enabled": "yes"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"wait_time_seconds": 21}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"visibility_timeout": 0}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"max_inflight": 1000}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"endpoint": "localhost:4566"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"region": ""}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"envelope": "sqs"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"explode": 3}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '{"worker": 2}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders', NULL, '[]');
SELECT sqs_ingest_alter_pipeline('nope', options => '{"enabled": true}');
SELECT sqs_ingest_drop_pipeline('nope');
SELECT count(*) AS pipelines FROM sqs_ingest.pipelines;

-- a target that disappears: the pipeline stays, and changes wait for a target
DROP TABLE orders;
SELECT name, target FROM sqs_ingest.pipelines WHERE name = 'orders';
SELECT sqs_ingest_alter_pipeline('orders', options => '{"enabled": true}');
CREATE TABLE orders (order_id uuid NOT NULL, amount numeric(12,2), body jsonb);
SELECT sqs_ingest_alter_pipeline('orders', options => '{"enabled": true}');
SELECT options FROM sqs_ingest.pipelines WHERE name = 'orders';

-- privileges: nothing for PUBLIC; a role granted the functions may define
-- pipelines into the tables it may insert into, and change only its own
CREATE ROLE regress_pipeline_admin;
CREATE ROLE regress_pipeline_other;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/q', 'orders');
SELECT * FROM sqs_ingest.pipelines;
RESET ROLE;
GRANT USAGE ON SCHEMA sqs_ingest TO regress_pipeline_admin, regress_pipeline_other;
GRANT EXECUTE ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb),
                          sqs_ingest_drop_pipeline(text)
    TO regress_pipeline_admin, regress_pipeline_other;
-- other roles' pipelines talk only to the endpoint the server is set up for
SET sqs_ingest.queue_url = 'http://127.0.0.1:1/000000000000/logins';
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/q', 'orders');
RESET ROLE;
GRANT INSERT ON orders TO regress_pipeline_admin;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_create_pipeline('theirs', 'http://attacker.example/000000000000/q', 'orders');
SELECT sqs_ingest_create_pipeline('theirs', 'http://127.0.0.1:1/q', 'orders', NULL,
                                  '{"endpoint": "http://attacker.example"}');
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/q', 'orders');
SELECT sqs_ingest_alter_pipeline('mine', queue_url => 'https://attacker.example/1/q');
SELECT sqs_ingest_alter_pipeline('mine', target => 'user_logins');
SELECT sqs_ingest_alter_pipeline('logins', options => '{"enabled": false}');
SELECT sqs_ingest_drop_pipeline('logins');
SET ROLE regress_pipeline_other;
SELECT sqs_ingest_alter_pipeline('mine', options => '{"workers": 3}');
SELECT sqs_ingest_drop_pipeline('mine');
RESET ROLE;
SELECT name, owner FROM sqs_ingest.pipelines ORDER BY name;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_drop_pipeline('mine');
RESET ROLE;

RESET sqs_ingest.queue_url;
SELECT sqs_ingest_drop_pipeline('orders');
SELECT sqs_ingest_drop_pipeline('logins');
SELECT count(*) AS pipelines FROM sqs_ingest.pipelines;

REVOKE ALL ON SCHEMA sqs_ingest FROM regress_pipeline_admin, regress_pipeline_other;
REVOKE ALL ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                       sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb),
                       sqs_ingest_drop_pipeline(text)
    FROM regress_pipeline_admin, regress_pipeline_other;
DROP TABLE orders, user_logins;
DROP ROLE regress_pipeline_admin;
DROP ROLE regress_pipeline_other;
