#!/bin/sh
# npm test. Tests that mount run for real, so as root they run inside a private mount namespace:
# whatever they mount (or fail to unmount) can never reach the host's mount table.
set -e
cd "$(dirname "$0")/.."
# Style and types first (scripts/lint.sh): a lint, format or type error fails npm test. Runs that
# repeat the suite over the same tree (forced mount APIs, the ASan addon, the prebuild) set
# KATA_LINT=0: the tree they test is the one npm test already checked.
if [ "${KATA_LINT:-1}" != 0 ]; then
  sh scripts/lint.sh
fi
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
  KATA_STORAGE_OUTER_MNTNS=$(readlink /proc/self/ns/mnt)
  export KATA_STORAGE_OUTER_MNTNS
  exec unshare -m --propagation private tap "$@"
fi
echo "kata-storage: not running as root: tests that mount are skipped, each with its reason" >&2
exec tap "$@"
