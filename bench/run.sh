#!/usr/bin/env bash
# sqs_ingest benchmark: one command, one SQS stand-in, one machine, one run.
#
#   bench/run.sh                 N = 100,000 messages per contender
#   SMOKE=1 bench/run.sh         N = 2,000: proves every part works
#
# Every contender reads the same native SQS stand-in (bench/sqs_standin.c,
# built here with the system cc), so that the client, not the server, sets
# the pace. Three endpoints, in this order:
#   direct  the stand-in, plain HTTP;
#   delay   the same with every response held DELAY_MS (default 20 ms: a
#           stand-in for the round trip to AWS);
#   tls     the stand-in behind a local TLS front (stunnel4, a CA generated
#           for the run; the extension trusts it through sqs_ingest.ca_file).
# Contenders: the bare client (bench/ceiling.c: libcurl + SigV4, receive and
# delete, no database), the same unsigned (ceiling --unsigned: no SigV4, the
# network floor; straight only, at INFLIGHT; never the reference of a ratio),
# the sqs_ingest worker with 1, 2 and 4 workers, 1 worker with the login
# events' ip and device_id also encrypted to an RSA 2048 recovery key
# (test/keys/recovery.pub.asc; straight only), sqs_ingest_drain(),
# sqs_ingest_drain(N) (one call with max_messages = the N messages of its
# queue: it stops at the Nth, without the final empty long poll of
# sqs_ingest_drain()), the Node peer (bench/node_peer/peer.js: sqs-consumer +
# pg, INFLIGHT pollers, one multi-row INSERT per batch, no ledger; its npm
# packages installed once per run with `npm ci --prefer-offline` into
# bench/node_peer/node_modules, skipped if npm is missing) and the seed
# design (bench/seed_etl.py, one message at a time and batched). Straight to
# the stand-in, each at INFLIGHT (32) in flight; then the bare client and 1
# worker at SWEEP_INFLIGHT (32 64 128) in every mode, both drains at INFLIGHT
# in every mode, the Node peer and the seed design with the delay (not
# through TLS).
#
# Knobs (environment): N, SEED_N (seed design direct; default min(N, 5000)),
# SEED_DELAY_N (with the delay; default min(N, 500)), NODE_DELAY_N (the Node
# peer with the delay; default min(N, 20000)), SWEEP_N (messages per
# sweep point; default N), SWEEP_INFLIGHT ("32 64 128"), DELAY_MS (20),
# INFLIGHT (32), REPEAT (how many times the whole set runs; default 1: the
# report gives the median and the range of repeats), DRAIN_CHUNK (max_messages
# of each sqs_ingest_drain() call; 0: the whole backlog in one call), TLS=0
# to skip the TLS front, MAX_SECONDS (per contender, default 600).
#
# ONLY="ceiling worker1 worker-encrypted drain" runs only the contenders
# named (ceiling, ceiling-unsigned, worker1, worker2, worker4,
# worker-encrypted, drain, drain-bounded, node, seed, seed-batched; the
# sweep's points too), MODES="direct" only those endpoints (default
# "direct delay tls"), and PG_LOG=FILE keeps a copy of the cluster's log: to
# look at one change quickly, e.g.
#   SMOKE=1 N=50000 MODES=direct SWEEP_INFLIGHT=32 ONLY="ceiling worker1" bench/run.sh
#
# Runs as root; the cluster runs as the OS user postgres in a temporary
# directory; the stand-in and the TLS front listen on free loopback ports.
# Replaces bench/results/ with this run's <stamp>.md, .jsonl, .meta.json and
# plot, and the latest-run section of bench/RESULTS.md (a smoke run only
# prints its report). Everything started
# here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (the cluster is started as the OS user postgres)"

# the command as given: the knobs set in the environment, defaults left out
COMMAND="bench/run.sh"
for v in ONLY MODES TLS DRAIN_CHUNK REPEAT INFLIGHT DELAY_MS SWEEP_INFLIGHT SWEEP_N NODE_DELAY_N SEED_DELAY_N SEED_N N SMOKE; do
	if [ -n "${!v+x}" ]; then COMMAND="$v=${!v} $COMMAND"; fi
done

if [ "${SMOKE:-0}" = 1 ]; then N=${N:-2000}; else N=${N:-100000}; fi
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
for v in N SEED_N SEED_DELAY_N NODE_DELAY_N SWEEP_N INFLIGHT REPEAT; do
	if [ -n "${!v+x}" ] && ! { [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ]; }; then
		die "$v must be a positive integer"
	fi
done
if [ -n "${DRAIN_CHUNK+x}" ] && ! [[ $DRAIN_CHUNK =~ ^[0-9]+$ ]]; then
	die "DRAIN_CHUNK must be a non-negative integer"
fi
SEED_N=${SEED_N:-$(min "$N" 5000)}
SEED_DELAY_N=${SEED_DELAY_N:-$(min "$N" 500)}
NODE_DELAY_N=${NODE_DELAY_N:-$(min "$N" 20000)}
SWEEP_N=${SWEEP_N:-$N}
SWEEP_INFLIGHT=${SWEEP_INFLIGHT:-32 64 128}
DELAY_MS=${DELAY_MS:-20}
INFLIGHT=${INFLIGHT:-32}
REPEAT=${REPEAT:-1}
TLS=${TLS:-1}
MAX_SECONDS=${MAX_SECONDS:-600}
DRAIN_CHUNK=${DRAIN_CHUNK:-0}
[[ $DELAY_MS =~ ^[0-9]+$ ]] || die "DELAY_MS must be a number of milliseconds"
for k in $SWEEP_INFLIGHT; do
	[[ $k =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ "$k" -le 128 ] || die "SWEEP_INFLIGHT: 1 to 128 each"
done
[ "$SEED_N" -le "$N" ] && [ "$SEED_DELAY_N" -le "$N" ] || die "SEED_N and SEED_DELAY_N must not exceed N"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)

ensure_packages
bench_init
# a smoke run proves the harness works: it prints its report and leaves the
# latest full run in bench/results/
RESULTS_DIR="$ROOT/bench/results"
if [ "${SMOKE:-0}" = 1 ]; then RESULTS_DIR="$BENCH_TMP/results"; fi
mkdir -p "$RESULTS_DIR"
RECORDS="$BENCH_TMP/records.jsonl"
: >"$RECORDS"
UPTIME_BEFORE=$(uptime)

log "building bench/ceiling.c"
cc -O2 -Wall -Wextra -Werror -o "$BENCH_TMP/ceiling" "$ROOT/bench/ceiling.c" -lcurl
CEILING="$BENCH_TMP/ceiling"

log "building and installing the extension"
if ! { make -C "$ROOT" >"$BENCH_TMP/make.log" 2>&1 && make -C "$ROOT" install >>"$BENCH_TMP/make.log" 2>&1; }; then
	tail -n 20 "$BENCH_TMP/make.log" >&2
	die "the extension does not build"
fi

start_standin
if [ "$TLS" = 1 ]; then start_tls_front; fi
start_cluster 1
DSN=$(bench_dsn)
QSEQ=0
REP=0

# emit CONTENDER WORKERS INFLIGHT ROLE STANDIN_CPU CLUSTER_CPU OUTPUT
emit() {
	$PY - "$MODE" "$DELAY" "$REP" "$@" >>"$RECORDS" <<-'EOF'
		import json, sys
		mode, delay, rep, c, w, k, role, sc, cc, out = sys.argv[1:11]
		print(json.dumps({"mode": mode, "delay_ms": int(delay), "rep": int(rep), "contender": c,
		                  "workers": int(w) if w else None, "inflight": int(k) if k else None,
		                  "role": role, "standin_cpu_s": float(sc),
		                  "cluster_cpu_s": float(cc) if cc else None, "out": json.loads(out) if out.startswith("{") else out}))
	EOF
	log "$1${2:+ x$2} ($MODE, in flight ${3:-1}): $7"
}

new_queue() {
	QSEQ=$((QSEQ + 1))
	standin_queue "bench-$QSEQ-$1" "$2"
}

# the queue must be empty and the table hold n rows (when n is given)
finish_queue() {
	local url=$1 expect_rows=${2:-} left
	left=$(standin_depth "$url")
	[ "$left" = "0 0 0" ] || die "$url still holds '$left' (visible, in flight, delayed)"
	if [ -n "$expect_rows" ]; then
		local rows
		rows=$(PSQL -c 'SELECT count(*) FROM public.user_logins')
		[ "$rows" = "$expect_rows" ] || die "user_logins holds $rows rows, expected $expect_rows"
	fi
	standin_drop "$url"
}

cpu_delta() { $PY -c "print(round($2 - $1, 3))"; }

# the endpoint of the current mode, and the client-side CA for TLS
endpoint_args() {
	if [ "$MODE" = tls ]; then
		ENDPOINT="https://127.0.0.1:$TLS_PORT"; CAFILE="$BENCH_TMP/tls/ca.pem"
	else
		ENDPOINT="http://127.0.0.1:$STANDIN_PORT"; CAFILE=""
	fi
}

# is the contender named in ONLY (or ONLY unset)?
wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# Each run_* takes K (in flight) N ROLE [WORKERS] and appends one record.
# run_ceiling K N ROLE [ceiling-unsigned]: the latter sends no SigV4
run_ceiling() {
	local k=$1 n=$2 role=$3 contender=${4:-ceiling} url s0 out opts=()
	url=$(new_queue "$contender" "$n")
	if [ -n "$CAFILE" ]; then opts=(--cafile "$CAFILE"); fi
	if [ "$contender" = ceiling-unsigned ]; then opts+=(--unsigned); fi
	s0=$(proc_cpu "$STANDIN_PID")
	out=$("$CEILING" --queue-url "$url" --endpoint "$ENDPOINT/" --inflight "$k" --expect "$n" \
		--max-seconds "$MAX_SECONDS" "${opts[@]}")
	emit "$contender" "" "$k" "$role" "$(cpu_delta "$s0" "$(proc_cpu "$STANDIN_PID")")" "" "$out"
	finish_queue "$url"
}

run_worker() {
	local k=$1 n=$2 role=$3 w=$4 contender=${5:-worker} url s0 out mpid
	url=$(new_queue worker "$n")
	reset_tables 1
	# the workers start with the postmaster and their clock with their
	# processes: the poller is connected before the restart
	rm -f "$BENCH_TMP/measure.ready"
	$PY "$ROOT/bench/measure.py" worker --dsn "$DSN" --expect "$n" --workers "$w" --pgdata "$PGDATA_DIR" \
		--max-seconds "$MAX_SECONDS" --ready-file "$BENCH_TMP/measure.ready" >"$BENCH_TMP/measure.out" &
	mpid=$!
	for _ in $(seq 1 200); do [ -e "$BENCH_TMP/measure.ready" ] && break; sleep 0.05; done
	s0=$(proc_cpu "$STANDIN_PID")
	pg_set --restart "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=$ENDPOINT" "sqs_ingest.ca_file=$CAFILE" \
		"sqs_ingest.max_inflight=$k" "sqs_ingest.workers=$w"
	wait "$mpid" || die "measuring the worker failed"
	out=$(cat "$BENCH_TMP/measure.out")
	emit "$contender" "$w" "$k" "$role" "$(cpu_delta "$s0" "$(proc_cpu "$STANDIN_PID")")" \
		"$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["cluster_cpu_s"])' "$out")" "$out"
	pg_set --restart "sqs_ingest.workers=0"
	finish_queue "$url" "$n"
	if [ "$NODE_PEER" = 1 ] && [ "$contender" = worker ] && [ "$w" = 1 ]; then WORKER_ROWS[$n]=$(rows_digest); fi
}

# One worker again, the login events' ip and device_id encrypted as well as
# masked (issue 18): sqs_ingest.recovery_key_file names the RSA 2048 test
# key, and the table has encrypted_ip and encrypted_device_id, which the
# login mapping then fills. Takes K N ROLE.
run_worker_encrypted() {
	local n=$2 encrypted
	install -o postgres -m 600 "$ROOT/test/keys/recovery.pub.asc" "$BENCH_TMP/recovery.pub.asc"
	PSQL -c 'ALTER TABLE public.user_logins ADD COLUMN encrypted_ip bytea, ADD COLUMN encrypted_device_id bytea'
	pg_set "sqs_ingest.recovery_key_file=$BENCH_TMP/recovery.pub.asc"
	run_worker "$@" 1 worker-encrypted
	encrypted=$(PSQL -c 'SELECT count(encrypted_ip) FROM public.user_logins')
	[ "$encrypted" = "$n" ] || die "$encrypted of $n rows have encrypted_ip"
	encrypted=$(PSQL -c 'SELECT count(*) FROM public.user_logins
		WHERE (encrypted_device_id IS NULL) <> (masked_device_id IS NULL)')
	[ "$encrypted" = 0 ] || die "$encrypted rows have masked_device_id without encrypted_device_id, or the reverse"
	pg_set "sqs_ingest.recovery_key_file="
	PSQL -c 'ALTER TABLE public.user_logins DROP COLUMN encrypted_ip, DROP COLUMN encrypted_device_id'
}

# A drain commits batch by batch in a background worker of its own, as the
# workers do: the whole backlog goes in one call (DRAIN_CHUNK=C splits it
# into calls of C messages). Its CPU is the whole cluster's over the call.
# run_drain K N ROLE [drain-bounded]: the latter is one call of
# sqs_ingest_drain(N), which stops at the Nth message instead of ending on
# an empty long poll.
run_drain() {
	local k=$1 n=$2 role=$3 contender=${4:-drain} chunk=$DRAIN_CHUNK url s0 c0 out
	if [ "$contender" = drain-bounded ]; then chunk=$n; fi
	url=$(new_queue "$contender" "$n")
	reset_tables 1
	pg_set "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=$ENDPOINT" "sqs_ingest.ca_file=$CAFILE" \
		"sqs_ingest.max_inflight=$k"
	s0=$(proc_cpu "$STANDIN_PID"); c0=$(cluster_cpu)
	out=$($PY "$ROOT/bench/measure.py" drain --dsn "$DSN" --expect "$n" --chunk "$chunk")
	emit "$contender" "" "$k" "$role" "$(cpu_delta "$s0" "$(proc_cpu "$STANDIN_PID")")" \
		"$(cpu_delta "$c0" "$(cluster_cpu)")" "$out"
	if [ "$contender" = drain-bounded ]; then
		[ "$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["calls"])' "$out")" = 1 ] ||
			die "sqs_ingest_drain($n) did not store the $n messages in one call: $out"
	fi
	finish_queue "$url" "$n"
}

# A digest of user_logins' rows but create_date (the UTC date of each
# queue's SentTimestamps): the stand-in generates the same events for every
# queue of N messages, so every contender's rows must give the same digest.
rows_digest() {
	PSQL -c "SELECT md5(string_agg(r, E'\n' ORDER BY r)) FROM (SELECT (user_id, device_type,
		masked_ip, masked_device_id, locale, app_version)::text AS r FROM public.user_logins) s"
}
# 1 worker's digest by N, for the Node peer's rows to be compared with
declare -A WORKER_ROWS=()

# The Node peer (bench/node_peer/peer.js), K pollers, straight to the
# stand-in or with the delay; like the seed design its CPU is its own process
# and the rest of the cluster is the whole cluster over its run. The queue
# holds the N messages it processes: the table must hold N rows after (a
# redelivered message would be stored twice: it has no ledger).
run_node_peer() {
	local k=$1 n=$2 url s0 c0 out
	url=$(new_queue node "$n")
	reset_tables 0
	s0=$(proc_cpu "$STANDIN_PID"); c0=$(cluster_cpu)
	out=$(node "$ROOT/bench/node_peer/peer.js" --queue-url "$url" --endpoint "$ENDPOINT" --dsn "$DSN" \
		--pollers "$k" --expect "$n" --max-seconds "$MAX_SECONDS") || die "the Node peer failed"
	emit node "" "$k" headline "$(cpu_delta "$s0" "$(proc_cpu "$STANDIN_PID")")" \
		"$(cpu_delta "$c0" "$(cluster_cpu)")" "$out"
	finish_queue "$url" "$n"
	if [ -n "${WORKER_ROWS[$n]:-}" ]; then
		[ "$(rows_digest)" = "${WORKER_ROWS[$n]}" ] || die "the Node peer's rows differ from 1 worker's for the same $n events"
		log "the Node peer's $n rows equal 1 worker's"
	fi
}

# run_seed single|batched N_QUEUE N_PROCESSED: the queue keeps what the
# seed design did not process
run_seed() {
	local kind=$1 nq=$2 n=$3 url s0 c0 out flag=()
	if [ "$kind" = batched ]; then flag=(--batched); fi
	url=$(new_queue "seed-$kind" "$nq")
	reset_tables 0
	s0=$(proc_cpu "$STANDIN_PID"); c0=$(cluster_cpu)
	out=$($PY "$ROOT/bench/seed_etl.py" --queue-url "$url" --endpoint "$ENDPOINT" --dsn "$DSN" \
		--expect "$n" --max-seconds "$MAX_SECONDS" "${flag[@]}")
	emit "$([ "$kind" = batched ] && echo seed-batched || echo seed)" "" "" headline \
		"$(cpu_delta "$s0" "$(proc_cpu "$STANDIN_PID")")" "$(cpu_delta "$c0" "$(cluster_cpu)")" "$out"
	standin_drop "$url"
}

# the Node peer's packages, pinned by bench/node_peer/package-lock.json
NODE_PEER=0
if wanted node; then
	if ! command -v npm >/dev/null; then
		log "npm is missing: the Node peer is skipped"
	else
		log "npm ci --prefix bench/node_peer"
		npm ci --prefix "$ROOT/bench/node_peer" --prefer-offline --no-audit --no-fund >"$BENCH_TMP/npm.log" 2>&1 ||
			{ tail -n 20 "$BENCH_TMP/npm.log" >&2; die "npm ci of bench/node_peer failed"; }
		NODE_PEER=1
	fi
fi

# warm the stand-in, the TLS front and the page cache up before anything is timed
log "warm-up"
MODE=direct; DELAY=0; endpoint_args
run_ceiling 8 "$(min "$N" 5000)" warmup
: >"$RECORDS"

if [ -z "${MODES:-}" ]; then
	MODES="direct delay"
	if [ "$TLS" = 1 ]; then MODES="$MODES tls"; fi
fi
for REP in $(seq 1 "$REPEAT"); do
	for MODE in $MODES; do
		DELAY=0
		[ "$MODE" = delay ] && DELAY=$DELAY_MS
		standin_delay "$DELAY"
		endpoint_args
		log "== run $REP of $REPEAT, $MODE (endpoint $ENDPOINT, delay ${DELAY} ms)"
		if [ "$MODE" = direct ]; then
			if wanted ceiling; then run_ceiling "$INFLIGHT" "$N" headline; fi
			if wanted ceiling-unsigned; then run_ceiling "$INFLIGHT" "$N" headline ceiling-unsigned; fi
			for w in 1 2 4; do
				if wanted "worker$w"; then run_worker "$INFLIGHT" "$N" headline "$w"; fi
			done
			if wanted worker-encrypted; then run_worker_encrypted "$INFLIGHT" "$N" headline; fi
			if wanted drain; then run_drain "$INFLIGHT" "$N" headline; fi
			if wanted drain-bounded; then run_drain "$INFLIGHT" "$N" headline drain-bounded; fi
			if [ "$NODE_PEER" = 1 ]; then run_node_peer "$INFLIGHT" "$N"; fi
			if wanted seed; then run_seed single "$N" "$SEED_N"; fi
			if wanted seed-batched; then run_seed batched "$N" "$SEED_N"; fi
		else
			if wanted drain; then run_drain "$INFLIGHT" "$SWEEP_N" headline; fi
			if wanted drain-bounded; then run_drain "$INFLIGHT" "$SWEEP_N" headline drain-bounded; fi
			if [ "$MODE" = delay ]; then
				if [ "$NODE_PEER" = 1 ]; then run_node_peer "$INFLIGHT" "$NODE_DELAY_N"; fi
				if wanted seed; then run_seed single "$SWEEP_N" "$SEED_DELAY_N"; fi
				if wanted seed-batched; then run_seed batched "$SWEEP_N" "$SEED_DELAY_N"; fi
			fi
		fi
		for k in $SWEEP_INFLIGHT; do
			# the direct headline already is this point
			if [ "$MODE" = direct ] && [ "$k" = "$INFLIGHT" ] && [ "$SWEEP_N" = "$N" ]; then continue; fi
			if wanted ceiling; then run_ceiling "$k" "$SWEEP_N" sweep; fi
			if wanted worker1; then run_worker "$k" "$SWEEP_N" sweep 1; fi
		done
	done
done
standin_delay 0
if [ -n "${PG_LOG:-}" ]; then cp "$BENCH_TMP/postgres.log" "$PG_LOG"; fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes)"
$PY - "$BENCH_TMP/meta.json" "$COMMAND" "$(machine_line)" "$UPTIME_BEFORE" "$(uptime)" <<EOF
import json, sys
json.dump({"stamp": "$STAMP", "date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": sys.argv[2],
           "machine": sys.argv[3], "uptime_before": sys.argv[4].strip(), "uptime_after": sys.argv[5].strip(),
           "machine_short": "$(nproc) cores, $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
           "commit": "$COMMIT", "smoke": $([ "${SMOKE:-0}" = 1 ] && echo True || echo False),
           "n": $N, "seed_n": $SEED_N, "seed_delay_n": $SEED_DELAY_N, "node_delay_n": $NODE_DELAY_N, "sweep_n": $SWEEP_N,
           "sweep_inflight": [int(k) for k in "$SWEEP_INFLIGHT".split()], "inflight": $INFLIGHT,
           "delay_ms": $DELAY_MS, "drain_chunk": $DRAIN_CHUNK, "repeat": $REPEAT,
           "tls": $([ "$TLS" = 1 ] && echo True || echo False)},
          open(sys.argv[1], "w"), indent=1)
EOF
# bench/results/ holds the latest run only (and bench/profile.sh's profile.md)
find "$RESULTS_DIR" -maxdepth 1 -type f -name '20*' -delete
cp "$RECORDS" "$RESULTS_DIR/$STAMP.jsonl"
cp "$BENCH_TMP/meta.json" "$RESULTS_DIR/$STAMP.meta.json"
$PY "$ROOT/bench/report.py" --records "$RECORDS" --meta "$BENCH_TMP/meta.json" \
	--results-dir "$RESULTS_DIR" --summary "$ROOT/bench/RESULTS.md"
if [ "${SMOKE:-0}" = 1 ]; then
	log "smoke run: bench/results/ and bench/RESULTS.md left as they were"
else
	log "wrote bench/results/$STAMP.md and updated bench/RESULTS.md"
fi
BENCH_OK=1
