#!/usr/bin/python3
"""Group the samples of a `perf record -g` profile by what the process was
doing, from each sample's call chain.

  perf script -F comm,tid,ip,sym,dso -i perf.data | perf_groups.py [--top 25]
  ... | perf_groups.py --callers SYMBOL     who calls SYMBOL (the leaf), by call chain

A sample belongs to the first group below any frame of whose call chain
matches (so an OpenSSL sample under mask_value() is "HMAC (mask)", one under
a SigV4 signer "SigV4 signing", and libcurl's work while a batch is stored,
which the flow looks at between messages, is HTTP, not batch building);
samples nothing matches are "other",
split by the leaf's library. Prints the groups' shares and the top leaf
symbols. Only call chains: frame pointers are what PostgreSQL, libcurl and
OpenSSL keep on Debian, so a chain can stop short; such a sample falls to
the groups its remaining frames match.
"""
import argparse
import collections
import re
import sys

GROUPS = [
    ("HMAC (mask)", r"^mask_value$|^mask_prepare$"),
    ("SigV4 signing (libcurl's or sigv4.c)", r"^Curl_output_aws_sigv4$|aws_sigv4|^sigv4_sign$"),
    ("response JSON decode (sqs_decode)", r"^sqs_decode_json|^walk_json$|^receive_value$|^batch_value$"),
    ("body parse + mapping (mapping.c, json_capture.c)", r"^mapping_map$|^map_row$|^capture_parse$|^mapping_rows_init$"),
    ("ledger index (B-tree insert)", r"^_bt_doinsert$|^btinsert$"),
    ("WAL insert / flush / commit", r"^XLogInsert|^XLogFlush$|^issue_xlog_fsync$|^CommitTransaction$|^RecordTransactionCommit$"),
    ("heap insert (rows, ledger)", r"^heap_insert$|^heap_multi_insert$|^heapam_tuple_insert$"),
    ("SPI / executor / planner (insert statements)", r"^SPI_|^_SPI_|^Exec|^standard_Executor|^GetCachedPlan$|^pg_plan_query$"),
    ("wait loop (WaitEventSet, latches)", r"^WaitEventSetWait|^WaitLatch"),
    ("HTTP / TLS / sockets (curl, OpenSSL, kernel)", r"^curl_|^Curl_|^transport_|^ossl_|^SSL_|^ssl3_|^tls_"),
    ("batch building, arrays, ledger ids (sink.c)", r"^sink_store_batch$|^build_batch$|^make_column_array$|^make_array$|^construct_md_array$"),
    ("transaction start/end, snapshots, locks", r"^StartTransaction|^AbortTransaction|^CommitTransactionCommand$|^GetSnapshotData$|^LockAcquire|^LockRelease"),
]
COMPILED = [(name, re.compile(rx)) for name, rx in GROUPS]


def parse(stream):
    """Yield (comm, [(sym, dso), ...] leaf first) per sample."""
    comm, frames = None, []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            if comm is not None:
                yield comm, frames
            comm, frames = line.split()[0], []
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            frames.append((sym, m.group(2).rsplit("/", 1)[-1]))
    if comm is not None:
        yield comm, frames


def group_of(frames):
    for name, rx in COMPILED:
        for sym, _ in frames:
            if rx.search(sym):
                return name
    if not frames:
        return "other: no frames"
    dso = frames[0][1]
    if "kernel" in dso:
        return "other: kernel"
    if dso.startswith("libc"):
        return "other: libc (malloc, memcpy, ...)"
    if dso.startswith("postgres"):
        return "other: postgres"
    return "other: %s" % dso


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--callers", help="print the call chains (5 frames up) leading to this leaf symbol")
    a = ap.parse_args()
    if a.callers:
        chains = collections.Counter()
        n = 0
        for _, frames in parse(sys.stdin):
            if frames and frames[0][0] == a.callers:
                n += 1
                chains[" < ".join(sym for sym, _ in frames[1:6])] += 1
        for chain, k in chains.most_common(a.top):
            print("%5.1f%%  %s" % (100.0 * k / max(n, 1), chain))
        return
    groups = collections.Counter()
    leaves = collections.Counter()
    total = 0
    for _, frames in parse(sys.stdin):
        total += 1
        groups[group_of(frames)] += 1
        if frames:
            leaves["%s (%s)" % frames[0]] += 1
    if not total:
        raise SystemExit("perf_groups: no samples")
    print("| group | share of samples |\n|---|---:|")
    for name, n in groups.most_common():
        print("| %s | %.1f%% |" % (name, 100.0 * n / total))
    print("\n%d samples\n\n| leaf symbol (library) | self |\n|---|---:|" % total)
    for sym, n in leaves.most_common(a.top):
        print("| `%s` | %.1f%% |" % (sym, 100.0 * n / total))


if __name__ == "__main__":
    main()
