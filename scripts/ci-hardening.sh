#!/usr/bin/env bash
# Hardening checks for CI, for a core that parses host input: the native core's tests under ASan+UBSan+LSan, every
# libFuzzer target for a bounded time over its seed corpus, and the tap suite with the addon
# built under ASan+UBSan and the runtime preloaded into node.
# Prints "N passed, N failed" for the steps it ran; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# The bus-address parsers read a few characters each ("0.0.1234", "02/03.1", "0:1"): tens of
# millions of runs cover their space within seconds; the mountinfo parser only splits lines on
# spaces. They get a quarter of the time (at least 5 s).
FUZZ_SECONDS_ADDRESS=${FUZZ_SECONDS_ADDRESS:-$(( FUZZ_SECONDS / 4 > 5 ? FUZZ_SECONDS / 4 : 5 ))}
# Inside the checkout (gitignored): a build dir of another checkout would not match its sources.
work=${KATA_HARDENING_DIR:-$PWD/build-hardening}
mkdir -p "$work"
passed=0
failed=0
step() { printf '\n--- hardening: %s\n' "$*"; }
result() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); echo "ok $2"; else failed=$((failed + 1)); echo "not ok $2"; fi; }

need=()
for pkg in clang-14 libclang-rt-14-dev; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export CC=clang-14 CXX=clang++-14

step "native core tests under ASan+UBSan+LSan"
cmake -S . -B "$work/san" -G Ninja -DKATA_SANITIZE=ON -DKATA_WERROR=ON >/dev/null
cmake --build "$work/san" >/dev/null
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$work/san/test/native/kata_core_tests"
result $? "native core tests (sanitized)"
set -e

step "fuzzers, ${FUZZ_SECONDS}s each (the bus-address and mountinfo parsers ${FUZZ_SECONDS_ADDRESS}s)"
cmake -S . -B "$work/fuzz" -G Ninja -DKATA_FUZZ=ON -DKATA_WERROR=ON -DKATA_NATIVE_TESTS=OFF >/dev/null
cmake --build "$work/fuzz" >/dev/null
for bin in "$work"/fuzz/test/fuzz/*_fuzz; do
  name=$(basename "$bin" _fuzz)
  corpus=test/fuzz/corpus/$name
  [ -d "$corpus" ] || { echo "no seed corpus for $name at $corpus"; result 1 "fuzz $name"; continue; }
  scratch="$work/corpus-$name"
  mkdir -p "$scratch"
  case $name in ccw | pci | scsi | mountinfo) seconds=$FUZZ_SECONDS_ADDRESS ;; *) seconds=$FUZZ_SECONDS ;; esac
  set +e
  (cd "$work" && "$bin" -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
    "$scratch" "$OLDPWD/$corpus" >"$work/fuzz-$name.log" 2>&1)
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz-$name.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $name: $runs executions in ${seconds}s (exit $rc)"
  if [ $rc -ne 0 ]; then tail -40 "$work/fuzz-$name.log"; ls "$work"/crash-* 2>/dev/null || true; fi
  result $rc "fuzz $name"
done
# libFuzzer leaves with _Exit: remove the sysfs_walk target's scratch trees here.
rm -rf /dev/shm/kata-sysfs-fuzz-* /tmp/kata-sysfs-fuzz-*

step "tap suite with the addon under ASan+UBSan"
asan_rt=$(clang-14 -print-file-name=libclang_rt.asan-x86_64.so)
npx cmake-js compile -O "$work/addon" --CDKATA_SANITIZE=ON >/dev/null
# Every test file but the two that check what ships (the packed tarball and its types, the prebuilt
# binaries' ELF properties): the sanitized addon is not what ships, and npm test checked those.
files=$(npx tap list | sort | grep -v -e '^test/package/npm-package' -e '^test/package/verify-prebuilds' |
  tr '\n' ' ')
set +e
KATA_STORAGE_ADDON="$work/addon/Release/kata_storage.node" LD_PRELOAD="$asan_rt" \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  KATA_LINT=0 npm test -- --disable-coverage $files >"$work/tap-asan.log" 2>&1
rc=$?
set -e
grep -E '^# \{ total' "$work/tap-asan.log" | tail -1 || true
if [ $rc -ne 0 ]; then grep -E 'not ok|AddressSanitizer|runtime error' "$work/tap-asan.log" | head -40; fi
result $rc "tap suite under ASan"

echo "hardening: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
