#!/usr/bin/env bash
# Attention Transition cost on the CPU: prefill with and without the transition at 2K, 4K and 8K
# tokens, run alternately (A/B) so both see the same machine load, with the median time ratio, and
# the memory the engine plans (activations, kernel workspace, KV cache, peak RSS).
# Usage: tools/bench_transition.sh [MODEL] [REPS]. Without MODEL, writes an 8-layer, dim-512 f32
# random-weight model (tools/make_random_gguf.py) to /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/tmp/transit-bench-512.gguf}
reps=${2:-3}
if [ ! -f "$model" ]; then
  python3 tools/make_random_gguf.py --dim 512 --layers 8 --heads 8 --kv-heads 8 --ffn 1376 --vocab 4096 \
    --dtype f32 -o "$model"
fi
build/transit bench -m "$model" -p 2048,4096,8192 -n 0 -r 1 --transition        # memory columns, peak RSS
build/transit bench -m "$model" -p 2048,4096,8192 -n 0 -r "$reps" --transition --ab
