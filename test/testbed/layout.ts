/**
 * Names, addresses and paths of a testbed run (DESIGN.md section 7, "The testbed"). Pure: no I/O.
 *
 * A run has a prefix `hk` + 4 base-36 characters. Its namespaces are `<prefix>-hub` and
 * `<prefix>-<host>`; its directories are `/run/hakit-testbed/<prefix>` (owner marker, mount
 * namespace files) and `/tmp/hakit-testbed/<prefix>/<host>` (per-host working directories).
 */

/** Root of the run directories that hold the owner marker and the mount namespace files. */
export const RUN_ROOT = '/run/hakit-testbed';
/** Root of the per-host working directories. */
export const DIR_ROOT = '/tmp/hakit-testbed';

/** A run prefix: `hk` and 4 characters of [0-9a-z]. */
export const PREFIX_RE = /^hk[0-9a-z]{4}$/;
/** Host names: short enough that the hub port `<host>-e<k>` fits the 15-character limit. */
export const HOST_RE = /^[a-z][a-z0-9]{0,11}$/;
export const NETWORK_RE = /^[a-z][a-z0-9]{0,15}$/;
export const MAX_HOSTS = 20;

/** The subnets of the 1st, 2nd and 3rd network: IPv4 /24 prefixes (first three octets) and IPv6 /64. */
const V4_SUBNETS = ['198.18.0', '198.19.0', '198.18.1'] as const;
export const MAX_NETWORKS = V4_SUBNETS.length;

/** A fresh prefix from a random source returning [0, 1). */
export function makePrefix(random: () => number): string {
  let s = 'hk';
  for (let i = 0; i < 4; i++) s += Math.floor(random() * 36).toString(36);
  return s;
}

export function netnsName(prefix: string, host: string): string {
  return `${prefix}-${host}`;
}

export function hubName(prefix: string): string {
  return `${prefix}-hub`;
}

/** The prefix a namespace name belongs to, or undefined when it is not a testbed name. */
export function prefixOfNetns(name: string): string | undefined {
  const m = /^(hk[0-9a-z]{4})-/.exec(name);
  return m?.[1];
}

/** The interface of network number `k` (0-based) inside a host. */
export function ifname(k: number): string {
  return `eth${k}`;
}

/** The bridge of network number `k` inside the hub namespace. */
export function bridgeName(k: number): string {
  return `br${k}`;
}

/** The hub-side veth of a host on network number `k` (≤ 15 characters). */
export function hubPortName(host: string, k: number): string {
  return `${host}-e${k}`;
}

/** IPv4 address of host number `i` (1-based, creation order) on network number `k`. */
export function addr4(k: number, i: number): string {
  return `${V4_SUBNETS[k]}.${i}`;
}

/** The IPv4 subnet of network number `k`, as `a.b.c.0/24`. */
export function subnet4(k: number): string {
  return `${V4_SUBNETS[k]}.0/24`;
}

/** IPv6 address of host number `i` on network number `k`, in canonical (RFC 5952) form. */
export function addr6(k: number, i: number): string {
  const iid = i.toString(16);
  return k === 0 ? `2001:2::${iid}` : `2001:2:0:${k.toString(16)}::${iid}`;
}

/** The IPv6 subnet of network number `k`. */
export function subnet6(k: number): string {
  return k === 0 ? '2001:2::/64' : `2001:2:0:${k.toString(16)}::/64`;
}

export function runDir(prefix: string): string {
  return `${RUN_ROOT}/${prefix}`;
}

/** The file a host's persistent mount namespace is bound to. */
export function mntnsFile(prefix: string, host: string): string {
  return `${runDir(prefix)}/mnt-${host}`;
}

export function ownerFile(prefix: string): string {
  return `${runDir(prefix)}/owner`;
}

export function hostDir(prefix: string, host: string): string {
  return `${DIR_ROOT}/${prefix}/${host}`;
}

/** The real directory that backs the shared path `path` (absolute) for a host. */
export function backingDir(prefix: string, host: string, path: string): string {
  return `${hostDir(prefix, host)}/fs${path}`;
}

/** Validates a shared mount path: absolute, normalised, not `/` and not under /proc, /sys, /dev, /run. */
export function checkMountPath(path: string): string | undefined {
  if (!path.startsWith('/') || path === '/') return 'must be an absolute path other than /';
  if (path.split('/').slice(1).some((c) => c === '' || c === '.' || c === '..')) return 'must be normalised (no //, . or ..)';
  if (/^\/(proc|sys|dev|run)(\/|$)/.test(path)) return 'must not be under /proc, /sys, /dev or /run';
  if (/[\s\\]/.test(path)) return 'must not contain spaces or backslashes';
  if (`${DIR_ROOT}/`.startsWith(`${path}/`)) return `must not hide ${DIR_ROOT}, where the host directories live`;
  return undefined;
}

/**
 * Where a host's view of `path` lives on the root file system: under the host's backing directory
 * when `path` is one of `mountPaths` or below one (the longest match wins), else `path` itself
 * (paths outside the mount paths are the same for every host and for the root namespace).
 */
export function hostPathOf(prefix: string, host: string, mountPaths: readonly string[], path: string): string {
  let best: string | undefined;
  for (const m of mountPaths) {
    if ((path === m || path.startsWith(`${m}/`)) && (best === undefined || m.length > best.length)) best = m;
  }
  if (best === undefined) return path;
  return backingDir(prefix, host, best) + path.slice(best.length);
}

/** The nftables table (family bridge) in the hub that holds every fault rule. */
export const FAULT_TABLE = 'hakit_faults';
/** Its one chain, hooked on bridge forwarding: fault rules are appended here, heal flushes it. */
export const FAULT_CHAIN = 'forward';

/** nft script that creates the fault table and its empty chain (policy accept). */
export function faultTableScript(): string {
  return `table bridge ${FAULT_TABLE} {\n  chain ${FAULT_CHAIN} {\n    type filter hook forward priority 0; policy accept;\n  }\n}\n`;
}

/**
 * nft commands that drop frames entering the hub from port `from` and leaving through port `to`
 * (both hub-side port names), one rule per pair. `percent` (1..100) drops that share at random
 * (`numgen random mod 100 < percent`); 100 drops every frame.
 */
export function dropRules(pairs: readonly (readonly [string, string])[], percent = 100, proto?: 'udp' | 'tcp'): string {
  if (!Number.isInteger(percent) || percent < 1 || percent > 100) throw new RangeError(`percent must be an integer in 1..100, got ${percent}`);
  const loss = percent === 100 ? '' : `numgen random mod 100 < ${percent} `;
  const only = proto === undefined ? '' : `meta l4proto ${proto} `;
  return pairs.map(([from, to]) => `add rule bridge ${FAULT_TABLE} ${FAULT_CHAIN} iifname "${from}" oifname "${to}" ${only}${loss}drop\n`).join('');
}

/** nft command that removes every fault rule. */
export function healScript(): string {
  return `flush chain bridge ${FAULT_TABLE} ${FAULT_CHAIN}\n`;
}

/**
 * Registry of the mount-point directories testbed runs created on the root file system (one
 * absolute path a line), so the last run that uses one removes it. Guarded by LOCK_FILE.
 */
export const MOUNTPOINTS_FILE = `${RUN_ROOT}/mountpoints`;
/** flock(1) lock serialising mount-point creation and removal between runs. */
export const LOCK_FILE = `${RUN_ROOT}/lock`;

/** The run's list of mount paths (one a line): a run using a path keeps it from being removed. */
export function mountPathsFile(prefix: string): string {
  return `${runDir(prefix)}/mountpaths`;
}

