#!/bin/sh
# valgrind.sh TRANSIT SHARED SOURCE_DIR CASE: the command under valgrind's memcheck, as the default build ships
# it: no invalid read or write, no use of uninitialised memory, no leak, and no suppressions of ours
# (ctest label "valgrind": `make valgrind`, in CI). Valgrind's virtual CPU has no AVX-512, so these
# runs take the avx2 kernel set, or v2 where a case forces it. Cases:
#   stories   transit run -m stories260K.gguf -n 16 (the BOS start; llama2.c's model)
#   default   the default model (f16 weights), greedy, on the lowest kernel set (TRANSIT_CPU_KERNELS=v2)
#   quant     quantize the default model to Q4_K_M, then generate from it (the quantized kernels)
#   info      transit help and transit info with no backend modules to open
set -eu
transit=$1
shared=$2
src=$3
case_=$4
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind): skipped"; exit 77; }
vg="valgrind -q --error-exitcode=9 --leak-check=full"
tmp=$(mktemp -d /tmp/transit_valgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export TRANSIT_NO_BLAS_TUNE=1 # (one process: the check is of transit, not of a re-exec)
case $case_ in
stories) $vg "$transit" run -m "$shared/models/stories260K/stories260K.gguf" -n 16 ;;
default) TRANSIT_CPU_KERNELS=v2 $vg "$transit" run -p "First Citizen:" -n 16 --temp 0 ;;
quant)
  $vg "$transit" quantize "$src/models/default" "$tmp/q4km.gguf" q4_k_m 2>"$tmp/log" ||
    { cat "$tmp/log"; exit 1; }
  $vg "$transit" run -m "$tmp/q4km.gguf" -p "First Citizen:" -n 16 --temp 0 -b 3 ;;
info)
  $vg "$transit" help >/dev/null
  TRANSIT_BACKEND_DIR=/nonexistent $vg "$transit" info ;;
*) echo "valgrind.sh: unknown case $case_"; exit 2 ;;
esac
echo
echo "valgrind $case_: no errors, no leaks"
