#!/usr/bin/env bash
# Where a worker's CPU per message goes, beside the bare client's: perf
# record (linux-perf, DWARF call chains) of one sqs_ingest worker draining
# PROFILE_N messages (default 200,000) from the native stand-in, then of the
# bare client (bench/ceiling.c) moving the same number, both at INFLIGHT (32)
# in flight; bench/perf_groups.py sorts each one's samples into groups (JSON
# decode, mapping, HMAC, SPI insert, ledger index, SigV4, HTTP, ...).
#
#   bench/profile.sh            writes bench/results/profile.md
#   PERF_DIR=/tmp/p bench/profile.sh   also keeps worker.perf and ceiling.perf there
#
# Runs as root (perf, and the cluster as the OS user postgres), on loopback;
# every process started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root"
COMMAND="bench/profile.sh"
for v in PERF_DIR FREQ INFLIGHT PROFILE_N; do
	if [ -n "${!v+x}" ]; then COMMAND="$v=${!v} $COMMAND"; fi
done
PROFILE_N=${PROFILE_N:-200000}
INFLIGHT=${INFLIGHT:-32}
FREQ=${FREQ:-499}
[[ $PROFILE_N =~ ^[0-9]+$ && $INFLIGHT =~ ^[0-9]+$ && $FREQ =~ ^[0-9]+$ ]] || die "PROFILE_N, INFLIGHT, FREQ: integers"

ensure_packages
bench_init
cc -O2 -g -fno-omit-frame-pointer -Wall -Wextra -Werror -o "$BENCH_TMP/ceiling" "$ROOT/bench/ceiling.c" -lcurl
log "building and installing the extension"
make -C "$ROOT" >"$BENCH_TMP/make.log" 2>&1 && make -C "$ROOT" install >>"$BENCH_TMP/make.log" 2>&1 ||
	{ tail -n 20 "$BENCH_TMP/make.log" >&2; die "the extension does not build"; }
start_standin
start_cluster 1
OUT="$ROOT/bench/results/profile.md"
mkdir -p "$ROOT/bench/results"

# the worker: started on a full queue, recorded until the queue is empty
url=$(standin_queue profile-worker "$PROFILE_N")
start_one_worker "$url" "$INFLIGHT"
wpid=$WORKER_PID
s0=$(proc_cpu "$STANDIN_PID"); w0=$(proc_cpu "$wpid"); t0=$(date +%s.%N)
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$wpid" -o "$BENCH_TMP/worker.perf" >"$BENCH_TMP/perf-worker.log" 2>&1 &
perf_pid=$!
for _ in $(seq 1 3000); do
	[ "$(standin_depth "$url")" = "0 0 0" ] && break
	sleep 0.1
done
kill -INT "$perf_pid"; wait "$perf_pid" || true
t1=$(date +%s.%N); w1=$(proc_cpu "$wpid"); s1=$(proc_cpu "$STANDIN_PID")
[ "$(standin_depth "$url")" = "0 0 0" ] || die "the worker did not empty its queue"
pg_set --restart "sqs_ingest.workers=0"

# the bare client on the same number of messages
url=$(standin_queue profile-ceiling "$PROFILE_N")
perf record -F "$FREQ" --call-graph dwarf,16384 -o "$BENCH_TMP/ceiling.perf" -- \
	"$BENCH_TMP/ceiling" --queue-url "$url" --endpoint "http://127.0.0.1:$STANDIN_PORT/" --inflight "$INFLIGHT" \
	--expect "$PROFILE_N" >"$BENCH_TMP/ceiling.out" 2>"$BENCH_TMP/perf-ceiling.log"

group() {
	perf script -F comm,tid,ip,sym,dso -i "$1" 2>/dev/null | $PY "$ROOT/bench/perf_groups.py" --top 30
}
{
	echo "# perf profile, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- command: \`$COMMAND\` ($(git -C "$ROOT" rev-parse --short HEAD))"
	echo "- machine: $(machine_line); load \`$(uptime)\`"
	echo "- perf record -F $FREQ --call-graph dwarf; $PROFILE_N messages, $INFLIGHT in flight, the native stand-in"
	echo "- worker: $($PY -c "print('%.0f msgs/s, %.1f µs CPU per message (stand-in %.1f)' % ($PROFILE_N / ($t1 - $t0), ($w1 - $w0) * 1e6 / $PROFILE_N, ($s1 - $s0) * 1e6 / $PROFILE_N))") while recorded (perf slows it)"
	echo "- bare client: $(cat "$BENCH_TMP/ceiling.out")"
	echo
	echo "## The worker"
	echo
	group "$BENCH_TMP/worker.perf"
	echo
	echo "## The bare client"
	echo
	group "$BENCH_TMP/ceiling.perf"
} >"$OUT"
cat "$OUT"
if [ -n "${PERF_DIR:-}" ]; then
	mkdir -p "$PERF_DIR"
	cp "$BENCH_TMP/worker.perf" "$BENCH_TMP/ceiling.perf" "$PERF_DIR/"
fi
BENCH_OK=1
