/**
 * parseConfig: the texts of a config dir -> the typed configuration, or every located error of
 * every file at once. Steps: YAML syntax, per-file schema (schema.ts), defaults (defaults.ts),
 * then checks across files. Pure: the caller reads the files and answers the probes.
 */
import type * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { fieldOf, issueAt, parseYaml, type PathSeg, type YamlFile } from './locate.js';
import { isWithin, normalizeAbsoluteDir, relativeTo, resolvePath } from './paths.js';
import { ALLOWED_KEYS_MARK, CHECKER_TYPES, clusterFileSchema, moduleFileSchema, type CheckerFile, type ClusterFile, type ModuleFile } from './schema.js';
import { formatDuration, show } from './units.js';
import { parseIp } from './ip.js';
import type {
  CheckerConfig, ClusterConfig, ConfigFiles, ConfigIssue, ConfigProbes, ConfigResult, HakitConfig, ModuleConfig, ModuleState,
  ProcessMatch, ReplicatedDir, VipConfig,
} from './types.js';

/** `<file>:<line>: <field>: <message> (column <c>)`, the file relative to the config dir. */
export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}: ${issue.field}: ${issue.message} (column ${issue.column})`;
}

const MODULE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MIRROR_ONLY = new Set(['replication', 'default_primary']);
const FARM_ONLY = new Set(['farm']);

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string', number: 'a number', int: 'an integer', boolean: 'true or false', array: 'a list', object: 'a mapping',
  record: 'a mapping',
};

/** Fallback messages for issues whose schema did not word its own. */
function defaultMessage(iss: { code: string; input?: unknown; expected?: string }): string | undefined {
  if (iss.code === 'invalid_type' && iss.input !== undefined) {
    return `expected ${TYPE_WORDS[iss.expected ?? ''] ?? iss.expected}, got ${show(iss.input)}`;
  }
  return undefined;
}

function get(data: unknown, path: readonly PathSeg[]): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** Edit distance of two short strings (for "did you mean"). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The allowed key closest to a refused one, when it is a likely typo. */
function suggest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = distance(key.toLowerCase(), a.toLowerCase());
    if (d < bestD) { best = a; bestD = d; }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

/**
 * The issues of the union branch that got furthest into a value (for a union of a scalar and a
 * list, the errors inside the list), or undefined when every branch refused the value itself.
 */
function deepestBranch(iss: z.core.$ZodIssue): z.core.$ZodIssue[] | undefined {
  if (iss.code !== 'invalid_union') return undefined;
  const branches = iss.errors.filter((b) => b.length > 0 && b.every((i) => i.path.length > 0));
  return branches.length === 1 ? branches[0] : undefined;
}

/** zod issues -> located config issues, one per refused key. `empty` says what a file must hold. */
function zodIssues(y: YamlFile, data: unknown, issues: readonly z.core.$ZodIssue[], empty: string): ConfigIssue[] {
  if (data === null || data === undefined) return [issueAt(y, [], `the file is empty (or holds only comments); expected ${empty}`)];
  const out: ConfigIssue[] = [];
  const kind = get(data, ['kind']);
  for (const iss of issues) {
    const path = iss.path.filter((s): s is string | number => typeof s !== 'symbol');
    const inner = deepestBranch(iss);
    if (inner) {
      out.push(...zodIssues(y, data, inner.map((i) => ({ ...i, path: [...iss.path, ...i.path] })), empty));
      continue;
    }
    const last = path[path.length - 1];
    if (iss.code === 'unrecognized_keys') {
      const allowed = iss.message.startsWith(ALLOWED_KEYS_MARK) ? iss.message.slice(ALLOWED_KEYS_MARK.length) : '';
      const present = get(data, path);
      const missing = allowed.split(', ').filter((a) => a !== '' && (present === null || typeof present !== 'object' || !(a in present)));
      for (const k of iss.keys) {
        const guess = suggest(k, missing);
        let message = `unknown key "${k}"${guess === undefined ? '' : ` (did you mean "${guess}"?)`}; allowed keys: ${allowed}`;
        if (path.length === 0 && kind === 'farm' && MIRROR_ONLY.has(k)) {
          message = `"${k}" belongs to mirror modules; a farm module has no ${k === 'replication' ? 'replicated directories' : 'primary'} (kind: farm)`;
        } else if (path.length === 0 && kind === 'mirror' && FARM_ONLY.has(k)) {
          message = `"${k}" belongs to farm modules (kind: mirror)`;
        } else if (k === 'action' && path[0] === 'checkers' && get(data, [...path, 'type']) === 'splitbrain') {
          message = 'a splitbrain checker has no action: its result decides takeover and self-demotion; remove "action"';
        }
        out.push(issueAt(y, [...path, k], message, true));
      }
      continue;
    }
    if (iss.code === 'invalid_union' && 'discriminator' in iss && iss.discriminator !== undefined) {
      const disc = String(iss.discriminator);
      const options = ((iss as { options?: unknown[] }).options ?? []).map(String);
      const value = get(data, path);
      const message = disc === 'type'
        ? (value === undefined
          ? `required key "type" is missing; expected one of ${CHECKER_TYPES.join(', ')}`
          : `unknown checker type ${show(value)}; expected one of ${CHECKER_TYPES.join(', ')}`)
        : (value === undefined
          ? `required key "${disc}" is missing; expected ${options.join(' or ')}`
          : `expected ${options.join(' or ')}, got ${show(value)}`);
      out.push(issueAt(y, path, message));
      continue;
    }
    if (path.length === 0 && iss.code === 'invalid_type') {
      out.push(issueAt(y, path, `expected ${empty}, got ${show(data)}`));
      continue;
    }
    const parent = get(data, path.slice(0, -1));
    if (typeof last === 'string' && parent !== null && typeof parent === 'object' && !Array.isArray(parent) && !(last in parent)) {
      out.push(issueAt(y, path, `required key "${last}" is missing`));
      continue;
    }
    out.push(issueAt(y, path, iss.message));
  }
  return out;
}

function validate<T>(schema: z.ZodType<T>, y: YamlFile, data: unknown, empty: string): { value?: T; errors: ConfigIssue[] } {
  const r = schema.safeParse(data, { reportInput: true, error: defaultMessage });
  if (r.success) return { value: r.data, errors: [] };
  return { errors: zodIssues(y, data, r.error.issues, empty) };
}

const CLUSTER_CONTENT = 'a mapping with the keys cluster, networks and nodes (see docs/config.md)';
const MODULE_CONTENT = 'a mapping that starts with "kind: mirror" or "kind: farm" (see docs/config.md)';

interface ModuleEntry {
  readonly name: string;
  readonly y: YamlFile;
  readonly file: ModuleFile;
  module?: ModuleConfig;
}

function dupes<T>(items: readonly T[], keyOf: (t: T) => string): { index: number; first: number }[] {
  const seen = new Map<string, number>();
  const out: { index: number; first: number }[] = [];
  items.forEach((t, i) => {
    const k = keyOf(t);
    const f = seen.get(k);
    if (f === undefined) seen.set(k, i);
    else out.push({ index: i, first: f });
  });
  return out;
}

function checkCluster(y: YamlFile, c: ClusterFile, dir: string, probes: ConfigProbes, errors: ConfigIssue[], warnings: ConfigIssue[]): ClusterConfig {
  for (const d of dupes(c.networks, (n) => n)) errors.push(issueAt(y, ['networks', d.index], `network "${c.networks[d.index]}" is listed twice`));
  for (const d of dupes(c.nodes, (n) => n.name)) {
    errors.push(issueAt(y, ['nodes', d.index, 'name'], `node name "${c.nodes[d.index]!.name}" is already used by nodes[${d.first}]`));
  }
  const owner = new Map<string, string>();
  c.nodes.forEach((n, i) => {
    for (const [net, ip] of Object.entries(n.addresses)) {
      if (!c.networks.includes(net)) {
        errors.push(issueAt(y, ['nodes', i, 'addresses', net], `network "${net}" is not declared in networks (${c.networks.join(', ')})`, true));
      }
      const prev = owner.get(ip);
      if (prev !== undefined) errors.push(issueAt(y, ['nodes', i, 'addresses', net], `address ${ip} is already used by ${prev}`));
      else owner.set(ip, `node "${n.name}" on network "${net}"`);
    }
  });
  const keyFile = resolvePath(dir, c.cluster.key_file);
  const info = probes.keyFile?.(keyFile);
  const shown = JSON.stringify(c.cluster.key_file);
  const where = c.cluster.key_file.startsWith('/') ? '' : ' (relative to the config dir)';
  const keyPath = ['cluster', 'key_file'];
  if (info?.kind === 'missing') {
    errors.push(issueAt(y, keyPath, `key file ${shown}${where} does not exist; create it with \`hakit cluster keygen > ${c.cluster.key_file}\` (mode 0600) and copy it to every node`));
  } else if (info?.kind === 'not-a-file') {
    errors.push(issueAt(y, keyPath, `key file ${shown}${where} is not a regular file`));
  } else if (info?.kind === 'file') {
    if (info.size === 0) errors.push(issueAt(y, keyPath, `key file ${shown}${where} is empty; create it with \`hakit cluster keygen\``));
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      warnings.push(issueAt(y, keyPath, `key file ${shown} can be read by group or others (mode ${mode}); run chmod 600 on it`));
    }
  }
  return {
    name: c.cluster.name,
    keyFile,
    networks: c.networks,
    nodes: c.nodes.map((n) => ({ name: n.name, addresses: n.addresses })),
  };
}

function resolveChecker(y: YamlFile, i: number, c: CheckerFile, vipCount: number, errors: ConfigIssue[]): CheckerConfig {
  const at = (sub: PathSeg[], message: string) => errors.push(issueAt(y, ['checkers', i, ...sub], message));
  const intervalMs = c.interval ?? DEFAULTS.checker.intervalMs;
  const timeoutMs = c.timeout ?? intervalMs;
  if (timeoutMs > intervalMs) {
    at(['timeout'], `timeout (${formatDuration(timeoutMs)}) must not be longer than interval (${formatDuration(intervalMs)})`);
  }
  const base = { name: c.name ?? c.type, intervalMs, timeoutMs, rise: c.rise ?? DEFAULTS.checker.rise, fall: c.fall ?? DEFAULTS.checker.fall };
  if (c.type === 'splitbrain') {
    if (c.witnesses === undefined && c.arbitrator === undefined) at([], 'a splitbrain checker needs witnesses (addresses to ping), an arbitrator (IP:PORT of hakit witness), or both');
    if (c.arbitrator !== undefined && !parseIp(c.arbitrator.host).ok) at(['arbitrator'], `expected an IP address and a port (198.18.0.254:7407), got the host name ${JSON.stringify(c.arbitrator.host)}`);
    return { ...base, type: 'splitbrain', witnesses: c.witnesses ?? [], arbitrator: c.arbitrator };
  }
  const action = c.action ?? DEFAULTS.checkerAction[c.type];
  switch (c.type) {
    case 'tcp':
      return { ...base, action, type: 'tcp', host: c.address.host, port: c.address.port };
    case 'http':
      return { ...base, action, type: 'http', url: c.url, status: c.status ?? DEFAULTS.http.status, body: c.body };
    case 'process': {
      const given = (['process_name', 'cmdline', 'pidfile'] as const).filter((k) => c[k] !== undefined);
      if (given.length !== 1) {
        at([], `a process checker needs exactly one of process_name, cmdline, pidfile${given.length > 1 ? `, got ${given.join(' and ')}` : ''}`);
      }
      if (c.pidfile !== undefined && !c.pidfile.startsWith('/')) at(['pidfile'], `expected an absolute pid file path, got ${show(c.pidfile)}`);
      const min = c.min ?? DEFAULTS.process.min;
      if (c.max !== undefined && c.max < min) at(['max'], `max (${c.max}) must be at least min (${min})`);
      const match: ProcessMatch = c.cmdline !== undefined ? { by: 'cmdline', pattern: c.cmdline }
        : c.pidfile !== undefined ? { by: 'pidfile', path: c.pidfile } : { by: 'name', name: c.process_name ?? '' };
      return { ...base, action, type: 'process', match, min, max: c.max, class: c.class ?? DEFAULTS.process.class };
    }
    case 'ping':
      return { ...base, action, type: 'ping', address: c.address };
    case 'interface':
      return { ...base, action, type: 'interface', interface: c.interface };
    case 'vip':
      if (vipCount === 0) at(['type'], 'a vip checker checks the module\'s VIPs, but this module has no vip');
      return { ...base, action, type: 'vip' };
    case 'custom':
      return { ...base, action, type: 'custom', command: c.command, args: c.args ?? [] };
    case 'module': {
      const states: ModuleState[] = typeof c.state === 'string' ? [c.state] : c.state;
      return { ...base, action, type: 'module', module: c.module, states };
    }
  }
}

/** Applies defaults and the checks that need only this module (and the cluster when valid). */
function resolveModule(m: ModuleEntry, cluster: ClusterConfig | undefined, errors: ConfigIssue[], warnings: ConfigIssue[]): ModuleConfig {
  const { y, file: f } = m;
  const err = (path: PathSeg[], message: string) => errors.push(issueAt(y, path, message));
  for (const d of dupes(f.nodes, (n) => n)) err(['nodes', d.index], `node "${f.nodes[d.index]}" is listed twice`);

  const networks = f.heartbeat?.networks ?? cluster?.networks ?? [];
  const pulseMs = f.heartbeat?.pulse ?? DEFAULTS.heartbeat.pulseMs;
  const hbTimeoutMs = f.heartbeat?.timeout ?? DEFAULTS.heartbeat.timeoutMs;
  if (hbTimeoutMs <= pulseMs) {
    err(['heartbeat', f.heartbeat?.timeout !== undefined ? 'timeout' : 'pulse'],
      `heartbeat timeout (${formatDuration(hbTimeoutMs)}) must be longer than pulse (${formatDuration(pulseMs)})`);
  }
  if (f.heartbeat?.networks) {
    for (const d of dupes(f.heartbeat.networks, (n) => n)) err(['heartbeat', 'networks', d.index], `network "${networks[d.index]}" is listed twice`);
  }

  if (cluster) {
    const known = new Map(cluster.nodes.map((n) => [n.name, n]));
    f.nodes.forEach((n, i) => {
      const node = known.get(n);
      if (!node) {
        err(['nodes', i], `node "${n}" is not declared in cluster.yaml (nodes: ${cluster.nodes.map((x) => x.name).join(', ')})`);
        return;
      }
      for (const net of networks) {
        if (cluster.networks.includes(net) && node.addresses[net] === undefined) {
          err(['nodes', i], `node "${n}" has no address on heartbeat network "${net}"; add one to its addresses in cluster.yaml${f.heartbeat?.networks ? ' or remove the network from heartbeat.networks' : ' or list this module\'s networks in heartbeat.networks'}`);
        }
      }
    });
    f.heartbeat?.networks?.forEach((net, i) => {
      if (!cluster.networks.includes(net)) err(['heartbeat', 'networks', i], `network "${net}" is not declared in cluster.yaml (networks: ${cluster.networks.join(', ')})`);
    });
  }

  const vip: VipConfig[] = (f.vip ?? []).map((v, i) => {
    if (cluster) {
      for (const node of cluster.nodes) {
        for (const [net, ip] of Object.entries(node.addresses)) {
          if (ip === v.address.address) {
            err(['vip', i, 'address'], `VIP ${ip} is the address of node "${node.name}" on network "${net}"; a VIP needs an address of its own`);
          }
        }
      }
    }
    return { address: v.address.address, prefix: v.address.prefix, family: v.address.family, cidr: v.address.cidr, interface: v.interface };
  });
  for (const d of dupes(vip, (v) => v.address)) err(['vip', d.index, 'address'], `VIP ${vip[d.index]!.address} is listed twice`);

  const checkers = (f.checkers ?? []).map((c, i) => resolveChecker(y, i, c, vip.length, errors));
  for (const d of dupes(checkers, (c) => c.name)) {
    const given = f.checkers?.[d.index]?.name !== undefined;
    err(given ? ['checkers', d.index, 'name'] : ['checkers', d.index],
      `checker name "${checkers[d.index]!.name}" is already used by checkers[${d.first}]${given ? '' : '; give each checker of the same type a name'}`);
  }

  const base = {
    name: m.name,
    nodes: f.nodes,
    failover: f.failover ?? DEFAULTS.failover,
    heartbeat: { networks, pulseMs, timeoutMs: hbTimeoutMs },
    vip,
    scripts: {
      timeoutMs: f.scripts?.timeout ?? DEFAULTS.scripts.timeoutMs,
      stopTimeoutMs: f.scripts?.stop_timeout ?? DEFAULTS.scripts.stopTimeoutMs,
    },
    maxloop: { count: f.maxloop?.count ?? DEFAULTS.maxloop.count, windowMs: f.maxloop?.window ?? DEFAULTS.maxloop.windowMs },
    checkers,
  };
  if (f.kind === 'farm') {
    return { ...base, kind: 'farm', farm: { ports: f.farm?.ports ?? DEFAULTS.farm.ports, protocol: f.farm?.protocol ?? DEFAULTS.farm.protocol } };
  }

  if (f.default_primary !== undefined && f.default_primary !== 'last' && !f.nodes.includes(f.default_primary)) {
    err(['default_primary'], `expected one of the module's nodes (${f.nodes.join(', ')}) or "last", got ${show(f.default_primary)}`);
  }
  const dirs: ReplicatedDir[] = [];
  (f.replication?.dirs ?? []).forEach((d, i) => {
    const r = normalizeAbsoluteDir(d.path);
    if (!r.ok) {
      err(['replication', 'dirs', i, 'path'], r.message);
      return;
    }
    const j = dirs.findIndex((o) => isWithin(r.value, o.path) || isWithin(o.path, r.value));
    if (j >= 0) {
      const o = dirs[j]!.path;
      const message = o === r.value ? `${r.value} is listed twice (also replication.dirs[${j}])`
        : isWithin(r.value, o) ? `${r.value} is inside ${o} (replication.dirs[${j}]); list only the outer directory`
          : `${r.value} contains ${o} (replication.dirs[${j}]); list only the outer directory`;
      err(['replication', 'dirs', i, 'path'], message);
    }
    dirs.push({ path: r.value, exclude: d.exclude ?? [] });
  });
  const mirror: ModuleConfig = {
    ...base,
    kind: 'mirror',
    defaultPrimary: f.default_primary,
    replication: {
      dirs,
      timeoutMs: f.replication?.timeout ?? DEFAULTS.replication.timeoutMs,
      zoneSizeBytes: f.replication?.zone_size ?? DEFAULTS.replication.zoneSizeBytes,
      resyncBandwidthBytesPerSec: f.replication?.resync_bandwidth,
      port: f.replication?.port,
    },
  };
  if (mirror.failover && networks.length === 1 && !checkers.some((c) => c.type === 'splitbrain')) {
    warnings.push(issueAt(y, f.heartbeat?.networks ? ['heartbeat', 'networks'] : ['nodes'],
      `only one heartbeat network (${networks[0]}) and no splitbrain checker: if that network is cut, both nodes become primary; add a second network or a splitbrain checker`));
  }
  return mirror;
}

/** Checks between modules: replicated dirs, VIPs, module checkers. */
function crossModules(mods: readonly ModuleEntry[], names: readonly string[], errors: ConfigIssue[]): void {
  const dirOwner: { path: string; module: string }[] = [];
  const vipOwner = new Map<string, string>();
  for (const m of mods) {
    const mod = m.module!;
    if (mod.kind === 'mirror') {
      const paths = m.file.kind === 'mirror' ? m.file.replication?.dirs ?? [] : [];
      paths.forEach((d, i) => {
        const r = normalizeAbsoluteDir(d.path);
        if (!r.ok) return;
        const o = dirOwner.find((x) => isWithin(r.value, x.path) || isWithin(x.path, r.value));
        if (o) {
          errors.push(issueAt(m.y, ['replication', 'dirs', i, 'path'],
            `${r.value} overlaps ${o.path} of module "${o.module}"; a directory is replicated by one module only`));
        }
      });
      for (const d of mod.replication.dirs) dirOwner.push({ path: d.path, module: m.name });
    }
    mod.vip.forEach((v, i) => {
      const o = vipOwner.get(v.address);
      if (o !== undefined) errors.push(issueAt(m.y, ['vip', i, 'address'], `VIP ${v.address} is already used by module "${o}"`));
    });
    for (const v of mod.vip) if (!vipOwner.has(v.address)) vipOwner.set(v.address, m.name);
    mod.checkers.forEach((c, i) => {
      if (c.type !== 'module') return;
      if (c.module === m.name) errors.push(issueAt(m.y, ['checkers', i, 'module'], `a module checker watches another module, and "${c.module}" is this module`));
      else if (!names.includes(c.module)) {
        errors.push(issueAt(m.y, ['checkers', i, 'module'], `module "${c.module}" does not exist (modules: ${names.join(', ')})`));
      }
    });
  }
}

/**
 * Parses and validates a whole configuration. Returns the typed config with warnings, or every
 * error found in every file, sorted by file (cluster.yaml first, then modules by name), line,
 * column. Checks between files run only on files that passed their own validation.
 */
export function parseConfig(files: ConfigFiles, probes: ConfigProbes = {}): ConfigResult {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const rel = (p: string) => relativeTo(files.dir, p);

  const cy = parseYaml(rel(files.cluster.path), files.cluster.text);
  errors.push(...cy.errors);
  let cluster: ClusterConfig | undefined;
  if (cy.errors.length === 0) {
    const v = validate(clusterFileSchema, cy.yaml, cy.data, CLUSTER_CONTENT);
    errors.push(...v.errors);
    if (v.value) {
      const before = errors.length;
      const c = checkCluster(cy.yaml, v.value, files.dir, probes, errors, warnings);
      if (errors.length === before) cluster = c;
    }
  }

  const sorted = [...files.modules].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const entries: ModuleEntry[] = [];
  for (const d of dupes(sorted, (m) => m.name)) {
    const m = sorted[d.index]!;
    errors.push({ file: rel(m.path), line: 1, column: 1, field: fieldOf([], rel(m.path).split('/').pop()!), message: `module name "${m.name}" is already used by ${rel(sorted[d.first]!.path)}` });
  }
  for (const m of sorted) {
    const my = parseYaml(rel(m.path), m.text);
    if (!MODULE_NAME_RE.test(m.name)) {
      errors.push(issueAt(my.yaml, [], `module name ${show(m.name)} (its folder name) must be letters, digits, ".", "_" or "-", starting with a letter or digit, at most 63 characters`));
    }
    errors.push(...my.errors);
    if (my.errors.length > 0) continue;
    const v = validate(moduleFileSchema, my.yaml, my.data, MODULE_CONTENT);
    errors.push(...v.errors);
    if (v.value) entries.push({ name: m.name, y: my.yaml, file: v.value });
  }

  for (const e of entries) e.module = resolveModule(e, cluster, errors, warnings);
  crossModules(entries, sorted.map((m) => m.name), errors);

  if (errors.length > 0 || !cluster) return { ok: false, errors: errors.sort(compareIssues) };
  const config: HakitConfig = { dir: files.dir, cluster, modules: entries.map((e) => e.module!) };
  return { ok: true, config, warnings: warnings.sort(compareIssues) };
}

/** Sort key of a file: cluster.yaml, then `modules/<name>/...` by module name, then anything else. */
function fileKey(file: string): [number, string] {
  if (file === 'cluster.yaml') return [0, ''];
  const m = /^modules\/([^/]+)\//.exec(file);
  return m ? [1, m[1]!] : [2, file];
}

/**
 * The order issues are reported in: by file (cluster.yaml first, then modules by name), line,
 * column. Callers that add issues of their own (unreadable files) sort the union with it.
 */
export function compareIssues(a: ConfigIssue, b: ConfigIssue): number {
  const [ra, na] = fileKey(a.file);
  const [rb, nb] = fileKey(b.file);
  return ra - rb || (na < nb ? -1 : na > nb ? 1 : 0) || a.line - b.line || a.column - b.column;
}
