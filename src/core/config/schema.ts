/**
 * zod 4 schemas of the two configuration files as written (`cluster.yaml`, `module.yaml`).
 * They check shapes, types, formats and units (converting durations to ms and sizes to bytes)
 * and refuse unknown keys; defaults and cross-file checks are applied in parse.ts.
 * scripts/gen-schema.ts turns them into JSON Schemas (input side) for editors.
 */
import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { parseHostPort, parseIp, parseIpPrefix } from './ip.js';
import {
  BANDWIDTH_PATTERN, DURATION_PATTERN, SIZE_PATTERN, formatDuration, formatSize, parseBandwidth, parseDuration, parseSize, show,
  type UnitResult,
} from './units.js';

/** Prefix of the message zod gets for refused keys; parse.ts turns it into one issue per key. */
export const ALLOWED_KEYS_MARK = 'allowed keys: ';

type Issue = { code: string; input?: unknown };

/** A schema-level error function: `expected` for a present but wrong value, else zod's default path. */
function expecting(expected: (input: unknown) => string) {
  return (iss: Issue): string | undefined => (iss.input === undefined ? undefined : expected(iss.input));
}

/** A mapping that refuses keys it does not declare. */
function strict<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? ALLOWED_KEYS_MARK + Object.keys(shape).join(', ') : undefined),
  });
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const nameMessage = (what: string) => (v: unknown) =>
  `expected a ${what} name of letters, digits, ".", "_" or "-" (starting with a letter or digit, at most 63 characters), got ${show(v)}`;

/** A node, network, module or checker name. */
export const name = (what: string) => z.string({ error: expecting(nameMessage(what)) }).regex(NAME_RE, { error: expecting(nameMessage(what)) });

function unit(pattern: string, parse: (s: unknown) => UnitResult) {
  const message = (v: unknown) => (parse(v) as { message: string }).message;
  return z
    .string({ error: expecting(message) })
    .regex(new RegExp(pattern), { error: expecting(message) })
    .transform((s, ctx) => {
      const r = parse(s);
      if (r.ok) return r.value;
      ctx.issues.push({ code: 'custom', message: r.message, input: s });
      return z.NEVER;
    });
}

/** `250ms`, `2s`, `1m`, `1h` -> milliseconds. */
export const duration = () => unit(DURATION_PATTERN, parseDuration).meta({ description: 'A duration: a whole number and ms, s, m or h (250ms, 2s, 1m).' });
/** `64KiB`, `1MiB` -> bytes. */
export const size = () => unit(SIZE_PATTERN, parseSize).meta({ description: 'A size: a whole number and B, KiB, MiB, GiB or TiB (64KiB, 1MiB).' });
/** `50MiB` or `50MiB/s` -> bytes per second. */
export const bandwidth = () => unit(BANDWIDTH_PATTERN, parseBandwidth);

function fromParser<T>(parse: (s: unknown) => { ok: true; value: T } | { ok: false; message: string }, format: string) {
  const message = (v: unknown) => (parse(v) as { message: string }).message;
  return z
    .string({ error: expecting(message) })
    .meta({ format })
    .transform((s, ctx) => {
      const r = parse(s);
      if (r.ok) return r.value;
      ctx.issues.push({ code: 'custom', message: r.message, input: s });
      return z.NEVER;
    });
}

/** A plain IPv4 or IPv6 address -> canonical text. */
export const ipAddress = () => fromParser((s) => {
  const r = parseIp(s);
  return r.ok ? { ok: true as const, value: r.value.address } : r;
}, 'ip-address');
export const ipPrefix = () => fromParser(parseIpPrefix, 'ip-prefix');
export const hostPort = () => fromParser(parseHostPort, 'host-port');

const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const ifname = () => {
  const m = (v: unknown) => `expected a network interface name (eth0; at most 15 characters, no "/" or spaces), got ${show(v)}`;
  return z.string({ error: expecting(m) }).regex(IFNAME_RE, { error: expecting(m) });
};

const nonEmpty = (what: string) =>
  z.string({ error: expecting((v) => `expected ${what}, got ${show(v)}`) }).min(1, { error: `expected ${what}, got an empty string` });

/** Why `s` is not a JavaScript regular expression, or undefined when it is one. */
function regexError(s: string): string | undefined {
  try {
    new RegExp(s);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
  }
}

/** A regular expression `what` must match (JavaScript syntax). */
const regexSource = (what: string) =>
  nonEmpty(`a regular expression (${what})`).refine((s) => regexError(s) === undefined, {
    error: (iss) => `expected a regular expression (${what}), got ${show(iss.input)} (${regexError(String(iss.input)) ?? 'invalid'})`,
  });

const int = (min: number, max?: number) => {
  const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
  const m = (v: unknown) => `expected an integer ${range}, got ${show(v)}`;
  const base = z.int({ error: expecting(m) }).min(min, { error: expecting(m) });
  return max === undefined ? base : base.max(max, { error: expecting(m) });
};

const bool = () => z.boolean({ error: expecting((v) => `expected true or false, got ${show(v)}`) });

const list = <T extends z.ZodType>(item: T, min = 0, what = 'item') =>
  z.array(item, { error: expecting((v) => `expected a list, got ${show(v)}`) }).min(min, {
    error: `expected at least ${min} ${what}${min === 1 ? '' : 's'}`,
  });

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: expecting((v) => `expected one of ${values.join(', ')}, got ${show(v)}`) });

// ---------------------------------------------------------------- cluster.yaml

export const clusterFileSchema = strict({
  cluster: strict({
    name: name('cluster'),
    key_file: nonEmpty('a file name (relative to the config dir, or absolute)').describe('The cluster key, relative to the config dir.'),
  }),
  networks: list(name('network'), 1, 'heartbeat network').describe('Heartbeat networks, in order of preference.'),
  nodes: list(
    strict({
      name: name('node'),
      addresses: z
        .record(name('network'), ipAddress(), { error: expecting((v) => `expected a mapping of network name to IP address, got ${show(v)}`) })
        .describe('The node\'s IP address on each heartbeat network.'),
    }),
    1,
    'node',
  ),
}).meta({ title: 'hakit cluster.yaml' });

// ---------------------------------------------------------------- module.yaml

const ACTIONS = ['restart', 'stopstart', 'wait', 'stop', 'none'] as const;
const STATES = ['STOP', 'WAIT', 'ALONE', 'PRIM', 'SECOND', 'UP'] as const;

const checkerCommon = {
  name: name('checker').optional().describe('Unique within the module; default: the type.'),
  interval: duration().optional().meta({ default: formatDuration(DEFAULTS.checker.intervalMs) }),
  timeout: duration().optional().describe('Default: the interval.'),
  rise: int(1).optional().meta({ default: DEFAULTS.checker.rise }),
  fall: int(1).optional().meta({ default: DEFAULTS.checker.fall }),
};
const action = (type: keyof typeof DEFAULTS.checkerAction) => oneOf(ACTIONS).optional().meta({ default: DEFAULTS.checkerAction[type] });

const checkerSchema = z.discriminatedUnion('type', [
  strict({ type: z.literal('tcp'), ...checkerCommon, action: action('tcp'), address: hostPort() }),
  strict({
    type: z.literal('http'), ...checkerCommon, action: action('http'),
    url: nonEmpty('an http:// or https:// URL').refine((s) => /^https?:\/\/[^/\s]+/.test(s) && URL.canParse(s), {
      error: (iss) => `expected an http:// or https:// URL, got ${show(iss.input)}`,
    }),
    status: int(100, 599).optional().meta({ default: DEFAULTS.http.status }),
    body: regexSource('the body must match it').optional(),
  }),
  strict({
    type: z.literal('process'), ...checkerCommon, action: action('process'),
    process_name: nonEmpty('a process name (as ps shows it)').optional(),
    cmdline: regexSource('the command line must match it').optional(),
    pidfile: nonEmpty('an absolute pid file path').optional(),
    min: int(0).optional().meta({ default: DEFAULTS.process.min }),
    max: int(0).optional(),
    class: oneOf(['prim', 'second', 'both']).optional().meta({ default: DEFAULTS.process.class }),
  }).describe('Exactly one of process_name, cmdline, pidfile.'),
  strict({ type: z.literal('ping'), ...checkerCommon, action: action('ping'), address: ipAddress() }),
  strict({ type: z.literal('interface'), ...checkerCommon, action: action('interface'), interface: ifname() }),
  strict({ type: z.literal('vip'), ...checkerCommon, action: action('vip') }),
  strict({
    type: z.literal('custom'), ...checkerCommon, action: action('custom'),
    command: nonEmpty('a command (absolute, or relative to the module\'s bin/)'),
    args: list(z.string({ error: expecting((v) => `expected a string, got ${show(v)}`) })).optional(),
  }),
  strict({
    type: z.literal('module'), ...checkerCommon, action: action('module'),
    module: name('module'),
    state: z.union([oneOf(STATES), list(oneOf(STATES), 1, 'state')], {
      error: expecting((v) => `expected a state (${STATES.join(', ')}) or a list of them, got ${show(v)}`),
    }),
  }),
  strict({
    type: z.literal('splitbrain'), ...checkerCommon,
    witnesses: list(ipAddress(), 1, 'witness').optional().describe('Addresses to ping; at least one of witnesses and arbitrator.'),
    arbitrator: hostPort().optional().describe('The arbitrator witness (`hakit witness`), IP:PORT (docs/witness.md).'),
  }),
]).meta({ id: 'checker', title: 'checker', description: 'A checker; `type` says which fields it takes.' });

/** Checker types, in the order the docs list them. */
export const CHECKER_TYPES = ['tcp', 'http', 'process', 'ping', 'interface', 'vip', 'custom', 'module', 'splitbrain'] as const;

const moduleCommon = {
  failover: bool().optional().meta({ default: DEFAULTS.failover }),
  heartbeat: strict({
    networks: list(name('network'), 1, 'network').optional().describe('Default: the cluster\'s networks.'),
    pulse: duration().optional().meta({ default: formatDuration(DEFAULTS.heartbeat.pulseMs) }),
    timeout: duration().optional().meta({ default: formatDuration(DEFAULTS.heartbeat.timeoutMs) }),
  }).optional(),
  scripts: strict({
    timeout: duration().optional().meta({ default: formatDuration(DEFAULTS.scripts.timeoutMs) }),
    stop_timeout: duration().optional().meta({ default: formatDuration(DEFAULTS.scripts.stopTimeoutMs) }),
  }).optional(),
  maxloop: strict({
    count: int(1).optional().meta({ default: DEFAULTS.maxloop.count }),
    window: duration().optional().meta({ default: formatDuration(DEFAULTS.maxloop.windowMs) }),
  }).optional(),
  checkers: list(checkerSchema).optional(),
};

const vipItem = strict({ address: ipPrefix(), interface: ifname() });

export const mirrorFileSchema = strict({
  kind: z.literal('mirror'),
  nodes: z.array(name('node'), { error: expecting((v) => `expected a list, got ${show(v)}`) }).length(2, {
    error: (iss) => {
      const n = Array.isArray(iss.input) ? iss.input.length : 0;
      return `a mirror module has exactly 2 nodes, got ${n}${n > 2 ? '; use a farm module for more' : ''}`;
    },
  }),
  default_primary: name('node').optional().describe('A node of the module, or "last".'),
  ...moduleCommon,
  vip: list(vipItem).optional(),
  replication: strict({
    dirs: list(strict({
      path: nonEmpty('an absolute directory path'),
      exclude: list(nonEmpty('a glob pattern')).optional(),
    }), 0, 'dir'),
    timeout: duration().optional().meta({ default: formatDuration(DEFAULTS.replication.timeoutMs) }),
    zone_size: size().optional().meta({ default: formatSize(DEFAULTS.replication.zoneSizeBytes) }),
    resync_bandwidth: bandwidth().refine((n) => n >= 1024, { error: 'expected a cap of at least 1KiB/s (a resync capped lower would never finish); remove the key for no cap' }).optional().describe('Cap of what a resync sends per second (the copy, not the live writes that go along); default: none.'),
    port: int(1, 65535).optional().describe('TCP port of the replication link (both nodes listen on it, on their address of the first heartbeat network); default: 7406 + the index of the module among the replicated modules, in name order.'),
  }).optional(),
});

export const farmFileSchema = strict({
  kind: z.literal('farm'),
  nodes: list(name('node'), 2, 'node'),
  ...moduleCommon,
  vip: list(vipItem, 1, 'VIP'),
  farm: strict({
    ports: list(int(1, 65535)).optional().describe('Ports whose traffic is split; default: all.'),
    protocol: oneOf(['tcp', 'udp']).optional().meta({ default: DEFAULTS.farm.protocol }),
  }).optional(),
});

export const moduleFileSchema = z.discriminatedUnion('kind', [mirrorFileSchema, farmFileSchema]).meta({ title: 'hakit module.yaml' });

export type ClusterFile = z.output<typeof clusterFileSchema>;
export type ModuleFile = z.output<typeof moduleFileSchema>;
export type CheckerFile = z.output<typeof checkerSchema>;
