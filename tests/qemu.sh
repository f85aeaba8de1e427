#!/bin/sh
# qemu.sh BUILD_DIR SOURCE_DIR CPU SET [e2e]: the default build on an older CPU, emulated by qemu-user
# (ctest label "qemu": `make qemu`, in CI). This machine's CPU has AVX-512; `qemu-x86_64 -cpu
# Nehalem` offers SSE4.2 only (x86-64-v2) and `-cpu Haswell` AVX2 + FMA + F16C, so the same binary
# must choose kernel set SET (v2, avx2) there, not fault, and:
#   - with e2e, pass tests/test_e2e (greedy text against the reference, logits within 1e-6 of
#     transformers', chunked prefill, fast against reference kernels) on that set (ctest: Nehalem;
#     Haswell's AVX2 is slow to emulate, and test_e2e_avx2 runs the avx2 set natively);
#   - give the default model's logits over a prompt within design §6's bound (NMSE 1e-6, the f16
#     matmul's) of the ones this machine's best set gives natively.
set -eu
build=$1
src=$2
cpu=$3
set_=$4
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 is not installed (apt-get install qemu-user): skipped"; exit 77; }
tmp=$(mktemp -d /tmp/transit_qemu.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export TRANSIT_NO_BLAS_TUNE=1 # (OpenBLAS chooses for the emulated CPU itself; no re-exec under qemu)
q="qemu-x86_64 -cpu $cpu"

$q "$build/transit" info >"$tmp/info" 2>&1 || { cat "$tmp/info"; echo "qemu.sh: transit info failed on $cpu"; exit 1; }
grep -q "kernel set $set_ (.*the best this CPU runs" "$tmp/info" ||
  { grep "cpu:" "$tmp/info"; echo "qemu.sh: $cpu did not get kernel set $set_"; exit 1; }
echo "$cpu: $(grep -o "kernel set $set_ ([^)]*)" "$tmp/info")"

prompt="First Citizen: Before we proceed any further, hear me speak. All: Speak, speak."
"$build/transit" eval -p "$prompt" --logits "$tmp/native.npy" 2>/dev/null
$q "$build/transit" eval -p "$prompt" --logits "$tmp/emulated.npy" 2>/dev/null
python3 - "$tmp/native.npy" "$tmp/emulated.npy" "$cpu" <<'PY'
import ast, struct, sys
def load(path):  # float32 .npy, C order (what transit eval writes); stdlib only
    b = open(path, "rb").read()
    hl = struct.unpack("<H", b[8:10])[0]
    hdr = ast.literal_eval(b[10:10 + hl].decode())
    assert hdr["descr"] == "<f4" and not hdr["fortran_order"], hdr
    data = b[10 + hl:]
    return hdr["shape"], struct.unpack("<%df" % (len(data) // 4), data)
(sa, a), (sb, b) = load(sys.argv[1]), load(sys.argv[2])
assert sa == sb, (sa, sb)
num = sum((x - y) ** 2 for x, y in zip(a, b)); den = sum(x * x for x in a)
nmse = num / den
print("%s: logits %s, NMSE against this machine's native kernel set %.3g (bound 1e-6)" % (sys.argv[3], sa, nmse))
sys.exit(0 if nmse <= 1e-6 else 1)
PY

if [ "${5:-}" = e2e ]; then
  $q "$build/tests/test_e2e" >"$tmp/e2e" 2>&1 || { tail -20 "$tmp/e2e"; echo "qemu.sh: test_e2e failed on $cpu"; exit 1; }
  tail -1 "$tmp/e2e"
fi
echo "qemu.sh: $cpu passed on kernel set $set_"
