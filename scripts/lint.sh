#!/bin/sh
# npm run lint (and the first thing npm test does): eslint, prettier, the tests' and the bench's type
# checks, the import graph of lib/ (no circle) and clang-format over the native sources. Every check
# runs; the script fails if any did.
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
failed=
check() {
  name=$1
  shift
  if "$@"; then echo "lint: $name ok"; else echo "lint: $name FAILED" >&2; failed="$failed $name"; fi
}
check eslint eslint --max-warnings 0 .
check prettier prettier --check --log-level warn .
check types tsc --noEmit -p test
check bench-types tsc --noEmit -p bench
check import-cycles node scripts/import-cycles.js
if command -v clang-format >/dev/null 2>&1; then
  # The C/C++ sources, new ones not yet added included (fuzz corpora are data): format drift is
  # an error, not a warning.
  check clang-format sh -c 'git ls-files --cached --others --exclude-standard "native/*.cc" "native/*.h" "test/native/*.cc" "test/native/*.h" "test/fuzz/*.cc" "bench/*.c" | xargs clang-format --dry-run --Werror'
else
  echo "lint: clang-format is not installed (apt-get install clang-format)" >&2
  failed="$failed clang-format"
fi
[ -z "$failed" ] || { echo "lint failed:$failed" >&2; exit 1; }
