"""transit: LLaMA-family inference with first-class attention variants, from Python.

    import transit
    model = transit.Model("models/default")                     # a .gguf file or a Hugging Face directory
    ids = model.tokenize("First Citizen:")
    ctx = transit.Context(model, n_ctx=512, transition=True)     # or sinks=4, window=252
    logits = ctx.eval(ids)                                       # numpy float32 [len(ids), vocab]
    text = transit.Context(model).generate("First Citizen:", max_tokens=32, temperature=0)

Everything goes through the C library's public API (transit.h); the numbers are the library's, so
they equal the `transit` command's bit for bit with the same settings. A failed call raises
TransitError with the library's message.
"""
from __future__ import annotations

import codecs
import ctypes
from typing import Iterator, Sequence

import numpy as np

from . import _lib as _c

__all__ = ["Model", "Context", "TransitError", "parity", "live_objects", "set_verbose", "__version__"]
__version__ = "0.1.0"


class TransitError(RuntimeError):
    """A call into the transit library failed. str(e) is the library's message (it names the file or
    argument at fault); e.status is its tr_status code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _check(status: int) -> None:
    if status != 0:
        msg = (_c.lib.tr_last_error() or b"").decode("utf-8", "replace")
        raise TransitError(status, msg or (_c.lib.tr_status_str(status) or b"").decode())


def set_verbose(on: bool = True) -> None:
    """The library's verbose log on stderr (as TRANSIT_VERBOSE=1)."""
    _c.lib.tr_set_verbose(1 if on else 0)


def live_objects() -> dict:
    """Handles the library holds now: {"models", "contexts", "samplers"} (a leak check)."""
    m, c, s = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    _c.lib.tr_live_objects(ctypes.byref(m), ctypes.byref(c), ctypes.byref(s))
    return {"models": m.value, "contexts": c.value, "samplers": s.value}


def _ids_array(ids: Sequence[int]) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int32).reshape(-1))
    return arr


class Model:
    """Weights and tokenizer, loaded on a backend.

    path: a .gguf file or a Hugging Face model directory. backend: "cpu" (default), "cpu-ref",
    "vulkan", "cuda" or "opencl". threads: CPU threads (0: all cores). device: the backend's device
    number, as `transit info` lists them (OpenCL), or None for the backend's choice.
    """

    def __init__(self, path: str, backend: str = "cpu", threads: int = 0, device: int | None = None):
        if not isinstance(path, str) or not path:
            raise TransitError(-1, "Model: path must be a non-empty string")
        if threads < 0:
            raise TransitError(-1, f"Model: threads must be >= 0, got {threads}")
        self._h = ctypes.c_void_p()
        p = _c.lib.tr_model_default_params()
        self._backend = backend.encode()
        p.backend = self._backend
        p.n_threads = threads
        p.device = 0 if device is None else device + 1
        _check(_c.lib.tr_model_load(path.encode(), ctypes.byref(p), ctypes.byref(self._h)))
        self.path = path
        self.backend = backend
        info = _c.ModelInfo()
        _c.lib.tr_model_get_info(self._h, ctypes.byref(info))
        self.info = {name: (v.decode() if isinstance(v, bytes) else v)
                     for name, _ in _c.ModelInfo._fields_ for v in [getattr(info, name)]}
        self.n_vocab = int(_c.lib.tr_model_n_vocab(self._h))

    def close(self) -> None:
        """Frees the model now (contexts made from it must be closed first)."""
        if getattr(self, "_h", None):
            _c.lib.tr_model_free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of text (with the beginning-of-text token when add_bos and the model uses one)."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = ctypes.c_int()
            st = _c.lib.tr_tokenize(self._h, data, len(data), 1 if add_bos else 0, buf, cap, ctypes.byref(n))
            if st == -7 and cap < 4 * len(data) + 64:  # TR_ERR_RANGE: a larger buffer
                cap = 4 * len(data) + 64
                continue
            _check(st)
            return list(buf[: n.value])

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of ids (invalid UTF-8 from byte tokens replaced)."""
        arr = _ids_array(ids)
        cap = 16 * len(arr) + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = _c.lib.tr_detokenize(self._h, arr.ctypes.data_as(_c.i32p), len(arr), buf, cap)
            if n < 0:
                _check(n)
            if n < cap:
                return buf.raw[:n].decode("utf-8", "replace")
            cap = n + 1

    def is_end_of_generation(self, token: int) -> bool:
        return bool(_c.lib.tr_model_is_eog(self._h, token))


class Context:
    """A KV cache and the attention settings of one sequence on a model.

    n_ctx: cache length in tokens (0: the model's training length, at most 4096; with sinks, the
    cache's rows). n_batch: the most tokens one step computes (0: all). transition: the Attention
    Transition (arXiv 2307.13365) on prefill, True or a dict of its parameters (min_len, blocks,
    alpha, beta, strategy "adding" or "multi"). sinks, window: attention sinks (StreamingLLM): keep
    the first `sinks` entries and the last `window`; the context then never runs out.
    """

    def __init__(self, model: Model, n_ctx: int = 0, n_batch: int = 0, transition: bool | dict = False,
                 sinks: int | None = None, window: int | None = None, threads: int = 0):
        if not isinstance(model, Model) or not model._h:
            raise TransitError(-1, "Context: model must be an open transit.Model")
        if n_ctx < 0 or n_batch < 0:
            raise TransitError(-1, f"Context: n_ctx and n_batch must be >= 0, got {n_ctx}, {n_batch}")
        self.model = model
        self._h = ctypes.c_void_p()
        p = _c.lib.tr_context_default_params()
        p.n_ctx, p.n_batch, p.n_threads = n_ctx, n_batch, threads
        if transition:
            p.transition.enabled = 1
            opts = transition if isinstance(transition, dict) else {}
            for k, v in opts.items():
                if k == "strategy":
                    if v not in ("adding", "multi"):
                        raise TransitError(-1, f"Context: transition strategy must be 'adding' or 'multi', got {v!r}")
                    p.transition.strategy = 0 if v == "adding" else 1
                elif k in ("min_len", "blocks", "alpha", "beta"):
                    setattr(p.transition, k, v)
                else:
                    raise TransitError(-1, f"Context: unknown transition parameter {k!r}")
        self._sinks = sinks is not None or window is not None
        if self._sinks:
            p.sinks.enabled = 1
            p.sinks.n_sink = 4 if sinks is None else sinks
            if window is not None:
                p.sinks.window = window
        _check(_c.lib.tr_context_create(model._h, ctypes.byref(p), ctypes.byref(self._h)))

    def close(self) -> None:
        if getattr(self, "_h", None):
            _c.lib.tr_context_free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def n_past(self) -> int:
        """Tokens evaluated since the cache was last empty."""
        return int(_c.lib.tr_context_n_past(self._h))

    def reset(self) -> None:
        """Empties the KV cache."""
        _c.lib.tr_context_reset(self._h)

    def eval(self, ids: Sequence[int], all_logits: bool = True) -> np.ndarray:
        """Evaluates ids after what the cache holds; returns their logits, float32 [n, vocab] (the
        last row only, [1, vocab], when all_logits is False). The array views the library's memory
        until the next call on this context; copy it to keep it."""
        arr = _ids_array(ids)
        if len(arr) == 0:
            raise TransitError(-1, "Context.eval: no tokens")
        _check(_c.lib.tr_eval(self._h, arr.ctypes.data_as(_c.i32p), len(arr), 1 if all_logits else 0))
        V = self.model.n_vocab
        if not all_logits:
            return np.ctypeslib.as_array(_c.lib.tr_get_logits(self._h, -1), shape=(1, V))
        n = len(arr)
        first, last = _c.lib.tr_get_logits(self._h, 0), _c.lib.tr_get_logits(self._h, n - 1)
        step = ctypes.sizeof(ctypes.c_float) * V
        if ctypes.cast(last, ctypes.c_void_p).value - ctypes.cast(first, ctypes.c_void_p).value == (n - 1) * step:
            return np.ctypeslib.as_array(first, shape=(n, V))  # the rows lie in order: no copy
        return np.stack([np.ctypeslib.as_array(_c.lib.tr_get_logits(self._h, i), shape=(V,)) for i in range(n)])

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
                 seed: int | None = None, repeat_penalty: float | None = None,
                 stream: bool = False) -> str | Iterator[str]:
        """Continues prompt (text, or token ids) by up to max_tokens tokens, stopping at the end of
        generation, as `transit run` does with the same options (None: the library's defaults, which
        are the command's: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1, seed
        0x5eed); temperature 0 is greedy. The cache is emptied first. Returns the text, or with
        stream=True an iterator of its pieces (whole UTF-8 characters)."""
        sp = _c.lib.tr_sampler_default_params()
        for name, v in (("temp", temperature), ("top_k", top_k), ("top_p", top_p), ("min_p", min_p),
                        ("seed", seed), ("repeat_penalty", repeat_penalty)):
            if v is not None:
                if name == "seed" and (not isinstance(v, int) or v < 0):
                    raise TransitError(-1, f"generate: seed must be a non-negative integer, got {v!r}")
                setattr(sp, name, v)
        if max_tokens < 0:
            raise TransitError(-1, f"generate: max_tokens must be >= 0, got {max_tokens}")
        ids = self.model.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        smp = ctypes.c_void_p()
        _check(_c.lib.tr_sampler_create(ctypes.byref(sp), self.model.n_vocab, ctypes.byref(smp)))
        it = self._generate(ids, max_tokens, smp)
        return it if stream else "".join(it)

    def _generate(self, ids: list, max_tokens: int, smp: ctypes.c_void_p) -> Iterator[str]:
        """cli_generate's loop (tools/cli.c), step for step, so that a seed gives the same text."""
        try:
            for t in ids:
                _c.lib.tr_sampler_accept(smp, t)
            self.reset()
            self.eval(ids, all_logits=False)
            prev, piece = ids[-1], ctypes.create_string_buffer(256)
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for i in range(max_tokens):
                tok = _c.lib.tr_sample(smp, _c.lib.tr_get_logits(self._h, -1))
                if _c.lib.tr_model_is_eog(self.model._h, tok):
                    break
                _c.lib.tr_sampler_accept(smp, tok)
                n = _c.lib.tr_token_to_piece(self.model._h, prev, tok, piece, 256)
                prev = tok
                out = text.decode(piece.raw[:min(n, 255)]) if n > 0 else ""
                if out:
                    yield out
                if i + 1 == max_tokens or (not self._sinks and self.n_past == _c.lib.tr_context_n_ctx(self._h)):
                    break
                _check(_c.lib.tr_eval(self._h, (ctypes.c_int32 * 1)(tok), 1, 0))
            rest = text.decode(b"", final=True)
            if rest:
                yield rest
        finally:
            _c.lib.tr_sampler_free(smp)


def parity(path: str, ids: Sequence[int] | str, backends: Sequence[str] = ("cpu",), reference: str = "cpu-ref",
           n_greedy: int = 16, **context) -> dict:
    """Each backend against the reference on the same prompt, as `transit parity` reports it: the
    NMSE and largest difference of every prompt position's logits, and how many of n_greedy greedy
    tokens agree. context: Context arguments (transition=True, sinks=4, ...). Returns
    {backend: {"nmse", "max_abs_diff", "greedy_agree", "n_greedy"}}."""
    runs = {}
    for name in [reference, *backends]:
        with Model(path, backend=name) as m:
            prompt = m.tokenize(ids) if isinstance(ids, str) else list(ids)
            with Context(m, n_ctx=len(prompt) + n_greedy + 1, **context) as c:
                logits = c.eval(prompt).copy()
                greedy, tok = [], int(np.argmax(logits[-1]))
                for _ in range(n_greedy):
                    greedy.append(tok)
                    tok = int(np.argmax(c.eval([tok])[-1]))
            runs[name] = (logits, greedy)
    ref_logits, ref_greedy = runs[reference]
    out = {}
    for name in backends:
        lg, gr = runs[name]
        diff = lg.astype(np.float64) - ref_logits.astype(np.float64)
        agree = next((i for i, (a, b) in enumerate(zip(gr, ref_greedy)) if a != b), len(gr))
        out[name] = {"nmse": float((diff ** 2).sum() / (ref_logits.astype(np.float64) ** 2).sum()),
                     "max_abs_diff": float(np.abs(diff).max()), "greedy_agree": agree, "n_greedy": n_greedy}
    return out
