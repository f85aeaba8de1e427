#!/bin/sh
# test_install.sh BUILD_DIR SOURCE_DIR: transit as someone else would use it after `cmake --install`.
#   1. install into a temporary prefix: bin/transit, lib/libtransit.so.0 and .a, include/transit.h,
#      lib/pkgconfig/transit.pc, lib/cmake/transit, share/transit/models/default;
#   2. build tests/install/hello.c against it with pkg-config, and again with find_package(transit)
#      in a CMake project of its own, and run both on the installed default model;
#   3. move the whole prefix elsewhere: the moved transit still generates from its own default model
#      (found beside its bin/, not in the source tree), and the library's SONAME is versioned.
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/transit_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install"
p=$tmp/prefix
for f in bin/transit include/transit.h lib/pkgconfig/transit.pc lib/cmake/transit/transitConfig.cmake \
         lib/libtransit.a share/transit/models/default/config.json; do
  [ -e "$p/$f" ] || fail "$f is not installed"
done
# every backend module built is installed beside the library
for m in "$build"/transit-backends/libtransit-*.so; do
  [ -e "$m" ] || continue
  [ -e "$p/lib/transit-backends/$(basename "$m")" ] || fail "$(basename "$m") is not installed in lib/transit-backends"
done
soname=$(objdump -p "$p/lib/libtransit.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libtransit.so.0" ] || fail "SONAME is '$soname', want libtransit.so.0"
# the public header stands alone: nothing internal is needed to compile against it
grep -q '#include "' "$p/include/transit.h" && fail "transit.h includes a header of the source tree"

# pkg-config
export PKG_CONFIG_PATH="$p/lib/pkgconfig"
cc -std=c11 -Wall -Werror -o "$tmp/hello" "$src/tests/install/hello.c" $(pkg-config --cflags --libs transit) \
  -Wl,-rpath,"$p/lib" || fail "building hello.c with pkg-config"
out=$("$tmp/hello" "$p/share/transit/models/default") || fail "hello (pkg-config) did not run: $out"
echo "pkg-config build: $out"
want=$("$p/bin/transit" run -m "$p/share/transit/models/default" -p "First Citizen:" -n 16 --temp 0 2>/dev/null)
[ "$(echo "$out" | tr -d '\n')" = "$(echo "$want" | tr -d '\n')" ] || fail "hello's text differs from transit run's: '$want'"

# find_package(transit)
cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$p" >/dev/null || fail "find_package(transit)"
cmake --build "$tmp/consumer" >/dev/null || fail "building with find_package(transit)"
out2=$("$tmp/consumer/hello" "$p/share/transit/models/default") || fail "hello (find_package) did not run"
[ "$out2" = "$out" ] || fail "the find_package build printed '$out2'"
echo "find_package build: same text"

# a moved installation finds its own default model
mv "$p" "$tmp/moved"
log=$(TRANSIT_VERBOSE=1 "$tmp/moved/bin/transit" run -p "First Citizen:" -n 16 --temp 0 2>&1 >"$tmp/moved.txt") ||
  fail "the moved transit did not run: $log"
echo "$log" | grep -q "default model, $tmp/moved/bin/../share/transit/models/default" ||
  fail "the moved transit did not use its own default model: $(echo "$log" | grep 'default model')"
[ "$(tr -d '\n' <"$tmp/moved.txt")" = "$(echo "$want" | tr -d '\n')" ] || fail "the moved transit generated other text"
echo "moved prefix: generates from $tmp/moved/share/transit/models/default"
# ... with its own library, and its own backend modules
ldd "$tmp/moved/bin/transit" | grep -q "libtransit.so.0 => $tmp/moved/bin/../lib/libtransit.so.0" ||
  fail "the moved transit does not load its own libtransit.so: $(ldd "$tmp/moved/bin/transit" | grep transit)"
for m in "$tmp"/moved/lib/transit-backends/libtransit-*.so; do
  [ -e "$m" ] || continue
  name=$(basename "$m" .so); name=${name#libtransit-}
  log=$(TRANSIT_VERBOSE=1 "$tmp/moved/bin/transit" info 2>&1)
  echo "$log" | grep -q "$name backend loaded from $tmp/moved/bin/../lib/transit-backends/libtransit-$name.so" ||
    fail "the moved transit did not load its own $name module: $(echo "$log" | grep -i "$name" | head -3)"
  echo "moved prefix: $name module loaded from the prefix"
done
echo "test_install: passed"
