--
-- app_version as an integer: M*1000000 + m*1000 + p
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS sqs_ingest;
RESET client_min_messages;

-- every form of the real sample, in version order
\set sample `cat "${SQS_INGEST_SAMPLE:-test/data/fetch_sample_data.json}"`
SELECT e->>'app_version' AS version, sqs_ingest_version_number(e->>'app_version') AS encoded,
       count(*) AS events
FROM jsonb_array_elements(:'sample'::jsonb) AS e
WHERE e ? 'app_version'
GROUP BY 1 ORDER BY 2, 1;

-- two-part versions have patch 0; stripping the dots would merge these
SELECT v, sqs_ingest_version_number(v)
FROM (VALUES ('2.6'), ('0.26'), ('0.2.6'), ('2.6.0'), ('0.96'), ('9.6'), ('2.00'), ('2.0.0'),
             ('0.0'), ('999.999.999'), ('007.010.001')) AS t(v)
ORDER BY 2, 1;

-- on a grid of versions the encoding keeps order and never merges two
-- versions that differ part by part
WITH versions AS (
    SELECT ARRAY[a, b, c] AS parts, format('%s.%s.%s', a, b, c) AS v
    FROM unnest(ARRAY[0, 1, 2, 9, 10, 99, 100, 998, 999]) AS a,
         unnest(ARRAY[0, 1, 5, 9, 10, 96, 99, 100, 999]) AS b,
         unnest(ARRAY[0, 1, 9, 10, 99, 100, 999]) AS c
    UNION ALL
    SELECT ARRAY[a, b, 0], format('%s.%s', a, b)
    FROM unnest(ARRAY[0, 3, 42, 999]) AS a, unnest(ARRAY[0, 7, 96, 999]) AS b
)
SELECT count(*) AS versions,
       count(DISTINCT parts) AS distinct_versions,
       count(DISTINCT sqs_ingest_version_number(v)) AS distinct_encodings,
       bool_and(x.ordered) AS order_kept
FROM versions,
     LATERAL (SELECT bool_and((p.parts < versions.parts) =
                              (sqs_ingest_version_number(p.v) < sqs_ingest_version_number(versions.v))) AS ordered
              FROM versions AS p) AS x;

-- anything else is rejected
SELECT sqs_ingest_version_number('1');
SELECT sqs_ingest_version_number('1.2.3.4');
SELECT sqs_ingest_version_number('1000.0');
SELECT sqs_ingest_version_number('1.0001');
SELECT sqs_ingest_version_number('x.y');
SELECT sqs_ingest_version_number('');
SELECT sqs_ingest_version_number('1..2');
SELECT sqs_ingest_version_number('.1.2');
SELECT sqs_ingest_version_number('1.2.');
SELECT sqs_ingest_version_number('-1.2');
SELECT sqs_ingest_version_number(' 1.2');
SELECT sqs_ingest_version_number('1.2 ');
SELECT sqs_ingest_version_number('1.2-beta');
SELECT sqs_ingest_version_number('１.２');
SELECT sqs_ingest_version_number(NULL) IS NULL AS null_in_null_out;
