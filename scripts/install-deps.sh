#!/bin/bash
# Install what building and testing sqs_ingest needs on Debian 12, then the
# pinned npm packages of the test harness. Safe to run again: it installs
# only what is missing and runs apt-get update at most once.
# SQS_INGEST_PG_MAJOR picks another PostgreSQL major than Debian 12's 15
# (the Debian trees of scripts/pg-tree.sh use it with 17 and 18).
# --npm installs only the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
npm_only=false
[ "${1:-}" = --npm ] && npm_only=true

PG_MAJOR=${SQS_INGEST_PG_MAJOR:-15}
PACKAGES=(
	"postgresql-$PG_MAJOR"             # server, and contrib (pgcrypto)
	"postgresql-client-$PG_MAJOR"
	"postgresql-server-dev-$PG_MAJOR"  # PGXS, headers, the Perl test modules
	libcurl4-openssl-dev
	libssl-dev
	libxml2-dev               # the Query protocol's and STS's XML answers
	libipc-run-perl           # TAP tests
	make
	gcc
	pkg-config
	curl                      # the harness checks libcurl's SigV4 against the emulator
	gnupg                     # t/206_recovery.pl decrypts a stored value with gpg
)
# scripts/valgrind-worker.sh (test.sh with SQS_INGEST_VALGRIND=1) runs on the
# host's PostgreSQL only, never in the Debian trees of other majors
if [ "${SQS_INGEST_VALGRIND:-0}" = 1 ] && [ "$PG_MAJOR" = "${SQS_INGEST_HOST_PG_MAJOR:-15}" ]; then
	PACKAGES+=(valgrind)
fi
# fuzz/ (test.sh with SQS_INGEST_FUZZ_SECONDS): libFuzzer with ASan and UBSan
if [ -n "${SQS_INGEST_FUZZ_SECONDS:-}" ]; then
	PACKAGES+=(clang-14 libclang-rt-14-dev libfuzzer-14-dev)
fi

$npm_only && PACKAGES=()

# npm ci reinstalls from scratch each time: skip it (and npm) when
# node_modules already matches the lockfile.
stamp=test/node_modules/.sqs-ingest-lock.sha256
want=$(sha256sum test/package-lock.json | cut -d' ' -f1)
modules_current=false
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
	[ -f test/node_modules/local-aws-sqs/package.json ]; then
	modules_current=true
fi

# Node 18 or later runs the SQS emulator; Debian 12's own nodejs is 18.
node_major=0
if command -v node >/dev/null 2>&1; then
	node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
fi
if [ "$node_major" -lt 18 ]; then
	PACKAGES+=(nodejs)
fi
if ! $modules_current && ! command -v npm >/dev/null 2>&1; then
	PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! $modules_current; then
	npm ci --prefix test --no-audit --no-fund
	echo "$want" > "$stamp"
fi
