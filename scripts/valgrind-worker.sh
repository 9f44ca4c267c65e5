#!/bin/bash
# Valgrind memcheck of one sqs_ingest background worker over a short run:
# a throwaway cluster runs under valgrind with one worker, which ingests a
# few thousand generated events in batches of 100 from the SQS emulator;
# then the server stops and the worker's report is read. It fails on any
# invalid read or write, use of uninitialised memory, invalid free, or
# definitely lost block in the worker process.
#
#   PG_CONFIG=... scripts/valgrind-worker.sh
#
# Run as root from the repository (it installs the extension into
# PG_CONFIG's server and runs the cluster as postgres). PostgreSQL's own
# memory contexts are opaque to memcheck unless the server was built with
# USE_VALGRIND; what it checks here is the extension's and libcurl's use of
# malloc'd memory (response buffers, handles, sockets) and every read of
# uninitialised memory. scripts/valgrind.supp silences PostgreSQL's own
# known reports (padding bytes written to WAL, files and sockets).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
EVENTS=${VALGRIND_EVENTS:-2000}
BIN=$("$PG_CONFIG" --bindir)

if [ "$(id -u)" -ne 0 ]; then
	echo "valgrind-worker: run as root (it installs the extension, then runs a cluster as postgres)" >&2
	exit 1
fi
command -v valgrind >/dev/null || { echo "valgrind-worker: valgrind is not installed" >&2; exit 1; }

make -s PG_CONFIG="$PG_CONFIG" >/dev/null
make -s install PG_CONFIG="$PG_CONFIG" >/dev/null

DIR=$(mktemp -d /tmp/sqs_ingest_valgrind.XXXXXX)
chown postgres: "$DIR"
chmod 755 "$DIR"
EMU_PID=
cleanup() {
	local status=$?
	if [ -f "$DIR/data/postmaster.pid" ]; then
		runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	[ -n "$EMU_PID" ] && kill "$EMU_PID" 2>/dev/null
	if [ "$status" -eq 0 ]; then rm -rf "$DIR"; else echo "valgrind-worker: reports kept in $DIR" >&2; fi
}
trap cleanup EXIT

free_port() {
	node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
}
as_pg() { runuser -u postgres -- "$@"; }

# the emulator
EMU_PORT=$(free_port)
node test/sqs-emulator.js --port "$EMU_PORT" --queue valgrind >"$DIR/emulator.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 100); do grep -q '^READY' "$DIR/emulator.log" && break; sleep 0.1; done
grep -q '^READY' "$DIR/emulator.log" || { cat "$DIR/emulator.log"; exit 1; }
ENDPOINT=http://127.0.0.1:$EMU_PORT
QUEUE_URL=$ENDPOINT/000000000000/valgrind

# a cluster with the extension and the target table, prepared without valgrind
PORT=$(free_port)
as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres --encoding=UTF8 --locale=C >"$DIR/initdb.log"
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'sqs_ingest'
sqs_ingest.workers = 0
sqs_ingest.queue_url = '$QUEUE_URL'
sqs_ingest.access_key_id = 'AKIDSQSINGESTTEST'
sqs_ingest.secret_access_key = 'sqs-ingest-test-secret'
sqs_ingest.mask_key = 'valgrind-mask-key'
sqs_ingest.batch_size = 100
sqs_ingest.batch_timeout = 50
sqs_ingest.max_inflight = 4
sqs_ingest.wait_time_seconds = 1
log_min_messages = info
CONF
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql=(runuser -u postgres -- "$BIN/psql" -X -q -h "$DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -At)
"${psql[@]}" -c 'CREATE EXTENSION sqs_ingest' -f examples/user_logins.sql >/dev/null
as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
sed -i 's/^sqs_ingest.workers = 0$/sqs_ingest.workers = 1/' "$DIR/data/postgresql.conf"

# the events, then the server under valgrind
node test/sqs-tool.js --endpoint "$ENDPOINT" send "$QUEUE_URL" --generate "$EVENTS" --seed 42 >/dev/null
echo "valgrind-worker: $EVENTS events queued; starting the server under valgrind"
cat >"$DIR/postgres-valgrind" <<WRAP
#!/bin/sh
exec valgrind --tool=memcheck --trace-children=no --leak-check=full \\
	--show-leak-kinds=definite --errors-for-leak-kinds=definite --track-origins=yes \\
	--num-callers=30 --suppressions="$ROOT/scripts/valgrind.supp" \\
	--log-file="$DIR/valgrind.%p.log" "$BIN/postgres" "\$@"
WRAP
chmod 755 "$DIR/postgres-valgrind"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 600 -p "$DIR/postgres-valgrind" \
	start >/dev/null 2>&1 || true
# slow to come up under valgrind
for _ in $(seq 600); do "${psql[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
"${psql[@]}" -c 'SELECT 1' >/dev/null

stored=0
for _ in $(seq 900); do
	stored=$("${psql[@]}" -c 'SELECT count(*) FROM public.user_logins')
	[ "$stored" -ge "$EVENTS" ] && break
	sleep 1
done
worker=$("${psql[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'")
echo "valgrind-worker: $stored of $EVENTS events stored by worker $worker"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 600 stop >/dev/null

report=$DIR/valgrind.$worker.log
if [ -z "$worker" ] || [ ! -f "$report" ]; then
	echo "valgrind-worker: no report of the worker" >&2
	exit 1
fi
if [ "$stored" -lt "$EVENTS" ]; then
	echo "valgrind-worker: only $stored of $EVENTS events stored" >&2
	exit 1
fi
grep -E 'ERROR SUMMARY|definitely lost' "$report"
if ! grep -q 'ERROR SUMMARY: 0 errors' "$report"; then
	echo "=== $report"
	cat "$report"
	echo "valgrind-worker: FAILED: memcheck reports in the worker" >&2
	exit 1
fi
echo "valgrind-worker: passed, no invalid access and no definite leak in the worker"
