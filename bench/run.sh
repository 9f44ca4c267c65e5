#!/usr/bin/env bash
# sqs_ingest benchmark: one command, one emulator, one machine, one run.
# The worker runs twice: the login mapping as is, and with ip and device_id
# also encrypted to a recovery key (README, "Recovering personal data").
#
#   bench/run.sh                 N = 100,000 messages per contender
#   SMOKE=1 bench/run.sh         N = 2,000: proves every part works
#
# Knobs (environment): N, SEED_N (seed design, direct; default min(N, 5000)),
# SEED_PROXY_N (seed design through the proxy; default min(N, 1000)), SWEEP_N
# (messages per in-flight sweep point; default min(N, 20000)), SWEEP=0 to skip
# the sweep, DELAY_MS (proxy latency, default 20), INFLIGHT (headline
# in-flight requests, default 32), DRAIN_CHUNK (max_messages of each
# sqs_ingest_drain() call; default 0: the whole backlog in one call),
# ALLOW_NO_EXTENSION=1 to measure only the ceiling and the seed design when
# the extension does not build.
#
# Runs as root; the cluster runs as the OS user postgres in a temporary
# directory; the emulator and the proxy listen on free loopback ports.
# Writes bench/results/<stamp>.md and <stamp>-sweep.png, updates
# bench/RESULTS.md. Everything started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (the cluster is started as the OS user postgres)"

# the command as given: the knobs set in the environment, defaults left out
COMMAND="bench/run.sh"
for v in ALLOW_NO_EXTENSION DRAIN_CHUNK INFLIGHT DELAY_MS SWEEP SWEEP_N SEED_PROXY_N SEED_N N SMOKE; do
	if [ -n "${!v+x}" ]; then COMMAND="$v=${!v} $COMMAND"; fi
done

if [ "${SMOKE:-0}" = 1 ]; then N=${N:-2000}; else N=${N:-100000}; fi
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
for v in N SEED_N SEED_PROXY_N SWEEP_N INFLIGHT; do
	if [ -n "${!v+x}" ] && ! { [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ]; }; then
		die "$v must be a positive integer"
	fi
done
if [ -n "${DRAIN_CHUNK+x}" ] && ! [[ $DRAIN_CHUNK =~ ^[0-9]+$ ]]; then
	die "DRAIN_CHUNK must be a non-negative integer"
fi
SEED_N=${SEED_N:-$(min "$N" 5000)}
SEED_PROXY_N=${SEED_PROXY_N:-$(min "$N" 1000)}
SWEEP_N=${SWEEP_N:-$(min "$N" 20000)}
SWEEP=${SWEEP:-1}
DELAY_MS=${DELAY_MS:-20}
INFLIGHT=${INFLIGHT:-32}
MAX_SECONDS=${MAX_SECONDS:-1800}
DRAIN_CHUNK=${DRAIN_CHUNK:-0}
[[ $DELAY_MS =~ ^[0-9]+$ ]] || die "DELAY_MS must be a number of milliseconds"
[ "$SEED_N" -le "$N" ] && [ "$SEED_PROXY_N" -le "$N" ] || die "SEED_N and SEED_PROXY_N must not exceed N"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"

ensure_packages
bench_init
RECORDS="$BENCH_TMP/records.jsonl"
: >"$RECORDS"

log "building bench/ceiling.c"
gcc -O2 -Wall -Wextra -Werror -o "$BENCH_TMP/ceiling" "$ROOT/bench/ceiling.c" -lcurl
CEILING="$BENCH_TMP/ceiling"

EXT=1
log "building and installing the extension"
if ! { make -C "$ROOT" >"$BENCH_TMP/make.log" 2>&1 && make -C "$ROOT" install >>"$BENCH_TMP/make.log" 2>&1; }; then
	tail -n 20 "$BENCH_TMP/make.log" >&2
	[ "${ALLOW_NO_EXTENSION:-0}" = 1 ] || die "the extension does not build (ALLOW_NO_EXTENSION=1 measures the rest)"
	log "extension not built: measuring the ceiling and the seed design only"
	EXT=0
fi

start_emulator
start_proxy
start_cluster "$EXT"
DSN=$(bench_dsn)
QSEQ=0

# emit MODE CONTENDER INFLIGHT ROLE EMU_CPU PROXY_CPU OUTPUT DELAY [QUEUE_LEFT]
emit() {
	$PY - "$@" >>"$RECORDS" <<-'EOF'
		import json, sys
		m, c, k, role, emu, proxy, out = sys.argv[1:8]
		print(json.dumps({"mode": m, "contender": c, "inflight": int(k) if k else None, "role": role,
		                  "delay_ms": int(sys.argv[8]), "emu_cpu_s": float(emu), "proxy_cpu_s": float(proxy),
		                  "queue_left": sys.argv[9] if len(sys.argv) > 9 else "0 0 0", "out": out}))
	EOF
	log "$2 ($1, in flight ${3:-1}, $4): $7"
}

new_queue() {
	QSEQ=$((QSEQ + 1))
	fresh_queue "bench-$QSEQ-$1" "$2"
}

finish_queue() {
	local url=$1 expect_rows=${2:-}
	if [ -n "$expect_rows" ]; then
		local rows
		rows=$(PSQL -c 'SELECT count(*) FROM public.user_logins')
		[ "$rows" = "$expect_rows" ] || die "user_logins holds $rows rows, expected $expect_rows"
	fi
	sqs_tool delete-queue "$url" >/dev/null
}

cpu_delta() { $PY -c "print(round($2 - $1, 3))"; }

# Each run_* takes MODE K N ROLE and appends one record.
run_ceiling() {
	local mode=$1 k=$2 n=$3 role=$4 url e0 p0 out
	url=$(new_queue ceiling "$n")
	e0=$(proc_cpu "$EMU_PID"); p0=$(proc_cpu "$PROXY_PID")
	out=$("$CEILING" --queue-url "$url" --endpoint "$ENDPOINT/" --inflight "$k" --expect "$n" \
		--max-seconds "$MAX_SECONDS")
	emit "$mode" ceiling "$k" "$role" "$(cpu_delta "$e0" "$(proc_cpu "$EMU_PID")")" \
		"$(cpu_delta "$p0" "$(proc_cpu "$PROXY_PID")")" "$out" "$DELAY"
	[ "$(sqs_tool depth "$url")" = "0 0 0" ] || die "ceiling left messages in $url"
	finish_queue "$url"
}

run_worker() {
	local mode=$1 k=$2 n=$3 role=$4 contender=${5:-worker} url e0 p0 out mpid i
	url=$(new_queue worker "$n")
	reset_tables 1
	# the worker starts with the postmaster and its clock with its process:
	# the poller is connected before the restart
	rm -f "$BENCH_TMP/measure.ready"
	$PY "$ROOT/bench/measure.py" worker --dsn "$DSN" --expect "$n" --max-seconds "$MAX_SECONDS" \
		--ready-file "$BENCH_TMP/measure.ready" >"$BENCH_TMP/measure.out" &
	mpid=$!
	for i in $(seq 1 200); do [ -e "$BENCH_TMP/measure.ready" ] && break; sleep 0.05; done
	e0=$(proc_cpu "$EMU_PID"); p0=$(proc_cpu "$PROXY_PID")
	pg_set --restart "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=$ENDPOINT" \
		"sqs_ingest.max_inflight=$k" "sqs_ingest.workers=1"
	wait "$mpid" || die "measuring the worker failed"
	out=$(cat "$BENCH_TMP/measure.out")
	emit "$mode" "$contender" "$k" "$role" "$(cpu_delta "$e0" "$(proc_cpu "$EMU_PID")")" \
		"$(cpu_delta "$p0" "$(proc_cpu "$PROXY_PID")")" "$out" "$DELAY"
	pg_set --restart "sqs_ingest.workers=0"
	[ "$(sqs_tool depth "$url")" = "0 0 0" ] || die "the worker left messages in $url"
	finish_queue "$url" "$n"
}

# The worker again, the login events' ip and device_id encrypted as well as
# masked: sqs_ingest.recovery_key_file names an RSA 2048 test key, and the
# table has encrypted_ip and encrypted_device_id.
run_worker_encrypted() {
	local n=$3 encrypted
	install -o postgres -m 600 "$ROOT/test/keys/recovery.pub.asc" "$BENCH_TMP/recovery.pub.asc"
	PSQL -c 'ALTER TABLE public.user_logins ADD COLUMN encrypted_ip bytea, ADD COLUMN encrypted_device_id bytea'
	pg_set "sqs_ingest.recovery_key_file=$BENCH_TMP/recovery.pub.asc"
	run_worker "$@" worker-encrypted
	encrypted=$(PSQL -c 'SELECT count(encrypted_ip) FROM public.user_logins')
	[ "$encrypted" = "$n" ] || die "$encrypted of $n rows have encrypted_ip"
	pg_set "sqs_ingest.recovery_key_file="
	PSQL -c 'ALTER TABLE public.user_logins DROP COLUMN encrypted_ip, DROP COLUMN encrypted_device_id'
}

# A drain commits batch by batch in a background worker of its own, as the
# workers do: the whole backlog goes in one call (DRAIN_CHUNK=C splits it
# into calls of C messages).
run_drain() {
	local mode=$1 k=$2 n=$3 role=$4 url e0 p0 out left
	url=$(new_queue drain "$n")
	reset_tables 1
	pg_set "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=$ENDPOINT" "sqs_ingest.max_inflight=$k"
	e0=$(proc_cpu "$EMU_PID"); p0=$(proc_cpu "$PROXY_PID")
	out=$($PY "$ROOT/bench/measure.py" drain --dsn "$DSN" --expect "$n" --chunk "$DRAIN_CHUNK")
	left=$(sqs_tool depth "$url")
	emit "$mode" drain "$k" "$role" "$(cpu_delta "$e0" "$(proc_cpu "$EMU_PID")")" \
		"$(cpu_delta "$p0" "$(proc_cpu "$PROXY_PID")")" "$out" "$DELAY" "$left"
	if [ "$left" = "0 0 0" ]; then
		finish_queue "$url" "$n"
	else
		log "warning: the drain left '$left' (visible, in flight, delayed) in its queue"
		finish_queue "$url"
	fi
}

# run_seed MODE single|batched N_QUEUE N_PROCESSED
run_seed() {
	local mode=$1 kind=$2 nq=$3 n=$4 url e0 p0 out flag=()
	if [ "$kind" = batched ]; then flag=(--batched); fi
	url=$(new_queue "seed-$kind" "$nq")
	reset_tables 0
	e0=$(proc_cpu "$EMU_PID"); p0=$(proc_cpu "$PROXY_PID")
	out=$($PY "$ROOT/bench/seed_etl.py" --queue-url "$url" --endpoint "$ENDPOINT" --dsn "$DSN" \
		--expect "$n" --max-seconds "$MAX_SECONDS" "${flag[@]}")
	emit "$mode" "$([ "$kind" = batched ] && echo seed-batched || echo seed)" "" headline \
		"$(cpu_delta "$e0" "$(proc_cpu "$EMU_PID")")" "$(cpu_delta "$p0" "$(proc_cpu "$PROXY_PID")")" "$out" "$DELAY"
	finish_queue "$url" "$n"
}

# warm the emulator and the proxy up (JIT, sockets) before anything is timed
log "warm-up"
for ENDPOINT in "http://127.0.0.1:$EMU_PORT" "http://127.0.0.1:$PROXY_PORT"; do
	set_proxy_delay 0
	url=$(new_queue warmup "$(min "$N" 5000)")
	"$CEILING" --queue-url "$url" --endpoint "$ENDPOINT/" --inflight 8 --expect "$(min "$N" 5000)" >/dev/null
	finish_queue "$url"
done

for MODE in direct proxy; do
	if [ "$MODE" = direct ]; then
		ENDPOINT="http://127.0.0.1:$EMU_PORT"; DELAY=0; SN=$SEED_N
	else
		ENDPOINT="http://127.0.0.1:$PROXY_PORT"; DELAY=$DELAY_MS; SN=$SEED_PROXY_N
	fi
	set_proxy_delay "$DELAY"
	log "== $MODE (endpoint $ENDPOINT, proxy delay ${DELAY} ms)"
	run_ceiling "$MODE" "$INFLIGHT" "$N" headline
	if [ "$EXT" = 1 ]; then
		run_worker "$MODE" "$INFLIGHT" "$N" headline
		run_worker_encrypted "$MODE" "$INFLIGHT" "$N" headline
		run_drain "$MODE" "$INFLIGHT" "$N" headline
	fi
	run_seed "$MODE" single "$N" "$SN"
	run_seed "$MODE" batched "$N" "$SN"
	if [ "$SWEEP" = 1 ]; then
		for k in 1 2 4 8 16 32; do
			# the headline run already is this point
			if [ "$k" = "$INFLIGHT" ] && [ "$SWEEP_N" = "$N" ]; then continue; fi
			run_ceiling "$MODE" "$k" "$SWEEP_N" sweep
			if [ "$EXT" = 1 ]; then run_worker "$MODE" "$k" "$SWEEP_N" sweep; fi
		done
	fi
done

REUSE=false
[ "$SWEEP_N" = "$N" ] && REUSE=true
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes)"
$PY - "$BENCH_TMP/meta.json" <<EOF
import json, sys
json.dump({"stamp": "$STAMP", "date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": "$COMMAND",
           "machine": """$(machine_line)""", "machine_short": "$(nproc) cores, $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
           "commit": "$COMMIT", "extension": $([ "$EXT" = 1 ] && echo True || echo False),
           "smoke": $([ "${SMOKE:-0}" = 1 ] && echo True || echo False),
           "n": $N, "seed_n": $SEED_N, "seed_proxy_n": $SEED_PROXY_N, "sweep_n": $SWEEP_N,
           "delay_ms": $DELAY_MS, "drain_chunk": $DRAIN_CHUNK, "sweep_reuses_headline": $([ "$REUSE" = true ] && echo True || echo False)},
          open(sys.argv[1], "w"))
EOF
cp "$RECORDS" "$RESULTS_DIR/$STAMP.jsonl"
cp "$BENCH_TMP/meta.json" "$RESULTS_DIR/$STAMP.meta.json"
$PY "$ROOT/bench/report.py" --records "$RECORDS" --meta "$BENCH_TMP/meta.json" \
	--results-dir "$RESULTS_DIR" --summary "$ROOT/bench/RESULTS.md"
log "wrote bench/results/$STAMP.md and updated bench/RESULTS.md"
BENCH_OK=1
