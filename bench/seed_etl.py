#!/usr/bin/python3
"""The design sqs_ingest replaces: a Python ETL with boto3 and psycopg2.

Default (the usual take-home shape), one message at a time:
    receive up to 10; for each message: mask ip and device_id with
    HMAC-SHA256, INSERT, COMMIT, DeleteMessage.
--batched: per receive, one multi-row INSERT, one COMMIT, one
    DeleteMessageBatch.

Maps fields as sqs_ingest does (app_version "M.m[.p]" -> M*1000000 + m*1000 + p,
create_date = UTC date of SentTimestamp) so both do the same work per row.
A message that does not map is counted as rejected and deleted.

Stops after --expect messages were handled, or at the first empty receive
without --expect. Prints one line of key=value pairs; seconds runs from the
first receive to the last delete.

Speaks AWS JSON 1.0 like current boto3 (see json_protocol_session).
"""
import argparse
import atexit
import datetime
import hashlib
import hmac
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.loaders
import botocore.session
import psycopg2
import psycopg2.extras

COLUMNS = ("user_id", "device_type", "masked_ip", "masked_device_id",
           "locale", "app_version", "create_date")


def backend_cpu(pid):
    """CPU seconds of our Postgres backend (same machine only), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def backend_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def json_protocol_session():
    """A botocore session whose SQS model speaks AWS JSON 1.0.

    botocore 1.29 (Debian 12) has SQS on the query protocol only; botocore
    1.34 and later speak JSON 1.0, as every other contender here does. The
    member names of both models are the same: dropping the query protocol's
    XML naming (locationName, flattened, resultWrapper) gives the JSON model.
    """
    model = botocore.loaders.Loader().load_service_model("sqs", "service-2")
    meta = model["metadata"]
    meta.update(protocol="json", jsonVersion="1.0", targetPrefix="AmazonSQS")
    meta.pop("xmlNamespace", None)
    for op in model["operations"].values():
        op.get("output", {}).pop("resultWrapper", None)

    def strip(ref):
        ref.pop("locationName", None)
        ref.pop("flattened", None)
    for shape in model["shapes"].values():
        shape.pop("flattened", None)
        for m in shape.get("members", {}).values():
            strip(m)
        for k in ("member", "key", "value"):
            if k in shape:
                strip(shape[k])
    root = tempfile.mkdtemp(prefix="seed_etl_models.")
    atexit.register(shutil.rmtree, root, True)
    d = os.path.join(root, "sqs", meta["apiVersion"])
    os.makedirs(d)
    with open(os.path.join(d, "service-2.json"), "w") as f:
        json.dump(model, f)
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, root)
    return boto3.Session(botocore_session=session)


def mask(key, value):
    if value is None:
        return None
    return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()


def version_int(v):
    parts = str(v).split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError("bad app_version %r" % (v,))
    nums = [int(p) for p in parts] + [0]
    return nums[0] * 1000000 + nums[1] * 1000 + nums[2]


def to_row(key, msg):
    """Map one SQS message to a user_logins row; raises ValueError if it does not map."""
    try:
        body = json.loads(msg["Body"])
    except json.JSONDecodeError as e:
        raise ValueError("body is not JSON: %s" % e)
    if not isinstance(body, dict) or "user_id" not in body:
        raise ValueError("not a login event")
    if body.get("create_date"):
        created = body["create_date"]
    else:
        sent_ms = int(msg.get("Attributes", {}).get("SentTimestamp", time.time() * 1000))
        created = datetime.datetime.fromtimestamp(sent_ms / 1000, datetime.timezone.utc).date()
    return (body.get("user_id"), body.get("device_type"),
            mask(key, body.get("ip")), mask(key, body.get("device_id")),
            body.get("locale"), version_int(body.get("app_version")), created)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue-url", required=True)
    ap.add_argument("--endpoint", help="API endpoint (default: scheme://host:port of the queue URL)")
    ap.add_argument("--dsn", default=os.environ.get("BENCH_DSN", "dbname=postgres"))
    ap.add_argument("--table", default="public.user_logins")
    ap.add_argument("--mask-key", default=os.environ.get("BENCH_MASK_KEY", "bench-mask-key"))
    ap.add_argument("--expect", type=int, default=None, help="stop after this many messages")
    ap.add_argument("--wait", type=int, default=1, help="WaitTimeSeconds of each receive")
    ap.add_argument("--max-seconds", type=float, default=1800)
    ap.add_argument("--batched", action="store_true")
    ap.add_argument("--query-protocol", action="store_true",
                    help="use this botocore's own SQS protocol (query, for botocore < 1.34)")
    args = ap.parse_args()

    endpoint = args.endpoint
    if not endpoint:
        u = urlsplit(args.queue_url)
        endpoint = "%s://%s" % (u.scheme, u.netloc)
    session = boto3.Session() if args.query_protocol else json_protocol_session()
    sqs = session.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("SQS_TEST_ACCESS_KEY_ID") or "AKIDSQSINGESTTEST",
        aws_secret_access_key=os.environ.get("SQS_TEST_SECRET_ACCESS_KEY") or "sqs-ingest-test-secret",
        config=botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"},
                                      read_timeout=args.wait + 30),
    )
    key = args.mask_key.encode()
    conn = psycopg2.connect(args.dsn)
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    backend = cur.fetchone()[0]
    conn.commit()
    backend_cpu0 = backend_cpu(backend)
    insert_one = "INSERT INTO %s (%s) VALUES (%%s,%%s,%%s,%%s,%%s,%%s,%%s)" % (args.table, ",".join(COLUMNS))
    insert_many = "INSERT INTO %s (%s) VALUES %%s" % (args.table, ",".join(COLUMNS))

    received = inserted = rejected = deleted = receives = 0
    t_start = time.monotonic()
    t_done = t_start
    while args.expect is None or deleted < args.expect:
        if time.monotonic() - t_start > args.max_seconds:
            print("seed_etl: gave up after %.0f s (deleted %d)" % (args.max_seconds, deleted), file=sys.stderr)
            break
        resp = sqs.receive_message(QueueUrl=args.queue_url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=args.wait, AttributeNames=["SentTimestamp"])
        receives += 1
        msgs = resp.get("Messages", [])
        if not msgs:
            if args.expect is None:
                break
            continue
        received += len(msgs)
        if not args.batched:
            for m in msgs:
                try:
                    row = to_row(key, m)
                except ValueError as e:
                    rejected += 1
                    print("seed_etl: rejected %s: %s" % (m["MessageId"], e), file=sys.stderr)
                else:
                    cur.execute(insert_one, row)
                    conn.commit()
                    inserted += 1
                sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=m["ReceiptHandle"])
                deleted += 1
        else:
            rows = []
            for m in msgs:
                try:
                    rows.append(to_row(key, m))
                except ValueError as e:
                    rejected += 1
                    print("seed_etl: rejected %s: %s" % (m["MessageId"], e), file=sys.stderr)
            if rows:
                psycopg2.extras.execute_values(cur, insert_many, rows, page_size=len(rows))
            conn.commit()
            inserted += len(rows)
            r = sqs.delete_message_batch(QueueUrl=args.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
            for f in r.get("Failed", []):
                print("seed_etl: delete failed: %s" % (f,), file=sys.stderr)
            deleted += len(r.get("Successful", []))
        t_done = time.monotonic()

    backend_cpu1 = backend_cpu(backend)
    backend_hwm = backend_hwm_kb(backend)
    conn.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    secs = t_done - t_start
    print("seed mode=%s received=%d inserted=%d rejected=%d deleted=%d receives=%d "
          "seconds=%.3f msgs_per_s=%.1f cpu_s=%.3f maxrss_kb=%d backend_cpu_s=%s backend_hwm_kb=%s"
          % ("batched" if args.batched else "single", received, inserted, rejected, deleted,
             receives, secs, deleted / secs if secs > 0 else 0.0,
             ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
             "%.3f" % (backend_cpu1 - backend_cpu0) if backend_cpu0 is not None else "NA",
             backend_hwm if backend_hwm is not None else "NA"))
    return 0 if args.expect is None or deleted >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
