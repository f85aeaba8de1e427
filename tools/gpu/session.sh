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
LOG=$LOGS/session.log # one file: the device tool brings back at most 8
BEGIN=$(date +%s)
DEADLINE=$((BEGIN + ${BUDGET:-540})) # seconds this call may use in all (BUDGET=...)
RUN=/tmp/transit-gpu
MODEL7B=/tmp/llama7b-f16.gguf
MODEL7B_Q=/tmp/llama7b-q4_k_m.gguf
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

step() { # step NAME SECONDS COMMAND...: runs it under a time limit (cut to what is left before
    # $DEADLINE), its output appended to $LOG and its tail on stdout; never stops the phase
    name=$1 limit=$2
    shift 2
    left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then echo "== $name: skipped, no time left"; return 0; fi
    echo "== $name ($limit s at most): $*" | tee -a "$LOG"
    start=$(date +%s)
    case $(command -v "$1") in
    /*) to="timeout -k 5 $limit" ;;
    *) to="" ;; # a function of this script, which bounds its own waits
    esac
    if $to "$@" >"$RUN/step.log" 2>&1; then rc=0; else rc=$?; fi
    cat "$RUN/step.log" >>"$LOG"
    tail -n "${TAIL:-25}" "$RUN/step.log"
    echo "== $name: exit $rc, $(($(date +%s) - start)) s" | tee -a "$LOG"
}

model7b() { # the random-weight LLaMA-7B f16 (13.5 GB; a few tens of seconds on 16 cores)
    [ -f "$MODEL7B" ] && return 0
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$ROOT"/.gpu/whl/*.whl &&
        PYTHONPATH=/tmp/site python3 "$ROOT/tools/make_random_gguf.py" --shape llama7b --dtype f16 --tile -o "$MODEL7B.part" &&
        mv "$MODEL7B.part" "$MODEL7B"
}

wait_model7b() { # for a model7b started in the background
    while [ ! -f "$MODEL7B" ] && kill -0 "$MODEL7B_PID" 2>/dev/null && [ "$(date +%s)" -lt "$DEADLINE" ]; do sleep 1; done
    [ -f "$MODEL7B" ]
}

phase_test() {
    step gpu 20 nvidia-smi
    step libraries 10 sh -c "ldd '$T' '$RUN/bin/test_cuda' | grep -E 'not found|cublas|cudart|openblas|vulkan'"
    step info 30 "$T" info
    step test_cuda 180 "$RUN/bin/test_cuda"
    step parity 60 "$T" parity -m "$S/stories260K/stories260K.gguf" -p "Once upon a time" --backends cpu,cuda,vulkan -n 64
    step parity_transition 60 "$T" parity -m "$S/stories260K/hf" --ids "$TR_TEST_GOLDEN/transition/stories260K.n517.ids" \
        --backends cuda,vulkan -n 64 --transition
    step quantize_default 30 "$T" quantize "$ROOT/models/default" /tmp/default-q4_k_m.gguf q4_k_m
    step parity_q4_k_m 60 "$T" parity -m /tmp/default-q4_k_m.gguf -p "ROMEO:" --backends cpu,cuda,vulkan -n 64
    step test_vulkan 150 "$RUN/bin/test_vulkan"
}

phase_bench() {
    step model7b 240 wait_model7b
    step bench_cuda 120 "$T" bench -m "$MODEL7B" --backend cuda -p 512 -n 128 -r 3
    step bench_cuda_transition 120 "$T" bench -m "$MODEL7B" --backend cuda -p 512,4096 -r 3 --transition --ab
    step bench_cuda_pdl 60 env TRANSIT_CUDA_PDL=1 "$T" bench -m "$MODEL7B" --backend cuda -p 0 -n 128 -r 3
    step bench_vulkan 120 "$T" bench -m "$MODEL7B" --backend vulkan -p 512 -n 128 -r 2
}

phase_quant() {
    step model7b 240 wait_model7b
    [ -f "$MODEL7B_Q" ] || step quantize_7b 240 sh -c "'$T' quantize '$MODEL7B' '$MODEL7B_Q.part' q4_k_m --threads 8 && mv '$MODEL7B_Q.part' '$MODEL7B_Q'"
    step bench_cuda_q4_k_m 90 "$T" bench -m "$MODEL7B_Q" --backend cuda -p 512 -n 128 -r 3
    step bench_vulkan_q4_k_m 90 "$T" bench -m "$MODEL7B_Q" --backend vulkan -p 512 -n 128 -r 2
}

phase_long() {
    step model7b 240 wait_model7b
    step long_transition 120 "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1 --transition
    step long_plain 120 "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1
}

# The 7B model is written in the background while the tests run (it needs only the CPUs).
MODEL7B_PID=0
if [ "$PHASE" != test ]; then
    model7b >"$RUN/model7b.log" 2>&1 &
    MODEL7B_PID=$!
fi
case "$PHASE" in
test) phase_test ;;
bench) phase_bench ;;
quant) phase_quant ;;
long) phase_long ;;
all) phase_test; phase_bench; phase_long; phase_quant ;;
*) echo "usage: tools/gpu/session.sh test|bench|long|quant|all" >&2; exit 2 ;;
esac
[ -f "$RUN/model7b.log" ] && cat "$RUN/model7b.log" >>"$LOG"
echo "session: $(($(date +%s) - BEGIN)) s"
