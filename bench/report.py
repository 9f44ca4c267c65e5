#!/usr/bin/python3
"""Turn the records of one bench/run.sh run into bench/results/<stamp>.md,
the in-flight sweep plot, and an update of bench/RESULTS.md.

  report.py --records FILE --meta FILE --results-dir DIR --summary FILE
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CONTENDERS = [
    ("ceiling", "ceiling (C, libcurl, no database)"),
    ("worker", "sqs_ingest background worker"),
    ("worker-encrypted", "sqs_ingest background worker, ip and device_id also encrypted (RSA 2048)"),
    ("drain", "sqs_ingest_drain()"),
    ("seed", "seed design: Python, one message at a time"),
    ("seed-batched", "seed design, batched (--batched)"),
]
SWEEP = [1, 2, 4, 8, 16, 32]
MODES = [("direct", "Straight to the emulator"), ("proxy", "Through the fault proxy")]


def parse_out(s):
    s = s.strip()
    if s.startswith("{"):
        return json.loads(s)
    d = {}
    for tok in s.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                d[k] = float(v) if "." in v else int(v)
            except ValueError:
                d[k] = v
    return d


def num(v):
    return v if isinstance(v, (int, float)) else None


def figures(rec):
    """Normalised figures of one record."""
    o = parse_out(rec["out"])
    c = rec["contender"]
    f = {"contender": c, "mode": rec["mode"], "inflight": rec.get("inflight"), "role": rec["role"],
         "delay_ms": rec.get("delay_ms", 0)}
    if c == "ceiling":
        n = o.get("deleted", 0)
        f.update(n=n, rate=o.get("msgs_per_s"), cpu=o.get("cpu_s"), rss_kb=o.get("maxrss_kb"))
        f["cpu_note"] = "client"
    elif c in ("worker", "worker-encrypted", "drain"):
        n = o.get("n", 0)
        f.update(n=n, rate=o.get("msgs_per_s"), cpu=o.get("cpu_s"), rss_kb=o.get("hwm_kb"),
                 anon_kb=o.get("anon_kb"))
        f["cpu_note"] = "calling backend" if c == "drain" else "worker"
        if c != "drain":
            f["rate_rows"] = o.get("msgs_per_s_rows")
        d = o.get("drain") or {}
        notes = []
        if d.get("duplicates"):
            notes.append("%d redelivered duplicates" % d["duplicates"])
        if rec.get("queue_left", "0 0 0") != "0 0 0":
            notes.append("left in queue (visible, in flight, delayed): %s" % rec["queue_left"])
        f["note"] = "; ".join(notes)
    else:
        n = o.get("deleted", 0)
        py, pg = num(o.get("cpu_s")), num(o.get("backend_cpu_s"))
        f.update(n=n, rate=o.get("msgs_per_s"), cpu=(py or 0) + (pg or 0),
                 rss_kb=(o.get("maxrss_kb") or 0) + (num(o.get("backend_hwm_kb")) or 0))
        f["cpu_note"] = "python %.2f + backend %.2f" % ((py or 0) * 1000 / max(n, 1), (pg or 0) * 1000 / max(n, 1))
    f["cpu_per_1k"] = f["cpu"] * 1000 / n if n and f.get("cpu") is not None else None
    f["emu_per_1k"] = rec["emu_cpu_s"] * 1000 / n if n else None
    secs = num(o.get("seconds"))
    f["emu_busy"] = 100.0 * rec["emu_cpu_s"] / secs if secs else None
    f["proxy_per_1k"] = rec["proxy_cpu_s"] * 1000 / n if n and rec.get("proxy_cpu_s") else None
    return f


def fmt(v, spec="%.0f", none="–"):
    return none if v is None else spec % v


def ratio(a, b):
    return None if a is None or not b else a / b


def mode_table(figs, mode):
    head = {f["contender"]: f for f in figs if f["mode"] == mode and f["role"] == "headline"}
    if not head:
        return None, head
    ceil = head.get("ceiling", {}).get("rate")
    seed = head.get("seed", {}).get("rate")
    seedb = head.get("seed-batched", {}).get("rate")
    lines = ["| contender | in flight | messages | msgs/s | × ceiling | × seed | × seed batched "
             "| CPU s / 1k msgs | peak RSS | emulator CPU s / 1k msgs | emulator busy |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for key, label in CONTENDERS:
        f = head.get(key)
        if not f:
            lines.append("| %s | | not run | | | | | | | | |" % label)
            continue
        cpu = "%s (%s)" % (fmt(f["cpu_per_1k"], "%.3f"), f["cpu_note"])
        lines.append("| %s | %s | %d | **%s** | %s | %s | %s | %s | %s | %s | %s |" % (
            label + (" (%s)" % f["note"] if f.get("note") else ""), f["inflight"] if f["inflight"] else "1", f["n"], fmt(f["rate"]),
            fmt(ratio(f["rate"], ceil), "%.2f"), fmt(ratio(f["rate"], seed), "%.1f"),
            fmt(ratio(f["rate"], seedb), "%.1f"), cpu,
            fmt(f["rss_kb"] / 1024 if f["rss_kb"] else None, "%.1f MiB") +
            (" (anon %.1f)" % (f["anon_kb"] / 1024) if f.get("anon_kb") else ""),
            fmt(f["emu_per_1k"], "%.3f"), fmt(f["emu_busy"], "%.0f%%")))
    return "\n".join(lines), head


def sweep_points(figs, meta):
    """{(mode, contender): {inflight: rate}} from sweep records and matching headline ones."""
    pts = {}
    for f in figs:
        if f["contender"] not in ("ceiling", "worker") or not f["inflight"]:
            continue
        if f["role"] == "sweep" or (f["role"] == "headline" and meta.get("sweep_reuses_headline")):
            pts.setdefault((f["mode"], f["contender"]), {})[f["inflight"]] = f["rate"]
    return pts


def plot(pts, meta, png):
    delay = meta.get("delay_ms", 20)
    cols = [("direct", "ceiling"), ("direct", "worker"), ("proxy", "ceiling"), ("proxy", "worker")]
    names = ['"ceiling"', '"sqs_ingest worker"', '"ceiling, +%d ms per request"' % delay,
             '"sqs_ingest worker, +%d ms per request"' % delay]
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as t:
        t.write("inflight " + " ".join(names) + "\n")
        for k in SWEEP:
            row = [str(k)]
            for c in cols:
                v = pts.get(c, {}).get(k)
                row.append("?" if v is None else "%.1f" % v)
            t.write(" ".join(row) + "\n")
        dat = t.name
    sub = "%s messages per point, %s; %s" % (meta["sweep_n"], meta["date"], meta["machine_short"])
    gp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.gp")
    try:
        subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'; subtitle='%s'" % (dat, png, sub), gp],
                       check=True)
    finally:
        os.unlink(dat)


def sweep_table(pts, meta):
    delay = meta.get("delay_ms", 20)
    lines = ["| in flight | ceiling | worker | worker × ceiling | ceiling +%d ms | worker +%d ms | worker × ceiling +%d ms |"
             % (delay, delay, delay), "|---:|---:|---:|---:|---:|---:|---:|"]
    for k in SWEEP:
        cd, wd = pts.get(("direct", "ceiling"), {}).get(k), pts.get(("direct", "worker"), {}).get(k)
        cp, wp = pts.get(("proxy", "ceiling"), {}).get(k), pts.get(("proxy", "worker"), {}).get(k)
        lines.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            k, fmt(cd), fmt(wd), fmt(ratio(wd, cd), "%.2f"), fmt(cp), fmt(wp), fmt(ratio(wp, cp), "%.2f")))
    return "\n".join(lines)


NOTES = """\
How to read it:
- Every contender moves the same generated events (sqs-tool `--generate N --seed 1`) from a fresh
  queue of the same emulator (test/sqs-emulator.js: local-aws-sqs behind a SigV4-checking front),
  on the same machine, in the same run. The machine is shared and noisy: compare ratios within one
  run, not absolute figures across runs.
- msgs/s: messages received, stored and deleted per second. The ceiling and the seed design count from
  their first request to their last delete; the worker from the start of its process until the queue
  is empty (all N rows committed and every message deleted); the drain from the start of a
  `SELECT * FROM sqs_ingest_drain()` in a fresh backend until it returns (DRAIN_CHUNK=%(drain_chunk)s:
  0 is one call for the whole backlog, C > 0 calls of max_messages C). The call starts a background
  worker that runs the worker's loop (batches committed one at a time, deletes after each commit)
  and returns once the queue is empty and every delete answered: its time includes that worker's
  start and the final long poll (`sqs_ingest.drain_wait_time_seconds`, 1 s) that finds the queue
  empty.
- The seed design processes only the first "messages" events of a queue filled with N (it is slow);
  a rate is a rate. It uses Debian's boto3/botocore (1.26/1.29) with botocore's SQS model switched
  to AWS JSON 1.0, which boto3 speaks since 1.34 and every other contender here speaks: over the
  query protocol of that botocore, the emulator refuses receives from a queue holding more than
  about 2,000 messages (it adds MaxNumberOfMessages as a string: OverLimit).
- CPU s / 1k msgs: utime+stime from /proc/PID/stat before and after, per 1,000 messages, of the
  process doing the work: the ceiling client; the sqs_ingest worker; for the drain, the calling
  backend only (the drain's own work runs in its background worker and is not counted);
  for the seed, the Python process plus its Postgres backend. Peak RSS is VmHWM (Postgres processes)
  or ru_maxrss (clients); the seed's is Python's plus its backend's. VmHWM of a Postgres process
  counts the shared buffers it touched; "anon" is its private memory (RssAnon) at the end.
- The ceiling is the bound on the client side: no database, nothing but receive and delete. When
  the emulator saturates ("emulator busy" near 100%%: its CPU seconds over the contender's seconds,
  several threads can push it past 100%%), the emulator sets the pace and either the ceiling or the
  worker can come out ahead. The sweep runs on smaller queues (the emulator's receive cost grows
  with the queue), where the emulator has more headroom, and shows the gap on the client side.
- The emulator is a single Node.js process and is the bottleneck of every fast contender here;
  its CPU per 1,000 messages shows a contender that makes more requests per message, and "emulator
  busy" (its CPU seconds over the contender's seconds) how close it was to saturating the emulator.
- Postgres runs with its defaults (fsync on, synchronous_commit on), shared_buffers 256MB,
  max_wal_size 8GB, as the OS user postgres, in a throwaway cluster.
"""


def render(records, meta):
    figs = [figures(r) for r in records]
    out = ["# sqs_ingest benchmark, %s" % meta["date"], "",
           "- command: `%s`" % meta["command"],
           "- machine: %s" % meta["machine"],
           "- commit: %s%s" % (meta.get("commit", "?"), "" if meta.get("extension") else
                               " (extension not built: worker and drain not run)"),
           "- messages per contender: N = %d (seed design: first %d direct, %d through the proxy); "
           "sweep: %d per point" % (meta["n"], meta["seed_n"], meta["seed_proxy_n"], meta["sweep_n"]),
           "- proxy: test/fault-proxy.js with delayMs %d on every request (a stand-in for the round trip to AWS)"
           % meta["delay_ms"], ""]
    heads = {}
    for mode, title in MODES:
        t, heads[mode] = mode_table(figs, mode)
        if t:
            if mode == "proxy":
                title += " (+%d ms per request)" % meta["delay_ms"]
            out += ["## %s" % title, "", t, ""]
    pts = sweep_points(figs, meta)
    if pts:
        out += ["## Messages per second vs requests in flight", "", sweep_table(pts, meta), "",
                "![msgs/s vs in-flight requests](%s)" % meta["png_name"], ""]
    out += ["## Method", "", NOTES % {"drain_chunk": meta.get("drain_chunk", "?")}]
    return "\n".join(out), heads, pts


def history_row(meta, heads):
    def cell(key):
        vals = []
        for mode, _ in MODES:
            f = heads.get(mode, {}).get(key)
            vals.append(fmt(f["rate"]) if f else "–")
        return " / ".join(vals)

    def rcell(a, b, spec):
        vals = []
        for mode, _ in MODES:
            fa, fb = heads.get(mode, {}).get(a), heads.get(mode, {}).get(b)
            vals.append(fmt(ratio(fa["rate"], fb["rate"]) if fa and fb else None, spec))
        return " / ".join(vals)

    w = heads.get("direct", {}).get("worker")
    return "| %s | `%s` | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | [%s](results/%s) |" % (
        meta["date"], meta["command"], meta["n"], cell("ceiling"), cell("worker"), cell("drain"),
        cell("seed"), cell("seed-batched"), rcell("worker", "ceiling", "%.2f"), rcell("worker", "seed", "%.1f"),
        fmt(w["cpu_per_1k"], "%.3f") if w else "–",
        fmt(w["rss_kb"] / 1024, "%.1f MiB") if w and w["rss_kb"] else "–",
        meta["stamp"], meta["md_name"])


RESULTS_HEAD = """\
# sqs_ingest benchmark results

`bench/run.sh` (as root; `N=100000` by default, `SMOKE=1` for a 2,000-message run) measures, in one
run, on one emulator and one machine: the ceiling (`bench/ceiling.c`, no database), the sqs_ingest
background worker, `sqs_ingest_drain()`, and the design it replaces (`bench/seed_etl.py`, one message
at a time and batched), straight to the emulator and through the fault proxy with 20 ms added to
every request; then a sweep of requests in flight (1..32) for the ceiling and the worker.
Each run writes `bench/results/<stamp>.md` and a PNG plot, and updates this file.
`bench/rss_soak.sh` checks the worker's memory over a long run (200,000 messages by default).

<!-- latest:start -->
<!-- latest:end -->

## All runs

msgs/s are "straight to the emulator / through the proxy"; ratios likewise. Smoke runs are too short
to mean much beyond "it works".

| date | command | N | ceiling | worker | drain | seed | seed batched | worker × ceiling | worker × seed | worker CPU s / 1k | worker peak RSS | details |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
<!-- history:end -->

## Memory soak (bench/rss_soak.sh)

<!-- soak:end -->
"""


def update_results(path, meta, body, heads):
    text = open(path).read() if os.path.exists(path) else RESULTS_HEAD
    if "<!-- history:end -->" not in text:
        text = RESULTS_HEAD
    text = text.replace("<!-- history:end -->", history_row(meta, heads) + "\n<!-- history:end -->", 1)
    if not meta.get("smoke"):
        a = text.index("<!-- latest:start -->") + len("<!-- latest:start -->")
        b = text.index("<!-- latest:end -->")
        latest = body.replace("# sqs_ingest benchmark, ", "## Latest full run: ", 1)
        latest = latest.replace("](%s)" % meta["png_name"], "](results/%s)" % meta["png_name"])
        latest = latest.replace("\n## ", "\n### ")
        latest = latest.replace("### Latest full run", "## Latest full run", 1)
        text = text[:a] + "\n" + latest.strip() + "\n" + text[b:]
    with open(path, "w") as f:
        f.write(text)


def update_soak(path, soak, meta):
    """Append one bench/rss_soak.sh result to the memory section of RESULTS.md."""
    text = open(path).read() if os.path.exists(path) else RESULTS_HEAD
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
    records = [json.loads(l) for l in open(a.records) if l.strip()]
    meta["md_name"] = meta["stamp"] + ".md"
    meta["png_name"] = meta["stamp"] + "-sweep.png"
    body, heads, pts = render(records, meta)
    if pts:
        plot(pts, meta, os.path.join(a.results_dir, meta["png_name"]))
    else:
        body = body.replace("![msgs/s vs in-flight requests](%s)\n" % meta["png_name"], "")
    md = os.path.join(a.results_dir, meta["md_name"])
    with open(md, "w") as f:
        f.write(body)
    update_results(a.summary, meta, body, heads)
    sys.stdout.write(body)


if __name__ == "__main__":
    main()
