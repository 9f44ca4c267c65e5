#!/usr/bin/env bash
# Does the native SQS stand-in (bench/sqs_standin.c) answer what the
# extension expects?  The extension's own drain against it, and its worker,
# over plain HTTP and through the TLS front:
#   - every message is stored exactly once (rows = distinct user ids = ledger
#     entries = N, no duplicate, no dead letter);
#   - the queue is empty afterwards (0 visible, 0 in flight);
#   - a message whose visibility timeout ran out comes back with
#     ApproximateReceiveCount 2, a long poll on an empty queue waits, a
#     visibility change to 0 shows a message again, a stale receipt handle
#     does not delete, and a sent body's MD5s are the body's.
#
#   bench/standin_check.sh            N=20000 by default
#
# Runs as root (the cluster runs as the OS user postgres), on loopback, in
# about a minute; everything started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (the cluster is started as the OS user postgres)"
N=${N:-20000}
[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || die "N must be a positive integer"

ensure_packages
bench_init
log "building and installing the extension"
make -C "$ROOT" >"$BENCH_TMP/make.log" 2>&1 && make -C "$ROOT" install >>"$BENCH_TMP/make.log" 2>&1 ||
	{ tail -n 20 "$BENCH_TMP/make.log" >&2; die "the extension does not build"; }
start_standin
start_tls_front
start_cluster 1
FAILED=0
check() {
	if [ "$2" = "$3" ]; then
		log "ok: $1 ($2)"
	else
		log "FAILED: $1: got '$2', expected '$3'"
		FAILED=1
	fi
}

# the stand-in's own behaviour, through SQS calls a client makes
url=$(standin_queue check-visibility 3)
recv() {
	standin_call AmazonSQS.ReceiveMessage "{\"QueueUrl\": \"$url\", \"MaxNumberOfMessages\": 10, \"VisibilityTimeout\": $1, \"WaitTimeSeconds\": $2, \"AttributeNames\": [\"All\"]}"
}
check "a receive takes the 3 messages" "$(recv 1 0 | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["Messages"]))')" 3
check "depth while they are in flight" "$(standin_depth "$url")" "0 3 0"
sleep 1.2
check "they come back once their visibility timeout ran out, received twice" \
	"$(recv 30 1 | $PY -c 'import json,sys; print(sorted(m["Attributes"]["ApproximateReceiveCount"] for m in json.load(sys.stdin)["Messages"]))')" "['2', '2', '2']"
t0=$(date +%s.%N)
check "a long poll on an empty queue answers no message" "$(recv 30 2)" "{}"
check "and waits its WaitTimeSeconds" "$($PY -c "print(1.8 <= $(date +%s.%N) - $t0 < 3.5)")" True
# a visibility change back to 0 makes a message visible again; the handle
# of an earlier receive no longer deletes it
standin_drop "$url"
url=$(standin_queue check-change 3)
recv 30 0 >"$BENCH_TMP/first.json"
h1=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["Messages"][0]["ReceiptHandle"])' "$BENCH_TMP/first.json")
check "ChangeMessageVisibilityBatch to 0" \
	"$(standin_call AmazonSQS.ChangeMessageVisibilityBatch "{\"QueueUrl\": \"$url\", \"Entries\": [{\"Id\": \"a\", \"ReceiptHandle\": \"$h1\", \"VisibilityTimeout\": 0}]}")" \
	'{"Successful":[{"Id":"a"}],"Failed":[]}'
check "depth after it (visible, in flight, delayed)" "$(standin_depth "$url")" "1 2 0"
recv 30 0 >/dev/null
check "a stale receipt handle does not delete" \
	"$(standin_call AmazonSQS.DeleteMessageBatch "{\"QueueUrl\": \"$url\", \"Entries\": [{\"Id\": \"a\", \"ReceiptHandle\": \"$h1\"}]}" |
		$PY -c 'import json,sys; d=json.load(sys.stdin); print(len(d["Successful"]), d["Failed"][0]["Code"])')" \
	"0 ReceiptHandleIsInvalid"
standin_drop "$url"

# SendMessageBatch: MD5OfMessageBody and MD5OfBody are the MD5 of the body as
# sent, escapes and non-ASCII included
url=$(standin_queue check-send 0)
body='{"a":"h\u00e9llo \u2603 \ud83d\ude00 \"q\" \\ x"}'
sent=$(standin_call AmazonSQS.SendMessageBatch "{\"QueueUrl\": \"$url\", \"Entries\": [{\"Id\": \"1\", \"MessageBody\": $($PY -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$body")}]}")
got=$(standin_call AmazonSQS.ReceiveMessage "{\"QueueUrl\": \"$url\", \"MaxNumberOfMessages\": 1}")
check "MD5s of a sent body" "$($PY -c '
import hashlib, json, sys
body, sent, got = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])["Messages"][0]
md5 = hashlib.md5(body.encode()).hexdigest()
print(got["Body"] == body, sent["Successful"][0]["MD5OfMessageBody"] == md5, got["MD5OfBody"] == md5)' "$body" "$sent" "$got")" "True True True"
standin_drop "$url"

# the extension against it: the drain, then the worker
run_one() {
	local how=$1 endpoint=$2 cafile=$3 url rows
	url=$(standin_queue "check-$how" "$N")
	reset_tables 1
	pg_set "sqs_ingest.queue_url=$url" "sqs_ingest.endpoint=$endpoint" "sqs_ingest.ca_file=$cafile"
	if [ "${how#worker}" != "$how" ]; then
		pg_set --restart "sqs_ingest.workers=1"
		for _ in $(seq 1 600); do
			[ "$(PSQL -c 'SELECT count(*) FROM sqs_ingest.processed')" = "$N" ] &&
				[ "$(standin_depth "$url")" = "0 0 0" ] && break
			sleep 0.1
		done
		pg_set --restart "sqs_ingest.workers=0"
	else
		check "$how: sqs_ingest_drain() received, inserted, duplicates, dead letters" \
			"$(PSQL -c 'SELECT received, inserted, duplicates, dead_lettered FROM sqs_ingest_drain()')" "$N|$N|0|0"
	fi
	rows=$(PSQL -c 'SELECT count(*), count(DISTINCT user_id) FROM public.user_logins')
	check "$how: rows, distinct user ids" "$rows" "$N|$N"
	check "$how: ledger entries" "$(PSQL -c 'SELECT count(*) FROM sqs_ingest.processed')" "$N"
	check "$how: dead letters" "$(PSQL -c 'SELECT count(*) FROM sqs_ingest.dead_letters')" 0
	check "$how: queue depth after (visible, in flight, delayed)" "$(standin_depth "$url")" "0 0 0"
	standin_drop "$url"
}
run_one drain "http://127.0.0.1:$STANDIN_PORT" ""
run_one drain-tls "https://127.0.0.1:$TLS_PORT" "$BENCH_TMP/tls/ca.pem"
run_one worker "http://127.0.0.1:$STANDIN_PORT" ""

grep -q 'body does not match its MD5' "$BENCH_TMP/postgres.log" && { log "FAILED: an MD5 mismatch was logged"; FAILED=1; }
[ "$FAILED" = 0 ] || die "the stand-in does not answer as the extension expects"
log "the stand-in answers as the extension expects"
BENCH_OK=1
