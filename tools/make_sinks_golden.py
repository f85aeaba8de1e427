#!/usr/bin/env python3
"""Golden logits for StreamingLLM attention sinks (design §5), from the real `attention_sinks` 0.4.0
package (PyPI) on top of the transformers version it pins (4.34.0), CPU, float32, eager attention.

The reference: `attention_sinks.AutoModelForCausalLM.from_pretrained(dir, attention_sink_size=n_sink,
attention_sink_window_size=window)`, called step by step as `model(ids, past_key_values=past,
use_cache=True)` with the returned (already trimmed) `past_key_values` fed back. What the package does
(read from its source, and checked below): keys are cached before RoPE; a step of T new tokens appends
their keys/values, rotates every cached key by its index in the cache (0..n_kv-1) and every query by
its own index (n_kv-T+t), attends causally over all n_kv keys, and only after the step trims the cache
(`AttentionSinkKVCache.__call__`, wrapped around `LlamaModel.forward`) to its first n_sink plus last
window entries when it holds more than n_sink+window. So a prompt longer than the window is attended
densely in its step, and with one-token steps the first difference from full attention is at token
index n_sink+window+1; in general it is at the first token of the first step that starts after more than
n_sink+window tokens have been fed (the cache trimmed for the first time after the step before it).

Cases (ids: the model's own tokenizer on a story text, BOS first, extended with seeded random ids if
short; random ids in [0, 512) for the random-weight models):
  stream         n_sink 4, window 60, 200 tokens, one per step from the first
  prefill        n_sink 4, window 60, P = 100 tokens in one step, then 100 more one per step
  stream_s1w30   (stories260K) n_sink 1, window 30, 120 tokens one per step
  stream_s0w32   (stories260K) n_sink 0 (no sinks: a plain sliding window), window 32, 120 tokens
  chunk3         (stories260K, gqa2) n_sink 4, window 60, 200 tokens in steps of 3 from the start (the
                 last step 2): a step of T tokens attends over up to n_sink+window+T keys; first
                 divergence at 66 (the cache is first trimmed after the step ending at 66)
  chunk7         (stories260K, gqa2) the same in steps of 7 (the last step 4); first divergence at 70
  mixed          (stories260K, gqa2) n_sink 4, window 60, a first step of 100 tokens (denser than the
                 window), then steps of 1, 5, 2, 9, 3, 1, 5, ... (five cycles) up to 200 tokens
  (the multi-token-step cases use the same ids as `stream`, have `prefill` 0 and list their step
  lengths, in order, in cases.json as `steps`; logits are those of every fed token of every step)
for ../shared/models/{stories260K,aidreams260K}/hf and two random-weight GQA models that this script
writes (deterministically, numpy-seeded) into tests/golden/sinks/models/:
  gqa2  hidden 64, 4 heads / 2 KV heads, head_dim 16; gqa4  hidden 128, 8 heads / 2 KV heads, head_dim 16
  (transformers 4.34 requires head_dim = hidden / heads); both 2 layers, FFN 172, vocab 512, untied
  lm_head, rope theta 1e4, rms eps 1e-5; linear and embedding weights N(0, 0.05^2) except q/k
  projections N(0, 0.15^2) (so attention is not near-uniform and position errors show), RMSNorm
  weights 1 + N(0, 0.1^2); config.json, model.safetensors (F32) and stories260K's tokenizer files.

Checks (assertions; the script stops on any failure):
  1. the package's position-shift attention forward is injected into every layer, and after every step
     the returned cache holds min(n_seen, n_sink + window) entries;
  2. an independent float64 transcription of design §5 from the raw weights (`Sec5Ref`) gives the
     package's logits to 2e-5 relative (per row, L2) for every case, and also for an extra, unsaved run
     with multi-token steps after the cache is full (P = 100, then chunks of 7);
  3. the package's logits equal plain transformers full attention (one LlamaForCausalLM forward over the
     whole sequence) to 1e-5 relative for every position before the expected divergence point
     (n_sink+window+1 when streamed, P in the prefill case, in general the first step start after
     more than n_sink+window tokens: 66 for chunk3, 70 for chunk7, 100 for mixed) and differ by more
     than 1e-4 there;
     `first_divergence` in cases.json is the first position with relative difference > 1e-4, where
     the relative difference of a row is ||ref - full||_2 / ||full||_2 over the vocab;
  4. two wrong readings of §5 (keys rotated by their original position, i.e. no position shift; trimming
     before the step instead of after it) give logits that differ from the goldens by more than 1e-3
     relative in some saved row after the divergence point (recorded in cases.json as `wrong_*`), so
     a test with tolerance ~1e-4 tells them apart (not asserted for no_shift when n_sink = 0: with no
     sinks every cached key is shifted by the same amount and RoPE is relative, so the logits agree);
  5. `model.generate` (greedy, the package's documented use) gives per-step scores equal (1e-6) to the
     same step-by-step calls, fed the generated ids, for the stream and prefill settings of each model.

Written to tests/golden/sinks/: <model>.<case>.ids (fed ids), .rows (0-based positions saved), .npy
(float32 logits [len(rows), 512] of those rows: every 3rd position, [n_sink+window-2, n_sink+window+6],
[D-3, D+6] around the first divergence D (the first step after the first trim) in the prefill (D = P)
and multi-token-step cases, and the last 6), cases.json, and models/{gqa2,gqa4}/.

Needs its own virtualenv (transformers 4.34 and tokenizers 0.14, which cannot read the newer merges
format of the shared tokenizer.json files: the script rewrites the merges as "a b" strings in a temporary
copy and checks the result against tests/golden/tokenizer/<model>_hf.txt):
  python3 -m venv /work/venv-sinks
  /work/venv-sinks/bin/pip install attention_sinks==0.4.0 torch==2.1.2 "numpy<2" safetensors einops
  (einops: imported by the package but not declared in its metadata)
Run from the repository root:
  /work/venv-sinks/bin/python tools/make_sinks_golden.py [--shared ../shared] [--out tests/golden/sinks]
"""
import argparse
import json
import logging
import math
import os
import shutil
import tempfile
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import attention_sinks  # noqa: E402
import transformers  # noqa: E402
from attention_sinks.models.llama.pos_shift import llama_pos_shift_attention_forward  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

from golden_util import rel_rows, save_model_dir, write_ints  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her"
    " friends. One day, Lily saw a big red ball under a tree. She wanted to play with it, but it was not"
    " her ball. Lily asked her mom, \"Can I play with the ball?\" Her mom said, \"Yes, but you must give it"
    " back when you are done.\" Lily was very happy. She played with the ball all day long. She threw it"
    " high in the sky and ran after it. Then a little boy came to the park. He was sad because he lost his"
    " ball. Lily looked at the ball and knew it was his. She walked to the boy and gave him the ball. The"
    " boy smiled and said, \"Thank you!\" They played together until the sun went down. Lily learned that"
    " sharing makes everyone happy. The next day, Lily and the boy met again at the park. They found a"
    " small bird on the grass. The bird could not fly. Lily and the boy took care of the bird until it was"
    " strong again. Then the bird flew away into the blue sky, and they were happy."
)
DREAM = (
    "I dreamed I was flying over a city made of glass. The towers hummed softly, and the light moved"
    " through them like water. I felt calm and curious, as if the whole city was a gentle song. Below me,"
    " a river of stars flowed between the streets. I drifted down and touched the surface, and it rippled"
    " with colors I had never seen. A quiet voice asked me where I wanted to go. I said I wanted to find"
    " the place where dreams begin. The voice laughed, and the city folded around me like a flower. Then I"
    " was standing in a garden of clocks, each one ticking at its own pace. I listened to them for a long"
    " time, and I understood that time is a pattern, a tapestry of moments woven together. When I woke up,"
    " I still heard the soft hum of the glass towers, and I felt that I had learned something important."
)
SHARED = {"stories260K": STORY, "aidreams260K": DREAM}
RANDOM_MODELS = {
    "gqa2": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2),
    "gqa4": dict(hidden_size=128, num_attention_heads=8, num_key_value_heads=2),
}
# (case, n_sink, window, prefill P (0: one token per step from the start), n_tokens)
BASE_CASES = [("stream", 4, 60, 0, 200), ("prefill", 4, 60, 100, 200)]
EXTRA_CASES = {"stories260K": [("stream_s1w30", 1, 30, 0, 120), ("stream_s0w32", 0, 32, 0, 120)]}


def cycled_steps(n, sizes, first=()):
    """Step lengths: `first`, then `sizes` cycled, the last one cut short so that they sum to n."""
    steps = list(first)
    while sum(steps) < n:
        steps.append(min(sizes[(len(steps) - len(first)) % len(sizes)], n - sum(steps)))
    return steps


# multi-token-step cases (case, n_sink, window, step lengths), only for STEP_MODELS
STEP_CASES = [("chunk3", 4, 60, cycled_steps(200, [3])), ("chunk7", 4, 60, cycled_steps(200, [7])),
              ("mixed", 4, 60, cycled_steps(200, [1, 5, 2, 9, 3], first=[100]))]
STEP_MODELS = ["stories260K", "gqa2"]
SAME, DIVERGED, WRONG = 1e-5, 1e-4, 1e-3


# ---------------------------------------------------------------------------------------------------
# models and token ids


def make_random_model(out_dir, name, shape, shared):
    """Writes a seeded random-weight LlamaForCausalLM directory (identical bytes on every run)."""
    heads = shape["num_attention_heads"]
    cfg = LlamaConfig(
        vocab_size=VOCAB, intermediate_size=172, num_hidden_layers=2, head_dim=shape["hidden_size"] // heads,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, initializer_range=0.05, torch_dtype="float32", **shape,
    )
    assert cfg.head_dim == 16
    model = LlamaForCausalLM(cfg).float()
    rng = np.random.default_rng({"gqa2": 202, "gqa4": 404}[name])
    sd = {}
    for key, t in sorted(model.state_dict().items()):
        if key.endswith("norm.weight"):
            a = 1.0 + 0.1 * rng.standard_normal(t.shape)
        else:
            std = 0.15 if (".q_proj." in key or ".k_proj." in key) else 0.05
            a = std * rng.standard_normal(t.shape)
        sd[key] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(sd)
    path = os.path.join(out_dir, "models", name)
    save_model_dir(model, path, shared)
    return path


def load_tokenizer(path, name):
    """AutoTokenizer on a temporary copy of the directory whose tokenizer.json has its BPE merges as
    "a b" strings (tokenizers 0.14 does not read the [a, b] pair form); checked against the repo's
    tokenizer goldens, which were made with a current `tokenizers`."""
    tmp = tempfile.mkdtemp()
    with open(os.path.join(path, "tokenizer.json")) as f:
        tj = json.load(f)
    model = tj["model"]
    if model.get("merges") and isinstance(model["merges"][0], list):
        assert not any(" " in a or " " in b for a, b in model["merges"])
        model["merges"] = [f"{a} {b}" for a, b in model["merges"]]
    model.pop("ignore_merges", None)
    with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    shutil.copyfile(os.path.join(path, "tokenizer_config.json"), os.path.join(tmp, "tokenizer_config.json"))
    tok = AutoTokenizer.from_pretrained(tmp)
    shutil.rmtree(tmp)
    golden = os.path.join(ROOT, "tests", "golden", "tokenizer", f"{name}_hf.txt")
    checked = 0
    with open(golden, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            text = bytes.fromhex(parts[1]).decode("utf-8", errors="strict") if parts[1] else ""
            if any(s in text for s in ["<s>", "</s>", "<unk>"]):
                continue  # the golden encodes special-token text as specials; not needed here
            want = [int(x) for x in parts[2].split()] if len(parts) > 2 and parts[2] else []
            got = tok(text, add_special_tokens=False)["input_ids"]
            assert got == want, f"{name} tokenizer differs from {golden} on {parts[0]!r}: {got} vs {want}"
            checked += 1
    assert checked > 200, checked
    return tok, checked


# ---------------------------------------------------------------------------------------------------
# references


def run_sinks(model, ids, steps, cache_size):
    """The package, step by step: `steps` is the list of step lengths. Returns float32 logits [n, V]."""
    past, out, seen = None, [], 0
    with torch.no_grad():
        for t in steps:
            chunk = torch.tensor([ids[seen : seen + t]])
            o = model(chunk, past_key_values=past, use_cache=True)
            seen += t
            past = o.past_key_values
            for k, v in past:
                assert k.shape[2] == v.shape[2] == min(seen, cache_size), (k.shape, seen, cache_size)
            out.append(o.logits[0].float())
    assert seen == len(ids)
    return torch.cat(out).numpy()


def run_generate(model, prompt, n_new):
    """Greedy `generate`, the package's documented use: (generated ids, scores [n_new, V])."""
    model.generation_config.eos_token_id = None  # never stop early
    with torch.no_grad():
        g = model.generate(torch.tensor([prompt]), max_new_tokens=n_new, do_sample=False, output_scores=True,
                           return_dict_in_generate=True, pad_token_id=0)
    ids = [int(i) for i in g.sequences[0]]
    assert len(ids) == len(prompt) + n_new
    return ids, torch.stack([s[0] for s in g.scores]).float().numpy()


class Sec5Ref:
    """Design §5 transcribed from the raw weights in float64, independent of transformers' modules.
    variant: "sec5" (the design), "no_shift" (RoPE by original position, applied before caching),
    "evict_before" (trim to make room before appending instead of after the step)."""

    def __init__(self, model, n_sink, window, variant="sec5"):
        c = model.config
        self.w = {k: v.double() for k, v in model.state_dict().items()}
        self.L, self.H, self.KV = c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads
        self.d = c.hidden_size // c.num_attention_heads
        self.eps, self.theta = c.rms_norm_eps, getattr(c, "rope_theta", 10000.0)
        self.S, self.W, self.variant = n_sink, window, variant

    def rope(self, x, pos):  # x [heads, T, d], HF rotate-half layout
        half = self.d // 2
        inv = 1.0 / (self.theta ** (torch.arange(0, self.d, 2, dtype=torch.float64) / self.d))
        ang = pos.double()[:, None] * inv[None, :]
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
        rot = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def trim(self, cache, keep_room):
        n = cache[0][0].shape[1]
        cap = self.S + self.W - keep_room
        if n <= cap:
            return cache
        keep = list(range(self.S)) + list(range(n - (cap - self.S), n))
        return [tuple(t[:, keep] for t in kv) for kv in cache]

    def run(self, ids, steps):
        w, H, KV, d = self.w, self.H, self.KV, self.d
        cache, out, seen = [None] * self.L, [], 0  # per layer (K, V, Kpos), [KV, n, d]
        for T in steps:
            if self.variant == "evict_before" and cache[0] is not None:
                cache = self.trim(cache, T)
            x = w["model.embed_tokens.weight"][torch.tensor(ids[seen : seen + T])]
            for l in range(self.L):
                p = f"model.layers.{l}."
                h = self.norm(x, w[p + "input_layernorm.weight"])
                q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, H, d).transpose(0, 1)
                k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, KV, d).transpose(0, 1)
                v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, KV, d).transpose(0, 1)
                if self.variant == "no_shift":  # keys rotated once, by absolute position, then cached
                    k = self.rope(k, torch.arange(seen, seen + T))
                if cache[l] is not None:
                    k, v = torch.cat([cache[l][0], k], 1), torch.cat([cache[l][1], v], 1)
                cache[l] = (k, v)
                n = k.shape[1]
                if self.variant == "no_shift":
                    qr, kr = self.rope(q, torch.arange(seen, seen + T)), k
                else:
                    qr, kr = self.rope(q, torch.arange(n - T, n)), self.rope(k, torch.arange(n))
                kr, vv = kr.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
                s = qr @ kr.transpose(1, 2) / math.sqrt(d)
                mask = torch.arange(n)[None, :] > torch.arange(n - T, n)[:, None]
                s = s.masked_fill(mask, float("-inf"))
                a = (torch.softmax(s, -1) @ vv).transpose(0, 1).reshape(T, H * d)
                x = x + a @ w[p + "self_attn.o_proj.weight"].T
                h = self.norm(x, w[p + "post_attention_layernorm.weight"])
                g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
                x = x + (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
            x = self.norm(x, w["model.norm.weight"])
            out.append(x @ w["lm_head.weight"].T)
            seen += T
            if self.variant != "evict_before":
                cache = self.trim(cache, 0)
        return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "sinks"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    versions = {"attention_sinks": attention_sinks.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__, "numpy": np.__version__}
    assert versions["attention_sinks"] == "0.4.0" and versions["transformers"] == "4.34.0", versions
    print("versions:", versions)

    models = {n: (os.path.join(args.shared, "models", n, "hf"), f"shared:{n}/hf") for n in SHARED}
    for n, shape in RANDOM_MODELS.items():
        path = make_random_model(args.out, n, shape, args.shared)
        models[n] = (path, f"repo:tests/golden/sinks/models/{n}")

    meta = {}
    for name, (path, label) in models.items():
        full = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
        if name in SHARED:
            tok, checked = load_tokenizer(path, name)
            text_ids = tok(SHARED[name])["input_ids"]
            assert text_ids[0] == tok.bos_token_id == 1
            print(f"{name}: tokenizer matches {checked} golden lines; story text is {len(text_ids)} tokens")
        cases = [c + (None,) for c in BASE_CASES + EXTRA_CASES.get(name, [])]
        if name in STEP_MODELS:
            cases += [(case, S, W, 0, sum(st), st) for case, S, W, st in STEP_CASES]
        for case, S, W, P, n, given_steps in cases:
            if name in SHARED:
                ids = text_ids[:n]
                source = f"tokenized text ({min(n, len(text_ids))} tokens)"
                if len(ids) < n:
                    extra = np.random.default_rng(77).integers(3, VOCAB, size=n - len(ids))
                    ids = ids + [int(i) for i in extra]
                    source += f" + {n - len(text_ids)} seeded random ids in [3, {VOCAB})"
            else:
                ids = [int(i) for i in np.random.default_rng(1000 + n + P).integers(0, VOCAB, size=n)]
                source = f"seeded random ids in [0, {VOCAB})"
            sink = attention_sinks.AutoModelForCausalLM.from_pretrained(
                path, torch_dtype=torch.float32, attention_sink_size=S, attention_sink_window_size=W).eval()
            layers = sink.model.layers
            assert all(l.self_attn.forward.__func__ is llama_pos_shift_attention_forward for l in layers)
            kvc = sink.model.attention_sink_kv_cache
            assert (kvc.attention_sink_size, kvc.attention_sink_window_size) == (S, W)
            steps = given_steps or ([P] + [1] * (n - P) if P else [1] * n)
            assert sum(steps) == n and min(steps) >= 1
            ref = run_sinks(sink, ids, steps, S + W)
            with torch.no_grad():
                dense = full(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            sec5 = Sec5Ref(full, S, W).run(ids, steps)
            err5 = rel_rows(ref, sec5).max()
            assert err5 < 2 * SAME, f"{name}.{case}: package vs §5 transcription {err5:.2e}"
            r = rel_rows(ref, dense)
            # first token of the first step that starts with more than S+W tokens already fed
            expect = next(s for s in np.cumsum([0] + steps[:-1]).tolist() if s > S + W)
            assert given_steps or expect == (P if P else S + W + 1)
            first = int(np.argmax(r > DIVERGED)) if (r > DIVERGED).any() else None
            assert r[:expect].max() < SAME, f"{name}.{case}: differs from full attention before {expect}"
            assert first == expect, f"{name}.{case}: first divergence {first}, expected {expect}"
            rows = sorted(i for i in set(range(0, n, 3)) | set(range(S + W - 2, S + W + 7))
                          | (set(range(expect - 3, expect + 7)) if P or given_steps else set())
                          | set(range(n - 6, n)) if 0 <= i < n)
            wrong = {}
            for variant in ["no_shift", "evict_before"]:
                alt = Sec5Ref(full, S, W, variant).run(ids, steps)
                wrong[variant] = float(rel_rows(alt[rows], ref[rows]).max())
                if variant == "no_shift" and S == 0:
                    continue  # without sinks every cached key shifts alike: RoPE is relative, same logits
                assert wrong[variant] > WRONG, f"{name}.{case}: goldens do not reject {variant}"
            stem = os.path.join(args.out, f"{name}.{case}")
            write_ints(stem + ".ids", ids)
            write_ints(stem + ".rows", rows)
            np.save(stem + ".npy", ref[rows].astype(np.float32))
            meta[f"{name}.{case}"] = dict(
                model=label, n_sink=S, window=W, prefill=P, n_tokens=n, first_divergence=first,
                divergence_measure=f"first position whose ||ref-full||_2/||full||_2 over the vocab > {DIVERGED},"
                " full = one plain transformers LlamaForCausalLM forward over the whole sequence",
                rel_diff_at_first_divergence=float(r[first]), max_rel_diff_before=float(r[:first].max()),
                max_rel_diff_after=float(r[first:].max()), sec5_transcription_max_rel_diff=float(err5),
                wrong_no_shift_max_rel_diff=wrong["no_shift"], wrong_evict_before_max_rel_diff=wrong["evict_before"],
                ids=source, rows=len(rows), versions=versions)
            if given_steps:
                meta[f"{name}.{case}"]["steps"] = list(given_steps)
            print(f"{stem}: n={n} S={S} W={W} P={P}{' steps=' + ','.join(map(str, steps[:12])) + ',...' if given_steps else ''}"
                  f" rows={len(rows)} first_divergence={first} "
                  f"(rel {r[first]:.1e}; before <= {r[:first].max():.1e}) §5-transcription {err5:.1e} "
                  f"wrong: no_shift {wrong['no_shift']:.1e} evict_before {wrong['evict_before']:.1e}")

        # multi-token steps once the cache is full (not saved): package vs §5 transcription
        sink = attention_sinks.AutoModelForCausalLM.from_pretrained(
            path, torch_dtype=torch.float32, attention_sink_size=4, attention_sink_window_size=60).eval()
        ids = [int(i) for i in np.random.default_rng(5).integers(3, VOCAB, size=170)]
        steps = [100] + [7] * 10
        err = rel_rows(run_sinks(sink, ids, steps, 64), Sec5Ref(full, 4, 60).run(ids, steps)).max()
        assert err < 2 * SAME, f"{name}: chunked steps differ from §5 transcription by {err:.2e}"
        # generate() (the package's documented use) == the step-by-step calls
        for P, n_new in [(1, 199), (100, 100)]:
            prompt = [1] + [int(i) for i in np.random.default_rng(6).integers(3, VOCAB, size=P - 1)]
            gen_ids, scores = run_generate(sink, prompt, n_new)
            steps = [P] + [1] * (n_new - 1)
            mine = run_sinks(sink, gen_ids[:-1], steps, 64)[P - 1 :]
            gerr = rel_rows(scores, mine).max()
            assert gerr < 1e-6, f"{name}: generate differs from step-by-step by {gerr:.2e}"
        print(f"{name}: chunked steps vs §5 transcription {err:.1e}; generate == step-by-step")

    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
