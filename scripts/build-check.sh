#!/bin/bash
# build-check.sh [MAJOR...]
#
# Compile the working tree as it is (committed or not) against PostgreSQL
# 17 and 18 (or the majors given: 15, 17, 18), with the Makefile's -Wall
# -Wextra -Werror, in the cached Debian trees of scripts/pg-tree.sh. No
# tests run; nothing is installed anywhere. The first use of a major builds
# its tree (a few minutes); later ones take seconds. Run as root from
# anywhere inside the repository. Exits non-zero if any major fails.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(17 18)

if [ "$(id -u)" -ne 0 ]; then
	echo "build-check: run as root (the trees are entered with chroot)" >&2
	exit 1
fi

# the files of the working tree: tracked ones and new ones git does not ignore
copy_sources() {
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -C "$1" -xf -
}

status=0
for major in "${majors[@]}"; do
	tree=$("$ROOT/scripts/pg-tree.sh" "$major") || {
		echo "build-check: PostgreSQL $major: no tree" >&2
		status=1
		continue
	}
	work=$(mktemp -d "$tree/tmp/build-check.XXXXXX")
	copy_sources "$work"
	if "$ROOT/scripts/pg-tree.sh" "$major" make -C "/tmp/${work##*/}" -s -k \
		PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >"$work.log" 2>&1; then
		echo "build-check: PostgreSQL $major: ok"
	else
		echo "build-check: PostgreSQL $major: FAILED"
		cat "$work.log"
		status=1
	fi
	rm -rf "$work" "$work.log"
done
exit $status
