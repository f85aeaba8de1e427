"""golden_util.py: what the golden-data scripts (tools/make_*_golden.py) share. They run in different
virtualenvs (attention_sinks pins an old transformers), so this module needs only numpy and the
standard library; model objects are used through their own save_pretrained."""
import os
import shutil
import struct

import numpy as np

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]


def rel_rows(a, b):
    """Per-row relative L2 difference of a from b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


def write_ints(path, values):
    """Integers space-separated on one line (token ids, row lists), as the C tests read them."""
    with open(path, "w") as f:
        f.write(" ".join(str(int(i)) for i in values) + "\n")


def save_model_dir(model, path, shared):
    """A random-weight model as a small Hugging Face directory the engine's loader accepts: the
    model's safetensors (readable by all) and config.json, no generation_config.json, and
    stories260K's tokenizer files (the loader wants a tokenizer; the goldens' ids do not use it)."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    model.save_pretrained(path, safe_serialization=True)
    os.chmod(os.path.join(path, "model.safetensors"), 0o644)  # safetensors may write it 0600
    gen_cfg = os.path.join(path, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    for fn in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(shared, "models", "stories260K", "hf", fn), os.path.join(path, fn))


def fnv1a64(ids, h=0xCBF29CE484222325):
    """FNV-1a over the little-endian int32 bytes of ids (the tokenizer goldens' per-line or per-block
    hash; the C tests compute the same)."""
    for b in struct.pack("<%di" % len(ids), *ids):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def corpus_lines(path):
    """A corpus file's lines as bytes, without the newlines (and without a last empty line)."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines
