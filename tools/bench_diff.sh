#!/usr/bin/env bash
# The cost of differential attention over plain attention at the same shape: two random-weight models
# that differ only in their attention (tools/make_random_gguf.py --arch llama / diffllama, same seed:
# the same matrices, plus the DiffLlama's lambda vectors), prefill and decode after a cached context,
# run alternately (transit bench --vs) so both see the same machine load, with the median time ratio.
# Usage: tools/bench_diff.sh [BACKEND] [REPS] [PYTHON]. BACKEND cpu (default) or vulkan; the models go
# to /tmp. The CPU shape has head_dim 64, GQA 4 (dim 1024, 8 layers); lavapipe gets a smaller one.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-cpu}
reps=${2:-5}
python=${3:-python3}
if [ "$backend" = cpu ]; then
  shape=(--dim 1024 --layers 8 --heads 16 --kv-heads 4 --ffn 2816 --vocab 32000)
  tag=1024x8 pp=512,2048 depth=0,2048 n=32
else
  shape=(--dim 512 --layers 4 --heads 8 --kv-heads 2 --ffn 1376 --vocab 4096)
  tag=512x4 pp=512 depth=0,512 n=16
fi
for arch in llama diffllama; do
  f=/tmp/transit-bench-$arch-$tag-f16.gguf
  [ -f "$f" ] || "$python" tools/make_random_gguf.py "${shape[@]}" --dtype f16 --arch $arch -o "$f"
done
build/transit bench -m /tmp/transit-bench-llama-$tag-f16.gguf --vs /tmp/transit-bench-diffllama-$tag-f16.gguf \
  --backend "$backend" -p "$pp" -n "$n" --depth "$depth" -r "$reps"
