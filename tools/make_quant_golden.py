#!/usr/bin/env python3
"""make_quant_golden.py: golden dequantized values for every quantized type transit reads
(tests/golden/quant/), from the `gguf` package's dequantize (PyPI gguf; the independent definition of
each type's values, design §10). tests/test_quant.c checks transit's dequantization bit for bit.

Three sources of blocks, per type:
  synthetic   random blocks whose scales are set on purpose: ordinary, the largest f16 (65504),
              f16 subnormals, zero, negative (Q4_1/Q5_1 minima, k-quant dmin), and all-zero blocks
  llama.cpp   the first rows of a tensor of each type in files written by llama-quantize (--llama-gguf
              FILE..., e.g. the default model as Q4_K_M, Q5_K_M, Q8_0, Q4_0, Q4_1, Q5_1)
  transit     the same from files written by `transit quantize` (--transit-gguf FILE...)

What it writes: quant/<source>_<type>.bin, the rows' raw blocks followed by the float32 values gguf
gives them (little-endian), and quant/index.txt: "<file> <type> <n_weights>" per line.

Usage: tools/make_quant_golden.py [--out DIR] [--llama-gguf F...] [--transit-gguf F...]
"""
import argparse
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGML_QUANT_SIZES, GGUFReader
from gguf.quants import dequantize

TYPES = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q5_0": Q.Q5_0, "q5_1": Q.Q5_1, "q4_K": Q.Q4_K,
         "q5_K": Q.Q5_K, "q6_K": Q.Q6_K}
NAMES = {v: k for k, v in TYPES.items()}

# f16 bit patterns of the scales the synthetic blocks get: ordinary values of both signs, the largest
# finite f16, the smallest normal and subnormals, zero and negative zero
SCALES = [np.float16(x).view(np.uint16) for x in (0.01, -0.02, 0.5, 1.0, 3.0)] + \
         [0x7BFF, 0xFBFF, 0x0400, 0x0001, 0x03FF, 0x0000, 0x8000]


def f16_offsets(qtype):
    """Byte offsets of the f16 fields of a block: (scale-like fields, minimum-like fields)."""
    return {Q.Q8_0: ([0], []), Q.Q4_0: ([0], []), Q.Q5_0: ([0], []), Q.Q4_1: ([0], [2]), Q.Q5_1: ([0], [2]),
            Q.Q4_K: ([0], [2]), Q.Q5_K: ([0], [2]), Q.Q6_K: ([208], [])}[qtype]


def synthetic(qtype, n_blocks, rng):
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    scales, minima = f16_offsets(qtype)
    for b in range(n_blocks):
        if b % 7 == 6:  # an all-zero block
            raw[b, :] = 0
            continue
        for off in scales:
            raw[b, off:off + 2] = np.array([SCALES[b % len(SCALES)]], dtype="<u2").view(np.uint8)
        for i, off in enumerate(minima):
            m = np.float16(-0.3 if b % 3 == 0 else 0.25 * (b % 5)).view(np.uint16) if b % 4 else SCALES[(b + 3) % len(SCALES)]
            raw[b, off:off + 2] = np.array([m], dtype="<u2").view(np.uint8)
    return raw.reshape(-1)


def write(out, name, qtype, raw, index):
    values = dequantize(raw, qtype).astype("<f4").reshape(-1)
    if not np.all(np.isfinite(values)):
        raise SystemExit("%s: gguf gives non-finite values" % name)
    with open(os.path.join(out, name), "wb") as f:
        f.write(raw.tobytes())
        f.write(values.tobytes())
    index.append("%s %s %d" % (name, NAMES[qtype], values.size))


def rows_from_gguf(path, n_rows=2):
    """The first n_rows rows of the first tensor of each quantized type in a GGUF file."""
    seen = {}
    for t in GGUFReader(path).tensors:
        qt = Q(t.tensor_type)
        if qt not in NAMES or qt in seen:
            continue
        data = np.asarray(t.data)  # rows of raw bytes, [rows, row_bytes]
        seen[qt] = (t.name, data[:n_rows].reshape(-1).astype(np.uint8))
    return seen


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "quant"))
    ap.add_argument("--llama-gguf", nargs="*", default=[])
    ap.add_argument("--transit-gguf", nargs="*", default=[])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(20261130)
    index = []
    for name, qt in TYPES.items():
        n_blocks = 24 if GGML_QUANT_SIZES[qt][0] == 256 else 64
        write(a.out, "synthetic_%s.bin" % name, qt, synthetic(qt, n_blocks, rng), index)
    for source, files in (("llama", a.llama_gguf), ("transit", a.transit_gguf)):
        done = set()
        for path in files:
            for qt, (tname, raw) in rows_from_gguf(path).items():
                if qt in done:
                    continue
                done.add(qt)
                write(a.out, "%s_%s.bin" % (source, NAMES[qt]), qt, raw, index)
                print("%-8s %-5s from %s (%s)" % (source, NAMES[qt], os.path.basename(path), tname))
        missing = [n for n, q in TYPES.items() if files and q not in done]
        if missing:
            print("%s: no tensor of %s in the files given" % (source, ", ".join(missing)))
    with open(os.path.join(a.out, "index.txt"), "w") as f:
        f.write("\n".join(index) + "\n")
    print("%d golden files in %s" % (len(index), a.out))


if __name__ == "__main__":
    main()
