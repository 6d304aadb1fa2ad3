#!/usr/bin/env bash
# npm run chaos -- [--rounds N] [--seed S]: random faults on a real 2-node cluster (docs/chaos.md).
# Needs root (namespaces, FUSE, virtual IPs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-built.sh
need_root "npm run chaos"
ensure_built
exec node --enable-source-maps dist/scripts/chaos.js "$@"
