#!/usr/bin/env bash
# CPU µs per message of one worker, for two or more versions of the
# extension taking turns in one cluster against one native stand-in: a
# change's effect on CPU per message is a few percent, less than what a busy
# shared machine moves the figure between two separate runs, but a
# version's turn comes right after the other's, round after round.
#
#   DIRS="/tmp/before /tmp/after" bench/cpu_ab.sh
#   (each a source tree, for example: git archive <commit> | tar -x -C /tmp/before)
#
# Knobs: N messages per turn (200,000), ROUNDS (4), INFLIGHT (32). Each turn
# installs its tree (make install), restarts the cluster with one worker
# draining a fresh queue of N login events, and takes the worker's CPU
# (utime + stime, /proc) from its start until the queue is empty; rows,
# ledger entries and dead letters are printed with it. Prints each turn,
# then each tree's figures and median. Runs as root (the cluster as the OS
# user postgres); inside a private mount namespace when others share the
# installation. Writes nothing into the tree but the builds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root"
N=${N:-200000}
ROUNDS=${ROUNDS:-4}
INFLIGHT=${INFLIGHT:-32}
[[ $N =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $INFLIGHT =~ ^[0-9]+$ ]] || die "N, ROUNDS, INFLIGHT: integers"
read -r -a dirs <<<"${DIRS:-}"
[ ${#dirs[@]} -ge 2 ] || die "DIRS: two or more source trees"

bench_init
for d in "${dirs[@]}"; do
	make -C "$d" >"$BENCH_TMP/make.log" 2>&1 || { tail -n 20 "$BENCH_TMP/make.log" >&2; die "$d does not build"; }
done
start_standin
make -C "${dirs[0]}" install >"$BENCH_TMP/make.log" 2>&1 || die "${dirs[0]} does not install"
start_cluster 1

declare -A figures
for r in $(seq 1 "$ROUNDS"); do
	for i in "${!dirs[@]}"; do
		d=${dirs[$i]}
		make -C "$d" install >"$BENCH_TMP/make.log" 2>&1 || die "$d does not install"
		url=$(standin_queue "ab-$r-$i" "$N")
		PSQL -c "TRUNCATE user_logins; TRUNCATE sqs_ingest.processed; TRUNCATE sqs_ingest.dead_letters"
		start_one_worker "$url" "$INFLIGHT"
		wpid=$WORKER_PID
		w0=$(proc_cpu "$wpid")
		t0=$(date +%s.%N)
		for _ in $(seq 1 3000); do
			[ "$(standin_depth "$url")" = "0 0 0" ] && break
			sleep 0.1
		done
		t1=$(date +%s.%N)
		w1=$(proc_cpu "$wpid")
		[ "$(standin_depth "$url")" = "0 0 0" ] || die "the worker did not empty its queue"
		counts=$(PSQL -c "SELECT (SELECT count(*) FROM user_logins) || ' rows, ' ||
			(SELECT count(*) FROM sqs_ingest.processed) || ' ledger entries, ' ||
			(SELECT count(*) FROM sqs_ingest.dead_letters) || ' dead letters'")
		pg_set --restart "sqs_ingest.workers=0"
		standin_drop "$url"
		us=$($PY -c "print('%.2f' % (($w1 - $w0) * 1e6 / $N))")
		figures[$i]="${figures[$i]:-} $us"
		echo "round $r, $d: $us µs per message, $($PY -c "print('%.0f' % ($N / ($t1 - $t0)))") msgs/s, $counts"
	done
done
for i in "${!dirs[@]}"; do
	echo "${dirs[$i]}:${figures[$i]} µs per message; median $(echo "${figures[$i]}" | $PY -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.stdin.read().split()))')"
done
BENCH_OK=1
