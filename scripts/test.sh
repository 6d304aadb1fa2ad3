#!/usr/bin/env bash
# npm test: sets up what is missing, builds, lints, runs the test suites with node's test runner.
#   npm test                 # unit + sim + integration + chaos (a short run)
#   npm test -- unit         # one suite (unit, sim, integration, chaos)
# In CI (CI=true) a missing prerequisite fails the run; outside CI, tests that need root are
# skipped with a message saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/ensure-built.sh
ensure_built
npm run --silent lint

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(unit sim integration chaos)
dirs=()
for s in "${suites[@]}"; do
  [ -d "dist/test/$s" ] && dirs+=("dist/test/$s")
done
if [ ${#dirs[@]} -eq 0 ]; then echo "no test suites found for: ${suites[*]}" >&2; exit 1; fi
# Integration tests build their own namespaced hosts with per-run prefixes, so files may run side
# by side; two at a time fits the 2-core budget.
exec node --enable-source-maps --test --test-concurrency=2 "${dirs[@]}"
