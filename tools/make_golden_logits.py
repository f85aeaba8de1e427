#!/usr/bin/env python3
"""Golden logits for the end-to-end tests, from Hugging Face transformers' LlamaForCausalLM.

For each Hugging Face model directory under ../shared/models and each prompt, writes
  tests/golden/logits/<model>.<name>.ids   token ids, space separated (fed to `transit eval --ids`)
  tests/golden/logits/<model>.<name>.npy   float32 logits [n_tokens, vocab], CPU, float32, eager attention
Prompts are the tokenized story openings below plus seeded random ids, so both natural and
arbitrary token sequences are covered. Run from the repository root:
  python3 tools/make_golden_logits.py [--shared ../shared]
"""
import argparse
import os

import numpy as np
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

MODELS = ["stories260K", "aidreams260K"]
TEXTS = {
    "story": "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "dream": "I dreamed I was flying over a city made of glass",
}
RANDOM_LENGTHS = {"rand1": 1, "rand7": 7, "rand100": 100}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "logits"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for name in MODELS:
        path = os.path.join(args.shared, "models", name, "hf")
        model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        tok = AutoTokenizer.from_pretrained(path)
        prompts = {k: tok(v)["input_ids"] for k, v in TEXTS.items()}
        gen = np.random.default_rng(1234)
        for k, n in RANDOM_LENGTHS.items():
            prompts[k] = [int(x) for x in gen.integers(0, model.config.vocab_size, size=n)]
        for k, ids in prompts.items():
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float().numpy()
            stem = os.path.join(args.out, f"{name}.{k}")
            with open(stem + ".ids", "w") as f:
                f.write(" ".join(str(i) for i in ids) + "\n")
            np.save(stem + ".npy", logits.astype(np.float32))
            print(f"{stem}: {len(ids)} tokens")


if __name__ == "__main__":
    main()
