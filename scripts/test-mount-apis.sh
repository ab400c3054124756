#!/bin/sh
# npm run test:mount-apis [-- api...]: the whole suite once per mount API (default: auto, new and
# legacy), each forced through KATA_STORAGE_MOUNT_API, so neither path can rot unnoticed.
set -e
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- auto new legacy
for api in "$@"; do
  echo "=== npm test with KATA_STORAGE_MOUNT_API=$api"
  KATA_LINT=0 KATA_STORAGE_MOUNT_API=$api npm test
done
