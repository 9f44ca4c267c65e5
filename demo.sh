#!/bin/bash
# sqs_ingest demo: build and install the extension, start a throwaway
# PostgreSQL cluster and a local SQS emulator (signatures checked), then
#   1. load the 100 real sample events into a queue and drain them with
#      SELECT * FROM sqs_ingest_drain(), showing rows, dead letter and counts;
#   2. send a stream of events to a second queue and watch the background
#      worker ingest them continuously.
# Everything it starts is stopped when it ends. Run as root on Debian 12;
# PG_CONFIG picks another PostgreSQL (default: Debian's 15).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"
SAMPLE=${SQS_INGEST_SAMPLE:-$ROOT/test/data/fetch_sample_data.json}
STREAM=${DEMO_STREAM_MESSAGES:-5000}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: run as root (it installs packages and the extension)" >&2
	exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing dependencies and building"
./scripts/install-deps.sh
make -s PG_CONFIG="$PG_CONFIG"
make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
PGBIN=$("$PG_CONFIG" --bindir)

WORK=$(mktemp -d /tmp/sqs_ingest_demo.XXXXXX)
chown postgres: "$WORK"
EMULATOR_PID=
cleanup() {
	[ -n "$EMULATOR_PID" ] && kill "$EMULATOR_PID" 2>/dev/null
	if [ -f "$WORK/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
	node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
SQS_PORT=$(free_port)
PG_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$SQS_PORT
export SQS_TEST_ACCESS_KEY_ID=AKIDSQSINGESTDEMO
export SQS_TEST_SECRET_ACCESS_KEY=demo-secret-access-key
tool() { node test/sqs-tool.js --endpoint "$ENDPOINT" "$@"; }

say "starting the SQS emulator on $ENDPOINT (SigV4 verified)"
node test/sqs-emulator.js --port "$SQS_PORT" >"$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
for _ in $(seq 50); do grep -q READY "$WORK/emulator.log" && break; sleep 0.1; done
SAMPLE_QUEUE=$(tool create-queue login-queue)
LIVE_QUEUE=$(tool create-queue login-queue-live)
echo "queues: $SAMPLE_QUEUE, $LIVE_QUEUE"

say "starting PostgreSQL with sqs_ingest preloaded (one worker, no queue yet)"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/data" -A trust -E UTF8 --locale=C >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
port = $PG_PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'sqs_ingest'
sqs_ingest.workers = 1
sqs_ingest.database = 'postgres'
sqs_ingest.access_key_id_file = '$WORK/secrets/access_key_id'
sqs_ingest.secret_access_key_file = '$WORK/secrets/secret_access_key'
sqs_ingest.mask_key_file = '$WORK/secrets/mask_key'
EOF
# secrets in files readable by the server's user only, never in postgresql.conf
mkdir -m 700 "$WORK/secrets"
printf '%s\n' "$SQS_TEST_ACCESS_KEY_ID" >"$WORK/secrets/access_key_id"
printf '%s\n' "$SQS_TEST_SECRET_ACCESS_KEY" >"$WORK/secrets/secret_access_key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/secrets/mask_key"
chmod 600 "$WORK/secrets"/*
chown -R postgres: "$WORK/secrets"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
psql() { runuser -u postgres -- "$PGBIN/psql" -X -h "$WORK" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }

psql -q -c "CREATE EXTENSION sqs_ingest"
psql -q -f - <examples/user_logins.sql

say "least privilege: the workers run as sqs_ingest_worker, not as a superuser (docs/security.md)"
psql -q -f - <<'SQL'
CREATE ROLE sqs_ingest_worker LOGIN;
GRANT USAGE ON SCHEMA sqs_ingest TO sqs_ingest_worker;
GRANT SELECT, INSERT, DELETE ON sqs_ingest.processed TO sqs_ingest_worker;
GRANT SELECT (message_id), INSERT ON sqs_ingest.dead_letters TO sqs_ingest_worker;  -- ON CONFLICT reads the key
GRANT INSERT ON public.user_logins TO sqs_ingest_worker;
ALTER SYSTEM SET sqs_ingest.role = 'sqs_ingest_worker';
SQL
# a worker connects as its role once: restart (a reload restarts it after 10 s)
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w restart >/dev/null
psql -c "SELECT name, setting FROM pg_settings WHERE name IN ('sqs_ingest.role', 'sqs_ingest.mask_key', 'sqs_ingest.mask_key_file', 'sqs_ingest.secret_access_key') ORDER BY name"

say "pointing the worker at login-queue-live: ALTER SYSTEM + pg_reload_conf(), no restart"
psql -q -c "ALTER SYSTEM SET sqs_ingest.queue_url = '$LIVE_QUEUE'" -c "SELECT pg_reload_conf()" >/dev/null

if [ -r "$SAMPLE" ]; then
	say "sending the 100 real sample events to login-queue"
	tool send "$SAMPLE_QUEUE" --json-array "$SAMPLE"
else
	say "sample not found at $SAMPLE: sending 99 generated events and one malformed one"
	tool send "$SAMPLE_QUEUE" --generate 99 --seed 7
	echo '{"foo": "oops_wrong_msg_type", "bar": "123"}' >"$WORK/bad.txt"
	tool send "$SAMPLE_QUEUE" --lines "$WORK/bad.txt"
fi

say "SELECT * FROM sqs_ingest_drain()  -- in this session, on login-queue"
psql -c "SET sqs_ingest.queue_url = '$SAMPLE_QUEUE'" -c "SELECT * FROM sqs_ingest_drain()"

say "a few stored rows (ip and device_id masked with HMAC-SHA256)"
psql -c "SELECT * FROM user_logins ORDER BY user_id LIMIT 5"
say "app_version encoded as M*1000000 + m*1000 + p"
psql -c "SELECT app_version, count(*) FROM user_logins GROUP BY 1 ORDER BY 1 LIMIT 8"
say "the dead letter, kept whole with its reason"
psql -c "SELECT message_id, body, error, received_at FROM sqs_ingest.dead_letters"
say "the queue after the drain committed (visible, in flight, delayed)"
tool depth "$SAMPLE_QUEUE"

say "the background worker: $STREAM events sent to login-queue-live"
before=$(psql -Atc "SELECT count(*) FROM user_logins")
start=$(date +%s.%N)
tool send "$LIVE_QUEUE" --generate "$STREAM" --seed 42 >/dev/null &
SENDER=$!
for _ in $(seq 120); do
	n=$(psql -Atc "SELECT count(*) - $before FROM user_logins")
	echo "  rows stored by the worker: $n"
	[ "$n" -ge "$STREAM" ] && break
	sleep 0.5
done
wait "$SENDER"
elapsed=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
echo "  $STREAM events sent and stored in ${elapsed}s"

say "SELECT * FROM sqs_ingest.stats"
psql -x -c "SELECT kind, worker, pid, state, received, inserted, duplicates, dead_lettered, deleted, delete_failures, sqs_errors, last_batch_at FROM sqs_ingest.stats"
say "the worker in pg_stat_activity"
psql -c "SELECT pid, usename, backend_type, application_name, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'"
say "done; stopping PostgreSQL and the emulator"
