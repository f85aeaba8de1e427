#!/bin/sh
# tools/gpu/session.sh PHASE...: (PHASE: test|bench|long|quant|all) the CUDA backend's checks and benchmarks (docs/cuda.md,
# docs/benchmarks.md) on a GPU machine, from the pack of tools/gpu/prepare.sh (.gpu/, carried).
# Logs go to $OUT (the device tool's folder) or ./gpu-out. Each phase fits a 10-minute call:
#   test   nvidia-smi, transit info, test_cuda (every op and the end-to-end cases), test_batch (several
#          sequences in one step against each alone, every backend), test_vulkan on
#          the NVIDIA driver, transit parity on cpu/cuda/vulkan with and without the transition
#   bench  random-weight LLaMA-7B f16: pp512 + tg128 on CUDA (with the copy bandwidth and cuBLAS GEMM
#          references), per-launch profiles of decode and prefill (TRANSIT_CUDA_PROFILE=1), pp512 +
#          tg128 on Vulkan, the transition's cost (--ab, 512 and 4096 tokens)
#   quant  the 7B model as Q4_K_M (transit quantize): the same on CUDA and on Vulkan
#   long   a profile at 16,384 tokens; 32,768 tokens with the transition on CUDA, and without it
# `all` runs them in that order until BUDGET seconds (540) are spent; every step has its own limit.
# Several phases run in the order given (`test quant`: a re-check after a change to quantized kernels).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PHASES=${*:-all}
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
# lib/transit-backends: the tests that reach into a backend link its module by name
export LD_LIBRARY_PATH="$RUN/lib:$RUN/lib/transit-backends:${CUBLAS:+$(dirname "$CUBLAS"):}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export TR_TEST_SHARED="$RUN/shared" TR_TEST_GOLDEN="$ROOT/tests/golden"
# Vulkan through the NVIDIA driver (the loader is in the pack; the driver needs GLVND's libraries)
for deb in "$ROOT"/.gpu/gl/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" /; done
ldconfig 2>/dev/null || true
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

model7b() { # the random-weight LLaMA-7B f16 (13.5 GB, ~30 s on 16 cores), then as Q4_K_M (~2 min)
    if [ ! -f "$MODEL7B" ]; then
        python3 -m pip install -q --no-index --no-deps --target /tmp/site "$ROOT"/.gpu/whl/*.whl &&
            PYTHONPATH=/tmp/site python3 "$ROOT/tools/make_random_gguf.py" --shape llama7b --dtype f16 --tile \
                -o "$MODEL7B.part" && mv "$MODEL7B.part" "$MODEL7B" || return 1
    fi
    [ -f "$MODEL7B_Q" ] || { "$T" quantize "$MODEL7B" "$MODEL7B_Q.part" q4_k_m && mv "$MODEL7B_Q.part" "$MODEL7B_Q"; }
}

wait_for() { # wait_for FILE: a file the background model7b writes
    while [ ! -f "$1" ] && kill -0 "$MODEL7B_PID" 2>/dev/null && [ "$(date +%s)" -lt "$DEADLINE" ]; do sleep 1; done
    [ -f "$1" ]
}

# TRANSIT_CUDA_PROFILE=1: each launch timed, the table on stderr (docs/cuda.md)
PROFILE="env TRANSIT_CUDA_PROFILE=1 $T bench --backend cuda -r 1"

phase_test() {
    step gpu 20 nvidia-smi
    step libraries 10 sh -c "ldd '$T' '$RUN/bin/test_cuda' | grep -E 'not found|cublas|cudart|openblas|vulkan'"
    step info 30 "$T" info
    step test_cuda 180 "$RUN/bin/test_cuda"
    step test_batch 60 "$RUN/bin/test_batch"
    step parity 60 "$T" parity -m "$S/stories260K/stories260K.gguf" -p "Once upon a time" --backends cpu,cuda,vulkan -n 64
    step parity_transition 60 "$T" parity -m "$S/stories260K/hf" --ids "$TR_TEST_GOLDEN/transition/stories260K.n517.ids" \
        --backends cuda,vulkan -n 64 --transition
    step quantize_default 30 "$T" quantize "$ROOT/models/default" /tmp/default-q4_k_m.gguf q4_k_m
    step parity_q4_k_m 60 "$T" parity -m /tmp/default-q4_k_m.gguf -p "ROMEO:" --backends cpu,cuda,vulkan -n 64
    step test_vulkan 150 "$RUN/bin/test_vulkan"
}

phase_bench() {
    step model7b 240 wait_for "$MODEL7B"
    step bench_cuda 120 "$T" bench -m "$MODEL7B" --backend cuda -p 512 -n 128 -r 3
    TAIL=40 step profile_decode 60 $PROFILE -m "$MODEL7B" -p 0 -n 32
    TAIL=30 step profile_prefill 60 $PROFILE -m "$MODEL7B" -p 512 -n 0
    step bench_vulkan 120 "$T" bench -m "$MODEL7B" --backend vulkan -p 512 -n 128 -r 2
    step bench_cuda_transition 120 "$T" bench -m "$MODEL7B" --backend cuda -p 512,4096 -r 3 --transition --ab
}

phase_quant() {
    step model7b_q4_k_m 300 wait_for "$MODEL7B_Q"
    step bench_cuda_q4_k_m 90 "$T" bench -m "$MODEL7B_Q" --backend cuda -p 512 -n 128 -r 3
    TAIL=40 step profile_decode_q4_k_m 60 $PROFILE -m "$MODEL7B_Q" -p 0 -n 32
    TAIL=30 step profile_prefill_q4_k_m 60 $PROFILE -m "$MODEL7B_Q" -p 512 -n 0
    step bench_vulkan_q4_k_m 90 "$T" bench -m "$MODEL7B_Q" --backend vulkan -p 512 -n 128 -r 2
}

phase_long() {
    step model7b 240 wait_for "$MODEL7B"
    TAIL=30 step profile_long 120 $PROFILE -m "$MODEL7B" -p 16384 -n 0
    step long_transition 120 "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1 --transition
    step long_plain 120 "$T" bench -m "$MODEL7B" --backend cuda -p 32768 -n 0 -r 1
}

# The 7B models are written in the background while the tests run (that needs only the CPUs).
MODEL7B_PID=0
if [ "$PHASES" != test ]; then
    model7b >"$RUN/model7b.log" 2>&1 &
    MODEL7B_PID=$!
fi
for phase in $PHASES; do
    case "$phase" in
    test) phase_test ;;
    bench) phase_bench ;;
    quant) phase_quant ;;
    long) phase_long ;;
    all) phase_test; phase_bench; phase_quant; phase_long ;;
    *) echo "usage: tools/gpu/session.sh test|bench|long|quant|all..." >&2; exit 2 ;;
    esac
done
[ -f "$RUN/model7b.log" ] && cat "$RUN/model7b.log" >>"$LOG"
echo "session: $(($(date +%s) - BEGIN)) s"
