#!/usr/bin/env bash
# Worker memory over a long run: SOAK_N messages (default 200,000) through one
# sqs_ingest background worker, its RSS sampled every INTERVAL seconds
# (default 5). The queue is refilled in chunks while the worker runs, so the
# worker sees a steady stream rather than one backlog. Prints the first, last
# and peak RSS and adds a line to bench/RESULTS.md.
#
#   bench/rss_soak.sh            SOAK_N=500000 INTERVAL=2 bench/rss_soak.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (the cluster is started as the OS user postgres)"
COMMAND="bench/rss_soak.sh"
for v in INTERVAL CHUNK SOAK_N; do
	if [ -n "${!v+x}" ]; then COMMAND="$v=${!v} $COMMAND"; fi
done
SOAK_N=${SOAK_N:-200000}
INTERVAL=${INTERVAL:-5}
CHUNK=${CHUNK:-20000}
BACKLOG=$((CHUNK * 3))
[[ $SOAK_N =~ ^[0-9]+$ && $CHUNK =~ ^[0-9]+$ && $SOAK_N -ge $CHUNK && $CHUNK -gt 0 ]] ||
	die "SOAK_N and CHUNK must be positive integers, SOAK_N >= CHUNK"

ensure_packages node-emulator
bench_init
log "building and installing the extension"
make -C "$ROOT" >"$BENCH_TMP/make.log" 2>&1 && make -C "$ROOT" install >>"$BENCH_TMP/make.log" 2>&1 ||
	{ tail -n 20 "$BENCH_TMP/make.log" >&2; die "the extension does not build"; }
start_emulator
start_cluster 1
DSN=$(bench_dsn)

url=$(sqs_tool create-queue soak --visibility-timeout 60)
sent=0
chunk_no=0
send_chunk() {
	local n=$CHUNK
	[ $((SOAK_N - sent)) -lt "$n" ] && n=$((SOAK_N - sent))
	chunk_no=$((chunk_no + 1))
	sqs_tool send "$url" --generate "$n" --seed "$chunk_no" >/dev/null
	sent=$((sent + n))
}
send_chunk
send_chunk

rm -f "$BENCH_TMP/measure.ready"
$PY "$ROOT/bench/measure.py" rss --dsn "$DSN" --expect "$SOAK_N" --interval "$INTERVAL" \
	--ready-file "$BENCH_TMP/measure.ready" --max-seconds 3600 >"$BENCH_TMP/soak.json" &
mpid=$!
for i in $(seq 1 200); do [ -e "$BENCH_TMP/measure.ready" ] && break; sleep 0.05; done
pg_set --restart "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=http://127.0.0.1:$EMU_PORT" \
	"sqs_ingest.workers=1"
log "worker started; $SOAK_N messages to go, RSS every $INTERVAL s"

# keep the stream going: refill whenever the backlog runs low
while [ "$sent" -lt "$SOAK_N" ]; do
	kill -0 "$mpid" 2>/dev/null || break
	visible=$(sqs_tool depth "$url" | awk '{print $1}')
	if [ "$visible" -lt "$BACKLOG" ]; then send_chunk; else sleep 1; fi
done
wait "$mpid" || die "sampling the worker failed"

rows=$(PSQL -c 'SELECT count(*) FROM public.user_logins')
[ "$rows" = "$SOAK_N" ] || die "user_logins holds $rows rows, expected $SOAK_N"

$PY - "$BENCH_TMP/soak.json" <<-'EOF'
	import json, sys
	s = json.load(open(sys.argv[1]))
	mib = lambda kb: "%.1f MiB" % (kb / 1024.0)
	print("worker pid %d: %d messages in %.0f s" % (s["pid"], s["n"], s["seconds"]))
	print("  RSS      first %s, last %s, peak %s (VmHWM %s)" % (mib(s["first_rss_kb"]),
	      mib(s["last_rss_kb"]), mib(s["peak_rss_kb"]), mib(s["hwm_kb"])))
	print("  RssAnon  first %s, last %s, peak %s (private memory; RSS also counts shared buffers touched)"
	      % (mib(s["first_anon_kb"]), mib(s["last_anon_kb"]), mib(s["peak_anon_kb"])))
EOF

$PY - "$BENCH_TMP/meta.json" <<EOF
import json, sys
json.dump({"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": "$COMMAND",
           "machine": """$(machine_line)""", "interval": "$INTERVAL"}, open(sys.argv[1], "w"))
EOF
$PY "$ROOT/bench/report.py" --soak "$BENCH_TMP/soak.json" --meta "$BENCH_TMP/meta.json" \
	--summary "$ROOT/bench/RESULTS.md"
log "added the soak to bench/RESULTS.md"
BENCH_OK=1
