/**
 * The config file of `hakit witness` (docs/witness.md), its own small YAML file:
 *
 *     listen: 198.18.0.254:7407   # IP literal, optional :port (default 7407); IPv6 as [2001:2::fe]:7407
 *     key_file: cluster.key       # the cluster's key; relative paths are relative to this file
 *     cluster: demo               # cluster.yaml cluster.name
 *     lease: 4s                   # lease length (default 4s, from 500ms to 1h)
 *
 * Pure: the caller reads the file. Errors are located like the cluster config's
 * (`file:line: field: message`, formatIssue).
 */
import * as z from 'zod';
import { issueAt, parseYaml, type PathSeg } from './locate.js';
import { parseIPv4, parseIPv6 } from './ip.js';
import { compareIssues } from './parse.js';
import { resolvePath } from './paths.js';
import { ALLOWED_KEYS_MARK, duration, name } from './schema.js';
import type { ConfigIssue } from './types.js';
import { show } from './units.js';
import { DEFAULT_LEASE_MS } from '../witness/lease.js';

/** Default UDP port of the witness (also in adapters/witness/codec.ts). */
export const WITNESS_DEFAULT_PORT = 7407;
export const WITNESS_MIN_LEASE_MS = 500;
export const WITNESS_MAX_LEASE_MS = 3_600_000;

export interface WitnessConfig {
  listen: { host: string; port: number };
  /** Absolute path of the key file. */
  keyFile: string;
  cluster: string;
  leaseMs: number;
}

/** `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; host names refused. */
export function parseListen(text: unknown): { ok: true; value: { host: string; port: number } } | { ok: false; message: string } {
  const expected = 'expected an IP address with an optional port (198.18.0.254, 198.18.0.254:7407 or [2001:2::fe]:7407)';
  if (typeof text !== 'string') return { ok: false, message: `${expected}, got ${show(text)}` };
  const m6 = /^\[([^\]]+)\](?::([0-9]{1,5}))?$/.exec(text);
  const m4 = /^([0-9.]+)(?::([0-9]{1,5}))?$/.exec(text);
  let host: string | undefined;
  let port = WITNESS_DEFAULT_PORT;
  if (m6) {
    const r = parseIPv6(m6[1]!);
    if (r.ok) host = r.value.address;
    if (m6[2] !== undefined) port = Number(m6[2]);
  } else if (m4) {
    const r = parseIPv4(m4[1]!);
    if (r.ok) host = r.value.address;
    if (m4[2] !== undefined) port = Number(m4[2]);
  } else if (text.includes(':')) {
    const r = parseIPv6(text);
    if (r.ok) host = r.value.address;
  }
  if (host === undefined) {
    const hint = /[A-Za-z]/.test(text) && !text.includes(':') ? ' (a host name is not allowed: give the address to listen on)' : '';
    return { ok: false, message: `${expected}, got ${JSON.stringify(text)}${hint}` };
  }
  if (port < 1 || port > 65535) return { ok: false, message: `${expected}, got ${JSON.stringify(text)} (a port is 1 to 65535)` };
  return { ok: true, value: { host, port } };
}

const SHAPE = {
  listen: z.unknown().transform((s, ctx) => {
    if (Array.isArray(s)) {
      ctx.issues.push({ code: 'custom', message: 'expected an IP address with an optional port, got a list (YAML reads [...] as a list: quote it, listen: "[2001:2::fe]:7407")', input: s });
      return z.NEVER;
    }
    const r = parseListen(s);
    if (r.ok) return r.value;
    ctx.issues.push({ code: 'custom', message: r.message, input: s });
    return z.NEVER;
  }),
  key_file: z.string().min(1, { error: 'expected a file path, got an empty string' }).optional(),
  cluster: name('cluster'),
  lease: duration().optional(),
};

const witnessFileSchema = z.strictObject(SHAPE, {
  error: (iss) => (iss.code === 'unrecognized_keys' ? ALLOWED_KEYS_MARK + Object.keys(SHAPE).join(', ') : undefined),
});

const CONTENT = 'a mapping with the keys listen, cluster, key_file and lease (see docs/witness.md)';

/**
 * Parses the witness config file `file` (as shown in messages) whose directory is `dir` (an
 * absolute path, for a relative key_file). Returns the config or every located error.
 */
export function parseWitnessConfig(file: string, dir: string, text: string): { ok: true; config: WitnessConfig } | { ok: false; errors: ConfigIssue[] } {
  const { yaml, data, errors } = parseYaml(file, text);
  if (errors.length > 0) return { ok: false, errors };
  if (data === null || data === undefined) return { ok: false, errors: [issueAt(yaml, [], `the file is empty (or holds only comments); expected ${CONTENT}`)] };
  if (typeof data !== 'object' || Array.isArray(data)) return { ok: false, errors: [issueAt(yaml, [], `expected ${CONTENT}, got ${show(data)}`)] };
  const r = witnessFileSchema.safeParse(data, {
    reportInput: true,
    // Only for issues whose schema did not word its own message.
    error: (iss) => (iss.code === 'invalid_type' && iss.input !== undefined ? `expected ${iss.expected === 'string' ? 'a string' : iss.expected}, got ${show(iss.input)}` : undefined),
  });
  const out: ConfigIssue[] = [];
  if (!r.success) {
    for (const iss of r.error.issues) {
      const path = iss.path.filter((s): s is PathSeg => typeof s !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        const allowed = iss.message.startsWith(ALLOWED_KEYS_MARK) ? iss.message.slice(ALLOWED_KEYS_MARK.length) : Object.keys(SHAPE).join(', ');
        for (const k of iss.keys) out.push(issueAt(yaml, [...path, k], `unknown key "${k}"; allowed keys: ${allowed}`, true));
        continue;
      }
      const key = path[0];
      if (typeof key === 'string' && !(key in (data as Record<string, unknown>))) {
        out.push(issueAt(yaml, path, `required key "${key}" is missing`));
        continue;
      }
      out.push(issueAt(yaml, path, iss.message));
    }
    return { ok: false, errors: out.sort(compareIssues) };
  }
  const v = r.data;
  const leaseMs = v.lease ?? DEFAULT_LEASE_MS;
  if (leaseMs < WITNESS_MIN_LEASE_MS || leaseMs > WITNESS_MAX_LEASE_MS) {
    out.push(issueAt(yaml, ['lease'], `expected a lease from 500ms to 1h, got ${show((data as Record<string, unknown>).lease)}`));
    return { ok: false, errors: out };
  }
  return { ok: true, config: { listen: v.listen, keyFile: resolvePath(dir, v.key_file ?? 'cluster.key'), cluster: v.cluster, leaseMs } };
}
