#!/usr/bin/env python3
"""Golden logits for differential attention (design §4), from Hugging Face transformers'
`DiffLlamaForCausalLM` (CPU, float32, eager attention, no_grad) on four random-weight models that this
script writes, deterministically (numpy-seeded weights, identical bytes on every run), into
tests/golden/diffllama/models/:

  name            hidden  H  Hkv  head_dim  layers  ffn  act                tied  rms eps
  d8_mha            64    8   8      8        6     172  silu               yes   1e-5
  d16_gqa2          64    4   2     16        6     172  silu               no    1e-5
  d16_gqa4_gelu    128    8   2     16        6     224  gelu (erf)         no    1e-6
  d32_gqa2_tanh    128    4   2     32        6     128  gelu_pytorch_tanh  yes   1e-5

(six layers each, so lambda_init = 0.2 .. 0.67 varies across a model)

All: vocab 512, rope_theta 1e4, max_position_embeddings 2048, bos 1, eos 2. Weights N(0, std^2): q/k
projections 0.15, embeddings and lm_head 0.1, v/o projections 0.1, MLP 0.08, RMSNorm weights
1 + N(0, 0.1^2), the four lambda_{q1,k1,q2,k2} vectors of each layer 0.1 (HF's lambda_std_dev).
Each directory: config.json (as save_pretrained writes it, model_type diffllama, plus a top-level
"rope_theta": 10000.0 because transformers 5 writes theta only inside "rope_parameters" while LLaMA
loaders, transit's and transformers 4's, read the top-level key), model.safetensors (F32; tied models
have no lm_head.weight) and stories260K's tokenizer.json / tokenizer_config.json (so a loader that
wants a tokenizer accepts the directory; the ids below do not come from it). The goldens are computed
from the model re-loaded from that directory, so what is saved is what was measured.

Written to tests/golden/diffllama/, per model <name>:
  <name>.prompt.ids    37 seeded random ids in [0, 512), one line, space-separated
  <name>.prompt.npy    float32 logits [37, 512] of one forward over them
  <name>.decode.ids    the same 37 ids followed by 12 more (49)
  <name>.decode.npy    float32 logits [12, 512] of the 12 extra ids fed one at a time with the KV cache
                       after a prefill of the 37 (row t: the logits after feeding decode id 37 + t)
  <name>.greedy.ids    the 37 prompt ids followed by the 64 tokens transformers' greedy decoding (argmax
                       of each step's logits, KV cache on) picks; cases.json records each step's gap
                       between the best and second-best logit (the smallest is what a bitwise-different
                       engine must stay within to pick the same tokens)
  <name>.sinks.ids/.npy  (d16_gqa2, d16_gqa4_gelu) 72 seeded ids streamed one token at a time through
                       StreamingLLM's cache (design §5; n_sink, window in cases.json) over differential
                       attention, by the float64 transcription (no package implements sinks for
                       DiffLlama): float32 logits [72, 512], every step
  <name>.lambda.txt    "# layer lambda_init lambda lambda_hf_float32", then one line per layer:
                       lambda_init = 0.8 - 0.6 exp(-0.3 layer) and lambda = exp(sum(lq1*lk1)) -
                       exp(sum(lq2*lk2)) + lambda_init, both computed in float64 by numpy from the
                       saved float32 weights; lambda_hf_float32 is the float32 value transformers uses
                       (printed as a double)
and cases.json (per model: config summary, versions, self-check numbers, lambdas).

Checks (assertions; the script stops on any failure):
  1. the decode logits equal the corresponding rows of one 49-token forward (per-row relative L2
     difference, ||a - b||_2 / ||b||_2 over the vocab, below 1e-5);
  2. an independent float64 numpy transcription of design §4 for the whole model (`Sec4Ref`, from the
     saved safetensors, no transformers code) gives HF's prompt and decode logits to 1e-5 relative;
  3. lambda: the numpy float64 value equals (to 1e-6) both HF's own expression evaluated on the
     module's parameters and the lambda recovered from HF's actual forward (the two attention calls'
     outputs O1, O2 and the RMSNorm input y = O1 - lambda O2 are captured through an attention
     function registered with transformers and a hook; lambda = <O1 - y, O2> / <O2, O2>; transformers
     5 only: 4.x computes the attention inline, with nothing to capture);
  4. plain LLaMA attention (transformers' LlamaForCausalLM with the same weights, lambdas dropped)
     differs from the goldens by more than 0.05 relative in some row, and each of these wrong readings
     of §4 (numpy variants of the transcription) by more than 1e-3: adjacent_pairs (heads 2j, 2j+1
     paired instead of j, j + H/2), swapped_values (head i attends over [v_exp[i], v_exp[(i+H/2) mod H]]),
     no_lambda_init (lambda without + lambda_init), layer_1based (lambda_init of layer + 1), no_out_scale
     (no (1 - lambda_init) factor), norm_per_half (RMS over each d-wide half instead of the 2d values);
     all numbers are recorded in cases.json.

Needs its own virtualenv (transformers >= 4.48 for DiffLlama, which needs a newer torch than
/work/venv-sinks has; the goldens were made with the versions recorded in cases.json, transformers
5.24.0 and torch 2.15.0; the script also runs, and passes its checks, under transformers 4.57.6, which
writes the same model.safetensors and lambda.txt bytes and logits within 1.4e-6 relative):
  python3 -m venv /work/venv-diff
  /work/venv-diff/bin/pip install torch transformers numpy safetensors
Run from the repository root:
  /work/venv-diff/bin/python tools/make_diffllama_golden.py [--shared ../shared] [--out tests/golden/diffllama]
"""
import argparse
import inspect
import json
import logging
import math
import os
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import safetensors  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from transformers import (  # noqa: E402
    AttentionInterface,
    DiffLlamaConfig,
    DiffLlamaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.models.diffllama import modeling_diffllama  # noqa: E402

from golden_util import rel_rows, save_model_dir, write_ints  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
N_PROMPT, N_DECODE = 37, 12
N_GREEDY = 64  # greedy tokens after the prompt
SINKS = {"d16_gqa2": (4, 20), "d16_gqa4_gelu": (2, 13)}  # StreamingLLM over DiffLlama: n_sink, window
THETA = 10000.0
# name: (hidden, H, Hkv, head_dim, layers, ffn, act, tied, eps, seed)
MODELS = {
    "d8_mha": (64, 8, 8, 8, 6, 172, "silu", True, 1e-5, 8008),
    "d16_gqa2": (64, 4, 2, 16, 6, 172, "silu", False, 1e-5, 1602),
    "d16_gqa4_gelu": (128, 8, 2, 16, 6, 224, "gelu", False, 1e-6, 1604),
    "d32_gqa2_tanh": (128, 4, 2, 32, 6, 128, "gelu_pytorch_tanh", True, 1e-5, 3202),
}
SAME = 1e-5  # HF float32 vs float64 transcription, and cached decode vs full forward
PLAIN = 5e-2  # plain LLaMA attention must differ by more than this somewhere
WRONG = 1e-3  # each wrong reading of §4 must differ by more than this somewhere
LAMBDA_TOL = 1e-6
WRONG_VARIANTS = ["adjacent_pairs", "swapped_values", "no_lambda_init", "layer_1based", "no_out_scale",
                  "norm_per_half"]


def lambda_init_of(layer):
    return 0.8 - 0.6 * math.exp(-0.3 * layer)


# ---------------------------------------------------------------------------------------------------
# models


def std_of(key):
    if key.endswith("norm.weight"):
        return None  # 1 + N(0, 0.1^2)
    if ".lambda_" in key:
        return 0.1
    if ".q_proj." in key or ".k_proj." in key:
        return 0.15
    if "embed_tokens" in key or key == "lm_head.weight" or ".v_proj." in key or ".o_proj." in key:
        return 0.1
    if ".mlp." in key:
        return 0.08
    raise KeyError(key)


def make_model(out_dir, name, shared):
    """Writes the seeded random-weight DiffLlamaForCausalLM directory; returns (path, numpy weights)."""
    hidden, H, Hkv, hd, L, ffn, act, tied, eps, seed = MODELS[name]
    cfg = DiffLlamaConfig(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=L, num_attention_heads=H,
        num_key_value_heads=Hkv, head_dim=hd, hidden_act=act, max_position_embeddings=2048, rms_norm_eps=eps,
        rope_theta=THETA, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2, initializer_range=0.05,
        lambda_std_dev=0.1, attention_bias=False, attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = DiffLlamaForCausalLM(cfg).float()
    rng = np.random.default_rng(seed)
    weights = {}
    for key, t in sorted(model.state_dict().items()):
        if tied and key == "lm_head.weight":
            continue
        std = std_of(key)
        a = 1.0 + 0.1 * rng.standard_normal(t.shape) if std is None else std * rng.standard_normal(t.shape)
        weights[key] = a.astype(np.float32)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and missing == (["lm_head.weight"] if tied else []), (missing, unexpected)
    if tied:
        assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    path = os.path.join(out_dir, "models", name)
    save_model_dir(model, path, shared)
    cfg_path = os.path.join(path, "config.json")
    with open(cfg_path) as f:
        cj = json.load(f)
    assert cj["model_type"] == "diffllama", cj
    if "rope_theta" not in cj:
        assert cj["rope_parameters"] == {"rope_theta": THETA, "rope_type": "default"}, cj
        cj["rope_theta"] = THETA
    with open(cfg_path, "w") as f:
        json.dump(cj, f, indent=2, sort_keys=True)
        f.write("\n")
    saved = load_file(os.path.join(path, "model.safetensors"))
    assert sorted(saved) == sorted(weights), (sorted(saved), sorted(weights))
    for k, v in weights.items():
        assert saved[k].dtype == np.float32 and np.array_equal(saved[k], v), k
    return path


def load_hf(path, cls=DiffLlamaForCausalLM, **kw):
    # transformers 5 calls it `dtype`, 4.x `torch_dtype`
    dt = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return cls.from_pretrained(path, attn_implementation="eager", **{dt: torch.float32}, **kw).eval()


def forward(model, ids, cache=None, use_cache=False):
    """(float32 logits [T, V] as numpy, cache). The cache keyword is `cache` in transformers 5
    (`past_key_values` deprecated), `past_key_values` in 4.x."""
    kw = {}
    if cache is not None:
        kw["cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"] = cache
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=use_cache, **kw)
    new_cache = getattr(out, "cache", None) if hasattr(out, "cache") else getattr(out, "past_key_values", None)
    return out.logits[0].float().numpy(), new_cache


# ---------------------------------------------------------------------------------------------------
# the independent reference


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


_erf = np.vectorize(math.erf)


def act_fn(name, x):
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if name == "gelu_pytorch_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(name)


class Sec4Ref:
    """Design §4 transcribed in float64 numpy from the saved safetensors and config.json; no transformers.
    variant: "sec4" (the design) or one of WRONG_VARIANTS."""

    def __init__(self, path):
        with open(os.path.join(path, "config.json")) as f:
            c = json.load(f)
        self.w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(path, "model.safetensors")).items()}
        if "lm_head.weight" not in self.w:
            assert c["tie_word_embeddings"]
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        self.L, self.H, self.Hkv = c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]
        self.d, self.eps, self.act = c["head_dim"], c["rms_norm_eps"], c["hidden_act"]
        self.theta = c["rope_theta"]
        assert self.H % 2 == 0 and self.H % self.Hkv == 0

    def lambdas(self, variant="sec4"):
        """[(lambda_init, lambda)] per layer, float64."""
        out = []
        for l in range(self.L):
            p = f"model.layers.{l}.self_attn."
            li = lambda_init_of(l + 1 if variant == "layer_1based" else l)
            lam = (np.exp(np.sum(self.w[p + "lambda_q1"] * self.w[p + "lambda_k1"]))
                   - np.exp(np.sum(self.w[p + "lambda_q2"] * self.w[p + "lambda_k2"])))
            out.append((li, float(lam) + (0.0 if variant == "no_lambda_init" else li)))
        return out

    def rope(self, x, pos=None):  # x [heads, T, d], rotate-half layout, positions 0..T-1 unless given
        d, T = self.d, x.shape[1]
        pos = np.arange(T, dtype=np.float64) if pos is None else np.asarray(pos, np.float64)
        inv = 1.0 / (self.theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
        ang = pos[:, None] * inv[None, :]
        ang = np.concatenate([ang, ang], -1)
        rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], -1)
        return x * np.cos(ang) + rot * np.sin(ang)

    def qkv(self, l, h):
        """Layer l's projections of h [T, dim], before RoPE: q [H, T, d], k and v [Hkv, T, d]."""
        w, p, T, d = self.w, f"model.layers.{l}.self_attn.", h.shape[0], self.d
        q = (h @ w[p + "q_proj.weight"].T).reshape(T, self.H, d).transpose(1, 0, 2)
        k = (h @ w[p + "k_proj.weight"].T).reshape(T, self.Hkv, d).transpose(1, 0, 2)
        v = (h @ w[p + "v_proj.weight"].T).reshape(T, self.Hkv, d).transpose(1, 0, 2)
        return q, k, v

    def attend(self, q, k, v, lam_pair, causal, variant="sec4"):
        """Steps 1-6 of §4 for rotated q [H, Tq, d] over rotated k, v [Hkv, Tk, d]; causal: the mask
        of scores to drop [Tq, Tk] (or None). Returns the o_proj input [Tq, H d]."""
        H, Hkv, d = self.H, self.Hkv, self.d
        n_rep, half = H // Hkv, H // 2
        kexp, vexp = k[np.arange(H) // n_rep], v[np.arange(H) // n_rep]  # step 1-2: head i -> kv i // n_rep
        s = q @ kexp.transpose(0, 2, 1) / math.sqrt(d)
        if causal is not None:
            s[:, causal] = -np.inf
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        i = np.arange(H)
        if variant == "adjacent_pairs":
            first, second = 2 * (i // 2), 2 * (i // 2) + 1
        elif variant == "swapped_values":
            first, second = i, (i + half) % H
        else:  # step 2: head i attends over [v_exp[i mod H/2], v_exp[(i mod H/2) + H/2]]
            first, second = i % half, i % half + half
        o = a @ np.concatenate([vexp[first], vexp[second]], -1)  # step 3: [H, Tq, 2d]
        li, lam = lam_pair
        if variant == "adjacent_pairs":
            y = o[0::2] - lam * o[1::2]
        else:  # step 5: pair j = heads j and j + H/2
            y = o[:half] - lam * o[half:]
        if variant == "norm_per_half":
            y = np.concatenate([rms(y[..., :d], 1.0, self.eps), rms(y[..., d:], 1.0, self.eps)], -1)
        else:
            y = rms(y, 1.0, self.eps)
        if variant != "no_out_scale":
            y = (1.0 - li) * y
        return y.transpose(1, 0, 2).reshape(q.shape[1], H * d)  # step 6: pair j -> columns [2d j, 2d (j+1))

    def block_rest(self, l, x, attn):
        """The residual add of the attention output and the feed-forward block of layer l."""
        w, p = self.w, f"model.layers.{l}."
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], self.eps)
        g = act_fn(self.act, h @ w[p + "mlp.gate_proj.weight"].T)
        return x + (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T

    def logits(self, x):
        return rms(x, self.w["model.norm.weight"], self.eps) @ self.w["lm_head.weight"].T

    def run(self, ids, variant="sec4"):
        T, lams = len(ids), self.lambdas(variant)
        x = self.w["model.embed_tokens.weight"][np.asarray(ids)]
        causal = np.triu(np.ones((T, T), dtype=bool), 1)
        for l in range(self.L):
            q, k, v = self.qkv(l, rms(x, self.w[f"model.layers.{l}.input_layernorm.weight"], self.eps))
            x = self.block_rest(l, x, self.attend(self.rope(q), self.rope(k), v, lams[l], causal, variant))
        return self.logits(x)

    def stream_sinks(self, ids, n_sink, window):
        """StreamingLLM (design §5) over differential attention, one token per step: each layer caches
        keys before RoPE; a step appends its token, rotates every cached key (and its query) by its
        index in the cache, attends over all of them, then trims the cache to the first n_sink
        entries and the last `window`. Logits of every step [T, V]."""
        lams, caches, out = self.lambdas(), [([], []) for _ in range(self.L)], []
        for t in ids:
            x = self.w["model.embed_tokens.weight"][[t]]
            for l in range(self.L):
                q, k, v = self.qkv(l, rms(x, self.w[f"model.layers.{l}.input_layernorm.weight"], self.eps))
                ks, vs = caches[l]
                ks.append(k)
                vs.append(v)
                n = len(ks)
                kc = self.rope(np.concatenate(ks, 1), np.arange(n))
                x = self.block_rest(l, x, self.attend(self.rope(q, [n - 1]), kc, np.concatenate(vs, 1), lams[l], None))
                if n > n_sink + window:
                    del ks[n_sink:n - window], vs[n_sink:n - window]
            out.append(self.logits(x)[0])
        return np.stack(out)


# ---------------------------------------------------------------------------------------------------
# lambda as HF computes it


def lambda_of_params(m):
    """HF's expression (modeling_diffllama.DiffLlamaAttention.forward) on the module's parameters."""
    with torch.no_grad():
        lam = (torch.exp(torch.sum(m.lambda_q1 * m.lambda_k1, dim=-1, dtype=torch.float32))
               - torch.exp(torch.sum(m.lambda_q2 * m.lambda_k2, dim=-1, dtype=torch.float32))
               + m.lambda_init)
    assert lam.dtype == torch.float32
    return lam


class Capture:
    """An attention function for transformers: HF's own eager attention, recording its outputs."""

    def __init__(self):
        self.outputs = []

    def __call__(self, *args, **kwargs):
        out, weights = modeling_diffllama.eager_attention_forward(*args, **kwargs)
        self.outputs.append(out.detach().clone())
        return out, weights


def hf_lambdas(model, ids, golden):
    """Per layer (lambda from HF's expression on the module's parameters (float32), lambda recovered
    from the forward). The forward runs through a registered capture of the eager attention function;
    its logits must equal the golden (eager) ones exactly."""
    attn = model.model.layers[0].self_attn
    if "attention_interface" not in inspect.getsource(type(attn).forward):
        # transformers 4.x: the attention is computed inline (one call over 2d-wide values), nothing to
        # capture; only the expression on the parameters is checked
        return [(float(m.lambda_init), float(lambda_of_params(m)), None) for m in
                (l.self_attn for l in model.model.layers)]
    cap = Capture()
    AttentionInterface.register("diffllama_capture", cap)
    try:  # transformers 5 builds no mask at all for an attention function it has no mask function for
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

        ALL_MASK_ATTENTION_FUNCTIONS.register("diffllama_capture", eager_mask)
    except ImportError:
        pass
    saved_impl = model.config._attn_implementation
    model.config._attn_implementation = "diffllama_capture"
    ys = []
    hooks = [l.self_attn.groupnorm.register_forward_pre_hook(lambda m, a: ys.append(a[0].detach().clone()))
             for l in model.model.layers]
    try:
        logits, _ = forward(model, ids)
    finally:
        for h in hooks:
            h.remove()
        model.config._attn_implementation = saved_impl
    assert np.array_equal(logits, golden), "capture attention function changed the logits"
    L = len(model.model.layers)
    assert len(cap.outputs) == 2 * L and len(ys) == L, (len(cap.outputs), len(ys))  # two calls per layer
    res = []
    for l, layer in enumerate(model.model.layers):
        m = layer.self_attn
        lam_param = lambda_of_params(m)
        out = torch.cat([cap.outputs[2 * l], cap.outputs[2 * l + 1]], -1).double()  # [B, T, H, 2d]
        half = out.shape[2] // 2
        o1, o2, y = out[:, :, :half], out[:, :, half:], ys[l].double()
        lam_fwd = float(((o1 - y) * o2).sum() / (o2 * o2).sum())
        res.append((float(m.lambda_init), float(lam_param), lam_fwd))
    return res


# ---------------------------------------------------------------------------------------------------


def plain_llama_logits(path, ids):
    """transformers' LlamaForCausalLM with the same shapes and weights, lambdas dropped."""
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
            "tie_word_embeddings", "bos_token_id", "eos_token_id"]
    cfg = LlamaConfig(**{k: c[k] for k in keys}, rope_theta=c["rope_theta"])
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).float().eval()
    sd = {k: torch.from_numpy(v) for k, v in load_file(os.path.join(path, "model.safetensors")).items()
          if ".lambda_" not in k}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and missing == (["lm_head.weight"] if c["tie_word_embeddings"] else []), (missing, unexpected)
    if c["tie_word_embeddings"]:
        model.lm_head.weight = model.model.embed_tokens.weight
    return forward(model, ids)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "diffllama"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    versions = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "safetensors": safetensors.__version__}
    print("versions:", versions)

    meta = {}
    for name, (hidden, H, Hkv, hd, L, ffn, act, tied, eps, seed) in MODELS.items():
        path = make_model(args.out, name, args.shared)
        model = load_hf(path)
        assert type(model.model.layers[0].self_attn).__name__ == "DiffLlamaAttention"
        assert model.config._attn_implementation == "eager"
        ids = [int(i) for i in np.random.default_rng(seed + 1).integers(0, VOCAB, size=N_PROMPT + N_DECODE)]
        prompt = ids[:N_PROMPT]

        # (i) prompt forward
        prompt_logits, _ = forward(model, prompt)
        assert prompt_logits.shape == (N_PROMPT, VOCAB)
        # (ii) prefill + one token at a time, against one full forward
        _, cache = forward(model, prompt, use_cache=True)
        assert cache is not None
        steps = []
        for t in range(N_PROMPT, N_PROMPT + N_DECODE):
            lg, cache = forward(model, [ids[t]], cache=cache, use_cache=True)
            steps.append(lg[0])
        decode_logits = np.stack(steps)
        full_logits, _ = forward(model, ids)
        err_decode_full = rel_rows(decode_logits, full_logits[N_PROMPT:]).max()
        assert err_decode_full < SAME, f"{name}: cached decode vs full forward {err_decode_full:.2e}"
        err_prompt_full = rel_rows(prompt_logits, full_logits[:N_PROMPT]).max()
        assert err_prompt_full < SAME, f"{name}: 37-token vs 49-token forward {err_prompt_full:.2e}"

        # (iii) greedy continuation of the prompt, one token at a time with the cache
        greedy, gaps = list(prompt), []
        lg, cache = forward(model, prompt, use_cache=True)
        for _ in range(N_GREEDY):
            row = lg[-1].astype(np.float64)
            top2 = np.sort(row)[-2:]
            gaps.append(float(top2[1] - top2[0]))
            greedy.append(int(np.argmax(row)))
            lg, cache = forward(model, [greedy[-1]], cache=cache, use_cache=True)

        # (iv) lambda: numpy float64 vs HF
        ref = Sec4Ref(path)
        lam_np = ref.lambdas()
        lam_hf = hf_lambdas(model, prompt, prompt_logits)
        lam_rows = []
        for l, ((li, lam), (li_hf, lam_p, lam_f)) in enumerate(zip(lam_np, lam_hf)):
            assert li == li_hf == lambda_init_of(l), (name, l, li, li_hf)
            assert abs(lam - lam_p) < LAMBDA_TOL, (name, l, lam, lam_p)
            assert lam_f is None or abs(lam - lam_f) < LAMBDA_TOL, (name, l, lam, lam_f)
            lam_rows.append(dict(layer=l, lambda_init=li, **{"lambda": lam}, lambda_hf_float32=lam_p,
                                 lambda_from_forward=lam_f, diff_param=abs(lam - lam_p),
                                 diff_forward=None if lam_f is None else abs(lam - lam_f)))
        with open(os.path.join(args.out, f"{name}.lambda.txt"), "w") as f:
            f.write("# layer lambda_init lambda lambda_hf_float32\n")
            for r in lam_rows:
                f.write(f"{r['layer']} {r['lambda_init']!r} {r['lambda']!r} {r['lambda_hf_float32']!r}\n")

        # float64 transcription of §4 vs HF
        sec4 = ref.run(ids)
        err4_prompt = rel_rows(prompt_logits, sec4[:N_PROMPT]).max()
        err4_decode = rel_rows(decode_logits, sec4[N_PROMPT:]).max()
        assert max(err4_prompt, err4_decode) < SAME, f"{name}: HF vs §4 transcription {err4_prompt:.2e} {err4_decode:.2e}"

        # goldens must reject plain attention and wrong readings of §4
        plain = plain_llama_logits(path, prompt)
        r_plain = rel_rows(plain, prompt_logits)
        assert r_plain.max() > PLAIN, f"{name}: plain LLaMA attention only {r_plain.max():.2e} from the goldens"
        wrong = {}
        for variant in WRONG_VARIANTS:
            r = rel_rows(ref.run(prompt, variant), prompt_logits)
            wrong[variant] = float(r.max())
            assert wrong[variant] > WRONG, f"{name}: goldens do not reject {variant} ({wrong[variant]:.2e})"

        stem = os.path.join(args.out, name)
        sinks_meta = None
        if name in SINKS:  # (v) attention sinks composed with differential attention, numpy float64
            n_sink, window = SINKS[name]
            n_stream = 3 * (n_sink + window)
            sids = [int(i) for i in np.random.default_rng(seed + 2).integers(0, VOCAB, size=n_stream)]
            untrimmed = rel_rows(ref.stream_sinks(ids, 4, len(ids)), sec4).max()  # never trims: the plain forward
            assert untrimmed < 1e-12, f"{name}: streaming without a trim differs from the forward ({untrimmed:.1e})"
            streamed = ref.stream_sinks(sids, n_sink, window)
            vs_plain = rel_rows(streamed, ref.run(sids)).max()
            assert vs_plain > PLAIN, f"{name}: sinks change nothing ({vs_plain:.1e})"
            write_ints(stem + ".sinks.ids", sids)
            np.save(stem + ".sinks.npy", streamed.astype(np.float32))
            sinks_meta = dict(ids=f"{name}.sinks.ids", logits=f"{name}.sinks.npy", n_sink=n_sink, window=window,
                              steps="one token each", source="Sec4Ref.stream_sinks (numpy float64)",
                              untrimmed_vs_forward=float(untrimmed), vs_plain_cache_max=float(vs_plain))
        write_ints(stem + ".prompt.ids", prompt)
        np.save(stem + ".prompt.npy", prompt_logits.astype(np.float32))
        write_ints(stem + ".decode.ids", ids)
        write_ints(stem + ".greedy.ids", greedy)
        np.save(stem + ".decode.npy", decode_logits.astype(np.float32))
        meta[name] = dict(
            model=f"repo:tests/golden/diffllama/models/{name}",
            config=dict(hidden=hidden, n_heads=H, n_kv_heads=Hkv, head_dim=hd, n_layers=L, ffn=ffn, act=act,
                        tied=tied, rms_norm_eps=eps, rope_theta=THETA, vocab=VOCAB),
            weights=f"numpy default_rng({seed}) over sorted state-dict keys; std: q/k 0.15, embed/lm_head/v/o 0.1,"
                    " mlp 0.08, lambda_* 0.1, norms 1 + N(0, 0.01)",
            ids=f"numpy default_rng({seed + 1}).integers(0, {VOCAB}, {N_PROMPT + N_DECODE}); prompt = first {N_PROMPT}",
            prompt=dict(ids=f"{name}.prompt.ids", logits=f"{name}.prompt.npy", shape=[N_PROMPT, VOCAB]),
            decode=dict(ids=f"{name}.decode.ids", logits=f"{name}.decode.npy", shape=[N_DECODE, VOCAB],
                        prefill=N_PROMPT, note="row t = logits after feeding decode id 37 + t, one token per step"
                        " with the KV cache after a 37-token prefill"),
            greedy=dict(ids=f"{name}.greedy.ids", n_prompt=N_PROMPT, n_new=N_GREEDY, min_top2_gap=min(gaps),
                        top2_gaps=gaps),
            sinks=sinks_meta,
            lambdas=lam_rows,
            checks=dict(
                measure="max over rows of ||a - b||_2 / ||b||_2 over the vocab",
                decode_vs_full_forward=float(err_decode_full), prompt_vs_full_forward=float(err_prompt_full),
                sec4_float64_vs_hf_prompt=float(err4_prompt), sec4_float64_vs_hf_decode=float(err4_decode),
                plain_llama_attention_max=float(r_plain.max()), plain_llama_attention_mean=float(r_plain.mean()),
                **{f"wrong_{k}": v for k, v in wrong.items()}),
            versions=versions)
        print(f"{name}: H={H} Hkv={Hkv} d={hd} L={L} {act} tied={tied} eps={eps:g} | decode vs full "
              f"{err_decode_full:.1e} | §4 f64 vs HF {err4_prompt:.1e}/{err4_decode:.1e} | lambda "
              + " ".join(f"{r['lambda']:.6f}" for r in lam_rows)
              + f" (|np-hf| <= {max(max(r['diff_param'], r['diff_forward'] or 0) for r in lam_rows):.1e})"
              f" | plain attn {r_plain.max():.2f} | wrong " + " ".join(f"{k} {v:.1e}" for k, v in wrong.items()))

    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
