#!/bin/bash
# Build, install and test sqs_ingest: pg_regress (sql/, expected/) against a
# throwaway server and, beside it, the TAP tests (t/*.pl, SQS_INGEST_TAP_JOBS
# files at a time, default 6), each starting its own clusters and SQS
# emulator. Run as root: it installs packages and the extension, and runs
# the tests as the postgres user (the server refuses root). The last line is
# "N passed, N failed", counting pg_regress tests and TAP test files.
#
# By default it tests this machine's PostgreSQL (15 on Debian 12). To test
# several majors, each in turn, summed in one closing line:
#   SQS_INGEST_PG_MAJORS="15 17 18" ./test.sh     (or: ./test.sh --matrix)
# 17 and 18 run in Debian trees cached under /var/cache/sqs_ingest (see
# scripts/pg-tree.sh and scripts/test-matrix.sh).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"

PG_MAJOR=${SQS_INGEST_PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
PGBIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/bin")

passed=0
failed=0

finish() {
	echo
	echo "$passed passed, $failed failed"
	if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

if [ "$(id -u)" -ne 0 ]; then
	echo "test.sh: run as root (it installs packages and the extension, then tests as postgres)" >&2
	exit 1
fi

if [ "${1:-}" = --matrix ]; then
	SQS_INGEST_PG_MAJORS="15 17 18"
fi
if [ -n "${SQS_INGEST_PG_MAJORS:-}" ]; then
	# shellcheck disable=SC2086 # a list of majors
	exec ./scripts/test-matrix.sh $SQS_INGEST_PG_MAJORS
fi

echo "=== dependencies"
if ! ./scripts/install-deps.sh; then
	echo "test.sh: installing dependencies failed" >&2
	failed=$((failed + 1))
	finish
fi
PGBIN=$("$PG_CONFIG" --bindir)

echo "=== build and install"
if [ ! -f Makefile ]; then
	echo "test.sh: no Makefile" >&2
	failed=$((failed + 1))
	finish
fi
if ! make PG_CONFIG="$PG_CONFIG" || ! make PG_CONFIG="$PG_CONFIG" install; then
	echo "test.sh: build failed" >&2
	failed=$((failed + 1))
	finish
fi

# The tests run as postgres and write tmp_check/, results/ and logs here.
# Group write access rather than a chown: git refuses a work tree that
# another user owns.
WORK=$ROOT
COPY=
find "$ROOT" -path "$ROOT/.git" -prune -o -exec chgrp postgres {} + 2>/dev/null
find "$ROOT" -path "$ROOT/.git" -prune -o -exec chmod g+rwX {} + 2>/dev/null
if ! runuser -u postgres -- test -w "$ROOT" -a -r "$ROOT/Makefile"; then
	# Not reachable by postgres (e.g. under a private home): test a copy.
	WORK=$(mktemp -d /tmp/sqs_ingest_test.XXXXXX)
	COPY=$WORK
	tar -C "$ROOT" --exclude=.git -cf - . | tar -C "$WORK" -xf -
	chown -R postgres: "$WORK"
	echo "test.sh: $ROOT is not reachable by postgres, testing a copy in $WORK"
fi

# The tests read the sample in test/data/ (SQS_INGEST_SAMPLE, if set, points
# them at another file, which postgres must be able to read).
as_postgres() {
	runuser -u postgres -- env "$@"
}

# A throwaway server for pg_regress, on a private socket directory.
PGTMP=$(mktemp -d /tmp/sqs_ingest_regress.XXXXXX)
chown postgres: "$PGTMP"
cleanup() {
	local status=$?
	if [ -f "$PGTMP/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1
	fi
	rm -rf "$PGTMP"
	# a copy that failed stays for its logs
	if [ -n "$COPY" ] && [ "$status" -eq 0 ]; then
		rm -rf "$COPY"
	fi
}
trap cleanup EXIT

REGRESS_PORT=${SQS_INGEST_REGRESS_PORT:-$(node -e '
const s = require("net").createServer().listen(0, "127.0.0.1", () => {
  console.log(s.address().port); s.close(); });')}

shopt -s nullglob
tap_files=("$WORK"/t/*.pl)
shopt -u nullglob
if [ ${#tap_files[@]} -eq 0 ]; then
	echo "test.sh: no TAP tests in t/" >&2
	failed=$((failed + 1))
	finish
fi

# pg_regress runs in the background, beside the fuzzer and the TAP tests
# (it needs a few seconds of one core); its output is printed after theirs.
# Its status is make's, or 125 when the server did not start.
run_regress() {
	if ! as_postgres "$PGBIN/initdb" -D "$PGTMP/data" -A trust -U postgres --encoding=UTF8 --locale=C >"$PGTMP/initdb.log" 2>&1 ||
		! as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w \
			-o "-p $REGRESS_PORT -k $PGTMP -c listen_addresses=''" start >/dev/null; then
		echo "test.sh: could not start a server for pg_regress"
		cat "$PGTMP/initdb.log" "$PGTMP/server.log" 2>/dev/null
		return 125
	fi
	(cd "$WORK" && as_postgres PGHOST="$PGTMP" PGPORT="$REGRESS_PORT" \
		make PG_CONFIG="$PG_CONFIG" installcheck TAP_TESTS=) 2>&1
	local rc=$?
	as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast stop >/dev/null 2>&1
	return $rc
}
regress_log=$PGTMP/regress.out
run_regress >"$regress_log" 2>&1 &
regress_job=$!

# SQS_INGEST_FUZZ_SECONDS=N (.ci/run sets it) fuzzes each response decoder
# for N seconds; a crash or a broken invariant counts as a failure.
if [ -n "${SQS_INGEST_FUZZ_SECONDS:-}" ]; then
	echo "=== fuzz (${SQS_INGEST_FUZZ_SECONDS} s per target)"
	if PG_CONFIG="$PG_CONFIG" ./fuzz/run.sh "$SQS_INGEST_FUZZ_SECONDS"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
fi

# The TAP files run SQS_INGEST_TAP_JOBS at a time: they mostly wait on
# timers (long polls, visibility timeouts, backoff), and each starts its own
# clusters, emulator and helpers on ports reserved for the whole run.
TAP_JOBS=${SQS_INGEST_TAP_JOBS:-6}
echo "=== TAP tests ($TAP_JOBS files at a time)"
tap_log=$PGTMP/tap.out
(cd "$WORK" && as_postgres make PG_CONFIG="$PG_CONFIG" installcheck REGRESS= TAP_TESTS=1 \
	PROVE_FLAGS="-j$TAP_JOBS --timer") 2>&1 | tee "$tap_log"
rc=${PIPESTATUS[0]}

# prove prints "Files=N, Tests=M" and lists each failing file in its
# summary as "t/x.pl (Wstat: W Tests: T Failed: F)" followed by details.
files=$(sed -nE 's/^Files=([0-9]+), Tests=.*/\1/p' "$tap_log" | tail -1)
tap_failed=$(awk '
	/^Test Summary Report/ { in_summary = 1; next }
	in_summary && /^t\/[^ ]+\.pl +\(Wstat:/ {
		if (file != "" && bad) n++
		file = $1; bad = 0
		if (match($0, /Wstat: [0-9]+/) && substr($0, RSTART + 7, RLENGTH - 7) + 0 != 0) bad = 1
		if (match($0, /Failed: [0-9]+/) && substr($0, RSTART + 8, RLENGTH - 8) + 0 != 0) bad = 1
		next
	}
	in_summary && file != "" && /^  (Parse errors|Non-zero|Failed test)/ { bad = 1 }
	/^Files=/ { if (file != "" && bad) n++; file = ""; in_summary = 0 }
	END { print n + 0 }' "$tap_log")
if [ -z "$files" ]; then
	echo "test.sh: prove did not finish; counting every TAP test as failed" >&2
	failed=$((failed + ${#tap_files[@]}))
else
	passed=$((passed + files - tap_failed))
	failed=$((failed + tap_failed))
	if [ "$rc" -ne 0 ] && [ "$tap_failed" -eq 0 ]; then
		failed=$((failed + 1))
	fi
	echo "TAP: $((files - tap_failed)) files passed, $tap_failed failed"
fi
if [ "$rc" -ne 0 ]; then
	for f in "$WORK"/tmp_check/log/regress_log_*; do
		[ -f "$f" ] || continue
		if grep -q 'not ok' "$f"; then
			echo "=== tail of $f"
			tail -n 60 "$f"
		fi
	done
fi

echo "=== pg_regress"
wait "$regress_job"
rc=$?
cat "$regress_log"
if [ "$rc" -eq 125 ]; then
	failed=$((failed + 1))
else
	# "test x ... ok" up to 15, "ok 1 - x" (TAP) from 16 on
	ok=$(grep -cE '(\.\.\. +ok( |$))|(^ok [0-9]+ )' "$regress_log" || true)
	bad=$(grep -cE '(\.\.\. +FAILED( |$))|(^not ok [0-9]+ )' "$regress_log" || true)
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "test.sh: pg_regress failed before running its tests" >&2
		failed=$((failed + 1))
	fi
	if [ -f "$WORK/regression.diffs" ] && [ "$rc" -ne 0 ]; then
		echo "=== regression.diffs"
		cat "$WORK/regression.diffs"
	fi
	echo "pg_regress: $ok passed, $bad failed"
fi

# Memory checkers, on this host's PostgreSQL only (not in the Debian trees
# of the matrix), one test each:
# - SQS_INGEST_VALGRIND=1 (.ci/run sets it): memcheck of one worker over a
#   short run (scripts/valgrind-worker.sh, under a minute);
# - SQS_INGEST_SANITIZE=1: the TAP suite again against an AddressSanitizer +
#   UndefinedBehaviorSanitizer build (scripts/sanitize.sh).
if [ "$PG_MAJOR" = "${SQS_INGEST_HOST_PG_MAJOR:-15}" ]; then
	for check in VALGRIND:valgrind-worker SANITIZE:sanitize; do
		var=SQS_INGEST_${check%%:*}
		[ "${!var:-0}" = 1 ] || continue
		echo "=== scripts/${check#*:}.sh"
		if (cd "$WORK" && PG_CONFIG="$PG_CONFIG" "./scripts/${check#*:}.sh"); then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
fi

finish
