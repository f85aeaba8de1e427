"""The C library, loaded once, and its public API (transit.h) declared for ctypes.

Only what transit.h declares is used: the package is a view of the library, not a second engine.
The structures mirror the header's field for field; tests/test_python.py checks the default
parameters they read back against the header's documented defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from pathlib import Path

# ---- OpenBLAS's kernels ------------------------------------------------------------------------
# OpenBLAS chooses its kernels when it loads, from the CPU's model number, and falls back to SSE3
# ones on CPUs it does not know (5-10x slower prefill); the choice cannot change afterwards
# (tr_blas_better_coretype). The command starts itself again with OPENBLAS_CORETYPE set; Python
# cannot, so the variable is set here from the CPU's flags before the library (and OpenBLAS) load.
# A user's own OPENBLAS_CORETYPE wins, and TRANSIT_NO_BLAS_TUNE=1 turns this off.


def _blas_coretype_from_cpu() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    flags = set(m.group(1).split()) if m else set()
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


if "OPENBLAS_CORETYPE" not in os.environ and not os.environ.get("TRANSIT_NO_BLAS_TUNE"):
    _core = _blas_coretype_from_cpu()
    if _core:
        os.environ["OPENBLAS_CORETYPE"] = _core


def _find_library() -> str:
    """TRANSIT_LIBRARY, else the copy installed in this package, else the system's libtransit."""
    env = os.environ.get("TRANSIT_LIBRARY")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for name in ("libtransit.so", "libtransit.so.0"):
        if (here / name).exists():
            return str(here / name)
    found = ctypes.util.find_library("transit")
    if found:
        return found
    raise ImportError("transit: libtransit.so not found (install the package with `pip install ./python`, "
                      "or point TRANSIT_LIBRARY at a built libtransit.so)")


lib = ctypes.CDLL(_find_library())

c_int, c_float, c_char_p, c_void_p, c_size_t = ctypes.c_int, ctypes.c_float, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t
i32p = ctypes.POINTER(ctypes.c_int32)
f32p = ctypes.POINTER(ctypes.c_float)


class ModelParams(ctypes.Structure):
    _fields_ = [("backend", c_char_p), ("n_threads", c_int), ("device", c_int)]


class TransitionParams(ctypes.Structure):
    _fields_ = [("enabled", c_int), ("min_len", c_int), ("blocks", c_int), ("alpha", c_float), ("beta", c_float),
                ("strategy", c_int)]


class SinkParams(ctypes.Structure):
    _fields_ = [("enabled", c_int), ("n_sink", c_int), ("window", c_int)]


class ContextParams(ctypes.Structure):
    _fields_ = [("n_ctx", c_int), ("n_batch", c_int), ("n_threads", c_int), ("transition", TransitionParams),
                ("sinks", SinkParams), ("n_seq", c_int)]


class SamplerParams(ctypes.Structure):
    _fields_ = [("temp", c_float), ("top_k", c_int), ("top_p", c_float), ("min_p", c_float),
                ("repeat_penalty", c_float), ("repeat_last_n", c_int), ("seed", ctypes.c_uint64)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("arch", c_char_p), ("diff_attn", c_int), ("activation", c_char_p), ("source", c_char_p),
                ("weight_type", c_char_p), ("n_vocab", c_int), ("dim", c_int), ("n_layers", c_int),
                ("n_heads", c_int), ("n_kv_heads", c_int), ("head_dim", c_int), ("ffn_dim", c_int),
                ("n_ctx_train", c_int), ("rms_norm_eps", c_float), ("rope_theta", c_float),
                ("tied_embeddings", c_int), ("rope_layout", c_int), ("rope_scaling", c_char_p),
                ("rope_factor", c_float), ("rope_low_freq_factor", c_float), ("rope_high_freq_factor", c_float),
                ("rope_orig_ctx", c_int), ("n_params", ctypes.c_int64), ("weight_bytes", c_size_t),
                ("decode_bytes", c_size_t), ("bos_id", c_int), ("eos_id", c_int), ("add_bos", c_int),
                ("tokenizer", c_char_p)]


def _declare(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_declare("tr_last_error", c_char_p)
_declare("tr_status_str", c_char_p, c_int)
_declare("tr_set_verbose", None, c_int)
_declare("tr_model_default_params", ModelParams)
_declare("tr_model_load", c_int, c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(c_void_p))
_declare("tr_model_free", None, c_void_p)
_declare("tr_model_get_info", None, c_void_p, ctypes.POINTER(ModelInfo))
_declare("tr_model_n_vocab", c_int, c_void_p)
_declare("tr_model_is_eog", c_int, c_void_p, ctypes.c_int32)
_declare("tr_tokenize", c_int, c_void_p, c_char_p, c_size_t, c_int, i32p, c_int, ctypes.POINTER(c_int))
_declare("tr_detokenize", c_int, c_void_p, i32p, c_int, c_char_p, c_int)
_declare("tr_token_to_piece", c_int, c_void_p, ctypes.c_int32, ctypes.c_int32, c_char_p, c_int)
_declare("tr_context_default_params", ContextParams)
_declare("tr_context_create", c_int, c_void_p, ctypes.POINTER(ContextParams), ctypes.POINTER(c_void_p))
_declare("tr_context_free", None, c_void_p)
_declare("tr_eval", c_int, c_void_p, i32p, c_int, c_int)
_declare("tr_get_logits", f32p, c_void_p, c_int)
_declare("tr_context_n_past", c_int, c_void_p)
_declare("tr_context_n_ctx", c_int, c_void_p)
_declare("tr_context_reset", None, c_void_p)
_declare("tr_sampler_default_params", SamplerParams)
_declare("tr_sampler_create", c_int, ctypes.POINTER(SamplerParams), c_int, ctypes.POINTER(c_void_p))
_declare("tr_sampler_free", None, c_void_p)
_declare("tr_sampler_accept", None, c_void_p, ctypes.c_int32)
_declare("tr_sample", ctypes.c_int32, c_void_p, f32p)
_declare("tr_live_objects", c_int, ctypes.POINTER(c_int), ctypes.POINTER(c_int), ctypes.POINTER(c_int))
