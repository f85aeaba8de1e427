#!/usr/bin/env python3
"""bench_peer.py: transit against llama.cpp on the same GGUF files, on the same machine, in the same
run (design §7): `llama-bench` and `transit bench` interleaved for several rounds, prompt processing
(ppP) and generation (tgN) tokens/s of both, their ratio with its spread, and transit's decode share
of the read bandwidth it measures in the same run.

usage: tools/bench_peer.py [--peer-dir DIR | --llama-bench PATH] [--transit PATH] [--threads 2] [--rounds 3]
                           [-p 512] [-n 128] FILE...

The peer is llama.cpp built from the current llama-cpp-python source distribution on PyPI (design
§7), in two configurations cached under --peer-dir (default ~/.cache/transit-peer, outside the
repository; nothing of llama.cpp is committed):
  native   -DGGML_NATIVE=ON: llama.cpp's fastest for F32/F16/BF16 files here
  noamx    the same without its AMX code (-mno-amx-*): for quantized files, whose AMX kernels trap on
           these VMs
Each file is measured with the build that runs its format (quantized: noamx; float: native). The
source is fetched with `pip download --no-binary :all: llama-cpp-python` when --peer-dir has none
(or put it in DIR/src: the sdist's vendor/llama.cpp), and each build is made on first use (about 16
minutes on two cores). --llama-bench PATH uses one given binary for every file instead. Prints one
markdown table (docs/benchmarks.md)."""
import argparse
import json
import os
import re
import statistics
import glob
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSIT = os.path.join(HERE, "..", "build", "transit")
TRANSIT_BIN = TRANSIT


CONFIGS = {
    "native": ["-DGGML_NATIVE=ON"],
    "noamx": ["-DGGML_NATIVE=ON", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF",
              "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
              "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"],
}


def peer_source(peer_dir):
    """DIR/src: llama.cpp from the llama-cpp-python sdist (downloaded and unpacked if missing)."""
    src = os.path.join(peer_dir, "src")
    if os.path.isfile(os.path.join(src, "CMakeLists.txt")):
        return src
    dl = os.path.join(peer_dir, "dl")
    os.makedirs(dl, exist_ok=True)
    print("bench_peer: downloading the llama-cpp-python source distribution", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", dl,
                    "llama-cpp-python"], check=True, stdout=sys.stderr)
    sdist = sorted(glob.glob(os.path.join(dl, "llama_cpp_python-*.tar.gz")))[-1]
    with tarfile.open(sdist) as t:
        t.extractall(dl)
    vendor = glob.glob(os.path.join(dl, "llama_cpp_python-*", "vendor", "llama.cpp"))[0]
    shutil.move(vendor, src)
    return src


def peer_bench(peer_dir, config):
    """llama-bench of one configuration, built on first use."""
    build = os.path.join(peer_dir, "build-" + config)
    exe = os.path.join(build, "bin", "llama-bench")
    if os.access(exe, os.X_OK):
        return exe
    src = peer_source(peer_dir)
    print("bench_peer: building llama-bench (%s) in %s" % (config, build), file=sys.stderr)
    subprocess.run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
                   + CONFIGS[config], check=True, stdout=sys.stderr)
    subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "llama-bench"],
                   check=True, stdout=sys.stderr)
    return exe


def is_quantized(path):
    """Whether transit finds quantized matrices in the file (`transit info`'s weight types)."""
    out = subprocess.run([TRANSIT, "info", "-m", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, check=True).stdout
    m = re.search(r"weight types\s+(.*)", out)
    return bool(m and re.search(r"\bq\d", m.group(1)))


def llama_run(bench, path, threads, p, n):
    out = subprocess.run([bench, "-m", path, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", "1", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
    rates = {}
    for r in json.loads(out):
        key = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
        rates[key] = float(r["avg_ts"])
    return rates


def transit_run(path, threads, p, n):
    out = subprocess.run([TRANSIT_BIN, "bench", "-m", path, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", "1"],
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
    ap.add_argument("--llama-bench", help="one llama-bench binary for every file")
    ap.add_argument("--peer-dir", default=os.path.expanduser("~/.cache/transit-peer"))
    ap.add_argument("--transit", default=TRANSIT, help="the transit binary (default: build/transit)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    global TRANSIT_BIN
    TRANSIT_BIN = a.transit
    bench = {}
    for f in a.files:
        config = "noamx" if is_quantized(f) else "native"
        bench[f] = (a.llama_bench or peer_bench(a.peer_dir, config), config if not a.llama_bench else "given")
    res = {f: {"llama": {}, "transit": {}, "share": []} for f in a.files}
    for r in range(a.rounds):
        for f in a.files:  # interleaved: both engines see the same machine state
            for k, v in llama_run(bench[f][0], f, a.threads, a.p, a.n).items():
                res[f]["llama"].setdefault(k, []).append(v)
            rates, share = transit_run(f, a.threads, a.p, a.n)
            for k, v in rates.items():
                res[f]["transit"].setdefault(k, []).append(v)
            if share:
                res[f]["share"].append(share)
            print("round %d/%d: %s" % (r + 1, a.rounds, os.path.basename(f)), file=sys.stderr)
    print("| file | llama.cpp build | test | llama.cpp t/s | transit t/s | ratio (min-max) | transit decode, share of the bound |")
    print("|---|---|---|---:|---:|---:|---|")
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
            print("| %s | %s | %s | %s | %s | %.2f× (%.2f-%.2f) | %s |" % (
                os.path.basename(f), bench[f][1], key, spread(lr), spread(tr), statistics.mean(ratios), min(ratios),
                max(ratios), sh))


if __name__ == "__main__":
    main()
