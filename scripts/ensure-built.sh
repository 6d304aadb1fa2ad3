# Sourced by the npm entry points (test.sh, demo.sh, bench.sh), from the repository root.
#   need_root WHAT   exits 7 with a clear message unless running as root
#   ensure_built     installs what is missing with setup.sh, else just builds
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$1 needs root: it creates network namespaces and virtual IPs. Run it as root." >&2
    exit 7
  fi
}
ensure_built() {
  if ! bash scripts/setup.sh --check >/dev/null 2>&1; then
    bash scripts/setup.sh
  else
    npx tsc -p tsconfig.json
  fi
}
