#!/bin/sh
# tools/gpu/session.sh test|bench|long|quant|all: the CUDA backend's checks and benchmarks (docs/cuda.md,
# docs/benchmarks.md) on a GPU machine, from the pack of tools/gpu/prepare.sh (.gpu/, carried).
# Logs go to $OUT (the device tool's folder) or ./gpu-out. Each phase fits a 10-minute call:
#   test   nvidia-smi, transit info, test_cuda (every op and the end-to-end cases), test_vulkan on
#          the NVIDIA driver, transit parity on cpu/cuda/vulkan with and without the transition
#   bench  random-weight LLaMA-7B f16: pp512 + tg128 on CUDA (with the copy bandwidth and cuBLAS GEMM
#          references), tg128 with programmatic dependent launch (TRANSIT_CUDA_PDL=1), the
#          transition's cost (--ab, 512 and 4096 tokens), tg128 on Vulkan
#   long   a 32,768-token prompt with the transition on CUDA, and the same without it
#   quant  the 7B model as Q4_K_M (transit quantize): pp512 + tg128 on CUDA and on Vulkan
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PHASE=${1:-all}
LOGS=${OUT:-$ROOT/gpu-out}
RUN=/tmp/transit-gpu
MODEL7B=/tmp/llama7b-f16.gguf
mkdir -p "$LOGS" "$RUN"
tar -C "$RUN" -xzf "$ROOT/.gpu/pack.tar.gz" # always: the pack may be newer than a warm machine's copy
# cuBLAS is too big to carry (cublasLt alone is hundreds of MB): the toolkit's, or a Python wheel's
CUBLAS=$(find /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local /opt /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -n 1)
export LD_LIBRARY_PATH="$RUN/lib:${CUBLAS:+$(dirname "$CUBLAS"):}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export TR_TEST_SHARED="$RUN/shared" TR_TEST_GOLDEN="$ROOT/tests/golden"
# Vulkan through the NVIDIA driver (the loader is in the pack)
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES="$ICD"
T="$RUN/bin/transit"
S="$TR_TEST_SHARED/models"

step() { # step NAME COMMAND...: runs it, its output in $LOGS/NAME.log and on stdout; never stops the phase
    name=$1
    shift
    echo "== $name: $*"
    start=$(date +%s)
    if "$@" >"$LOGS/$name.log" 2>&1; then rc=0; else rc=$?; fi
    tail -n 40 "$LOGS/$name.log"
    echo "== $name: exit $rc, $(($(date +%s) - start)) s"
}

model7b() {
    [ -f "$MODEL7B" ] && return 0
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$ROOT"/.gpu/whl/*.whl
    PYTHONPATH=/tmp/site python3 "$ROOT/tools/make_random_gguf.py" --shape llama7b --dtype f16 --tile -o "$MODEL7B"
}

phase_test() {
    step gpu nvidia-smi
    step libraries sh -c "ldd '$T' '$RUN/bin/test_cuda' | grep -E 'not found|cublas|cudart|openblas'"
    step info "$T" info
    step test_cuda "$RUN/bin/test_cuda"
    step test_vulkan "$RUN/bin/test_vulkan"
    step parity "$T" parity -m "$S/stories260K/stories260K.gguf" -p "Once upon a time" --backends cpu,cuda,vulkan -n 64
    step parity_transition "$T" parity -m "$S/stories260K/hf" --ids "$TR_TEST_GOLDEN/transition/stories260K.n517.ids" \
        --backends cuda,vulkan -n 64 --transition
    step quantize_default "$T" quantize "$ROOT/models/default" /tmp/default-q4_k_m.gguf q4_k_m
    step parity_q4_k_m "$T" parity -m /tmp/default-q4_k_m.gguf -p "ROMEO:" --backends cpu,cuda,vulkan -n 64
}

phase_bench() {
    step model7b model7b
    step bench_cuda "$T" bench -m "$MODEL7B" --backend cuda -p 512 -n 128 -r 5
    step bench_cuda_pdl env TRANSIT_CUDA_PDL=1 "$T" bench -m "$MODEL7B" --backend cuda -p 0 -n 128 -r 5
    step bench_cuda_transition "$T" bench -m "$MODEL7B" --backend cuda -p 512,4096 -r 5 --transition --ab
    step bench_vulkan "$T" bench -m "$MODEL7B" --backend vulkan -p 512 -n 128 -r 3
}

phase_quant() {
    step model7b model7b
    [ -f /tmp/llama7b-q4_k_m.gguf ] || step quantize_7b "$T" quantize "$MODEL7B" /tmp/llama7b-q4_k_m.gguf q4_k_m
    step bench_cuda_q4_k_m "$T" bench -m /tmp/llama7b-q4_k_m.gguf --backend cuda -p 512 -n 128 -r 5
    step bench_vulkan_q4_k_m "$T" bench -m /tmp/llama7b-q4_k_m.gguf --backend vulkan -p 512 -n 128 -r 3
}

phase_long() {
    step model7b model7b
    step long_transition "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1 --transition
    step long_plain "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1
}

case "$PHASE" in
test) phase_test ;;
bench) phase_bench ;;
quant) phase_quant ;;
long) phase_long ;;
all) phase_test && phase_bench && phase_long && phase_quant ;;
*) echo "usage: tools/gpu/session.sh test|bench|long|quant|all" >&2; exit 2 ;;
esac
