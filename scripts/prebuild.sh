#!/bin/sh
# npm run prebuild [arch...]: prebuilds/linux-<arch>/kata-storage.glibc.node for x64, arm64 and
# s390x (or the arches named), through prebuildify with scripts/node-gyp-cmake.js in node-gyp's
# place. Cross builds need Debian's g++-<triplet> and are stripped with the target's own strip.
set -eu
cd "$(dirname "$0")/.."

[ "$(uname -m)" = x86_64 ] || { echo "prebuild: the cross toolchains assume an x86_64 build machine" >&2; exit 1; }
[ $# -gt 0 ] || set -- x64 arm64 s390x

# prebuildify moves the addon out of build/Release; keep the developer's own build.
dev=build/Release/kata_storage.node
saved=""
if [ -f "$dev" ]; then
  saved=$(mktemp)
  cp -p "$dev" "$saved"
fi
restore() {
  rm -f "$dev"
  if [ -n "$saved" ]; then mv "$saved" "$dev"; fi
}
trap restore EXIT

for arch in "$@"; do
  case "$arch" in
    x64) strip=strip ;;
    arm64) strip=aarch64-linux-gnu-strip ;;
    s390x) strip=s390x-linux-gnu-strip ;;
    *) echo "prebuild: unsupported arch '$arch' (x64, arm64, s390x)" >&2; exit 1 ;;
  esac
  command -v "$strip" >/dev/null || { echo "prebuild: $strip not found (apt-get install binutils-${strip%-strip})" >&2; exit 1; }
  echo "prebuild: linux-$arch"
  rm -rf "prebuilds/linux-$arch"
  # --tag-libc: node-gyp-build then refuses this glibc binary on musl instead of crashing in dlopen.
  # --target only names the Node whose headers node-gyp would fetch; a Node-API build ignores it.
  npx --no-install prebuildify --napi --tag-libc --strip --strip-bin "$strip" --arch "$arch" \
    --target "$(node -p process.versions.node)" --node-gyp "$PWD/scripts/node-gyp-cmake.js"
done
ls -l prebuilds/*/
