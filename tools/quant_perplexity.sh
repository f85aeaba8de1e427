#!/bin/bash
# quant_perplexity.sh: the perplexity table of docs/quantization.md. The default model quantized to
# each type by `transit quantize` and by llama.cpp's llama-quantize, each file scored by `transit
# perplexity --second-half` and by llama-perplexity on the held-out 10% of Tiny Shakespeare (windows
# of 256 tokens; llama-perplexity scores the second half of each window).
#
# usage: tools/quant_perplexity.sh LLAMA_BIN_DIR [OUT_DIR]
#   LLAMA_BIN_DIR: llama-quantize and llama-perplexity, built from the llama-cpp-python source as design
#   §7 says (without AMX for quantized files); nothing of llama.cpp is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${1:?usage: tools/quant_perplexity.sh LLAMA_BIN_DIR [OUT_DIR]}
OUT=${2:-/tmp/transit-quant-ppl}
mkdir -p "$OUT"
python3 -c "t=open('../shared/corpus/tinyshakespeare.txt').read(); i=t.index('\n', int(len(t)*0.9))+1; open('$OUT/heldout.txt','w').write(t[i:])"
SRC=models/default
score() { # file -> "transit llama"
  local tp lp
  tp=$(build/transit perplexity -m "$1" -f "$OUT/heldout.txt" -c 256 --second-half -t 2 2>&1 | grep -o "perplexity: [0-9.]*" | tail -1 | cut -d' ' -f2)
  lp=$("$LB/llama-perplexity" -m "$1" -f "$OUT/heldout.txt" -c 256 -b 256 -t 2 2>&1 | grep -o "Final estimate: PPL = [0-9.]*" | awk '{print $5}')
  echo "$tp $lp"
}
printf "| type | bits/weight | transit's file in transit | in llama.cpp | llama-quantize's file in transit | in llama.cpp |\n"
printf "|---|---:|---:|---:|---:|---:|\n"
read -r tp lp < <(score $SRC)
printf "| F16 (shipped) | 16 | %s | %s | | |\n" "$tp" "$lp"
params=$(build/transit info -m $SRC | awk '/parameters/ {print $2}')
for t in q8_0 q6_k q5_k_m q5_1 q5_0 q4_k_m q4_1 q4_0; do
  T=$(echo $t | tr a-z A-Z)
  build/transit quantize $SRC "$OUT/tr-$t.gguf" $t --threads 2 2>/dev/null
  "$LB/llama-quantize" $SRC "$OUT/lq-$T.gguf" "$T" 2 >/dev/null 2>&1
  read -r a b < <(score "$OUT/tr-$t.gguf")
  read -r c d < <(score "$OUT/lq-$T.gguf")
  bpw=$(python3 -c "import os; print('%.1f' % (8 * os.path.getsize('$OUT/tr-$t.gguf') / $params))")
  printf "| %s | %s | %s | %s | %s | %s |\n" "$T" "$bpw" "$a" "$b" "$c" "$d"
done
