#!/bin/bash
# test-matrix.sh MAJOR...
#
# Run the whole suite (./test.sh: pg_regress and TAP) once per PostgreSQL
# major. The host's own major (15, Debian 12's, which install-deps.sh
# installs) runs on the host; every other one runs in the cached Debian tree
# of scripts/pg-tree.sh (trixie for 17, sid for 18), where a copy of the
# repository is built, installed into the tree's server and tested as the
# tree's postgres user, the SQS emulator running inside the tree too.
#
# The last line is "N passed, N failed", summed over every major; a major
# whose run failed or did not report fails the whole run. test.sh calls
# this when SQS_INGEST_PG_MAJORS is set. Run as root.
#
#   SQS_INGEST_HOST_PG_MAJOR  the major tested on the host (default 15;
#                             "none": every major in a tree, e.g. on a
#                             machine that is not Debian 12)
#   SQS_INGEST_MATRIX_PARALLEL=1  two suites at a time: the host's major
#                             (with its fuzzing and memory checkers) beside
#                             the Debian trees' majors, those one after the
#                             other; each suite mostly waits on timers and
#                             the network. Each major's output is printed
#                             when its lane ends. Each suite then runs 3
#                             TAP files at a time rather than test.sh's 6,
#                             so that the machine runs as many at once as
#                             with one suite.
#   SQS_INGEST_TAP_JOBS       TAP files at a time in each suite (test.sh)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HOST_MAJOR=${SQS_INGEST_HOST_PG_MAJOR:-15}

[ $# -gt 0 ] || { echo "usage: $0 MAJOR..." >&2; exit 2; }
for major in "$@"; do
	case "$major" in
		15 | 17 | 18) ;;
		*) echo "test-matrix: PostgreSQL $major is not supported (15, 17, 18)" >&2; exit 2 ;;
	esac
done

passed=0
failed=0
summary=()
logdir=$(mktemp -d /tmp/sqs_ingest_matrix.XXXXXX)

# Start building the trees while the host's major is tested.
for major in "$@"; do
	if [ "$major" != "$HOST_MAJOR" ]; then
		"$ROOT/scripts/pg-tree.sh" "$major" >/dev/null 2>>"$logdir/tree-$major.log" &
	fi
done

# Add the counts of a run's closing "N passed, N failed" line (its output
# in $1); a run without one, or that failed without counting a failure,
# counts as one failure.
count_run() {
	local out=$1 rc=$2 major=$3 line p f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		p=0
		f=1
		echo "test-matrix: PostgreSQL $major: the suite did not report its counts" >&2
	else
		p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1
		fi
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	summary+=("PostgreSQL $major: $p passed, $f failed")
}

# the repository as it is (the sample is in test/data/) and its npm packages
copy_repository() {
	local dest=$1
	mkdir -p "$dest/repo"
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf - | tar -C "$dest/repo" -xf -
	if [ -d test/node_modules ]; then
		tar -cf - test/node_modules | tar -C "$dest/repo" -xf -
	fi
}

# Run one major's suite, printing its output; returns test.sh's status.
run_major() {
	local major=$1 tree work rc
	if [ "$major" = "$HOST_MAJOR" ]; then
		echo "=== PostgreSQL $major (this machine)"
		SQS_INGEST_PG_MAJORS= PG_TEST_PORT_DIR="$portlock" "$ROOT/test.sh" 2>&1
		return
	fi

	echo "=== PostgreSQL $major (Debian tree)"
	# waits for the build started above, or builds (resumes) it
	if ! tree=$("$ROOT/scripts/pg-tree.sh" "$major" 2>>"$logdir/tree-$major.log"); then
		cat "$logdir/tree-$major.log"
		echo "test-matrix: PostgreSQL $major: could not build its tree"
		return 1
	fi
	work=$(mktemp -d "$tree/tmp/sqs_ingest_test.XXXXXX")
	chmod 755 "$work"
	copy_repository "$work"
	SQS_INGEST_TREE_BIND="$portlock:/tmp/sqs_ingest_portlock" \
		"$ROOT/scripts/pg-tree.sh" "$major" env \
		PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" \
		SQS_INGEST_PG_MAJOR="$major" \
		SQS_INGEST_TAP_JOBS="${SQS_INGEST_TAP_JOBS:-}" \
		PG_TEST_PORT_DIR=/tmp/sqs_ingest_portlock \
		/tmp/"${work##*/}"/repo/test.sh 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "test-matrix: PostgreSQL $major: logs kept in $work/repo/tmp_check"
	fi
	return $rc
}

# Every run reserves its ports in one place, so that runs side by side
# (and the servers and emulators of each) never pick the same port.
# The tests run as postgres: it must reach the directory (mktemp made it
# private to root) to take its locks there.
portlock=$logdir/portlock
mkdir -p "$portlock"
chmod 711 "$logdir"
chmod 1777 "$portlock"

# the test harness's npm packages, installed once before any copy is made
./scripts/install-deps.sh --npm >/dev/null

if [ "${SQS_INGEST_MATRIX_PARALLEL:-0}" = 1 ]; then
	export SQS_INGEST_TAP_JOBS=${SQS_INGEST_TAP_JOBS:-3}
	host_lane=()
	tree_lane=()
	for major in "$@"; do
		if [ "$major" = "$HOST_MAJOR" ]; then
			host_lane+=("$major")
		else
			tree_lane+=("$major")
		fi
	done
	# a lane runs its majors in turn, each one's status in run-MAJOR.rc;
	# the trees' lane prints as it goes, the host's when it ends
	run_lane() {
		local live=$1 major
		shift
		for major in "$@"; do
			if [ "$live" = live ]; then
				run_major "$major" 2>&1 | tee "$logdir/run-$major.out"
				echo "${PIPESTATUS[0]}" >"$logdir/run-$major.rc"
			else
				run_major "$major" >"$logdir/run-$major.out" 2>&1
				echo $? >"$logdir/run-$major.rc"
			fi
		done
	}
	run_lane quiet "${host_lane[@]}" &
	host_job=$!
	run_lane live "${tree_lane[@]}"
	wait "$host_job"
	for major in "${host_lane[@]}"; do
		cat "$logdir/run-$major.out"
	done
	for major in "$@"; do
		count_run "$logdir/run-$major.out" "$(cat "$logdir/run-$major.rc" 2>/dev/null || echo 1)" "$major"
	done
else
	for major in "$@"; do
		run_major "$major" | tee "$logdir/run-$major.out"
		count_run "$logdir/run-$major.out" "${PIPESTATUS[0]}" "$major"
	done
fi

wait
rm -rf "$logdir"
echo
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
