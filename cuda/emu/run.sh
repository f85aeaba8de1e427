#!/bin/sh
# cuda/emu/run.sh [ops|e2e|quick|diffllama|batch|build]: builds tests/test_cuda against a CPU emulation of
# the CUDA kernels, runtime and cuBLAS (cuemu.h, cuemu.cpp) and runs it ("build": only builds it, as
# $CUEMU_BUILD/test_cuda_emu). "diffllama" runs tests/test_diffllama (DiffLlama models against
# transformers' logits on every backend, so on the emulated CUDA one too; about ten minutes), built
# beside it as $CUEMU_BUILD/test_diffllama_emu; "batch" runs tests/test_batch (several sequences in one
# step against each alone) as $CUEMU_BUILD/test_batch_emu. CUEMU_ORDER=forward|reverse|random[:seed] orders the threads and
# blocks (cuemu.cpp); ctest runs `ops` forward and reverse under the label "emu". For checking the backend's logic (placement,
# lowering, fusions, graph replay, kernel index arithmetic and barriers) on a machine without a GPU;
# slow (every CUDA thread is a coroutine) and silent about the memory model and speed. Needs g++,
# the CUDA headers (for the runtime's types), OpenBLAS and cJSON, as the normal build does.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMU="$ROOT/cuda/emu"
OUT=${CUEMU_BUILD:-/tmp/cuemu_build}
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}
BLAS_INC=$(dirname "$(find /usr/include -name cblas.h | head -1)")
mkdir -p "$OUT"
INC="-I$EMU -I$EMU/include -I$ROOT/cuda -I$ROOT/core -I$ROOT/backends -I$ROOT/cpu -I$BLAS_INC -I/usr/include/cjson -I$CUDA_INC"
OBJS=""
for f in "$ROOT"/cuda/*.cu; do
    b=$(basename "$f" .cu)
    python3 - "$f" "$OUT/$b.cpp" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'extern __shared__ (\w+) (\w+)\[\];', r'\1 *\2 = (\1 *)emu_dyn_smem();', s)
s = re.sub(r'__shared__ (\w+) (\w+)\[([^\]]+)\];', r'\1 *\2 = (\1 *)emu_static_smem(sizeof(\1) * (\3));', s)
s = re.sub(r'(\w+(?:<[^;<>()]*>)?)<<<(.*?)>>>\((.*?)\);', r'emu_launch(\2).run(\1, \3);', s, flags=re.S)
open(sys.argv[2], 'w').write('#include "cuemu.h"\n#line 1 "%s"\n' % sys.argv[1] + s)
PY
    g++ -std=c++17 -O2 -g -w $INC -c "$OUT/$b.cpp" -o "$OUT/$b.o"
    OBJS="$OBJS $OUT/$b.o"
done
g++ -std=c++17 -O2 -g $INC -c "$EMU/cuemu.cpp" -o "$OUT/cuemu.o"
compile_c() { # C source $1 -> object $2
    gcc -std=c11 -O2 -g -D_GNU_SOURCE -DTR_HAVE_CUDA -DTR_HAVE_CUDA_DEBUG -DTR_SHARED_DIR="\"$ROOT/../shared\"" \
        -DTR_GOLDEN_DIR="\"$ROOT/tests/golden\"" -DTR_TRANSIT_BIN="\"\"" -DTR_ISA=generic \
        "-DTR_CPU_ISAS=TR_X(generic)" $INC -c "$1" -o "$2"
}
for f in "$ROOT"/core/*.c "$ROOT"/backends/*.c "$ROOT"/cpu/*.c "$ROOT"/cuda/*.c "$ROOT"/tests/test_util.c; do
    b=$(basename "$f" .c)
    compile_c "$f" "$OUT/c_$b.o"
    OBJS="$OBJS $OUT/c_$b.o"
done
# the test programs: program:its own sources in tests/, linked over the common objects
for t in test_cuda:test_cuda,op_cases,op_harness,sinks_golden test_diffllama:test_diffllama test_batch:test_batch; do
    prog=${t%%:*} own=""
    for f in $(echo "${t#*:}" | tr , ' '); do
        compile_c "$ROOT/tests/$f.c" "$OUT/t_$f.o"
        own="$own $OUT/t_$f.o"
    done
    g++ -o "$OUT/${prog}_emu" $OBJS $own "$OUT/cuemu.o" -lopenblas -lcjson -lpcre2-8 -lm -lpthread
done
[ "${1:-}" = build ] && exit 0
[ "${1:-}" = diffllama ] && exec "$OUT/test_diffllama_emu"
[ "${1:-}" = batch ] && exec "$OUT/test_batch_emu"
exec "$OUT/test_cuda_emu" "$@"
