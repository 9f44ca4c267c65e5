#!/usr/bin/env bash
# What the ledger's key costs, in plain SQL on a throwaway cluster: inserting
# LEDGER_N MessageIds (UUIDs, as SQS gives them) into a table shaped like
# sqs_ingest.processed with a text primary key, as today (the cluster's
# default collation), the same with COLLATE "C", a uuid one, and no key at
# all (what the key itself costs), in batches of 10 and of 1,000 rows per
# INSERT ... unnest() (one transaction per batch,
# synchronous_commit off so that the WAL flush does not hide the difference),
# ROUNDS times alternately. Prints µs per row; no extension involved.
#
#   bench/ledger_key.sh          LEDGER_N=200000 ROUNDS=3 by default
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (the cluster is started as the OS user postgres)"
LEDGER_N=${LEDGER_N:-200000}
ROUNDS=${ROUNDS:-3}
[[ $LEDGER_N =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $LEDGER_N -ge 1000 ]] || die "LEDGER_N (>= 1000), ROUNDS: integers"

bench_init
start_cluster 0
PSQL <<-EOF
	SET synchronous_commit = off;
	CREATE TABLE ids AS SELECT i, gen_random_uuid() AS id FROM generate_series(1, $LEDGER_N) i;
	CREATE TABLE ledger_text (message_id text PRIMARY KEY, processed_at timestamptz);
	CREATE TABLE ledger_uuid (message_id uuid PRIMARY KEY, processed_at timestamptz);
	CREATE TABLE ledger_nokey (message_id text, processed_at timestamptz);
	CREATE TABLE ledger_textc (message_id text COLLATE "C" PRIMARY KEY, processed_at timestamptz);
	-- one INSERT ... unnest() per batch, as the sink does, each its own transaction
	CREATE PROCEDURE fill(tbl text, batch int) LANGUAGE plpgsql AS \$\$
	DECLARE b int := 0;
	BEGIN
		WHILE b * batch < $LEDGER_N LOOP
			IF tbl = 'text' THEN
				INSERT INTO ledger_text SELECT m, now() FROM unnest(ARRAY(
					SELECT id::text FROM ids WHERE i > b * batch AND i <= (b + 1) * batch)) m;
			ELSIF tbl = 'textc' THEN
				INSERT INTO ledger_textc SELECT m, now() FROM unnest(ARRAY(
					SELECT id::text FROM ids WHERE i > b * batch AND i <= (b + 1) * batch)) m;
			ELSIF tbl = 'nokey' THEN
				INSERT INTO ledger_nokey SELECT m, now() FROM unnest(ARRAY(
					SELECT id::text FROM ids WHERE i > b * batch AND i <= (b + 1) * batch)) m;
			ELSE
				INSERT INTO ledger_uuid SELECT m::uuid, now() FROM unnest(ARRAY(
					SELECT id::text FROM ids WHERE i > b * batch AND i <= (b + 1) * batch)) m;
			END IF;
			COMMIT;
			b := b + 1;
		END LOOP;
	END \$\$;
	CREATE INDEX ON ids (i);
	VACUUM ANALYZE ids;
EOF
for batch in 10 1000; do
	for r in $(seq 1 "$ROUNDS"); do
		for kind in nokey text textc uuid; do
			PSQL -c "TRUNCATE ledger_$kind" -c CHECKPOINT
			ms=$(PSQL -c "SET synchronous_commit = off" -c '\timing on' -c "CALL fill('$kind', $batch)" |
				awk '/^Time:/{print $2}')
			echo "batch=$batch round=$r key=$kind us_per_row=$($PY -c "print(round($ms * 1000 / $LEDGER_N, 2))")" |
				tee -a "$BENCH_TMP/ledger.txt"
		done
	done
done
PSQL -c "SELECT datcollate FROM pg_database WHERE datname = current_database()"
PSQL -c "SELECT pg_size_pretty(pg_relation_size('ledger_text_pkey')) AS text_pkey, pg_size_pretty(pg_relation_size('ledger_uuid_pkey')) AS uuid_pkey"
# a summary: median (and range) per batch size and key, µs per row
$PY - "$BENCH_TMP/ledger.txt" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    runs[(int(f["batch"]), f["key"])].append(float(f["us_per_row"]))
print("| rows per INSERT | no key | text (default collation) | text COLLATE \"C\" | uuid |")
print("|---:|---:|---:|---:|---:|")
for batch in sorted({b for b, _ in runs}):
    cells = []
    for key in ("nokey", "text", "textc", "uuid"):
        v = runs[(batch, key)]
        cells.append("%.2f (%.2f–%.2f)" % (statistics.median(v), min(v), max(v)))
    print("| %d | %s |" % (batch, " | ".join(cells)))
EOF

BENCH_OK=1
