#!/usr/bin/env bash
# npm run bench [-- --only NAME] [--quick] [--runs N]: sets up what is missing (keepalived
# included), builds, then runs the benchmark figures on the testbed. Needs root (namespaces,
# virtual IPs). See docs/bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "npm run bench needs root: it creates network namespaces and virtual IPs. Run it as root." >&2; exit 7; fi
if ! bash scripts/setup.sh --check >/dev/null 2>&1; then
  bash scripts/setup.sh
else
  npx tsc -p tsconfig.json
fi
exec node --enable-source-maps dist/bench/main.js "$@"
