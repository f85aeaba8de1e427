#!/usr/bin/env python3
"""Golden logits for RoPE scaling (design §11), from Hugging Face transformers' `LlamaForCausalLM`
(CPU, float32, eager attention) on three random-weight Llama-3-style models this script writes,
deterministically, into tests/golden/rope_scaling/models/:

  name          hidden  H  Hkv  head_dim  layers  theta    rope_scaling                                   tied
  l31_8192        128   4   2     64        2     500000   llama3: factor 8, low 1, high 4, orig 8192     yes
  l32_orig64      128   8   2     32        2     500000   llama3: factor 32, low 1, high 4, orig 64      no
  linear4          64   4   4     16        2     10000    linear: factor 4                               yes

The first has Llama 3.1's parameters, the second Llama 3.2's factor with a small
original_max_position_embeddings, so that its prompt runs past it; llama3 scaling changes the
frequencies at every position, so short prompts test it too. All: vocab 512, GQA as above, silu.
The config is written in transformers 4's form (a top-level `rope_theta` and `rope_scaling`, with
`rope_type`), which transformers 5 also reads; l32_orig64 additionally spells the type `type`.

Per model <name>: <name>.ids (the prompt, 100 seeded ids; 120 for l32_orig64) and <name>.npy (float32
logits [T, 512] of one forward), plus cases.json (configs, versions, and how far the logits are from
the same model without scaling, which must be far: the goldens then reject a loader that ignores it).

Run from the repository root with a virtualenv that has torch, transformers, numpy and safetensors
(the DiffLlama goldens' one works):
  /work/venv-diff/bin/python tools/make_rope_scaling_golden.py
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from golden_util import rel_rows, save_model_dir, write_ints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
MODELS = {
    # name: hidden, H, Hkv, hd, layers, theta, rope_scaling, tied, n_prompt, seed
    "l31_8192": (128, 4, 2, 64, 2, 500000.0,
                 {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}, True, 100, 3101),
    "l32_orig64": (128, 8, 2, 32, 2, 500000.0,
                   {"type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64}, False, 120, 3201),
    "linear4": (64, 4, 4, 16, 2, 10000.0, {"rope_type": "linear", "factor": 4.0}, True, 100, 4001),
}
FAR = 1e-2  # logits without the scaling must differ by more than this somewhere


def build(name, shared, out_dir, scaled=True):
    hidden, H, Hkv, hd, L, theta, scaling, tied, n_prompt, seed = MODELS[name]
    rs = dict(scaling)
    if "type" in rs:
        rs["rope_type"] = rs.pop("type")
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=L,
                      num_attention_heads=H, num_key_value_heads=Hkv, head_dim=hd, max_position_embeddings=131072,
                      rms_norm_eps=1e-5, rope_theta=theta, rope_scaling=rs if scaled else None,
                      tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2, hidden_act="silu")
    model = LlamaForCausalLM(cfg).float()
    rng = np.random.default_rng(seed)
    sd = {}
    for key, t in sorted(model.state_dict().items()):
        if tied and key == "lm_head.weight":
            continue
        if "rotary_emb" in key:
            continue
        std = None if key.endswith("norm.weight") else 0.15 if ("q_proj" in key or "k_proj" in key) else 0.08
        a = 1.0 + 0.05 * rng.standard_normal(t.shape) if std is None else std * rng.standard_normal(t.shape)
        sd[key] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(sd, strict=False)
    model.config._attn_implementation = "eager"
    model.eval()
    path = None
    if out_dir:
        path = os.path.join(out_dir, "models", name)
        save_model_dir(model, path, shared)
        cfg_path = os.path.join(path, "config.json")
        with open(cfg_path) as f:
            cj = json.load(f)
        # transformers 4's form, which both 4 and 5 read (5 writes rope_parameters instead)
        cj.pop("rope_parameters", None)
        cj["rope_theta"] = theta
        cj["rope_scaling"] = scaling
        with open(cfg_path, "w") as f:
            json.dump(cj, f, indent=2, sort_keys=True)
            f.write("\n")
    return model, path


def forward(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "rope_scaling"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    meta = {}
    for name, (hidden, H, Hkv, hd, L, theta, scaling, tied, n_prompt, seed) in MODELS.items():
        _, path = build(name, args.shared, args.out)
        # the goldens come from the saved directory, re-read: what is saved is what was measured
        model = LlamaForCausalLM.from_pretrained(path, attn_implementation="eager").float().eval()
        ids = [int(i) for i in np.random.default_rng(seed + 1).integers(0, VOCAB, size=n_prompt)]
        logits = forward(model, ids)
        plain, _ = build(name, args.shared, None, scaled=False)
        plain.load_state_dict(model.state_dict(), strict=False)
        far = float(rel_rows(forward(plain, ids), logits).max())
        assert far > FAR, f"{name}: scaling changes the logits by only {far:.1e}"
        write_ints(os.path.join(args.out, f"{name}.ids"), ids)
        np.save(os.path.join(args.out, f"{name}.npy"), logits.astype(np.float32))
        meta[name] = dict(model=f"repo:tests/golden/rope_scaling/models/{name}", rope_theta=theta, rope_scaling=scaling,
                          hidden=hidden, n_heads=H, n_kv_heads=Hkv, head_dim=hd, n_layers=L, tied=tied,
                          ids=f"{name}.ids", logits=f"{name}.npy", shape=[n_prompt, VOCAB],
                          unscaled_vs_golden_max_rel=far,
                          versions={"transformers": transformers.__version__, "torch": torch.__version__})
        print(f"{name}: {scaling} | without scaling {far:.2f} relative")
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
