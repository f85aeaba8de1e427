#!/usr/bin/env python3
"""Golden logits for Attention Transition (design §3), from PyTorch on top of transformers'
LlamaForCausalLM (CPU, float32), and a self-check of the PyTorch reference itself.

1. Self-check: the vectorised reference used for the goldens (`transition_vectorised`) and a
   literal, loop-by-loop transcription of design §3 (`transition_literal`) are run on random
   attention matrices in float64; the elimination decisions and marks must agree exactly and the
   re-weighted probabilities to 1e-12 relative (the two sum in different orders).
2. Goldens: for ../shared/models/{stories260K,aidreams260K}/hf and prompts of 400, 401, 517 and 640
   random token ids, the logits with the transition on (defaults, `adding`), plus `multi` and a
   non-default parameter set at 517 tokens. Prompts are redrawn until every probability of every
   touched row is at least 1e-5 relative away from its threshold, so float rounding cannot flip an
   elimination (design §6). Written to tests/golden/transition/: <model>.<case>.ids, .npy (the
   logits of the rows listed in .rows, to keep the files small) and cases.json.

  python3 tools/make_transition_golden.py [--shared ../shared]
"""
import argparse
import json
import os

import numpy as np
import torch
from transformers import AttentionInterface, LlamaForCausalLM

DEFAULTS = dict(min_len=400, blocks=2, alpha=0.5, beta=0.1, strategy="adding")
CASES = [
    ("n400", 400, {}),
    ("n401", 401, {}),
    ("n517", 517, {}),
    ("n640", 640, {}),
    ("n517_multi", 517, {"strategy": "multi"}),
    ("n517_custom", 517, {"alpha": 0.7, "beta": 0.25, "blocks": 3, "min_len": 300}),
]
MARGIN = 1e-5


def schedule(n_layers, n, prm):
    """{layer: [start, ...]} and iv, exactly as design §3."""
    touched = n_layers - 3
    if touched < 1 or n < prm["min_len"]:
        return {}, 0
    iv = n // (touched + 2 + prm["blocks"])
    iv -= iv % 5
    if iv == 0:
        return {}, 0
    return {l: [(l - 1 + j + 2) * iv for j in range(prm["blocks"])] for l in range(1, n_layers - 2)}, iv


def transition_vectorised(p, starts, iv, prm):
    """p: [heads, n, n] causal probabilities (modified copy returned). Whole blocks at once."""
    p = p.clone()
    for start in starts:
        end = start + iv
        t = prm["alpha"] / end
        blk = p[:, start:end, :end]  # view
        blk[blk < t] = 0
        blk[:, :, 0] /= 2
        removed = 1 - blk.sum(-1, keepdim=True)
        if prm["strategy"] == "multi":
            kept = blk.sum(-1, keepdim=True)
            scale = torch.where(kept > 0, 1 + removed / kept, torch.zeros_like(kept))
            blk *= scale
            continue
        P = blk[:, :, start - 2 * iv : end - iv]
        m = torch.where(P >= t, torch.ones_like(P), torch.full_like(P, 0.01))
        share = prm["beta"] * removed / m.sum(-1, keepdim=True)
        blk[:, :, start - iv : end - iv] += 7 * share * m[:, :, iv:]
        blk[:, :, start - 2 * iv : end - 2 * iv] += 3 * share * m[:, :, :iv]
    return p


def transition_literal(p, starts, iv, prm):
    """The same, one row and one weight at a time, following the numbered steps of design §3."""
    p = p.copy()
    heads, n, _ = p.shape
    for h in range(heads):
        for start in starts:
            end = start + iv
            for r in range(start, end):
                row = p[h, r]
                t = prm["alpha"] / end  # 1
                for c in range(end):  # 2
                    if row[c] < t:
                        row[c] = 0.0
                row[0] /= 2  # 3
                removed = 1.0 - sum(row[c] for c in range(end))  # 4
                if prm["strategy"] == "multi":
                    kept = 1.0 - removed
                    for c in range(end):
                        row[c] *= (1 + removed / kept) if kept > 0 else 0.0
                    continue
                marks = {c: (1.0 if row[c] >= t else 0.01) for c in range(start - 2 * iv, end - iv)}  # 5
                share = prm["beta"] * removed / sum(marks.values())
                for c in range(start - iv, end - iv):  # 6
                    row[c] += 7 * share * marks[c]
                for c in range(start - 2 * iv, end - 2 * iv):
                    row[c] += 3 * share * marks[c]
    return p


def self_check():
    rng = np.random.default_rng(7)
    for prm in [DEFAULTS, dict(DEFAULTS, strategy="multi"), dict(DEFAULTS, alpha=0.8, beta=0.3, blocks=3)]:
        for n, heads in [(60, 3), (97, 2)]:
            s = rng.standard_normal((heads, n, n)) * 2
            s[:, np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]] = -np.inf
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            iv = 10 if n == 60 else 15
            starts = [2 * iv + j * iv for j in range(prm["blocks"]) if 2 * iv + (j + 1) * iv <= n]
            a = transition_vectorised(torch.from_numpy(p), starts, iv, prm).numpy()
            b = transition_literal(p, starts, iv, prm)
            assert np.array_equal(a == 0, b == 0), "elimination decisions differ"
            err = np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
            assert err < 1e-12, f"re-weighted probabilities differ by {err}"
    print("self-check: vectorised and literal codings of design §3 agree")


class Transition:
    """An attention function for transformers that applies the transition during one prefill."""

    def __init__(self, n_layers):
        self.n_layers, self.prm, self.margin = n_layers, dict(DEFAULTS), np.inf

    def __call__(self, module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        groups = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
        n = query.shape[2]
        s = torch.matmul(query, key.transpose(2, 3)) * scaling
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        p = torch.softmax(s, dim=-1, dtype=torch.float32)
        blocks, iv = schedule(self.n_layers, n, self.prm)
        starts = blocks.get(module.layer_idx, [])
        if starts:
            for start in starts:
                t = self.prm["alpha"] / (start + iv)
                rows = p[0, :, start : start + iv, : start + iv].double()
                rel = torch.cat([(rows - t).abs().flatten(), (rows[..., 0] / 2 - t).abs().flatten()]) / t
                self.margin = min(self.margin, rel.min().item())
            p = transition_vectorised(p[0], starts, iv, self.prm)[None]
        out = torch.matmul(p, value).transpose(1, 2).contiguous()
        return out, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "transition"))
    args = ap.parse_args()
    self_check()
    os.makedirs(args.out, exist_ok=True)
    meta = {}
    for name in ["stories260K", "aidreams260K"]:
        path = os.path.join(args.shared, "models", name, "hf")
        model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        fn = Transition(model.config.num_hidden_layers)
        AttentionInterface.register("transition_golden", fn)
        model.config._attn_implementation = "transition_golden"
        for layer in model.model.layers:
            layer.self_attn.config._attn_implementation = "transition_golden"
        model.eval()
        for case, n, over in CASES:
            fn.prm = dict(DEFAULTS, **over)
            for seed in range(100):
                ids = np.random.default_rng(1000 * n + seed).integers(3, model.config.vocab_size, size=n)
                fn.margin = np.inf
                with torch.no_grad():
                    logits = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
                if fn.margin >= MARGIN:
                    break
            else:
                raise SystemExit(f"{name} {case}: no prompt with threshold margin >= {MARGIN}")
            rows = sorted(set(range(0, n, 16)) | set(range(n - 4, n)))
            stem = os.path.join(args.out, f"{name}.{case}")
            with open(stem + ".ids", "w") as f:
                f.write(" ".join(str(int(i)) for i in ids) + "\n")
            with open(stem + ".rows", "w") as f:
                f.write(" ".join(str(r) for r in rows) + "\n")
            np.save(stem + ".npy", logits[rows].astype(np.float32))
            blocks, iv = schedule(model.config.num_hidden_layers, n, fn.prm)
            meta[f"{name}.{case}"] = dict(n=n, params=fn.prm, iv=iv, blocks=blocks, margin=fn.margin, seed=seed)
            print(f"{stem}: n={n} iv={iv} margin={fn.margin:.2e} params={fn.prm}")
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
