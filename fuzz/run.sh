#!/bin/bash
# Fuzz the SQS response decoders and the body mapper's streaming pass for a
# bounded time:
#   fuzz/run.sh [SECONDS]      (default 60 per target)
# Builds the libFuzzer targets (clang-14, ASan + UBSan) against
# PG_CONFIG's libpgcommon, runs each on a scratch copy of its corpus in
# fuzz/corpus/<target>/, and exits 1 if any input crashed a target or broke
# an invariant; the input is kept in FUZZ_ARTIFACTS (default tmp_fuzz/).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECONDS_EACH=${1:-60}
ARTIFACTS=${FUZZ_ARTIFACTS:-$HERE/../tmp_fuzz}
WORK=$(mktemp -d /tmp/sqs_ingest_fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$ARTIFACTS"

if ! "$HERE/build.sh" "$WORK" fuzz >"$WORK/build.log" 2>&1; then
	echo "fuzz: build failed" >&2
	cat "$WORK/build.log" >&2
	exit 1
fi

status=0
for target in json xml body; do
	mkdir -p "$WORK/corpus-$target"
	"$WORK/fuzz_$target" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target-" \
		"$WORK/corpus-$target" "$HERE/corpus/$target" >"$WORK/$target.log" 2>&1
	rc=$?
	runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$WORK/$target.log")
	if [ "$rc" -ne 0 ]; then
		echo "fuzz_$target: FAILED after ${runs:-?} runs (exit $rc); input kept in $ARTIFACTS"
		grep -E -A30 'ERROR: |invariant violated|runtime error' "$WORK/$target.log" | head -60
		status=1
	else
		echo "fuzz_$target: ${runs:-?} runs in ${SECONDS_EACH} s, no crash"
	fi
done
exit $status
