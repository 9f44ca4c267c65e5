# Shared by bench/run.sh, bench/rss_soak.sh and bench/standin_check.sh: a
# throwaway Postgres cluster run by the OS user postgres, the native SQS
# stand-in (bench/sqs_standin.c) or the Node emulator and its latency proxy,
# a TLS front, all on loopback, and a cleanup that stops every one of them on
# exit.
# Source it with ROOT set to the repository root.

set -euo pipefail

PGBIN=$(pg_config --bindir)
SQS_TEST_ACCESS_KEY_ID=${SQS_TEST_ACCESS_KEY_ID:-AKIDSQSINGESTTEST}
SQS_TEST_SECRET_ACCESS_KEY=${SQS_TEST_SECRET_ACCESS_KEY:-sqs-ingest-test-secret}
export SQS_TEST_ACCESS_KEY_ID SQS_TEST_SECRET_ACCESS_KEY
BENCH_MASK_KEY=${BENCH_MASK_KEY:-bench-mask-key}
export BENCH_MASK_KEY
PY=/usr/bin/python3

BENCH_TMP=""
PGDATA_DIR=""
PGPORT_BENCH=""
EMU_PID=""
EMU_PORT=""
PROXY_PID=""
PROXY_PORT=""
STANDIN_PID=""
STANDIN_PORT=""
TLS_PID=""
TLS_PORT=""
BENCH_OK=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Install what the harness needs, only when it is missing; "node-emulator"
# also installs the Node emulator's modules (test/package-lock.json).
ensure_packages() {
	local missing=() p
	for p in python3-boto3 python3-psycopg2 gnuplot-nox libcurl4-openssl-dev libssl-dev \
		postgresql-server-dev-15 stunnel4 linux-perf; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	[ "${1:-}" = node-emulator ] || return 0
	local want have
	want=$(node -e "console.log(require('$ROOT/test/package-lock.json').packages['node_modules/local-aws-sqs'].version)")
	have=$(node -e "try{console.log(require('$ROOT/test/node_modules/local-aws-sqs/package.json').version)}catch(e){console.log('none')}")
	if [ "$want" != "$have" ]; then
		log "npm ci --prefix test"
		npm ci --prefix "$ROOT/test" --no-audit --no-fund >/dev/null
	fi
}

# Stop everything this script started; keep the logs' tails on failure.
bench_cleanup() {
	local rc=$?
	set +e
	if [ "$BENCH_OK" != 1 ] && [ -n "$BENCH_TMP" ]; then
		for f in "$BENCH_TMP"/*.log; do
			[ -f "$f" ] || continue
			echo "---- tail of $(basename "$f")" >&2
			tail -n 25 "$f" >&2
		done
	fi
	if [ -n "$PGDATA_DIR" ] && [ -f "$PGDATA_DIR/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1
	fi
	local pid
	for pid in "$TLS_PID" "$STANDIN_PID" "$PROXY_PID" "$EMU_PID"; do
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	for pid in "$TLS_PID" "$STANDIN_PID" "$PROXY_PID" "$EMU_PID"; do
		[ -n "$pid" ] && wait "$pid" 2>/dev/null
	done
	[ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
	exit $rc
}

bench_init() {
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sqs_ingest_bench.XXXXXX")
	chown postgres: "$BENCH_TMP"
	chmod 700 "$BENCH_TMP"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# Wait for "READY <port>" in a log file; prints the port.
wait_ready() {
	local file=$1 pid=$2 i
	for i in $(seq 1 200); do
		if grep -q '^READY ' "$file" 2>/dev/null; then
			awk '/^READY /{print $2; exit}' "$file"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "process $pid exited before READY"; }
		sleep 0.05
	done
	die "no READY from $file"
}

start_emulator() {
	node "$ROOT/test/sqs-emulator.js" --port 0 --exit-with-parent >"$BENCH_TMP/emulator.log" 2>&1 &
	EMU_PID=$!
	EMU_PORT=$(wait_ready "$BENCH_TMP/emulator.log" "$EMU_PID")
	log "emulator pid $EMU_PID on 127.0.0.1:$EMU_PORT"
}

start_proxy() {
	node "$ROOT/test/fault-proxy.js" --listen 0 --target "http://127.0.0.1:$EMU_PORT" --exit-with-parent \
		>"$BENCH_TMP/proxy.log" 2>&1 &
	PROXY_PID=$!
	PROXY_PORT=$(wait_ready "$BENCH_TMP/proxy.log" "$PROXY_PID")
	log "fault proxy pid $PROXY_PID on 127.0.0.1:$PROXY_PORT"
}

# Build bench/sqs_standin.c with the system compiler (not part of the
# extension's build) and start it; it holds every response DELAY_MS
# (standin_delay) and lives at most STANDIN_MAX_SECONDS.
start_standin() {
	cc -O2 -Wall -Wextra -Werror -o "$BENCH_TMP/sqs_standin" "$ROOT/bench/sqs_standin.c" -lcrypto ||
		die "bench/sqs_standin.c does not build"
	"$BENCH_TMP/sqs_standin" --port 0 --exit-with-parent --max-seconds "${STANDIN_MAX_SECONDS:-7200}" "$@" \
		>"$BENCH_TMP/standin.log" 2>&1 &
	STANDIN_PID=$!
	STANDIN_PORT=$(wait_ready "$BENCH_TMP/standin.log" "$STANDIN_PID")
	log "SQS stand-in pid $STANDIN_PID on 127.0.0.1:$STANDIN_PORT"
}

# standin_call ACTION JSON: one call of the stand-in's own or SQS actions
# (unsigned: the stand-in does not verify signatures).
standin_call() {
	curl -sf -X POST -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: $1" \
		-d "$2" "http://127.0.0.1:$STANDIN_PORT/"
}

standin_delay() {
	standin_call SqsStandin.Configure "{\"DelayMs\": $1}" >/dev/null || die "cannot set the stand-in's delay"
}

# A fresh stand-in queue holding N generated login events; prints its URL.
standin_queue() {
	local name=$1 n=$2 url
	url=$(standin_call AmazonSQS.CreateQueue "{\"QueueName\": \"$name\", \"Attributes\": {\"VisibilityTimeout\": \"60\"}}" |
		$PY -c 'import json,sys; print(json.load(sys.stdin)["QueueUrl"])') || die "cannot create queue $name"
	standin_call SqsStandin.Generate "{\"QueueUrl\": \"$url\", \"Count\": $n, \"Seed\": 1}" >/dev/null ||
		die "cannot fill queue $name"
	[ "$(standin_depth "$url")" = "$n 0 0" ] || die "queue $name holds '$(standin_depth "$url")', expected '$n 0 0'"
	echo "$url"
}

# "visible notvisible delayed" of a stand-in queue
standin_depth() {
	standin_call AmazonSQS.GetQueueAttributes "{\"QueueUrl\": \"$1\"}" |
		$PY -c 'import json,sys; a=json.load(sys.stdin)["Attributes"]; print(a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"], a["ApproximateNumberOfMessagesDelayed"])'
}

standin_drop() {
	standin_call AmazonSQS.DeleteQueue "{\"QueueUrl\": \"$1\"}" >/dev/null
}

# A TLS front (stunnel4) on a free loopback port for the stand-in, with a
# certificate for 127.0.0.1 from a CA generated here: $BENCH_TMP/tls/ca.pem
# is what clients trust (sqs_ingest.ca_file, curl's CAINFO).
start_tls_front() {
	local d="$BENCH_TMP/tls"
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sqs_ingest bench CA" \
		-keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 || die "cannot make the bench CA"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" \
		-out "$d/server.csr" >/dev/null 2>&1 || die "cannot make the TLS front's key"
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext.cnf"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" >/dev/null 2>&1 || die "cannot sign the TLS front's certificate"
	chmod 644 "$d/ca.pem"
	chown -R postgres: "$d"
	TLS_PORT=$(free_port)
	cat >"$d/stunnel.conf" <<-EOF
		foreground = yes
		pid =
		debug = 3
		[sqs]
		accept = 127.0.0.1:$TLS_PORT
		connect = 127.0.0.1:$STANDIN_PORT
		cert = $d/server.pem
		key = $d/server.key
	EOF
	stunnel4 "$d/stunnel.conf" >"$BENCH_TMP/stunnel.log" 2>&1 &
	TLS_PID=$!
	local i
	for i in $(seq 1 100); do
		curl -s --cacert "$d/ca.pem" -o /dev/null "https://127.0.0.1:$TLS_PORT/" && break
		kill -0 "$TLS_PID" 2>/dev/null || die "stunnel4 exited: $(tail -n 5 "$BENCH_TMP/stunnel.log")"
		sleep 0.05
	done
	log "TLS front (stunnel4) pid $TLS_PID on 127.0.0.1:$TLS_PORT"
}

set_proxy_delay() {
	curl -sf -X POST -H 'Content-Type: application/json' \
		-d "{\"delayMs\": $1}" "http://127.0.0.1:$PROXY_PORT/__fault" >/dev/null
}

sqs_tool() {
	node "$ROOT/test/sqs-tool.js" --endpoint "http://127.0.0.1:$EMU_PORT" "$@"
}

# A fresh queue holding N generated events (same seed every time).
fresh_queue() {
	local name=$1 n=$2 url depth
	url=$(sqs_tool create-queue "$name" --visibility-timeout 60)
	sqs_tool send "$url" --generate "$n" --seed 1 >/dev/null
	depth=$(sqs_tool depth "$url")
	[ "$depth" = "$n 0 0" ] || die "queue $name holds '$depth', expected '$n 0 0'"
	echo "$url"
}

# CPU seconds of the whole cluster so far: the postmaster, its children that
# have exited (cutime+cstime) and those still running.
cluster_cpu() {
	local pm
	pm=$(head -n 1 "$PGDATA_DIR/postmaster.pid")
	{
		awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat"
		for c in $(cat "/proc/$pm/task/$pm/children" 2>/dev/null); do
			[ -r "/proc/$c/stat" ] && awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$c/stat"
		done
	} | awk -v hz="$(getconf CLK_TCK)" '{ s += $1 } END { printf "%.2f\n", s / hz }'
}

# CPU seconds (utime+stime) of a process so far; 0 when it is gone.
proc_cpu() {
	[ -r "/proc/$1/stat" ] || { echo 0; return; }
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

PSQL() {
	psql -h "$BENCH_TMP" -p "$PGPORT_BENCH" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"
}

bench_dsn() {
	echo "host=$BENCH_TMP port=$PGPORT_BENCH user=postgres dbname=postgres"
}

# initdb + start. $1 = 1 to preload sqs_ingest.
start_cluster() {
	local preload=$1
	PGDATA_DIR="$BENCH_TMP/data"
	PGPORT_BENCH=$(free_port)
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres --no-sync \
		>"$BENCH_TMP/initdb.log" 2>&1 || die "initdb failed"
	cat >>"$PGDATA_DIR/postgresql.conf" <<-EOF
		listen_addresses = ''
		port = $PGPORT_BENCH
		unix_socket_directories = '$BENCH_TMP'
		shared_buffers = 256MB
		max_wal_size = 8GB
		logging_collector = off
	EOF
	if [ "$preload" = 1 ]; then
		cat >>"$PGDATA_DIR/postgresql.conf" <<-EOF
			shared_preload_libraries = 'sqs_ingest'
			sqs_ingest.workers = 0
			sqs_ingest.database = 'postgres'
			sqs_ingest.access_key_id = '$SQS_TEST_ACCESS_KEY_ID'
			sqs_ingest.secret_access_key = '$SQS_TEST_SECRET_ACCESS_KEY'
			sqs_ingest.mask_key = '$BENCH_MASK_KEY'
		EOF
	fi
	pg_ctl_do start
	PSQL <"$ROOT/examples/user_logins.sql"
	if [ "$preload" = 1 ]; then
		PSQL -c 'CREATE EXTENSION sqs_ingest'
	fi
	log "cluster on $BENCH_TMP port $PGPORT_BENCH (preload sqs_ingest: $preload)"
}

# Restart the cluster with one worker reading queue URL $1 from the stand-in
# at $2 requests in flight; WORKER_PID is set to its PID once it has one.
start_one_worker() {
	pg_set --restart "sqs_ingest.queue_url=$1" "sqs_ingest.endpoint=http://127.0.0.1:$STANDIN_PORT" \
		"sqs_ingest.max_inflight=$2" "sqs_ingest.workers=1"
	WORKER_PID=""
	for _ in $(seq 1 100); do
		WORKER_PID=$(PSQL -c "SELECT pid FROM sqs_ingest_stats() WHERE kind = 'worker' AND pid <> 0 LIMIT 1")
		[ -n "$WORKER_PID" ] && break
		sleep 0.05
	done
	[ -n "$WORKER_PID" ] || die "no worker started"
}

pg_ctl_do() {
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$BENCH_TMP/postgres.log" -w -t 60 "$@" \
		>/dev/null || die "pg_ctl $* failed"
}

# ALTER SYSTEM for each NAME=VALUE, then reload (or restart with --restart).
pg_set() {
	local restart=0 kv
	if [ "$1" = --restart ]; then restart=1; shift; fi
	for kv in "$@"; do
		PSQL -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'"
	done
	if [ $restart = 1 ]; then pg_ctl_do -m fast restart; else PSQL -c 'SELECT pg_reload_conf()' >/dev/null; fi
}

# Empty the target table and the extension's ledger between contenders.
reset_tables() {
	PSQL -c 'TRUNCATE public.user_logins'
	if [ "${1:-0}" = 1 ]; then
		PSQL -c 'TRUNCATE sqs_ingest.processed, sqs_ingest.dead_letters'
	fi
	PSQL -c 'VACUUM ANALYZE public.user_logins' -c 'CHECKPOINT'
}

machine_line() {
	local cpu mem
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	echo "$(nproc) cores, $cpu, $mem RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), PostgreSQL $(pg_config --version | awk '{print $2}'), Node $(node --version)"
}
