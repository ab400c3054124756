#!/usr/bin/env bash
# CI for the published binaries (called by .ci/run after npm test; runnable alone as root on an
# x86-64 Debian 12 machine after npm ci): installs its own apt packages, builds the x64, arm64
# and s390x prebuilds, gates them, runs the smoke test on each arch (arm64 and s390x under
# qemu-user with Debian's Node for that arch) and the native core tests cross-built, runs the
# whole x64 suite against the prebuild, and proves the packed tarball. Every step runs and
# prints one line with its result; nothing is skipped. Exits 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# Whatever loads here must be the prebuild, never an explicitly named (e.g. sanitizer) addon.
unset KATA_STORAGE_ADDON
# Sysroots (~120 MB per arch) live outside the clone so reruns reuse them; a fresh machine
# builds them from Debian's packages.
cache=${KATA_PREBUILDS_CACHE:-/var/cache/kata-storage}
start=$SECONDS
passed=0
failed=0
failures=()

step() {
  local name=$1
  shift
  local t0=$SECONDS
  printf '\n=== prebuilds: %s\n' "$name"
  if "$@"; then
    passed=$((passed + 1))
    printf '=== prebuilds: ok %s (%ss)\n' "$name" "$((SECONDS - t0))"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '=== prebuilds: FAILED %s (%ss)\n' "$name" "$((SECONDS - t0))"
  fi
}

triplet() { case "$1" in arm64) echo aarch64-linux-gnu ;; s390x) echo s390x-linux-gnu ;; esac; }
qemu() { case "$1" in arm64) echo qemu-aarch64 ;; s390x) echo qemu-s390x ;; esac; }

preconditions() {
  [ "$(id -u)" = 0 ] || { echo "needs root (apt-get, mount namespaces, real mounts)"; return 1; }
  [ "$(uname -m)" = x86_64 ] || { echo "the cross toolchains and qemu runs assume an x86_64 machine, this is $(uname -m)"; return 1; }
  [ -f dist/index.js ] || { echo "dist/ is missing: run npm ci first"; return 1; }
}

apt_packages() {
  local need=() pkg
  for pkg in g++ g++-aarch64-linux-gnu g++-s390x-linux-gnu binutils binutils-aarch64-linux-gnu \
    binutils-s390x-linux-gnu qemu-user cmake ninja-build util-linux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -eq 0 ]; then
    echo "all present"
    return 0
  fi
  echo "installing: ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

sysroot() { sh scripts/qemu-sysroot.sh "$1" "$cache/sysroot-$1"; }

smoke_x64() { PREBUILDS_ONLY=1 unshare -m --propagation private node test/smoke/smoke.js; }

smoke_qemu() {
  local arch=$1 root="$cache/sysroot-$1"
  PREBUILDS_ONLY=1 unshare -m --propagation private "$(qemu "$arch")" -L "$root" "$root/usr/bin/node" test/smoke/smoke.js
}

native_tests_qemu() {
  local arch=$1 dir="build-cross/$1"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_TOOLCHAIN_FILE="cmake/$(triplet "$arch").cmake" -DKATA_WERROR=ON >/dev/null &&
    cmake --build "$dir" --target kata_core_tests >"$dir.log" 2>&1 || { cat "$dir.log"; return 1; }
  if grep -q 'warning:' "$dir.log"; then grep 'warning:' "$dir.log"; return 1; fi
  readelf -h "$dir/test/native/kata_core_tests" | grep -E '^  (Data|Machine):'
  unshare -m --propagation private "$(qemu "$arch")" -L "$cache/sysroot-$arch" "$dir/test/native/kata_core_tests"
}

suite_on_prebuild() {
  KATA_LINT=0 PREBUILDS_ONLY=1 npm test 2>&1 | tee /tmp/kata-prebuilds-npm-test.log | grep -E '^# \{ total|^not ok|# (Subtest|fail)' | tail -20
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then grep -A20 '^ *not ok' /tmp/kata-prebuilds-npm-test.log | head -80; fi
  return "$rc"
}

step "preconditions (root, x86_64, npm ci done)" preconditions
step "apt packages (cross g++, binutils, qemu-user)" apt_packages
step "npm run prebuild (x64, arm64, s390x)" npm run -s prebuild
step "npm run prebuild:verify (ELF machine/byte order, stripped, NEEDED, glibc <= 2.28)" npm run -s prebuild:verify
step "smoke test linux-x64 (PREBUILDS_ONLY=1)" smoke_x64
for arch in arm64 s390x; do
  step "sysroot $arch (Debian's Node, private apt)" sysroot "$arch"
  step "smoke test linux-$arch under $(qemu "$arch")" smoke_qemu "$arch"
  step "native core tests for $arch under $(qemu "$arch")" native_tests_qemu "$arch"
done
step "PREBUILDS_ONLY=1 npm test (x64 suite against the prebuild)" suite_on_prebuild
step "packed tarball: release:pack, install with no compiler on PATH, runtime dependencies, tmpfs, source build" npm run -s prebuild:pack-proof

printf '\n=== prebuilds: %ss in all\n' "$((SECONDS - start))"
for f in "${failures[@]}"; do echo "=== prebuilds: FAILED: $f"; done
echo "prebuilds: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
