#!/bin/sh
# scripts/guest/fetch.sh <what> <cache-dir>: Debian packages a guest run needs, fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` (never installed) into <cache-dir>/<what>.
# Other suites come through a private apt configuration (own sources list, lists and cache,
# empty dpkg status). A stamp file makes reruns free. Prints the unpacked directory.
#   kernel-bookworm-amd64  Debian 12's linux-image-6.1.*-amd64 (the CI guest kernel)
#   kernel-bullseye-amd64  Debian 11's linux-image-5.10.*-amd64-unsigned (no mount_setattr)
#   kernel-bookworm-arm64  Debian 12's arm64 kernel and busybox-static
#   kernel-bookworm-s390x  Debian 12's s390x kernel and busybox-static
#   virtiofsd-trixie       Debian 13's virtiofsd 1.13 with the libraries it needs
set -eu
what=$1
mkdir -p "$2"
cache=$(cd "$2" && pwd)  # apt reads relative Dir:: options against its own directories
out="$cache/$what"
if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
case "$what" in
  kernel-bookworm-amd64) suite=bookworm arch=amd64 pkgs="linux-image-amd64" ;;
  kernel-bullseye-amd64) suite=bullseye arch=amd64 pkgs="linux-image-amd64" ;;
  kernel-bookworm-arm64) suite=bookworm arch=arm64 pkgs="linux-image-arm64 busybox-static" ;;
  kernel-bookworm-s390x) suite=bookworm arch=s390x pkgs="linux-image-s390x busybox-static" ;;
  virtiofsd-trixie) suite=trixie arch=amd64 pkgs="virtiofsd libc6 libcap-ng0 libgcc-s1 libseccomp2" ;;
  *) echo "fetch: unknown '$what'" >&2; exit 1 ;;
esac
apt_dir="$out.apt"
rm -rf "$out" "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$out"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
set -- -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=/dev/null" \
  -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "Debug::NoLocking=true" \
  -o "APT::Sandbox::User=root" -o "APT::Get::List-Cleanup=false"
apt-get "$@" -qq update >&2
# The metapackage names the current ABI's image; bullseye's amd64 one is the -unsigned build
# (the signed one only wraps it).
list=""
for p in $pkgs; do
  case "$p" in
    linux-image-*)
      img=$(apt-cache "$@" depends "$p" | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
      if apt-cache "$@" show "$img-unsigned" >/dev/null 2>&1; then img="$img-unsigned"; fi
      list="$list $img" ;;
    *) list="$list $p" ;;
  esac
done
(cd "$apt_dir/debs" && apt-get "$@" -qq download $list >&2)
for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$out"; done
(cd "$apt_dir/debs" && ls) >"$out/.stamp"
rm -rf "$apt_dir"
echo "$out"
