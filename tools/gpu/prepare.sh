#!/bin/sh
# tools/gpu/prepare.sh: packs, on a development machine, what a GPU machine without package access
# needs to test and benchmark transit (tools/gpu/session.sh runs there). It builds transit for
# sm_90 (H100, H200) into build-gpu/ and writes .gpu/ (ignored by git, carried to the GPU machine):
#   pack.tar.gz   transit, test_cuda, test_vulkan, test_batch; the shared libraries they need beyond glibc,
#                 the C++ runtime and CUDA (OpenBLAS, cJSON, the Vulkan loader, gfortran); the
#                 small test models of ../shared/models (the GPU machine sees no ../shared)
#   whl/          the `gguf` wheel, for tools/make_random_gguf.py (numpy is there already)
#   gl/           Debian's GLVND libraries, which the NVIDIA Vulkan driver loads
# Compressed because the working tree and carried paths travel within 64 MiB. (.gpu/ and gpu-out/
# are in .gitignore.)
#
#   sh tools/gpu/prepare.sh     then, on the GPU machine, with .gpu carried:
#   sh tools/gpu/session.sh test | bench | long | all
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
PACK=$ROOT/.gpu
SHARED=$(cd "$ROOT/../shared" && pwd)

# the default build: CPU kernels for every x86-64 level, chosen on the GPU machine's own CPU at run time
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DTR_NATIVE=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target transit test_cuda test_vulkan test_batch >/dev/null

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/shared/models"
cp "$BUILD/transit" "$BUILD/tests/test_cuda" "$BUILD/tests/test_vulkan" "$BUILD/tests/test_batch" "$STAGE/bin/"
# the backend modules, where libtransit.so.0 (copied below, into lib/) looks for them
mkdir -p "$STAGE/lib/transit-backends"
cp "$BUILD"/transit-backends/libtransit-*.so "$STAGE/lib/transit-backends/"
# every library the binaries and modules load from outside glibc, the C++ runtime and the CUDA toolkit
for bin in "$STAGE"/bin/* "$STAGE"/lib/transit-backends/*; do LD_LIBRARY_PATH="$BUILD" ldd "$bin"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do
        case "$name" in
        libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libstdc++* | libgcc_s* | libcuda* | libcublas* | libtransit-*) ;;
        *) cp -L "$path" "$STAGE/lib/$name" ;;
        esac
    done
for m in stories260K aidreams260K; do cp -r "$SHARED/models/$m" "$STAGE/shared/models/"; done

rm -rf "$PACK"
mkdir -p "$PACK/whl"
tar -C "$STAGE" -czf "$PACK/pack.tar.gz" .
python3 -m pip download -q --no-deps --only-binary=:all: -d "$PACK/whl" gguf
# The NVIDIA Vulkan driver there needs GLVND's dispatch libraries, which that image lacks
# (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER without them): Debian's packages, unpacked there.
mkdir -p "$PACK/gl" /tmp/transit-apt/partial
(cd "$PACK/gl" && apt-get -q -oDir::State::Lists=/tmp/transit-apt update >/dev/null &&
    apt-get -q -oDir::State::Lists=/tmp/transit-apt download libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0 >/dev/null)
du -sh "$PACK"
echo "ready: carry .gpu and run tools/gpu/session.sh there"
