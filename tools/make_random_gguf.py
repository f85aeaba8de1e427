#!/usr/bin/env python3
"""Random-weight LLaMA GGUF files of real shapes, for speed work (throughput does not depend on the
values of the weights). Writes a complete, loadable model: hyperparameters, every tensor, and a
SentencePiece-style vocabulary (control tokens, the 256 byte tokens, then filler pieces).

  python3 tools/make_random_gguf.py --shape tinyllama --dtype f16 -o /tmp/tinyllama-f16.gguf
  python3 tools/make_random_gguf.py --shape llama7b --dtype f16 -o /tmp/llama7b-f16.gguf
  python3 tools/make_random_gguf.py --dim 256 --layers 4 --heads 8 --kv-heads 2 --ffn 688 -o small.gguf
  python3 tools/make_random_gguf.py --shape tinyllama --arch diffllama -o /tmp/tinydiff-f16.gguf

--arch diffllama writes the same matrices as --arch llama with the same seed (design §4's DiffLlama
form: keys under "diffllama.", plus four lambda vectors per layer drawn from a second generator), so
the two files differ only in their attention: `transit bench -m LLAMA --vs DIFFLLAMA` measures it.

Weights are drawn N(0, 0.02) with a fixed seed (norm weights are 1), so activations stay finite.
"""
import argparse

import numpy as np

import gguf

SHAPES = {
    # name: dim, layers, heads, kv heads, ffn, vocab
    "llama7b": (4096, 32, 32, 32, 11008, 32000),
    "tinyllama": (2048, 22, 32, 4, 5632, 32000),
    "small": (256, 4, 8, 2, 688, 4096),
}
DTYPES = {"f32": np.float32, "f16": np.float16}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=SHAPES, default="small")
    ap.add_argument("--dim", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--ffn", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--ctx", type=int, default=32768)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", choices=["llama", "diffllama"], default="llama")
    ap.add_argument("--tile", action="store_true",
                    help="fill the matrices with one pool of 2^24 random values, shifted per matrix: "
                    "seconds instead of minutes for LLaMA-7B; no effect on speed measurements")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    dim, layers, heads, kv, ffn, vocab = SHAPES[a.shape]
    dim, layers, heads = a.dim or dim, a.layers or layers, a.heads or heads
    kv, ffn, vocab = a.kv_heads or kv, a.ffn or ffn, a.vocab or vocab
    hd = dim // heads
    rng = np.random.default_rng(a.seed)

    if a.arch == "diffllama" and (heads % 2 or kv % 2):
        ap.error("diffllama pairs heads: --heads and --kv-heads must be even")
    lambdas = np.random.default_rng(a.seed + 1)  # a second stream: the matrices stay those of --arch llama
    w = gguf.GGUFWriter(a.out, a.arch)
    w.add_name(f"random-{a.shape}-{a.dtype}")
    w.add_context_length(a.ctx)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_block_count(layers)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [f"\u2581t{i}" for i in range(vocab - len(pieces))]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * 259 + [-float(i) for i in range(vocab - 259)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    pool = rng.standard_normal(1 << 24, dtype=np.float32) * 0.02 if a.tile else None

    def mat(rows, cols):
        if pool is None:
            x = rng.standard_normal((rows, cols), dtype=np.float32) * 0.02
        else:  # the pool, from a random start, repeated: memory speed, for benchmarks of big shapes
            n = rows * cols
            start = int(rng.integers(len(pool)))
            x = np.resize(np.roll(pool, -start), n).reshape(rows, cols)
        if a.dtype == "bf16":
            bits = (x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)) >> 16
            return bits.astype(np.uint16), gguf.GGMLQuantizationType.BF16
        return x.astype(DTYPES[a.dtype]), None

    def add(name, arr_and_type):
        arr, qtype = arr_and_type
        if qtype is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=qtype)

    add("token_embd.weight", mat(vocab, dim))
    w.add_tensor("output_norm.weight", np.ones(dim, dtype=np.float32))
    add("output.weight", mat(vocab, dim))
    for l in range(layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, dtype=np.float32))
        add(p + "attn_q.weight", mat(heads * hd, dim))
        add(p + "attn_k.weight", mat(kv * hd, dim))
        add(p + "attn_v.weight", mat(kv * hd, dim))
        add(p + "attn_output.weight", mat(dim, heads * hd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, dtype=np.float32))
        add(p + "ffn_gate.weight", mat(ffn, dim))
        add(p + "ffn_up.weight", mat(ffn, dim))
        add(p + "ffn_down.weight", mat(dim, ffn))
        for name in ("q1", "k1", "q2", "k2") if a.arch == "diffllama" else ():
            w.add_tensor(p + "attn_lambda_" + name, (lambdas.standard_normal(hd) * 0.1).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{a.out}: {a.arch}, dim {dim}, {layers} layers, {heads}/{kv} heads, ffn {ffn}, vocab {vocab}, {a.dtype}")


if __name__ == "__main__":
    main()
