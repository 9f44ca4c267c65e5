#!/usr/bin/python3
"""Turn the records of one bench/run.sh run into bench/results/<stamp>.md,
the in-flight plot, and the latest-run section of bench/RESULTS.md.

  report.py --records FILE --meta FILE --results-dir DIR --summary FILE

With REPEAT > 1 every figure is the median of the repeats, followed by their
range; ratios are taken within each repeat (same stand-in, same moment) and
then summarised the same way.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODES = [("direct", "Straight to the stand-in"), ("delay", "Every response held %(delay)d ms"),
         ("tls", "Through the TLS front (stunnel4)")]
LABELS = {"ceiling": "bare client (C, libcurl + SigV4, no database)",
          "ceiling-unsigned": "bare client, unsigned: the network floor, no SigV4",
          "worker": "sqs_ingest, %s worker%s", "drain": "sqs_ingest_drain()",
          "drain-bounded": "sqs_ingest_drain(N), max_messages = the backlog: no final empty poll",
          "worker-encrypted": "sqs_ingest, 1 worker, ip and device_id encrypted too (RSA 2048)",
          "node": "Node.js peer: sqs-consumer + pg, one INSERT per batch, no ledger",
          "seed": "seed design: Python, one message at a time",
          "seed-batched": "seed design, batched (--batched)"}
ORDER = [("ceiling", None), ("ceiling-unsigned", None), ("worker", 1), ("worker-encrypted", 1), ("worker", 2),
         ("worker", 4), ("drain", None), ("drain-bounded", None), ("node", None), ("seed", None),
         ("seed-batched", None)]


def parse_out(o):
    if isinstance(o, dict):
        return o
    d = {}
    for tok in str(o).split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                d[k] = float(v) if "." in v else int(v)
            except ValueError:
                d[k] = v
    return d


def figures(rec):
    """Normalised figures of one record: rate, seconds and CPU µs per message
    of the contender's own process(es), of the rest of the cluster, and of
    the stand-in."""
    o = parse_out(rec["out"])
    c = rec["contender"]
    f = {k: rec.get(k) for k in ("mode", "contender", "workers", "inflight", "role", "rep", "delay_ms")}
    f["rate"] = o.get("msgs_per_s")
    f["seconds"] = o.get("seconds")
    cluster = rec.get("cluster_cpu_s")
    own = rest = None
    if c in ("ceiling", "ceiling-unsigned"):
        n = o.get("deleted", 0)
        own = o.get("cpu_s")
    elif c in ("worker", "worker-encrypted"):
        n = o.get("n", 0)
        own = o.get("cpu_s")
        rest = cluster - own if cluster is not None and own is not None else None
        f["anon_kb"] = o.get("anon_kb")
    elif c in ("drain", "drain-bounded"):
        n = o.get("n", 0)
        # the drain's background worker is part of the cluster: all of it
        rest = cluster
        d = o.get("drain") or {}
        if d.get("duplicates"):
            f["note"] = "%d redelivered duplicates" % d["duplicates"]
    else:
        n = o.get("deleted", 0)
        own = o.get("cpu_s")
        rest = cluster
    f["n"] = n
    per = (lambda v: v * 1e6 / n if v is not None and n else None)
    f["own_us"], f["rest_us"] = per(own), per(rest)
    f["standin_us"] = per(rec.get("standin_cpu_s"))
    f["standin_busy"] = (100.0 * rec["standin_cpu_s"] / f["seconds"]
                         if f["seconds"] and rec.get("standin_cpu_s") is not None else None)
    return f


def key(f):
    return (f["mode"], f["contender"], f["workers"], f["inflight"])


def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def fmt(s, spec="%.0f"):
    if s is None:
        return "–"
    med, lo, hi, n = s
    if n == 1 or lo == hi:
        return spec % med
    return "%s (%s–%s)" % (spec % med, spec % lo, spec % hi)


class Run:
    def __init__(self, records):
        self.figs = [figures(r) for r in records if r.get("role") != "warmup"]
        self.by = {}
        for f in self.figs:
            self.by.setdefault(key(f), {})[f["rep"]] = f

    def get(self, mode, contender, workers, inflight):
        return self.by.get((mode, contender, workers, inflight), {})

    def stat(self, mode, contender, workers, inflight, field):
        return summary([f.get(field) for f in self.get(mode, contender, workers, inflight).values()])

    def ratio(self, a, b, field="rate"):
        """per-repeat a[field] / b[field], summarised"""
        ra, rb = self.get(*a), self.get(*b)
        vals = []
        for rep, fa in ra.items():
            fb = rb.get(rep)
            if fb and fa.get(field) is not None and fb.get(field):
                vals.append(fa[field] / fb[field])
        return summary(vals)


def label(contender, workers):
    if contender == "worker":
        return LABELS["worker"] % (workers, "" if workers == 1 else "s")
    return LABELS[contender]


def mode_table(run, mode, meta):
    k = meta["inflight"]
    bare = (mode, "ceiling", None, k)
    rows = []
    for c, w in ORDER:
        kk = None if c.startswith("seed") else k
        g = run.get(mode, c, w, kk)
        if not g:
            continue
        me = (mode, c, w, kk)
        f0 = next(iter(g.values()))
        rows.append("| %s | %s | %d | **%s** | %s | %s | %s | %s | %s | %s |" % (
            label(c, w) + (" (%s)" % f0["note"] if f0.get("note") else ""), kk or 1, f0["n"],
            fmt(run.stat(*me, "rate")), fmt(run.ratio(me, bare), "%.2f"),
            fmt(run.stat(*me, "own_us"), "%.1f"), fmt(run.ratio(me, bare, "own_us"), "%.2f"),
            fmt(run.stat(*me, "rest_us"), "%.1f"), fmt(run.stat(*me, "standin_us"), "%.1f"),
            fmt(run.stat(*me, "standin_busy"), "%.0f%%")))
    if not rows:
        return None
    head = ["| contender | in flight | messages | msgs/s | × bare client | CPU µs/msg, its process(es) "
            "| its CPU × bare client's | CPU µs/msg, rest of the cluster | CPU µs/msg, stand-in | stand-in busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    return "\n".join(head + rows)


def sweep_table(run, meta):
    lines = ["| endpoint | in flight | bare client msgs/s | 1 worker msgs/s | worker × bare client "
             "| bare client µs/msg | worker µs/msg | worker CPU × bare client's | worker: rest of the cluster µs/msg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, title in MODES:
        for k in meta["sweep_inflight"]:
            b, w = (mode, "ceiling", None, k), (mode, "worker", 1, k)
            if not run.get(*b) and not run.get(*w):
                continue
            lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                mode, k, fmt(run.stat(*b, "rate")), fmt(run.stat(*w, "rate")), fmt(run.ratio(w, b), "%.2f"),
                fmt(run.stat(*b, "own_us"), "%.1f"), fmt(run.stat(*w, "own_us"), "%.1f"),
                fmt(run.ratio(w, b, "own_us"), "%.2f"), fmt(run.stat(*w, "rest_us"), "%.1f")))
    return "\n".join(lines)


def goals_table(run, meta):
    k = meta["inflight"]

    def verdict(s, ok):
        return "–" if s is None else ("met" if ok(s[0]) else "missed")
    w1 = run.stat("direct", "worker", 1, k, "rate")
    w2 = run.stat("direct", "worker", 2, k, "rate")
    cpu = run.ratio(("direct", "worker", 1, k), ("direct", "ceiling", None, k), "own_us")
    lines = ["| goal (issue 17) | this run | |", "|---|---|---|",
             "| 1 worker ≥ 45,000 msgs/s | %s | %s |" % (fmt(w1), verdict(w1, lambda v: v >= 45000)),
             "| 2 workers ≥ 75,000 msgs/s | %s | %s |" % (fmt(w2), verdict(w2, lambda v: v >= 75000)),
             "| worker CPU per message ≤ 1.6 × the bare client's | %s | %s |" % (
                 fmt(cpu, "%.2f ×"), verdict(cpu, lambda v: v <= 1.6))]
    # the unbounded drain and the bounded one, each its own verdict
    for c, call in (("drain", "`sqs_ingest_drain()`"), ("drain-bounded", "`sqs_ingest_drain(N)`")):
        dr = run.ratio(("direct", c, None, k), ("direct", "worker", 1, k))
        lines.append("| drain ≥ 0.9 × one worker: %s | %s | %s |" % (
            call, fmt(dr, "%.2f ×"), verdict(dr, lambda v: v >= 0.9)))
    for kk in meta["sweep_inflight"]:
        r = run.ratio(("delay", "worker", 1, kk), ("delay", "ceiling", None, kk))
        lines.append("| at %d ms, worker ≥ 0.9 × bare client, %d in flight | %s | %s |" % (
            meta["delay_ms"], kk, fmt(r, "%.2f ×"), verdict(r, lambda v: v >= 0.9)))
    return "\n".join(lines)


def unsigned_note(run, meta):
    """The worker's CPU per message over the unsigned bare client's: how far
    the worker is from the network floor, signing aside. Not a goal: issue
    17's goals are against the signed client."""
    k = meta["inflight"]
    r = run.ratio(("direct", "worker", 1, k), ("direct", "ceiling-unsigned", None, k), "own_us")
    if r is None:
        return None
    return ("Not a goal: 1 worker's CPU per message ÷ the unsigned bare client's (no SigV4, the network "
            "floor), straight to the stand-in, %d in flight: %s (the goal above is against the signed "
            "client)." % (k, fmt(r, "%.2f ×")))


def encrypted_table(run, meta):
    """1 worker with the login events' ip and device_id encrypted as well as
    masked, beside the plain mapping in the same repeats (issue 18's goal:
    10,000 msgs/s)."""
    k = meta["inflight"]
    lines = ["| endpoint | in flight | plain msgs/s | encrypted too: msgs/s | encrypted × plain "
             "| plain µs/msg | encrypted too: µs/msg | µs/msg added | ≥ 10,000 msgs/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, _ in MODES:
        p, e = (mode, "worker", 1, k), (mode, "worker-encrypted", 1, k)
        if not run.get(*e):
            continue
        added = summary([fe["own_us"] - run.get(*p)[rep]["own_us"]
                         for rep, fe in run.get(*e).items()
                         if rep in run.get(*p) and fe.get("own_us") is not None
                         and run.get(*p)[rep].get("own_us") is not None])
        rate = run.stat(*e, "rate")
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            mode, k, fmt(run.stat(*p, "rate")), fmt(rate), fmt(run.ratio(e, p), "%.2f"),
            fmt(run.stat(*p, "own_us"), "%.1f"), fmt(run.stat(*e, "own_us"), "%.1f"), fmt(added, "%.1f"),
            "–" if rate is None else ("met" if rate[0] >= 10000 else "missed")))
    return "\n".join(lines) if len(lines) > 2 else None


def plot(run, meta, png):
    cols, names = [], []
    for mode, _ in MODES:
        for c, w, name in (("ceiling", None, "bare client"), ("worker", 1, "1 worker")):
            cols.append((mode, c, w))
            names.append('"%s, %s"' % (name, {"direct": "direct", "delay": "+%d ms" % meta["delay_ms"],
                                               "tls": "TLS"}[mode]))
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as t:
        t.write("inflight " + " ".join(names) + "\n")
        for k in meta["sweep_inflight"]:
            row = [str(k)]
            for mode, c, w in cols:
                s = run.stat(mode, c, w, k, "rate")
                row.append("?" if s is None else "%.1f" % s[0])
            t.write(" ".join(row) + "\n")
        dat = t.name
    sub = "%s messages per point, %s; %s" % (meta["sweep_n"], meta["date"], meta["machine_short"])
    gp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.gp")
    xt = ", ".join(str(k) for k in meta["sweep_inflight"])
    try:
        subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'; subtitle='%s'; xt='%s'; xmax=%d"
                        % (dat, png, sub, xt, max(meta["sweep_inflight"]) * 1.25), gp], check=True)
    finally:
        os.unlink(dat)


NOTES = """\
How to read it:
- Every contender moves the same generated login events from a fresh queue of the same native SQS
  stand-in (bench/sqs_standin.c: one epoll thread, AWS JSON 1.0, real MD5s, visibility timeouts,
  long polling; it accepts signed and unsigned requests alike, WITHOUT verifying a signature), on
  the same machine, in the same run. The machine (2 cores) is shared with other engineers' test runs:
  compare ratios within one run, not absolute figures across runs. With repeats, a figure is the
  median and its range; a ratio is taken within each repeat, then summarised.
- msgs/s: messages received, stored and deleted per second. The bare client, the Node peer and the
  seed design count from their first request to their last delete; the workers from the start of their processes until
  all N rows are committed and every message deleted (the clock polls every 20 ms); the drain from the
  start of `SELECT * FROM sqs_ingest_drain()` until it returns (its time includes starting its
  background worker and the final 1 s long poll that finds the queue empty). `sqs_ingest_drain(N)`:
  one call of `SELECT * FROM sqs_ingest_drain(N)` on a queue of exactly N messages, right after the
  unbounded drain; it returns once it has received N, so it does not pay that empty poll, as a
  bounded drain (a cron job taking at most M a run) on a queue holding at least M does not. The run
  checks that each drain leaves its queue empty and the table with N rows, the bounded one in one
  call. Each drain has its own line in the goals' table.
- The unsigned bare client (`bench/ceiling.c --unsigned`, straight to the stand-in at %(inflight)d in
  flight only) is the same client without SigV4 and without credentials: the network floor.
  libcurl's signer (CURLOPT_AWS_SIGV4) costs most of the signed client's µs per message (it derives
  the key and has OpenSSL fetch each digest for every request), while the extension signs with its
  own (src/aws/sigv4.c), so the worker's CPU over the signed client's partly compares signers. Every
  ratio and goal is still against the signed client, as issue 17 defines them; the worker's CPU over
  the unsigned client's is the line below the goals' table.
- CPU µs per message, from /proc/PID/stat (utime+stime) before and after, divided by the messages:
  "its process(es)": the bare clients (getrusage), the worker processes (summed for 2 and 4), the Node
  peer's process (all its threads), the seed design's Python process; "rest of the cluster": for workers, the whole restarted cluster (postmaster,
  its exited children, the live ones) minus the workers — the checkpointer, WAL writer, the measuring
  poller's backend (a query every 20 ms), start-up; for both drains, the whole cluster over the call
  (its background worker does the work); for the Node peer and the seed, the whole cluster (their
  backends). "stand-in":
  the stand-in's CPU over the contender's run, and "busy" that over the contender's seconds: well
  under 100%% means it never set the pace.
- The Node peer (bench/node_peer/peer.js, versions pinned in its package-lock.json): as many
  sqs-consumer Consumers as requests in flight (`@aws-sdk/client-sqs`, AWS JSON 1.0), each with
  batchSize 10 and a handleMessageBatch that stores the batch in one multi-row INSERT through a shared
  pg Pool (10 connections, pg's default; one autocommit transaction per batch), then DeleteMessageBatch
  by sqs-consumer. It masks and maps as the seed design does (rows equal the extension's) and keeps
  no ledger: a redelivered message would be stored twice. Straight to the stand-in (N messages) and
  with the delay (%(node_delay_n)s), not through TLS.
- "+%(delay)d ms": the stand-in holds every response %(delay)d ms before writing it, a stand-in for the
  round trip to AWS. TLS: stunnel4 in front of the stand-in with a certificate from a CA generated
  for the run, trusted by the extension through `sqs_ingest.ca_file` and by the bare client through
  `--cafile` (stunnel's CPU is not counted).
- Postgres runs with its defaults (fsync on, synchronous_commit on), shared_buffers 256MB,
  max_wal_size 8GB, as the OS user postgres, in a throwaway cluster.
"""


def render(run, meta):
    out = ["# sqs_ingest benchmark, %s" % meta["date"], "",
           "- command (as root, in the work tree): `%s`" % meta["command"],
           "- machine: %s" % meta["machine"],
           "- load: `%s` before, `%s` after (shared machine)" % (meta["uptime_before"], meta["uptime_after"]),
           "- commit: %s" % meta.get("commit", "?"),
           "- messages per contender: N = %d straight to the stand-in (seed design: first %d; %d with the "
           "delay; Node peer: %s with the delay); %d per in-flight point; repeats: %d" % (
               meta["n"], meta["seed_n"], meta["seed_delay_n"], meta.get("node_delay_n", "–"), meta["sweep_n"],
               meta["repeat"]), ""]
    for mode, title in MODES:
        t = mode_table(run, mode, meta)
        if t:
            out += ["## %s, %d in flight" % (title % {"delay": meta["delay_ms"]}, meta["inflight"]), "", t, ""]
    out += ["## Requests in flight (bare client and 1 worker)", "", sweep_table(run, meta), "",
            "![msgs/s vs requests in flight](%s)" % meta["png_name"], "",
            "## Against the goals of issue 17", "", goals_table(run, meta), ""]
    floor = unsigned_note(run, meta)
    if floor:
        out += [floor, ""]
    enc = encrypted_table(run, meta)
    if enc:
        out += ["## Login events encrypted as well as masked (issue 18)", "",
                "1 worker, the login mapping with `sqs_ingest.recovery_key_file` set to the RSA 2048 "
                "test key (`test/keys/recovery.pub.asc`) and `encrypted_ip` / `encrypted_device_id` "
                "in the table: two OpenPGP encryptions (an RSA public-key operation and AES each) "
                "beside the two masks per message; plain is the 1-worker row of the same repeat.", "",
                enc, ""]
    out += ["## Method", "", NOTES % {"delay": meta["delay_ms"], "inflight": meta["inflight"],
                                     "node_delay_n": meta.get("node_delay_n", "–")}]
    return "\n".join(out)


def update_results(path, meta, body):
    text = open(path).read()
    a = text.index("<!-- latest:start -->") + len("<!-- latest:start -->")
    b = text.index("<!-- latest:end -->")
    latest = body.replace("# sqs_ingest benchmark, ", "## Latest run: ", 1)
    latest = latest.replace("](%s)" % meta["png_name"], "](results/%s)" % meta["png_name"])
    latest = latest.replace("\n## ", "\n### ").replace("### Latest run", "## Latest run", 1)
    latest += "\nDetails: [results/%s](results/%s), records [results/%s.jsonl](results/%s.jsonl).\n" % (
        meta["md_name"], meta["md_name"], meta["stamp"], meta["stamp"])
    text = text[:a] + "\n" + latest.strip() + "\n" + text[b:]
    with open(path, "w") as f:
        f.write(text)


def update_soak(path, soak, meta):
    """Append one bench/rss_soak.sh result to the memory section of RESULTS.md."""
    text = open(path).read()
    if "<!-- soak:end -->" not in text:
        text = text.rstrip("\n") + "\n\n## Memory soak (bench/rss_soak.sh)\n\n<!-- soak:end -->\n"
    mib = lambda kb: "%.1f MiB" % (kb / 1024.0)
    line = ("- %s, `%s`, %s: %d messages through one worker in %.0f s (%.0f msgs/s); worker RSS "
            "first %s, last %s, peak %s (VmHWM %s); private (RssAnon) first %s, last %s, peak %s; "
            "%d samples every %s s; worker CPU %.3f s / 1k msgs"
            % (meta["date"], meta["command"], meta["machine"], soak["n"], soak["seconds"],
               soak["n"] / max(soak["seconds"], 0.001), mib(soak["first_rss_kb"]), mib(soak["last_rss_kb"]),
               mib(soak["peak_rss_kb"]), mib(soak["hwm_kb"]), mib(soak["first_anon_kb"]),
               mib(soak["last_anon_kb"]), mib(soak["peak_anon_kb"]), len(soak["samples"]),
               meta["interval"], soak["cpu_s"] * 1000 / max(soak["n"], 1)))
    text = text.replace("<!-- soak:end -->", line + "\n<!-- soak:end -->", 1)
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records")
    ap.add_argument("--meta", required=True)
    ap.add_argument("--results-dir")
    ap.add_argument("--summary", required=True, help="bench/RESULTS.md")
    ap.add_argument("--soak", help="measure.py rss output: add it to the memory section")
    a = ap.parse_args()
    if a.soak:
        update_soak(a.summary, json.load(open(a.soak)), json.load(open(a.meta)))
        return
    meta = json.load(open(a.meta))
    run = Run([json.loads(l) for l in open(a.records) if l.strip()])
    meta["md_name"] = meta["stamp"] + ".md"
    meta["png_name"] = meta["stamp"] + "-inflight.png"
    body = render(run, meta)
    plot(run, meta, os.path.join(a.results_dir, meta["png_name"]))
    with open(os.path.join(a.results_dir, meta["md_name"]), "w") as f:
        f.write(body)
    if not meta.get("smoke"):
        update_results(a.summary, meta, body)
    sys.stdout.write(body)


if __name__ == "__main__":
    main()
