#!/usr/bin/env python3
"""Plain attention, the Attention Transition and attention sinks on the same long prompt: how far
each variant moves the next-token distribution at every position, as a plot.

    pip install ./python matplotlib
    python3 python/examples/compare_attention.py [-m MODEL] [-f TEXT] [-o attention.png]

For each prompt position the plot shows the KL divergence of the variant's next-token distribution
from plain attention's. The transition (arXiv 2307.13365) re-weights the attention rows of its
scheduled blocks on prefill (prompts of 400 tokens or more), so its curve lifts off zero where its
blocks start; sinks (StreamingLLM) keep the first few tokens and a recent window, so their curve
stays at zero until the prompt outgrows the window, then measures what the evicted middle carried.
"""
import argparse
from pathlib import Path

import numpy as np

import transit

REPO = Path(__file__).resolve().parents[2]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kl_from(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """KL(ref || other) per row, in nats."""
    lp, lq = log_softmax(ref), log_softmax(other)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=str(REPO / "models" / "default"))
    ap.add_argument("-f", "--file", default=str(REPO / "models" / "default" / "README.md"), help="the prompt's text")
    ap.add_argument("-n", "--tokens", type=int, default=480, help="prompt tokens (the transition needs 400)")
    ap.add_argument("--sinks", type=int, default=4)
    ap.add_argument("--window", type=int, default=124)
    ap.add_argument("-o", "--out", default="attention.png")
    a = ap.parse_args()

    with transit.Model(a.model) as m:
        ids = m.tokenize(Path(a.file).read_text())[: a.tokens]
        n = len(ids)
        with transit.Context(m, n_ctx=n) as c:
            plain = c.eval(ids).copy()
        with transit.Context(m, n_ctx=n, transition=True) as c:
            trans = c.eval(ids).copy()
        # sinks: the prompt goes in steps of 16 tokens; each step sees the sinks, the window and itself
        rows = []
        with transit.Context(m, sinks=a.sinks, window=a.window, n_batch=16) as c:
            for i in range(0, n, 16):
                rows.append(c.eval(ids[i:i + 16]).copy())
        sinks = np.concatenate(rows)

    kl_t, kl_s = kl_from(plain, trans), kl_from(plain, sinks)
    print(f"{n} tokens of {Path(a.file).name} on {Path(a.model).name}")
    print(f"transition: mean KL {kl_t.mean():.3g} nats, max {kl_t.max():.3g} at position {kl_t.argmax()}")
    moved = kl_s > 1e-6  # below: the rounding of a prompt taken in steps of 16 instead of at once
    print(f"sinks {a.sinks} + window {a.window}: mean KL {kl_s.mean():.3g}, unchanged up to position "
          f"{int(np.argmax(moved)) if moved.any() else n}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(kl_t, label="Attention Transition (prefill)", lw=1)
    ax.plot(kl_s, label=f"attention sinks ({a.sinks} + window {a.window})", lw=1)
    ax.axvline(a.sinks + a.window, color="gray", ls=":", lw=1)
    ax.set_xlabel("prompt position")
    ax.set_ylabel("KL from plain attention (nats)")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{Path(a.model).name}: next-token distributions against plain attention")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot: {a.out}")


if __name__ == "__main__":
    main()
