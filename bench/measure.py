#!/usr/bin/python3
"""Timing, CPU and memory of the sqs_ingest worker and of sqs_ingest_drain().

  measure.py worker --dsn DSN --expect N [--workers K] [--pgdata D] [--ready-file F]
      Start it, wait for F to exist, then restart the cluster with
      sqs_ingest.workers = K and a full queue. Finds the K new workers and
      polls their counters (sqs_ingest_stats) until N rows are inserted and
      N messages deleted. The clock starts with the first worker process
      (/proc starttime); their CPU is the new processes' whole utime+stime.
      With --pgdata, cluster_cpu_s is the CPU of the whole (restarted)
      cluster so far: the postmaster, its exited children and the live ones.
  measure.py drain --dsn DSN --expect N [--chunk C]
      Times SELECT * FROM sqs_ingest_drain() in one fresh backend: one call
      for the whole backlog, or with C > 0 calls of max_messages C until N
      rows are stored. Each call returns once its batches are committed and
      their deletes answered. The drain runs in a background worker started
      for the call: cpu_s is the calling backend's only.
  measure.py rss --dsn DSN --expect N --interval S [--ready-file F]
      Like worker, but samples the worker's VmRSS and RssAnon (its private
      memory: VmRSS also counts the shared buffers it touched) every S
      seconds until it has inserted N rows.

Prints one JSON object on stdout.
"""
import argparse
import json
import os
import sys
import time

import psycopg2

HZ = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(cpu seconds, start time in seconds since boot) of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime = 14, stime = 15, starttime = 22
    return (int(fields[11]) + int(fields[12])) / HZ, int(fields[19]) / HZ


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def boottime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def worker_stats(cur):
    """[(pid, inserted, deleted)] of the background workers."""
    cur.execute("SELECT pid, inserted, deleted FROM sqs_ingest_stats() "
                "WHERE kind = 'worker' AND pid IS NOT NULL AND pid <> 0")
    return cur.fetchall()


def cluster_cpu(pgdata):
    """CPU seconds of a cluster so far: postmaster (with its exited
    children's cutime+cstime) and its live children."""
    with open(os.path.join(pgdata, "postmaster.pid")) as f:
        pm = int(f.readline())
    with open("/proc/%d/stat" % pm) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:15]) / HZ
    try:
        with open("/proc/%d/task/%d/children" % (pm, pm)) as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    for c in children:
        try:
            total += proc_stat(c)[0]
        except OSError:
            pass
    return total


def new_workers(dsn, not_before, count, timeout):
    """(connection, [pids], start) of count worker processes started after
    not_before (seconds since boot); keeps trying through the restart that
    starts them. start is the earliest one's."""
    deadline = time.monotonic() + timeout
    conn = None
    found = {}
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = connect(dsn)
            for pid, _, _ in worker_stats(conn.cursor()):
                try:
                    _, start = proc_stat(pid)
                except OSError:
                    continue
                if start >= not_before:
                    found[pid] = start
            if len(found) >= count:
                return conn, sorted(found), min(found.values())
        except psycopg2.Error:
            conn = None
        time.sleep(0.01)
    raise SystemExit("measure: %d of %d new sqs_ingest workers appeared in %d s"
                     % (len(found), count, timeout))


def start_polling(a):
    # jiffies: starttime has a resolution of 1/HZ
    not_before = boottime() - 2.0 / HZ
    if a.ready_file:
        open(a.ready_file, "w").close()
    return new_workers(a.dsn, not_before, a.workers, 120)


def cmd_worker(a):
    conn, pids, start = start_polling(a)
    pid = pids[0]
    cur = conn.cursor()
    deadline = time.monotonic() + a.max_seconds
    t_rows = t_deleted = None
    while t_deleted is None:
        rows = worker_stats(cur)
        inserted = sum(r[1] or 0 for r in rows)
        deleted = sum(r[2] or 0 for r in rows)
        now = boottime()
        if t_rows is None and inserted >= a.expect:
            t_rows = now
        if t_rows is not None and deleted >= a.expect:
            t_deleted = now
            break
        if time.monotonic() > deadline:
            raise SystemExit("measure: %d inserted, %d deleted of %d before the deadline"
                             % (inserted, deleted, a.expect))
        time.sleep(a.poll)
    # new processes: all of their CPU time is this work (and their start-up)
    cpu = sum(proc_stat(p)[0] for p in pids)
    ccpu = cluster_cpu(a.pgdata) if a.pgdata else None
    hwm = proc_status_kb(pid, "VmHWM")
    rss = proc_status_kb(pid, "VmRSS")
    anon = proc_status_kb(pid, "RssAnon")
    cur.execute("SELECT count(*) FROM public.user_logins")
    n = cur.fetchone()[0]
    if n != a.expect:
        raise SystemExit("measure: user_logins holds %d rows, expected %d" % (n, a.expect))
    secs, secs_rows = t_deleted - start, t_rows - start
    print(json.dumps({
        "pid": pid, "pids": pids, "workers": len(pids), "n": n,
        "cluster_cpu_s": None if ccpu is None else round(ccpu, 3),
        "seconds": round(secs, 3), "seconds_rows": round(secs_rows, 3),
        "msgs_per_s": round(n / secs, 1), "msgs_per_s_rows": round(n / secs_rows, 1),
        "cpu_s": round(cpu, 3), "cpu_per_1k": round(cpu * 1000 / n, 4),
        "hwm_kb": hwm, "rss_kb": rss, "anon_kb": anon}))


def cmd_drain(a):
    conn = connect(a.dsn)
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cpu0, _ = proc_stat(pid)
    totals = {}
    calls = 0
    t0 = time.monotonic()
    # chunk 0: one call for the whole backlog
    while totals.get("inserted", 0) < a.expect:
        if a.chunk > 0:
            chunk = min(a.chunk, a.expect - totals.get("inserted", 0))
            cur.execute("SELECT * FROM sqs_ingest_drain(%s)", (chunk,))
        else:
            cur.execute("SELECT * FROM sqs_ingest_drain()")
        res = dict(zip([d[0] for d in cur.description], cur.fetchone()))
        calls += 1
        for k, v in res.items():
            totals[k] = totals.get(k, 0) + (v or 0)
        if not res.get("received"):
            break
    secs = time.monotonic() - t0
    cpu1, _ = proc_stat(pid)
    hwm = proc_status_kb(pid, "VmHWM")
    anon = proc_status_kb(pid, "RssAnon")
    cur.execute("SELECT count(*) FROM public.user_logins")
    n = cur.fetchone()[0]
    print(json.dumps({
        "pid": pid, "n": n, "drain": totals, "calls": calls, "chunk": a.chunk, "anon_kb": anon,
        "seconds": round(secs, 3), "msgs_per_s": round(n / secs, 1), "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_per_1k": round((cpu1 - cpu0) * 1000 / max(n, 1), 4), "hwm_kb": hwm}))


def cmd_rss(a):
    conn, pids, start = start_polling(a)
    pid = pids[0]
    cur = conn.cursor()
    samples = []
    deadline = time.monotonic() + a.max_seconds
    while True:
        n = sum(r[1] or 0 for r in worker_stats(cur))
        rss = proc_status_kb(pid, "VmRSS")
        anon = proc_status_kb(pid, "RssAnon")
        samples.append((round(boottime() - start, 1), n, rss, anon))
        print("t=%6.1fs rows=%d rss_kb=%d anon_kb=%d" % samples[-1], file=sys.stderr, flush=True)
        if n >= a.expect:
            break
        if time.monotonic() > deadline:
            raise SystemExit("measure: only %d of %d rows before the deadline" % (n, a.expect))
        time.sleep(a.interval)
    cpu, _ = proc_stat(pid)
    print(json.dumps({
        "pid": pid, "n": n, "seconds": samples[-1][0], "samples": samples,
        "first_rss_kb": samples[0][2], "last_rss_kb": samples[-1][2],
        "peak_rss_kb": max(s[2] for s in samples), "hwm_kb": proc_status_kb(pid, "VmHWM"),
        "first_anon_kb": samples[0][3], "last_anon_kb": samples[-1][3],
        "peak_anon_kb": max(s[3] for s in samples),
        "cpu_s": round(cpu, 3)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["worker", "drain", "rss"])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--ready-file", help="created once polling can start (worker, rss)")
    ap.add_argument("--workers", type=int, default=1, help="worker: how many workers to wait for")
    ap.add_argument("--pgdata", help="worker: the cluster's data directory, for its CPU")
    ap.add_argument("--poll", type=float, default=0.02)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--chunk", type=int, default=0,
                    help="drain: max_messages of each call (0: one call, no limit)")
    ap.add_argument("--max-seconds", type=float, default=1800)
    a = ap.parse_args()
    {"worker": cmd_worker, "drain": cmd_drain, "rss": cmd_rss}[a.what](a)


if __name__ == "__main__":
    main()
