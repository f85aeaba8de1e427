#!/usr/bin/env python3
"""make_fuzz_seeds.py: writes the seed corpora of the loader fuzzers under tests/fuzz/corpus/.

The seeds are tiny synthetic LLaMA checkpoints (dim 8, 1 layer, 2 heads of 4, 1 KV head, ffn 12,
6 tokens), a few KB each, plus a few damaged variants so that the fuzzers start next to the error
paths. They are generated, never copied from the shared models, and deterministic (fixed seeds), so
re-running this script reproduces the same files.

    python3 tools/make_fuzz_seeds.py [--out tests/fuzz/corpus]

Needs numpy and gguf (pip install numpy gguf).
"""
import argparse
import json
import os
import struct

import numpy as np

DIM, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB, LAYERS = 8, 12, 2, 1, 4, 6, 1
PIECES = ["<unk>", "<s>", "</s>", "\u2581a", "b", "<0x0A>"]
TOKEN_TYPES = [2, 3, 3, 1, 1, 6]


def gguf_tensors(rng, kv_heads=KV_HEADS, diff=False, vocab=VOCAB, scale=1):
    """Canonical GGUF names and arrays in numpy (row-major) shape, i.e. reversed ne. diff: DiffLlama's
    four lambda vectors per layer too. scale multiplies every width (4: rows of 32 and 48, whole
    blocks of the 32-weight quantized types)."""
    DIM, FFN, HEAD_DIM = globals()["DIM"] * scale, globals()["FFN"] * scale, globals()["HEAD_DIM"] * scale
    t = {
        "token_embd.weight": (vocab, DIM),
        "output_norm.weight": (DIM,),
        "output.weight": (vocab, DIM),
    }
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        t[p + "attn_norm.weight"] = (DIM,)
        t[p + "attn_q.weight"] = (HEADS * HEAD_DIM, DIM)
        t[p + "attn_k.weight"] = (kv_heads * HEAD_DIM, DIM)
        t[p + "attn_v.weight"] = (kv_heads * HEAD_DIM, DIM)
        t[p + "attn_output.weight"] = (DIM, HEADS * HEAD_DIM)
        t[p + "ffn_norm.weight"] = (DIM,)
        t[p + "ffn_gate.weight"] = (FFN, DIM)
        t[p + "ffn_up.weight"] = (FFN, DIM)
        t[p + "ffn_down.weight"] = (DIM, FFN)
        for lam in ("q1", "k1", "q2", "k2") if diff else ():
            t[p + "attn_lambda_" + lam] = (HEAD_DIM,)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in t.items()}


def byte_chars():
    """GPT-2's bytes-to-unicode characters, in byte order (printable bytes as themselves, the rest
    shifted to 256 and up)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def write_gguf(path, tensors, dtype=np.float32, tied=False, alignment=None, arch="llama", kv_heads=KV_HEADS,
               hidden_act=None, bpe_vocab=False, quant=None):
    """quant: a gguf.GGMLQuantizationType for the matrices (their rows must be whole blocks)."""
    import gguf

    dim, ffn = tensors["token_embd.weight"].shape[1], tensors["blk.0.ffn_up.weight"].shape[0]
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(64)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_block_count(LAYERS)
    w.add_head_count(HEADS)
    w.add_head_count_kv(kv_heads)
    if hidden_act:  # transit's key (docs/gguf.md)
        w.add_string(f"{arch}.hidden_act", hidden_act)
    w.add_rope_dimension_count(tensors["blk.0.attn_q.weight"].shape[0] // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    if alignment:
        w.add_custom_alignment(alignment)
    if bpe_vocab:  # the 256 byte characters of GPT-2's mapping, 5 merges, a special token: 262 tokens
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        pieces = byte_chars() + ["ab", "\u0120a", "\u0120ab", "ba", "\u0120\u0120", "<|end|>"]
        w.add_token_list(pieces)
        w.add_token_types([1] * 261 + [3])
        w.add_token_merges(["a b", "\u0120 a", "\u0120a b", "b a", "\u0120 \u0120"])
    else:
        w.add_tokenizer_model("llama")
        w.add_token_list(PIECES)
        w.add_token_scores([-float(i) for i in range(VOCAB)])
        w.add_token_types(TOKEN_TYPES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for name, a in tensors.items():
        if tied and name == "output.weight":
            continue
        if quant is not None and a.ndim == 2 and a.shape[1] % 32 == 0:
            from gguf.quants import quantize
            w.add_tensor(name, quantize(a, quant), raw_dtype=quant)
        else:
            w.add_tensor(name, a if a.ndim == 1 else a.astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(name):
    if name in HF_NAMES:
        return HF_NAMES[name]
    _, layer, rest = name.split(".", 2)
    return f"model.layers.{layer}.{HF_NAMES[rest]}"


def bf16_bytes(a):
    """float32 -> bfloat16 by truncation (numpy has no bfloat16)."""
    return (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def safetensors_bytes(tensors, dtype="F32", pad_to=8, extra_header=None):
    """A safetensors image written by hand, so dtype and header padding can be chosen."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        dt = "F32" if a.ndim == 1 else dtype
        if dt == "F32":
            raw = a.astype("<f4").tobytes()
        elif dt == "F16":
            raw = a.astype("<f2").tobytes()
        else:
            raw = bf16_bytes(a)
        header[hf_name(name)] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    if extra_header:
        header.update(extra_header)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad_to:
        text += b" " * ((-(8 + len(text))) % pad_to)
    else:  # leave the data misaligned for f32 on purpose
        text += b" " * ((3 - (8 + len(text))) % 4)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": DIM,
    "intermediate_size": FFN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "head_dim": HEAD_DIM,
    "vocab_size": VOCAB,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": [2],
    "rope_scaling": None,
}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fuzz", "corpus"))
    args = ap.parse_args()
    rng = np.random.default_rng(260)
    tensors = gguf_tensors(rng)

    d = os.path.join(args.out, "fuzz_gguf")
    os.makedirs(d, exist_ok=True)
    write_gguf(os.path.join(d, "tiny_f32.gguf"), tensors)
    write_gguf(os.path.join(d, "tiny_f16_tied.gguf"), tensors, dtype=np.float16, tied=True)
    write_gguf(os.path.join(d, "tiny_align8.gguf"), tensors, alignment=8)
    # a byte-level BPE vocabulary (Llama 3's form): gpt2 model, merges, pre llama-bpe
    write_gguf(os.path.join(d, "tiny_gpt2_vocab.gguf"), gguf_tensors(np.random.default_rng(262), vocab=262),
               bpe_vocab=True)
    # DiffLlama (design §4): kv heads even, lambda vectors, a GEGLU
    write_gguf(os.path.join(d, "tiny_diffllama.gguf"), gguf_tensors(np.random.default_rng(261), 2, diff=True),
               arch="diffllama", kv_heads=2, hidden_act="gelu")
    good = open(os.path.join(d, "tiny_f32.gguf"), "rb").read()
    write(os.path.join(d, "bad_truncated.gguf"), good[: len(good) // 3])
    write(os.path.join(d, "bad_version1.gguf"), good[:4] + struct.pack("<I", 1) + good[8:])
    write(os.path.join(d, "bad_tensor_count.gguf"), good[:8] + struct.pack("<Q", 1 << 60) + good[16:])
    # the first tensor's type id (just after its name, n_dims and dims) set to Q4_0: rows of 8 are
    # not whole blocks
    name = b"token_embd.weight"
    at = good.index(name) + len(name) + 4 + 2 * 8
    write(os.path.join(d, "bad_q4_0.gguf"), good[:at] + struct.pack("<I", 2) + good[at + 4 :])
    # quantized matrices: widths times 4, rows of 32 quantized (ffn_down's rows of 48 are not whole
    # blocks and stay f32, as a mixed file has them)
    import gguf
    qt = gguf_tensors(np.random.default_rng(263), scale=4)
    for q, fn in ((gguf.GGMLQuantizationType.Q8_0, "tiny_q8_0.gguf"), (gguf.GGMLQuantizationType.Q4_0, "tiny_q4_0.gguf")):
        write_gguf(os.path.join(d, fn), qt, quant=q)

    d = os.path.join(args.out, "fuzz_safetensors")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "tiny_f32.safetensors"), safetensors_bytes(tensors))
    write(os.path.join(d, "tiny_f16_misaligned.safetensors"), safetensors_bytes(tensors, "F16", pad_to=0))
    write(os.path.join(d, "tiny_bf16.safetensors"), safetensors_bytes(tensors, "BF16"))
    extra = {"model.rotary_emb.inv_freq": {"dtype": "I64", "shape": [0], "data_offsets": [0, 0]}}
    write(os.path.join(d, "tiny_extra_i64.safetensors"), safetensors_bytes(tensors, extra_header=extra))
    good = safetensors_bytes(tensors)
    write(os.path.join(d, "bad_truncated.safetensors"), good[:200])
    write(os.path.join(d, "bad_header_len.safetensors"), struct.pack("<Q", 1 << 40) + good[8:])
    bad = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 4]}}).encode()
    write(os.path.join(d, "bad_offsets.safetensors"), struct.pack("<Q", len(bad)) + bad + bytes(16))

    d = os.path.join(args.out, "fuzz_hf_config")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "config.json"), json.dumps(CONFIG, indent=2).encode())
    write(os.path.join(d, "config_minimal.json"),
          json.dumps({k: CONFIG[k] for k in ("model_type", "hidden_size", "intermediate_size",
                                             "num_hidden_layers", "num_attention_heads", "vocab_size")}).encode())
    write(os.path.join(d, "config_bad_type.json"), json.dumps(dict(CONFIG, hidden_size="8")).encode())
    # found by fuzzing: a positive double that is 0.0 as a float
    write(os.path.join(d, "config_eps_underflow.json"), json.dumps(dict(CONFIG, rms_norm_eps=1e-55)).encode())
    write(os.path.join(d, "config_diffllama.json"),
          json.dumps(dict(CONFIG, model_type="diffllama", architectures=["DiffLlamaForCausalLM"], num_key_value_heads=2,
                          hidden_act="gelu_pytorch_tanh", lambda_std_dev=0.1), indent=2).encode())
    # RoPE scaling (design §11): transformers 4's rope_scaling and 5's rope_parameters
    write(os.path.join(d, "config_llama3_rope.json"),
          json.dumps(dict(CONFIG, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                          eos_token_id=[2, 5]), indent=2).encode())
    write(os.path.join(d, "config_rope_parameters.json"),
          json.dumps(dict({k: v for k, v in CONFIG.items() if k != "rope_theta"},
                          rope_parameters={"rope_theta": 500000.0, "rope_type": "linear", "factor": 4.0})).encode())
    write(os.path.join(d, "tokenizer_config.json"), b'{"add_bos_token": true, "bos_token": "<s>"}')
    index = {"metadata": {"total_size": 1234},
             "weight_map": {hf_name(n): f"model-0000{1 + i % 2}-of-00002.safetensors" for i, n in enumerate(tensors)}}
    write(os.path.join(d, "index.json"), json.dumps(index, indent=2).encode())
    write(os.path.join(d, "index_dotdot.json"), b'{"weight_map": {"a": "../x.safetensors"}}')


if __name__ == "__main__":
    main()
