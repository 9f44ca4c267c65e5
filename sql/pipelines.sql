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
SELECT sqs_ingest_create_pipeline('bad', 'http://127.0.0.1:1/000000000000/q', 'orders', '{"amount": {"path": "$.a", "transform": "mask"}}');
SELECT sqs_ingest_alter_pipeline('orders', mapping => '{"nope": {"path": "$.x"}}');
SELECT sqs_ingest_alter_pipeline('orders', target => 'user_logins');
SELECT mapping FROM sqs_ingest.pipelines WHERE name = 'orders';

-- invalid names, URLs and options
SELECT sqs_ingest_create_pipeline('default', 'http://127.0.0.1:1/000000000000/q', 'orders');
SELECT sqs_ingest_create_pipeline('has space', 'http://127.0.0.1:1/000000000000/q', 'orders');
SELECT sqs_ingest_create_pipeline(repeat('x', 49), 'http://127.0.0.1:1/000000000000/q', 'orders');
SELECT sqs_ingest_create_pipeline('logins', 'http://127.0.0.1:1/000000000000/q', 'user_logins', sqs_ingest_fetch_login_mapping());
SELECT sqs_ingest_create_pipeline('p', 'ftp://example/q', 'orders');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/q', 'orders');
SELECT sqs_ingest_create_pipeline('p', 'https://sqs.us-east-1.amazonaws.com/./000000000000/../q?x=/a/b', 'orders');
SELECT sqs_ingest_create_pipeline('p', NULL, 'orders');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'no_such_table');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"workers": 65}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"workers": 1.5}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"enabled": "yes"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"wait_time_seconds": 21}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"visibility_timeout": 0}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"max_inflight": 1000}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"endpoint": "localhost:4566"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"region": ""}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"envelope": "sqs"}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"explode": 3}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"worker": 2}');
SELECT sqs_ingest_create_pipeline('p', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '[]');
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
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/000000000000/q', 'orders');
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
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/000000000000/q', 'orders');
RESET ROLE;
GRANT INSERT ON orders TO regress_pipeline_admin;
CREATE TABLE masked (m text);
GRANT INSERT ON masked TO regress_pipeline_admin;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_create_pipeline('theirs', 'http://attacker.example/000000000000/q', 'orders');
SELECT sqs_ingest_create_pipeline('theirs', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL,
                                  '{"endpoint": "http://attacker.example"}');
-- and only on queues granted to them (by a superuser only)
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/000000000000/q', 'orders');
SELECT sqs_ingest_grant_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_admin');
RESET ROLE;
SELECT sqs_ingest_grant_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_admin');
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_create_pipeline('mine', 'http://127.0.0.1:1/000000000000/q', 'orders');
-- not onto another pipeline's queue, however its URL is spelled
SELECT sqs_ingest_alter_pipeline('mine', queue_url => 'http://127.0.0.1:1/000000000000/orders2');
SELECT sqs_ingest_alter_pipeline('mine', queue_url => 'http://127.0.0.1:1//000000000000/./orders2/?Action=x#y');
-- nor mask without EXECUTE on the mask
SELECT sqs_ingest_alter_pipeline('mine', target => 'masked', mapping => '{"m": {"path": "$.ip", "transform": "mask"}}');
SELECT sqs_ingest_alter_pipeline('mine', queue_url => 'https://attacker.example/1/q');
SELECT sqs_ingest_alter_pipeline('mine', target => 'user_logins');
SELECT sqs_ingest_alter_pipeline('logins', options => '{"enabled": false}');
SELECT sqs_ingest_drop_pipeline('logins');
SET ROLE regress_pipeline_other;
SELECT sqs_ingest_alter_pipeline('mine', options => '{"workers": 3}');
SELECT sqs_ingest_drop_pipeline('mine');
RESET ROLE;
SELECT name, owner FROM sqs_ingest.pipelines ORDER BY name;
GRANT EXECUTE ON FUNCTION sqs_ingest_mask(text) TO regress_pipeline_admin;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_alter_pipeline('mine', target => 'masked', mapping => '{"m": {"path": "$.ip", "transform": "mask"}}');
SELECT sqs_ingest_drop_pipeline('mine');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION sqs_ingest_mask(text) FROM regress_pipeline_admin;

-- nobody, superusers included, puts a second reader on a queue: one queue
-- is one account id and name, however the URL spells them
DO $$
DECLARE
    url text;
BEGIN
    FOREACH url IN ARRAY ARRAY[
        'http://127.0.0.1:1/000000000000/orders2',
        'http://LocalHost:1/000000000000/orders2',
        'http://127.0.0.1:80/000000000000/orders2',
        'http://127.0.0.1:1/000000000000/orders2/',
        'http://127.0.0.1:1//000000000000//orders2',
        'http://127.0.0.1:1/./000000000000/./orders2',
        'http://127.0.0.1:1/000000000000/orders2?Action=ReceiveMessage',
        'http://127.0.0.1:1/000000000000/orders2#frag',
        'http://127.0.0.1:1/000000000000/%6frders2',
        'https://sqs.eu-west-1.amazonaws.com:443/000000000000/x/../orders2']
    LOOP
        BEGIN
            PERFORM sqs_ingest_create_pipeline('twin', url, 'orders');
            RAISE NOTICE '%: created', url;
        EXCEPTION WHEN duplicate_object THEN
            RAISE NOTICE '%: %', url, SQLERRM;
        END;
    END LOOP;
END $$;

-- grants: one row per queue and role, whatever the spelling; revoking what
-- was not granted warns
SELECT sqs_ingest_grant_queue('HTTP://127.0.0.1:1/000000000000/q/', 'regress_pipeline_admin');
SELECT queue, queue_url, grantee, granted_by FROM sqs_ingest.queue_grants;
SELECT sqs_ingest_grant_queue('http://127.0.0.1:1/q', 'regress_pipeline_admin');
SELECT sqs_ingest_revoke_queue('http://127.0.0.1:1//000000000000/q?x', 'regress_pipeline_admin');
SELECT sqs_ingest_revoke_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_admin');
SELECT count(*) AS grants FROM sqs_ingest.queue_grants;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_revoke_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_admin');
SELECT * FROM sqs_ingest.queue_grants;
RESET ROLE;
-- granted EXECUTE by mistake, still refused
GRANT EXECUTE ON FUNCTION sqs_ingest_grant_queue(text, regrole) TO regress_pipeline_admin;
SET ROLE regress_pipeline_admin;
SELECT sqs_ingest_grant_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_admin');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION sqs_ingest_grant_queue(text, regrole) FROM regress_pipeline_admin;

-- a pipeline whose queue was revoked, or whose owner was dropped, is not drained
SELECT sqs_ingest_grant_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_other');
GRANT INSERT ON orders TO regress_pipeline_other;
SET ROLE regress_pipeline_other;
SELECT sqs_ingest_create_pipeline('orphan', 'http://127.0.0.1:1/000000000000/q', 'orders', NULL, '{"enabled": false}');
RESET ROLE;
REVOKE INSERT ON orders FROM regress_pipeline_other;
SELECT sqs_ingest_revoke_queue('http://127.0.0.1:1/000000000000/q', 'regress_pipeline_other');
SELECT * FROM sqs_ingest_drain('orphan');

RESET sqs_ingest.queue_url;
SELECT sqs_ingest_drop_pipeline('orders');
SELECT sqs_ingest_drop_pipeline('logins');
SELECT count(*) AS pipelines FROM sqs_ingest.pipelines;

REVOKE ALL ON SCHEMA sqs_ingest FROM regress_pipeline_admin, regress_pipeline_other;
REVOKE ALL ON FUNCTION sqs_ingest_create_pipeline(text, text, regclass, jsonb, jsonb),
                       sqs_ingest_alter_pipeline(text, text, regclass, jsonb, jsonb),
                       sqs_ingest_drop_pipeline(text)
    FROM regress_pipeline_admin, regress_pipeline_other;
DROP TABLE orders, user_logins, masked;
DROP ROLE regress_pipeline_admin;
DROP ROLE regress_pipeline_other;
SELECT * FROM sqs_ingest_drain('orphan');
SELECT sqs_ingest_drop_pipeline('orphan');
