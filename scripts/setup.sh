#!/usr/bin/env bash
# Installs what hakit needs on a Debian machine, idempotently: OS packages, npm packages, build.
#   bash scripts/setup.sh            # everything
#   bash scripts/setup.sh --check    # exit 0 if nothing is missing, 1 otherwise (prints what)
# Run as root on Debian 12; it changes nothing that is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A TOOLS=(
  [ip]=iproute2 [bridge]=iproute2 [nft]=nftables [arping]=arping [ping]=iputils-ping
  [fusermount]=fuse [nsenter]=util-linux [unshare]=util-linux [pkill]=procps [fuser]=psmisc
  [python3]=python3 [make]=make [g++]=g++ [curl]=curl [setfattr]=attr [getfattr]=attr
  [keepalived]=keepalived   # the failover peer of npm run bench
  [rsync]=rsync             # the resync peer of npm run bench
  [fio]=fio                 # the random write mix of npm run bench
)
LIBS=(libfuse3-3 libfuse3-dev)   # checked with dpkg (the rfs's binding, native/fuse3, builds against libfuse3)

missing_pkgs() {
  local pkgs=()
  for t in "${!TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || pkgs+=("${TOOLS[$t]}"); done
  for p in "${LIBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p"); done
  printf '%s\n' "${pkgs[@]}" | sort -u | grep -v '^$' || true
}

# node_modules is current when it was installed from this very package-lock.json (by content, not
# by mtime: a fresh clone or a git worktree sharing node_modules has newer files but the same lock).
lock_sum() { sha256sum package-lock.json | cut -d' ' -f1; }
npm_stale() {
  [ ! -d node_modules ] && return 0
  [ ! -f node_modules/.hakit-lock.sha256 ] && return 0
  [ "$(cat node_modules/.hakit-lock.sha256)" != "$(lock_sum)" ] && return 0
  return 1
}

# The libfuse3 binding (native/fuse3) is built by npm ci (node-gyp, against Node's own headers);
# it is stale when its source is newer than the built addon.
NATIVE=native/fuse3
native_stale() {
  local built=$NATIVE/build/Release/hakit_fuse3.node
  [ ! -f "$built" ] && return 0
  [ -n "$(find $NATIVE/src $NATIVE/binding.gyp -newer "$built" 2>/dev/null)" ] && return 0
  return 1
}
# node-gyp needs Node's headers: use the ones installed with Node (no download).
if [ -z "${npm_config_nodedir:-}" ] && ! grep -qs '^nodedir=' ~/.npmrc /etc/npmrc "$(dirname "$(command -v node)")/../etc/npmrc"; then
  for d in "$(dirname "$(dirname "$(command -v node)")")" /usr /usr/local; do
    if [ -f "$d/include/node/node_api.h" ]; then export npm_config_nodedir="$d"; break; fi
  done
fi

if [ "${1:-}" = "--check" ]; then
  rc=0
  m=$(missing_pkgs); if [ -n "$m" ]; then echo "missing OS packages: $(echo $m)"; rc=1; fi
  if npm_stale; then echo "npm packages are not installed (npm ci)"; rc=1; fi
  if native_stale; then echo "the libfuse3 binding ($NATIVE) is not built or is older than its source"; rc=1; fi
  exit $rc
fi

pkgs=$(missing_pkgs)
if [ -n "$pkgs" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: these Debian packages are missing: $(echo $pkgs). Run this script as root to install them." >&2
    exit 1
  fi
  echo "setup: installing Debian packages: $(echo $pkgs)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

if npm_stale; then
  echo "setup: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  lock_sum > node_modules/.hakit-lock.sha256
fi

if native_stale; then
  echo "setup: building the libfuse3 binding ($NATIVE)"
  npm rebuild hakit-fuse3 --loglevel=error
fi

echo "setup: building"
npx tsc -p tsconfig.json
echo "setup: done"
