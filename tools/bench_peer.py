#!/usr/bin/env python3
"""bench_peer.py: transit against llama.cpp on the same GGUF files, on the same machine, in the same
run (design §7): `llama-bench` and `transit bench` interleaved for several rounds, prompt processing
(ppP) and generation (tgN) tokens/s of both, their ratio with its spread, and transit's decode share
of the read bandwidth it measures in the same run.

usage: tools/bench_peer.py [--peer-dir DIR | --llama-bench PATH] [--transit PATH] [--threads 2] [--rounds 3]
                           [-p 512] [-n 128] [--svg FILE.svg] FILE...
       tools/bench_peer.py --replot TABLE.md [TABLE.md...] --svg FILE.svg

--svg draws the ratios (transit / llama.cpp, with their min-max over rounds) as a bar chart beside
design §7's goals; --replot draws it from tables this script printed before (a later table's row
replaces an earlier one's for the same file and test), without running anything.

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


TABLE_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*[^|]*\|\s*((?:pp|tg)\d+)\s*\|[^|]*\|[^|]*\|\s*([0-9.]+)×\s*\(([0-9.]+)-([0-9.]+)\)")


def read_tables(paths):
    """{(file, test): (ratio, min, max)} from bench_peer.py's own markdown tables, in file order."""
    rows = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                m = TABLE_ROW.match(line)
                if m:
                    name = re.sub(r"\.gguf$", "", m.group(1))
                    rows[(name, m.group(2))] = tuple(float(m.group(i)) for i in (3, 4, 5))
    return rows


def write_svg(rows, path):
    """A bar per file and test (prefill blue, decode orange), its min-max as a whisker, the goals as
    dashed lines (design §7: prefill 1.2x, decode 1.1x) and parity as a grey one."""
    files = []
    for name, _ in rows:
        if name not in files:
            files.append(name)
    W, H, left, bottom, top = 760, 380, 60, 70, 40
    plot_w, plot_h = W - left - 20, H - bottom - top
    ymax = max(2.0, max(v[2] for v in rows.values()) * 1.1)
    y = lambda v: top + plot_h * (1 - v / ymax)
    group = plot_w / max(1, len(files))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">transit / llama.cpp, tokens per second (same machine, same files, 2 threads)</text>' % left]
    t = 0.0
    while t <= ymax + 1e-9:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (left, left + plot_w, y(t), y(t)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.1f×</text>' % (left - 6, y(t) + 4, t))
        t += 0.5
    for i, name in enumerate(files):
        x0 = left + i * group
        for j, (prefix, colour) in enumerate((("pp", "#3b6fb6"), ("tg", "#e08a2c"))):
            key = next((k for k in rows if k[0] == name and k[1].startswith(prefix)), None)
            if not key:
                continue
            r, lo, hi = rows[key]
            bx, bw = x0 + group * (0.18 + 0.33 * j), group * 0.3
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (bx, y(r), bw, y(0) - y(r), colour))
            cx = bx + bw / 2
            out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>' % (cx, cx, y(lo), y(hi)))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>' % (cx, y(hi) - 4, r))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x0 + group / 2, top + plot_h + 18,
                                                                          name.replace("tinyllama-", "")))
    for v, colour, dash, label in ((1.0, "#888", "", "parity"), (1.2, "#3b6fb6", "6,4", "prefill goal 1.2×"),
                                   (1.1, "#e08a2c", "6,4", "decode goal 1.1×")):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="%s"/>' % (
            left, left + plot_w, y(v), y(v), colour, dash))
    legend = ((("#3b6fb6", "prefill (pp)"), ("#e08a2c", "decode (tg)")))
    for k, (colour, label) in enumerate(legend):
        lx = left + 10 + 150 * k
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, H - 30, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 18, H - 20, label))
    out.append('<text x="%d" y="%d">whiskers: min-max of the rounds; dashed: design §7 goals</text>' % (left + 300, H - 20))
    out.append('</svg>')
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bench", help="one llama-bench binary for every file")
    ap.add_argument("--peer-dir", default=os.path.expanduser("~/.cache/transit-peer"))
    ap.add_argument("--transit", default=TRANSIT, help="the transit binary (default: build/transit)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--svg", help="also draw the ratios as a bar chart (SVG)")
    ap.add_argument("--replot", nargs="+", metavar="TABLE.md", help="draw --svg from earlier tables; run nothing")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.replot:
        if not a.svg:
            ap.error("--replot needs --svg FILE.svg")
        rows = read_tables(a.replot)
        if not rows:
            ap.error("no rows of bench_peer.py's table in %s" % ", ".join(a.replot))
        write_svg(rows, a.svg)
        return
    if not a.files:
        ap.error("give the GGUF files to measure")
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
    lines = ["| file | llama.cpp build | test | llama.cpp t/s | transit t/s | ratio (min-max) | transit decode, share of the bound |",
             "|---|---|---|---:|---:|---:|---|"]
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
            lines.append("| %s | %s | %s | %s | %s | %.2f× (%.2f-%.2f) | %s |" % (
                os.path.basename(f), bench[f][1], key, spread(lr), spread(tr), statistics.mean(ratios), min(ratios),
                max(ratios), sh))
    print("\n".join(lines))
    if a.svg:
        rows = {}
        for line in lines:
            m = TABLE_ROW.match(line)
            if m:
                rows[(re.sub(r"\.gguf$", "", m.group(1)), m.group(2))] = tuple(float(m.group(i)) for i in (3, 4, 5))
        write_svg(rows, a.svg)


if __name__ == "__main__":
    main()
