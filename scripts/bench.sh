#!/usr/bin/env bash
# npm run bench [-- --only NAME] [--quick] [--runs N]: sets up what is missing (keepalived
# included), builds, then runs the benchmark figures on the testbed. Needs root (namespaces,
# virtual IPs). See docs/bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-built.sh
need_root "npm run bench"
ensure_built
exec node --enable-source-maps dist/bench/main.js "$@"
