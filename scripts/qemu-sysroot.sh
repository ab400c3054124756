#!/bin/sh
# scripts/qemu-sysroot.sh <arm64|s390x> <dir>: a Debian Node for a foreign arch, unpacked into
# <dir> so that `qemu-<arch> -L <dir> <dir>/usr/bin/node` runs it. `apt-get install nodejs:<arch>`
# would remove the machine's own Node, so the .debs (nodejs and its whole Depends closure) come
# through a private apt configuration (the host's sources, its own lists, cache and an empty
# dpkg status) and are only unpacked. Reuses <dir> when it is complete (a stamp names the
# packages), so CI reruns are fast; a fresh machine builds it from nothing.
set -eu
arch=$1
dir=$2
case "$arch" in arm64 | s390x) ;; *) echo "qemu-sysroot: unsupported arch '$arch'" >&2; exit 1 ;; esac

stamp="$dir/.kata-sysroot"
if [ -f "$stamp" ] && [ -x "$dir/usr/bin/node" ]; then
  echo "qemu-sysroot: reusing $dir ($(wc -l <"$stamp") packages)"
  exit 0
fi

apt_dir="$dir.apt"
rm -rf "$dir" "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$dir"
set -- -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" \
  -o "Dir::State::status=/dev/null" -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" \
  -o "Debug::NoLocking=true" -o "APT::Sandbox::User=root" -o "APT::Get::List-Cleanup=false"
apt-get "$@" -qq update
# Everything nodejs needs at run time, for the target arch only (no recommends: npm is not needed).
apt-cache "$@" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances nodejs |
  grep -v '^ ' | grep -v '^<' | sed "s/:$arch\$//" | sort -u >"$apt_dir/packages"
echo "qemu-sysroot: $arch: $(wc -l <"$apt_dir/packages") packages"
(cd "$apt_dir/debs" && xargs apt-get "$@" -qq download <"$apt_dir/packages")
for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir"; done
[ -x "$dir/usr/bin/node" ] || { echo "qemu-sysroot: no usr/bin/node in $dir" >&2; exit 1; }
(cd "$apt_dir/debs" && ls) >"$stamp"
rm -rf "$apt_dir"
echo "qemu-sysroot: $dir ready"
