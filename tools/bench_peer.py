#!/usr/bin/env python3
"""bench_peer.py: transit against llama.cpp on the same GGUF files, on the same machine, in the same
run (design §7): `llama-bench` and `transit bench` interleaved for several rounds, prompt processing
(ppP) and generation (tgN) tokens/s of both, their ratio with its spread, and transit's decode share
of the read bandwidth it measures in the same run.

usage: tools/bench_peer.py --llama-bench PATH [--threads 2] [--rounds 3] [-p 512] [-n 128] FILE...

llama-bench comes from llama.cpp built from the current llama-cpp-python source (design §7; for
quantized files a build without AMX code, whose AMX kernels trap on these VMs). Nothing of llama.cpp
is committed. Prints one markdown table (docs/benchmarks.md)."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSIT = os.path.join(HERE, "..", "build", "transit")


def llama_run(bench, path, threads, p, n):
    out = subprocess.run([bench, "-m", path, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", "1", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
    rates = {}
    for r in json.loads(out):
        key = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
        rates[key] = float(r["avg_ts"])
    return rates


def transit_run(path, threads, p, n):
    out = subprocess.run([TRANSIT, "bench", "-m", path, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    rates, share = {}, None
    for m in re.finditer(r"^\|\s*(pp\d+|tg\d+)\s*\|\s*([0-9.]+)", out, re.M):
        rates[m.group(1)] = float(m.group(2))
    m = re.search(r"tg\d+ reads .*?, ([0-9.]+)% of the ([0-9.]+) GB/s", out)
    if m:
        share = (float(m.group(1)), float(m.group(2)))
    return rates, share


def spread(xs):
    return "%.2f ± %.2f" % (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    res = {f: {"llama": {}, "transit": {}, "share": []} for f in a.files}
    for r in range(a.rounds):
        for f in a.files:  # interleaved: both engines see the same machine state
            for k, v in llama_run(a.llama_bench, f, a.threads, a.p, a.n).items():
                res[f]["llama"].setdefault(k, []).append(v)
            rates, share = transit_run(f, a.threads, a.p, a.n)
            for k, v in rates.items():
                res[f]["transit"].setdefault(k, []).append(v)
            if share:
                res[f]["share"].append(share)
            print("round %d/%d: %s" % (r + 1, a.rounds, os.path.basename(f)), file=sys.stderr)
    print("| file | test | llama.cpp t/s | transit t/s | ratio (min-max) | transit decode, share of read bandwidth |")
    print("|---|---|---:|---:|---:|---|")
    for f in a.files:
        for key in ("pp%d" % a.p, "tg%d" % a.n):
            lr, tr = res[f]["llama"].get(key, []), res[f]["transit"].get(key, [])
            if not lr or not tr:
                continue
            ratios = [t / l for t, l in zip(tr, lr)]
            sh = ""
            if key.startswith("tg") and res[f]["share"]:
                sh = "%.0f%% of %.1f GB/s" % (statistics.mean(s[0] for s in res[f]["share"]),
                                             statistics.mean(s[1] for s in res[f]["share"]))
            print("| %s | %s | %s | %s | %.2f× (%.2f-%.2f) | %s |" % (os.path.basename(f), key, spread(lr), spread(tr),
                                                                    statistics.mean(ratios), min(ratios), max(ratios), sh))


if __name__ == "__main__":
    main()
