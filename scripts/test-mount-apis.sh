#!/bin/sh
# npm run test:mount-apis [-- api...]: the suite once per mount API (default: auto, new and legacy),
# each forced through KATA_STORAGE_MOUNT_API, so neither path can rot unnoticed. Only the test files
# that mount take part: those whose tests skip on test/helpers/mountinfo's cannotMount, the guard
# every mounting test carries. The rest (docs, the packed tarball, pure planning, device lookup)
# run the same code whatever the API, and npm test ran them.
set -e
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- auto new legacy
# Chosen among the files npm test runs, as tap lists them from package.json (tests sit in folders
# under test/; the soak is left to its own run).
files=$(tap list | sort | xargs grep -l -w cannotMount | tr '\n' ' ')
for api in "$@"; do
  echo "=== npm test with KATA_STORAGE_MOUNT_API=$api ($(echo $files | wc -w) files that mount)"
  # Coverage is npm test's to enforce over the whole suite; a subset would miss its thresholds.
  KATA_LINT=0 KATA_STORAGE_MOUNT_API=$api npm test -- --disable-coverage $files
done
