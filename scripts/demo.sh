#!/usr/bin/env bash
# npm run demo: sets up what is missing, then runs a 2-node hakit cluster in network namespaces
# and shows a failover. Needs root (namespaces, virtual IPs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-built.sh
need_root "npm run demo"
ensure_built
exec node --enable-source-maps dist/scripts/demo.js "$@"
