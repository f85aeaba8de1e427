#!/usr/bin/env python3
"""Golden logits of Llama-3-shaped random models (design §11) from transformers' `LlamaForCausalLM`:
the real vocabulary of 128,256 tokens (Llama 3's tokenizer from ../shared/models/llama3-tokenizer),
GQA, llama3 RoPE scaling with Llama 3.1's and 3.2's parameters, tied and untied output.

Their weights would be tens of MB in the repository, so they are not stored: every weight is a
function of its tensor's index and its element's index (weight_values below: an integer hash, exact
in float32), which tests/test_llama3.c computes the same way to write the same safetensors file.
Only the configs, the prompt ids and part of the logits are committed: for each prompt position the
logits of every 61st token id (2,103 of 128,256), float32, in tests/golden/llama3/<name>.npy.

  name      hidden  H  Hkv  head_dim  layers  rope_scaling (llama3)                   tied
  l31         32    4   2     16        2     factor 8, low 1, high 4, orig 8192      yes
  l32         32    8   2     16        2     factor 32, low 1, high 4, orig 8192     no

Run from the repository root with torch, transformers, numpy and safetensors:
  /work/venv-diff/bin/python tools/make_llama3_golden.py
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 128256
STRIDE = 61  # logits of token ids 0, 61, 122, ... are kept
MODELS = {
    # name: hidden, H, Hkv, hd, layers, factor, tied
    "l31": (32, 4, 2, 16, 2, 8.0, True),
    "l32": (32, 8, 2, 16, 2, 32.0, False),
}
# the prompt: Llama 3 token ids (BOS, then ids spread over the vocabulary, a special token among them)
PROMPT = [128000] + [(i * 7919 + 13) % 128000 for i in range(30)] + [128009, 271, 9906]


def weight_values(tensor_index, n, std):
    """Element i of tensor number tensor_index: std * 2 * (h / 2^24 - 1/2), h = 24 bits of an integer
    hash of (tensor_index, i); every step is exact in float32 (tests/test_llama3.c does the same)."""
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(tensor_index) * np.uint64(40503) + np.uint64(12345)) & np.uint64(0xFFFFFFFF)
    h = (h ^ (h >> np.uint64(15))) & np.uint64(0xFFFFFF)
    unit = h.astype(np.float32) / np.float32(1 << 24) - np.float32(0.5)
    return (unit * np.float32(2.0 * std)).astype(np.float32)


def tensor_list(hidden, H, Hkv, hd, L, tied):
    """(HF name, shape, std) in the order whose index seeds each tensor; norms are 1 + small values."""
    ffn = 2 * hidden
    out = [("model.embed_tokens.weight", (VOCAB, hidden), 0.5), ("model.norm.weight", (hidden,), -0.1)]
    for l in range(L):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (hidden,), -0.1),
                (p + "self_attn.q_proj.weight", (H * hd, hidden), 0.3),
                (p + "self_attn.k_proj.weight", (Hkv * hd, hidden), 0.3),
                (p + "self_attn.v_proj.weight", (Hkv * hd, hidden), 0.3),
                (p + "self_attn.o_proj.weight", (hidden, H * hd), 0.3),
                (p + "post_attention_layernorm.weight", (hidden,), -0.1),
                (p + "mlp.gate_proj.weight", (ffn, hidden), 0.3),
                (p + "mlp.up_proj.weight", (ffn, hidden), 0.3),
                (p + "mlp.down_proj.weight", (hidden, ffn), 0.3)]
    if not tied:
        out.append(("lm_head.weight", (VOCAB, hidden), 0.5))
    return out


def weights(spec):
    sd = {}
    for idx, (name, shape, std) in enumerate(spec):
        n = int(np.prod(shape))
        v = weight_values(idx, n, abs(std))
        if std < 0:  # a norm: 1 + a small value
            v = (np.float32(1.0) + v).astype(np.float32)
        sd[name] = torch.from_numpy(v.reshape(shape))
    return sd


def config(name):
    hidden, H, Hkv, hd, L, factor, tied = MODELS[name]
    return dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=VOCAB, hidden_size=hidden,
                intermediate_size=2 * hidden, num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=Hkv,
                head_dim=hd, hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
                rope_theta=500000.0, tie_word_embeddings=tied, bos_token_id=128000,
                eos_token_id=[128001, 128008, 128009],
                rope_scaling={"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "llama3"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    meta = {}
    for name, (hidden, H, Hkv, hd, L, factor, tied) in MODELS.items():
        cfg = config(name)
        d = os.path.join("/tmp", f"transit_llama3_golden_{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        sd = weights(tensor_list(hidden, H, Hkv, hd, L, tied))
        save_file(sd, os.path.join(d, "model.safetensors"))
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(args.shared, "models", "llama3-tokenizer", fn), os.path.join(d, fn))
        model = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        assert model.config.rope_scaling["rope_type"] == "llama3"
        with torch.no_grad():
            logits = model(torch.tensor([PROMPT])).logits[0].float().numpy()
        kept = logits[:, ::STRIDE].astype(np.float32)
        np.save(os.path.join(args.out, f"{name}.npy"), kept)
        with open(os.path.join(args.out, f"{name}.config.json"), "w") as f:
            json.dump(cfg, f, indent=1, sort_keys=True)
            f.write("\n")
        meta[name] = dict(config=f"{name}.config.json", logits=f"{name}.npy", shape=list(kept.shape), stride=STRIDE,
                          prompt=PROMPT, argmax=[int(a) for a in logits.argmax(-1)],
                          versions={"transformers": transformers.__version__, "torch": torch.__version__})
        print(f"{name}: logits {logits.shape}, kept {kept.shape}")
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
