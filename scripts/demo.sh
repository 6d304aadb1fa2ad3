#!/usr/bin/env bash
# npm run demo: sets up what is missing, then runs a 2-node hakit cluster in network namespaces
# and shows a failover. Needs root (namespaces, virtual IPs).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "npm run demo needs root: it creates network namespaces and virtual IPs. Run it as root." >&2; exit 7; fi
if ! bash scripts/setup.sh --check >/dev/null 2>&1; then
  bash scripts/setup.sh
else
  npx tsc -p tsconfig.json
fi
exec node --enable-source-maps dist/scripts/demo.js "$@"
