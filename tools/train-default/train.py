#!/usr/bin/env python3
"""Trains transit's default model: a small LLaMA and its tokenizer, from scratch, on Tiny Shakespeare.

Everything is deterministic from --seed on a given machine and thread count: the SentencePiece
tokenizer, the batches, the initial weights, dropout, and the optimizer (torch.manual_seed,
torch.use_deterministic_algorithms, a fixed torch thread count). CPU only.

Stages, all in one run:
  1. tokenizer: SentencePiece BPE with byte fallback, LLaMA-style settings, trained on the first 90%
     of the corpus (the held-out 10% starts at the first line break after 90% of the characters);
  2. model: LLaMA architecture (RMSNorm, rotary embeddings in Hugging Face's rotate-half layout,
     SwiGLU, grouped-query attention, tied embeddings), AdamW with a cosine schedule; the training and
     validation losses are printed as it goes;
  3. export: weights rounded to float16 (norm vectors stay float32), written as a Hugging Face
     directory (config.json, model.safetensors, tokenizer.model, tokenizer.json, tokenizer_config.json)
     and as a GGUF file with its vocabulary (q/k rows permuted to GGUF's adjacent-pair RoPE layout);
  4. evaluation of the exported weights, windowed exactly like `transit perplexity` (windows of
     256 tokens, first token of each window replaced by BOS, as llama-perplexity does): validation
     perplexity on the held-out text, the unigram baseline on the same tokens, and the golden values
     tests/test_perplexity.c checks.

Run from the repository root (36 minutes, one thread, on a 2-core VM shared with other jobs):
  python3 tools/train-default/train.py
"""
import argparse
import io
import json
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# ---- hyperparameters ------------------------------------------------------------------------------

MODEL = dict(
    vocab_size=2048,
    dim=256,
    n_layers=5,
    n_heads=8,
    n_kv_heads=2,
    head_dim=32,
    ffn_dim=640,
    ctx=256,
    rope_theta=10000.0,
    rms_eps=1e-5,
)
BOS, EOS, UNK = 1, 2, 0


def log(*a):
    print(*a, flush=True)


# ---- data and tokenizer ---------------------------------------------------------------------------


def split_corpus(text):
    """First 90% for training, the rest held out; the cut is moved to the next line start."""
    cut = text.index("\n", int(len(text) * 0.9)) + 1
    return text[:cut], text[cut:]


def train_tokenizer(train_text, vocab_size):
    """SentencePiece BPE with byte fallback, LLaMA's settings. Sentences are the corpus's blank-line
    separated paragraphs with their newlines kept, so that '\\n' (and pieces such as ':\\n') are
    learned as they occur in running text; training on single lines would make every line-initial
    word a fragment, since `transit` tokenizes a whole file as one text."""
    paras = [p + "\n\n" for p in train_text.split("\n\n")]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(paras),
        model_writer=buf,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        pad_id=-1,
        max_sentence_length=1 << 16,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def windows(ids, ctx):
    """Consecutive windows of ctx tokens with the first token of each replaced by BOS (what
    `transit perplexity` and llama-perplexity evaluate). ids already starts with BOS."""
    n = len(ids) // ctx
    w = torch.tensor(ids[: n * ctx], dtype=torch.long).view(n, ctx).clone()
    w[:, 0] = BOS
    return w


# ---- the model ------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # x / sqrt(mean(x^2) + eps) * w
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):  # Hugging Face's layout: pairs (x[i], x[i + d/2])
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, c, dropout):
        super().__init__()
        d, hd = c["dim"], c["head_dim"]
        self.nh, self.nkv, self.hd = c["n_heads"], c["n_kv_heads"], hd
        self.input_layernorm = RMSNorm(d, c["rms_eps"])
        self.q_proj = nn.Linear(d, self.nh * hd, bias=False)  # (n_heads * head_dim, dim)
        self.k_proj = nn.Linear(d, self.nkv * hd, bias=False)  # (n_kv_heads * head_dim, dim)
        self.v_proj = nn.Linear(d, self.nkv * hd, bias=False)  # (n_kv_heads * head_dim, dim)
        self.o_proj = nn.Linear(self.nh * hd, d, bias=False)  # (dim, n_heads * head_dim)
        self.post_attention_layernorm = RMSNorm(d, c["rms_eps"])
        self.gate_proj = nn.Linear(d, c["ffn_dim"], bias=False)  # (ffn_dim, dim)
        self.up_proj = nn.Linear(d, c["ffn_dim"], bias=False)  # (ffn_dim, dim)
        self.down_proj = nn.Linear(c["ffn_dim"], d, bias=False)  # (dim, ffn_dim)
        self.dropout = dropout

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv  # query head j reads KV head j // rep
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = self.o_proj(a.transpose(1, 2).reshape(B, T, self.nh * self.hd))
        x = x + F.dropout(a, self.dropout, self.training)
        h = self.post_attention_layernorm(x)
        f = self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))
        return x + F.dropout(f, self.dropout, self.training)


class Llama(nn.Module):
    def __init__(self, c, dropout=0.0):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["dim"])  # (vocab, dim), tied to the output
        self.layers = nn.ModuleList(Block(c, dropout) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], c["rms_eps"])
        hd = c["head_dim"]
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(c["ctx"], dtype=torch.float32), inv_freq)
        ang = torch.cat((ang, ang), dim=-1)  # (ctx, head_dim), rotate-half order
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        std, resid_std = 0.02, 0.02 / math.sqrt(2 * c["n_layers"])
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, resid_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.embed_tokens(idx)
        cos, sin = self.cos[:T], self.sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return F.linear(self.norm(x), self.embed_tokens.weight)  # (B, T, vocab)


# ---- evaluation -----------------------------------------------------------------------------------


@torch.no_grad()
def window_nll(model, w, first):
    """Negative log-likelihoods (float64) of tokens first+1 .. ctx-1 of each window, predicted from
    the logits at positions first .. ctx-2, log-softmax in double."""
    model.eval()
    out = []
    for i in range(0, len(w), 8):
        x = w[i : i + 8]
        logp = torch.log_softmax(model(x)[:, first:-1].double(), dim=-1)
        out.append(-logp.gather(-1, x[:, first + 1 :, None])[..., 0])
    model.train()
    return torch.cat(out)  # (n_windows, ctx - 1 - first)


def eval_modes(model, ids, ctx):
    """{mode: (tokens, mean nll, perplexity)} for the default and the --second-half scoring."""
    w = windows(ids, ctx)
    res = {}
    for mode, first in (("default", 0), ("second_half", ctx // 2)):
        nll = window_nll(model, w, first)
        m = nll.mean().item()
        res[mode] = dict(windows=len(w), tokens=nll.numel(), nll=m, ppl=math.exp(m))
    return res


def unigram_ppl(train_ids, ids, ctx, vocab_size):
    """Add-one smoothed unigram model from the training tokens, scored on the default-mode targets."""
    counts = np.bincount(np.asarray(train_ids), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    tgt = windows(ids, ctx)[:, 1:].numpy().ravel()
    m = -logp[tgt].mean()
    return dict(tokens=int(tgt.size), nll=float(m), ppl=float(math.exp(m)))


def round_f16_(model):
    """Rounds the matrices to float16 in place (what is shipped); norm vectors stay float32."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())


# ---- export ---------------------------------------------------------------------------------------


def hf_state(model):
    """Tensors under LlamaForCausalLM's names (tied: no lm_head.weight); matrices float16, norms float32."""
    sd = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight}
    names = {"input_layernorm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
             "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
             "post_attention_layernorm": "post_attention_layernorm", "gate_proj": "mlp.gate_proj",
             "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj"}
    for i, layer in enumerate(model.layers):
        for attr, hf in names.items():
            sd[f"model.layers.{i}.{hf}.weight"] = getattr(layer, attr).weight
    out = {}
    for k, v in sd.items():
        v = v.detach().contiguous()
        out[k] = v.half() if v.dim() == 2 else v.float()
    return out


def to_adjacent_pairs(w, n_heads, head_dim):
    """HF rotate-half q/k rows -> GGUF adjacent pairs: row h*d + 2i <- h*d + i, h*d + 2i+1 <- h*d + d/2 + i."""
    dim = w.shape[1]
    return w.reshape(n_heads, 2, head_dim // 2, dim).transpose(1, 2).reshape(n_heads * head_dim, dim)


def write_hf(out, model, c, sp_proto, sp):
    from safetensors.torch import save_file

    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c["vocab_size"],
        "hidden_size": c["dim"],
        "intermediate_size": c["ffn_dim"],
        "num_hidden_layers": c["n_layers"],
        "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv_heads"],
        "head_dim": c["head_dim"],
        "max_position_embeddings": c["ctx"],
        "rms_norm_eps": c["rms_eps"],
        "rope_theta": c["rope_theta"],
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": True,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "torch_dtype": "float16",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file(hf_state(model), os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    os.chmod(os.path.join(out, "model.safetensors"), 0o644)
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(sp_proto)
    write_tokenizer_json(out, sp)
    tcfg = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "legacy": True,
        "model_max_length": c["ctx"],
        "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2)
        f.write("\n")


def write_tokenizer_json(out, sp):
    """tokenizer.json from the SentencePiece model, built as transformers' LlamaConverter builds it
    for LlamaTokenizerFast (whose transformers 5 version cannot convert a BPE model offline): the
    pieces as BPE vocabulary, merges from transformers' generate_merges ranked by piece score, byte
    fallback, and the legacy LLaMA text rules: normalizer Prepend('▁') + Replace(' ' -> '▁'), no
    pre-tokenizer. BOS is added by the post-processor."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import generate_merges

    scores = [(sp.id_to_piece(i), 0.0 if i < 3 else sp.get_score(i)) for i in range(sp.get_piece_size())]
    vocab = {piece: i for i, (piece, _) in enumerate(scores)}
    merges = generate_merges(vocab, scores)
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", BOS)])
    tok.save(os.path.join(out, "tokenizer.json"))


def write_gguf(path, model, c, sp):
    import gguf

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("transit-default")
    w.add_context_length(c["ctx"])
    w.add_embedding_length(c["dim"])
    w.add_feed_forward_length(c["ffn_dim"])
    w.add_block_count(c["n_layers"])
    w.add_head_count(c["n_heads"])
    w.add_head_count_kv(c["n_kv_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_dimension_count(c["head_dim"])
    w.add_layer_norm_rms_eps(c["rms_eps"])
    w.add_rope_freq_base(c["rope_theta"])
    w.add_vocab_size(c["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        t = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            t = gguf.TokenType.CONTROL
        elif sp.is_unused(i):
            t = gguf.TokenType.UNUSED
        elif sp.is_byte(i):
            t = gguf.TokenType.BYTE
        types.append(t)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(UNK)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    sd = hf_state(model)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    gg = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
          "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(c["n_layers"]):
        for hf, name in gg.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if name == "attn_q":
                t = to_adjacent_pairs(t, c["n_heads"], c["head_dim"])
            elif name == "attn_k":
                t = to_adjacent_pairs(t, c["n_kv_heads"], c["head_dim"])
            w.add_tensor(f"blk.{i}.{name}.weight", t.contiguous().numpy())
    w.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@torch.no_grad()
def check_transformers(out, model, x):
    """The Hugging Face directory, loaded by transformers' LlamaForCausalLM, must give this model's logits:
    proves the tensor names, the tying and the rotate-half q/k layout."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    want, got = model(x), hf(x).logits
    nmse = ((got - want) ** 2).sum().item() / (want**2).sum().item()
    log(f"transformers' LlamaForCausalLM on {out}: logits NMSE {nmse:.2e} against this model")
    if not nmse < 1e-10:
        raise SystemExit("the exported Hugging Face model does not reproduce the trained one")


# ---- training -------------------------------------------------------------------------------------


def lr_at(step, steps, peak, warmup, floor):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * p))


def train(model, train_ids, val_w, a):
    ids = torch.tensor(train_ids, dtype=torch.long)
    ctx = model.c["ctx"]
    gen = torch.Generator().manual_seed(a.seed + 1)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    model.train()
    t0, run_loss, run_n = time.time(), 0.0, 0
    history = []
    for step in range(a.steps):
        lr = lr_at(step, a.steps, a.lr, a.warmup, a.lr * 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(ids) - ctx - 1, (a.batch,), generator=gen)
        x = torch.stack([ids[s : s + ctx + 1] for s in starts.tolist()])
        x[:, 0] = BOS  # every window starts with BOS, as in evaluation
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += loss.item()
        run_n += 1
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            v = window_nll(model, val_w, 0).mean().item()
            el = time.time() - t0
            history.append(dict(step=step + 1, train_loss=run_loss / run_n, val_loss=v, elapsed_s=el))
            log(f"step {step + 1:5d}/{a.steps}  lr {lr:.2e}  train loss {run_loss / run_n:.4f}  "
                f"val loss {v:.4f} (ppl {math.exp(v):.2f})  {el:.0f} s  {(step + 1) / el:.3f} steps/s")
            run_loss, run_n = 0.0, 0
    return history, time.time() - t0


@torch.no_grad()
def sample(model, sp, prompt, n, seed):
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = [BOS] + sp.encode(prompt)
    for _ in range(n):
        x = torch.tensor([ids[-model.c["ctx"] :]])
        p = torch.softmax(model(x)[0, -1] / 0.8, -1)
        ids.append(int(torch.multinomial(p, 1, generator=g)))
    return sp.decode(ids[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus", "tinyshakespeare.txt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--golden", default=os.path.join(ROOT, "tests", "golden", "perplexity"))
    ap.add_argument("--work", default="/tmp/transit-train-default", help="checkpoint, held-out text, metrics")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--export-only", action="store_true", help="skip training; export the checkpoint in --work")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    c = dict(MODEL)

    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    train_text, val_text = split_corpus(text)
    with open(os.path.join(a.work, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(val_text)
    log(f"corpus: {len(text)} characters, {len(train_text)} for training, {len(val_text)} held out "
        f"(-> {a.work}/heldout.txt)")

    sp_proto = train_tokenizer(train_text, c["vocab_size"])
    sp = spm.SentencePieceProcessor(model_proto=sp_proto)
    assert sp.get_piece_size() == c["vocab_size"] and sp.bos_id() == BOS and sp.eos_id() == EOS
    train_ids = [BOS] + sp.encode(train_text)
    val_ids = [BOS] + sp.encode(val_text)
    val_w = windows(val_ids, c["ctx"])
    log(f"tokenizer: {c['vocab_size']} pieces; {len(train_ids)} training tokens, {len(val_ids)} held-out tokens "
        f"({len(val_w)} windows of {c['ctx']})")

    ckpt = os.path.join(a.work, "model.pt")
    model = Llama(c, dropout=a.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters, {c}")
    metrics = {}
    if a.export_only:
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        metrics = state["metrics"]
    else:
        log(f"training: {a.steps} steps of {a.batch} x {c['ctx']} tokens, AdamW lr {a.lr} cosine, "
            f"dropout {a.dropout}, weight decay {a.weight_decay}, seed {a.seed}, {a.threads} threads")
        history, secs = train(model, train_ids[1:], val_w, a)
        metrics = dict(history=history, train_seconds=secs, args=vars(a))
        torch.save({"model": model.state_dict(), "metrics": metrics}, ckpt)
        log(f"training took {secs:.0f} s ({secs / 60:.1f} min)")

    # Export the float16-rounded weights and evaluate exactly what is shipped.
    round_f16_(model)
    model.eval()
    write_hf(a.out, model, c, sp_proto, sp)
    # the float16 GGUF goes to the work directory: what ships is its Q8_0 (transit quantize, README.md)
    gguf_path = os.path.join(a.work, "transit-default.gguf")
    write_gguf(gguf_path, model, c, sp)
    total = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    log(f"wrote {a.out}: {total} bytes in all")

    check_transformers(a.out, model, val_w[:2])
    res = eval_modes(model, val_ids, c["ctx"])
    uni = unigram_ppl(train_ids[1:], val_ids, c["ctx"], c["vocab_size"])
    for mode, r in res.items():
        log(f"held-out {mode}: {r['tokens']} tokens in {r['windows']} windows, nll {r['nll']:.6f}, "
            f"perplexity {r['ppl']:.4f}")
    log(f"unigram baseline on the same {uni['tokens']} tokens: perplexity {uni['ppl']:.4f}")

    # Golden values for tests/test_perplexity.c: the first windows of the held-out text.
    os.makedirs(a.golden, exist_ok=True)
    head = val_text[: val_text.index("\n", 4000) + 1]
    head_ids = [BOS] + sp.encode(head)
    head_res = eval_modes(model, head_ids, c["ctx"])
    with open(os.path.join(a.golden, "heldout_head.txt"), "w", encoding="utf-8") as f:
        f.write(head)
    with open(os.path.join(a.golden, "heldout_head.ppl"), "w") as f:
        f.write("# tools/train-default/train.py: PyTorch perplexity of models/default on heldout_head.txt\n")
        f.write(f"ctx {c['ctx']}\nwindows {head_res['default']['windows']}\n")
        for mode, r in head_res.items():
            f.write(f"{mode}_tokens {r['tokens']}\n{mode}_nll {r['nll']:.8f}\n{mode}_ppl {r['ppl']:.6f}\n")
        head_uni = unigram_ppl(train_ids[1:], head_ids, c["ctx"], c["vocab_size"])
        f.write(f"unigram_ppl {head_uni['ppl']:.6f}\n")
    log(f"golden: {len(head_ids)} tokens, {head_res['default']['windows']} windows, "
        f"perplexity {head_res['default']['ppl']:.4f} / second half {head_res['second_half']['ppl']:.4f}")

    s = sample(model, sp, "ROMEO:\n", 120, a.seed)
    log("PyTorch sample (temperature 0.8):\n" + s)
    metrics.update(n_params=n_params, heldout=res, unigram=uni, golden=head_res, bytes=total)
    with open(os.path.join(a.work, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
