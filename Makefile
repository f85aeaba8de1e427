# The two commands of the README, and the CI configurations. CMake does the building.
#   make run    generate text from the default model (models/default, trained on Shakespeare)
#   make test   build and run the default test suite (ctest)
# Others: make asan (the suite under AddressSanitizer + UBSan), make fuzz (libFuzzer, briefly),
# make python (the Python package in a fresh virtualenv, with its tests), make valgrind (the command
# under valgrind's memcheck), make qemu (the default build on emulated older CPUs), make portable (both),
# make emu (the CUDA kernels under a CPU emulation, when nvcc is installed), make deps (install the
# Debian packages transit needs).

MODEL ?= models/default
PROMPT ?= First Citizen:
JOBS ?= $(shell nproc)
DEBIAN_PACKAGES = cmake make gcc libc6-dev pkg-config libopenblas-dev libcjson-dev libpcre2-dev libmicrohttpd-dev python3 python3-venv \
                  libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers \
                  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
FUZZ_PACKAGES = clang libclang-rt-14-dev
VALGRIND_PACKAGES = valgrind
QEMU_PACKAGES = qemu-user

.PHONY: all build run test asan fuzz emu valgrind qemu portable deps clean python

all: build

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES) $(EXTRA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "transit needs these Debian packages: $$missing"; echo "  sudo apt-get install $$missing"; exit 1; \
	  fi; \
	fi

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build -j $(JOBS)

run: build
	./build/transit run -m $(MODEL) -p "$(PROMPT)" -n 128

test: build
	cd build && ctest --output-on-failure -j $(JOBS) -LE 'fuzz|emu|valgrind|qemu'

# the Python package in a fresh virtualenv, against the command's numbers (docs/python.md)
python: build
	rm -rf build/venv && python3 -m venv build/venv
	build/venv/bin/pip install -q "./python[test]" -C cmake.define.TR_CUDA=OFF -C cmake.define.TR_VULKAN=OFF
	build/venv/bin/python -m pytest -q python/tests

emu: build
	cd build && ctest --output-on-failure -j $(JOBS) -L '^emu$$'

# the default build on emulated older CPUs (tests/qemu.sh: Nehalem, Haswell)
qemu: build
	$(MAKE) deps EXTRA_PACKAGES="$(QEMU_PACKAGES)"
	cd build && ctest --output-on-failure -j $(JOBS) -L '^qemu$$'

# both of the above and below at once (CI: the emulated CPUs and valgrind share the cores)
portable: build
	$(MAKE) deps EXTRA_PACKAGES="$(QEMU_PACKAGES) $(VALGRIND_PACKAGES)"
	cd build && ctest --output-on-failure -j $(JOBS) -L '^(qemu|valgrind)$$'

# the command under valgrind's memcheck (tests/valgrind.sh): the default build, no suppressions
valgrind: build
	$(MAKE) deps EXTRA_PACKAGES="$(VALGRIND_PACKAGES)"
	cd build && ctest --output-on-failure -j $(JOBS) -L '^valgrind$$'

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTR_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	# protect_shadow_gap=0: the CUDA driver maps memory where ASan's shadow gap would be (GPU machines)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 ctest --output-on-failure -j $(JOBS) -LE 'fuzz|emu|valgrind|qemu'

fuzz:
	$(MAKE) deps EXTRA_PACKAGES="$(FUZZ_PACKAGES)"
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTR_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	cd build-fuzz && ctest --output-on-failure -j $(JOBS) -L fuzz

clean:
	rm -rf build build-asan build-fuzz
