#!/bin/bash
# Run the whole TAP suite against an AddressSanitizer + UndefinedBehavior-
# Sanitizer build of sqs_ingest, then put the regular build back. Its files
# run SQS_INGEST_TAP_JOBS at a time (default 6), as in test.sh.
#
#   PG_CONFIG=... scripts/sanitize.sh [t/NNN_x.pl ...]
#
# Run as root from the repository (it installs the extension into
# PG_CONFIG's server; the tests run as postgres, like test.sh). The ASan
# runtime is preloaded into each test cluster's postmaster only
# (SQS_INGEST_SERVER_PRELOAD, see t/SqsIngestTest.pm): PostgreSQL itself is
# not instrumented, the extension is. A sanitizer report in any server log
# fails the run, even when the test that caused it passed (ASan ends the
# process with exit status 1, which the postmaster takes for an ordinary
# backend exit). Exit status 0 only when the build, every test and the log
# scan pass.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
CC=${SANITIZE_CC:-gcc}
SANITIZE_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"

if [ "$(id -u)" -ne 0 ]; then
	echo "sanitize: run as root (it installs the extension, then tests as postgres)" >&2
	exit 1
fi
runtime=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$runtime" ] || [ "$runtime" = libasan.so ]; then
	echo "sanitize: $CC has no AddressSanitizer runtime (libasan)" >&2
	exit 1
fi

# The runtime is preloaded, not linked into postgres, so it initializes on
# the first malloc; scripts/asan-early-init.c (preloaded after it) keeps that
# first malloc out of glibc's gettext lock, where it would hang the
# postmaster at startup.
shimdir=$(mktemp -d)
chmod 755 "$shimdir"
shim=$shimdir/asan-early-init.so
if ! "$CC" -O2 -Wall -Wextra -shared -fPIC -o "$shim" scripts/asan-early-init.c; then
	echo "sanitize: could not build scripts/asan-early-init.c" >&2
	exit 1
fi

# Whatever happens, leave the regular build installed.
restore() {
	rm -rf "$shimdir"
	make -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
	make -s PG_CONFIG="$PG_CONFIG" >/dev/null && make -s install PG_CONFIG="$PG_CONFIG" >/dev/null ||
		echo "sanitize: could not reinstall the regular build" >&2
}
trap restore EXIT

echo "sanitize: building with $SANITIZE_FLAGS ($CC)"
make -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
if ! make -s CC="$CC" COPT="$SANITIZE_FLAGS" PG_CONFIG="$PG_CONFIG" >/dev/null ||
	! make -s install PG_CONFIG="$PG_CONFIG" >/dev/null; then
	echo "sanitize: sanitizer build failed" >&2
	exit 1
fi

# The tests run as postgres and write tmp_check/ here.
find "$ROOT" -path "$ROOT/.git" -prune -o -exec chgrp postgres {} + 2>/dev/null
find "$ROOT" -path "$ROOT/.git" -prune -o -exec chmod g+rwX {} + 2>/dev/null
rm -rf "$ROOT/tmp_check"

tests=()
[ $# -gt 0 ] && tests=("PROVE_TESTS=$*")
# halt_on_error: the first report ends the process, so it cannot be missed;
# detect_leaks=0: a server process exits without freeing what lives until
# exit, by design (memory growth is the valgrind run's concern).
runuser -u postgres -- env \
	SQS_INGEST_SERVER_PRELOAD="$runtime $shim" \
	ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:print_summary=1" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	make -s installcheck REGRESS= TAP_TESTS=1 PG_CONFIG="$PG_CONFIG" \
	PROVE_FLAGS="-j${SQS_INGEST_TAP_JOBS:-6} --timer" "${tests[@]}"
rc=$?

reports=$(grep -lE 'ERROR: AddressSanitizer|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)' \
	"$ROOT"/tmp_check/log/*.log 2>/dev/null)
if [ -n "$reports" ]; then
	for f in $reports; do
		echo "=== sanitizer report in $f"
		grep -E -A40 'ERROR: AddressSanitizer|runtime error:' "$f" | head -80
	done
	echo "sanitize: FAILED: sanitizer reports in the server logs" >&2
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	echo "sanitize: FAILED: the TAP suite failed under the sanitizers" >&2
	exit 1
fi
echo "sanitize: passed, no sanitizer report"
