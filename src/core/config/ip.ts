/**
 * IP addresses of the configuration, parsed by hand (src/core has no node:net).
 * Accepts dotted-quad IPv4 (no leading zeros) and RFC 4291 IPv6 text (with `::` and an optional
 * dotted IPv4 tail); refuses zone ids (`%eth0`). Results carry the canonical text (RFC 5952 for
 * IPv6), so two spellings of one address compare equal.
 */
import { show } from './units.js';

export interface IpAddress {
  readonly family: 4 | 6;
  /** Canonical text: `198.18.0.1`, `2001:2::1`. */
  readonly address: string;
  /** 4 or 16 bytes, network order. */
  readonly bytes: readonly number[];
}

export interface IpPrefix extends IpAddress {
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  readonly prefix: number;
  /** Canonical `address/prefix`. */
  readonly cidr: string;
}

export type IpResult<T> = { ok: true; value: T } | { ok: false; message: string };

function fail<T>(message: string): IpResult<T> {
  return { ok: false, message };
}

function ipv4Bytes(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function ipv6Bytes(text: string): number[] | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  let head = text;
  let tail: number[] = [];
  // An embedded IPv4 tail (`::ffff:198.18.0.1`) counts as two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = ipv4Bytes(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parseGroups(halves[0]!);
  const right = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!left || !right) return undefined;
  const explicit = left.length + right.length + tail.length;
  let groups: number[];
  if (halves.length === 2) {
    if (explicit > 7) return undefined;
    groups = [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tail];
  } else {
    if (explicit !== 8) return undefined;
    groups = [...left, ...tail];
  }
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run (>= 2) of zero groups as `::`. */
function ipv6Text(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses a plain IPv4 address (`198.18.0.1`). */
export function parseIPv4(text: string): IpResult<IpAddress> {
  const bytes = ipv4Bytes(text);
  if (!bytes) return fail(`expected an IPv4 address (198.18.0.1), got ${JSON.stringify(text)}`);
  return { ok: true, value: { family: 4, address: bytes.join('.'), bytes } };
}

/** Parses a plain IPv6 address (`2001:2::1`); zone ids are refused. */
export function parseIPv6(text: string): IpResult<IpAddress> {
  const bytes = ipv6Bytes(text);
  if (!bytes) return fail(`expected an IPv6 address (2001:2::1), got ${JSON.stringify(text)}`);
  return { ok: true, value: { family: 6, address: ipv6Text(bytes), bytes } };
}

/** Parses a plain IPv4 or IPv6 address without prefix. */
export function parseIp(text: unknown): IpResult<IpAddress> {
  if (typeof text !== 'string') return fail(`expected an IP address (198.18.0.1 or 2001:2::1), got ${show(text)}`);
  if (text.includes('/')) return fail(`expected an IP address without a prefix (198.18.0.1 or 2001:2::1), got ${JSON.stringify(text)}`);
  const r = text.includes(':') ? parseIPv6(text) : parseIPv4(text);
  if (!r.ok) return fail(`expected an IP address (198.18.0.1 or 2001:2::1), got ${JSON.stringify(text)}${ipHint(text)}`);
  return r;
}

/** Why a text that looks like an address is not one, as a parenthesized hint ('' when unsure). */
function ipHint(text: string): string {
  if (text.includes('%')) return ' (zone ids such as %eth0 are not accepted)';
  if (text.includes(':')) {
    if (text.split('::').length > 2) return ' ("::" may appear only once)';
    if (!text.includes('::') && !text.includes('.') && text.split(':').length !== 8) return ' (an IPv6 address has 8 groups, or "::" for a run of zeros)';
    if (text.split(':').some((g) => g.length > 4 && !g.includes('.'))) return ' (an IPv6 group has at most 4 hex digits)';
    return '';
  }
  const parts = text.split('.');
  if (parts.length === 4 && parts.every((p) => /^[0-9]+$/.test(p))) {
    if (parts.some((p) => Number(p) > 255)) return ' (each number is 0 to 255)';
    if (parts.some((p) => /^0[0-9]/.test(p))) return ' (no leading zeros)';
  }
  if (/^[0-9.]+$/.test(text)) return ' (an IPv4 address has 4 numbers)';
  return '';
}

/** Parses `address/prefix` (`198.18.0.100/24`, `2001:2::100/64`); the prefix is required. */
export function parseIpPrefix(text: unknown): IpResult<IpPrefix> {
  const expected = 'expected an IP address with a prefix length (198.18.0.100/24 or 2001:2::100/64)';
  if (typeof text !== 'string') return fail(`${expected}, got ${show(text)}`);
  const slash = text.indexOf('/');
  if (slash < 0) return fail(`${expected}, got ${JSON.stringify(text)} (the prefix length is missing)`);
  const ip = parseIp(text.slice(0, slash));
  if (!ip.ok) return fail(`${expected}, got ${JSON.stringify(text)}`);
  const max = ip.value.family === 4 ? 32 : 128;
  const p = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max || Number(p) < 1) {
    return fail(`${expected}, got ${JSON.stringify(text)} (an IPv${ip.value.family} prefix length is 1 to ${max})`);
  }
  const prefix = Number(p);
  return { ok: true, value: { ...ip.value, prefix, cidr: `${ip.value.address}/${prefix}` } };
}

/** A `host:port` target: `198.18.0.1:80`, `[2001:2::1]:80` or `localhost:80`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port`; IPv6 hosts go in brackets, host names follow RFC 1123. */
export function parseHostPort(text: unknown): IpResult<HostPort> {
  const expected = 'expected host:port (127.0.0.1:8080, [2001:2::1]:8080 or localhost:8080)';
  if (typeof text !== 'string') return fail(`${expected}, got ${show(text)}`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m) return fail(`${expected}, got ${JSON.stringify(text)}`);
  if (port < 1 || port > 65535) return fail(`${expected}, got ${JSON.stringify(text)} (a port is 1 to 65535)`);
  if (m[1] !== undefined) {
    const v6 = parseIPv6(m[1]);
    if (!v6.ok) return fail(`${expected}, got ${JSON.stringify(text)}`);
    return { ok: true, value: { host: v6.value.address, port } };
  }
  const host = m[2]!;
  if (/^[0-9.]+$/.test(host)) {
    const v4 = parseIPv4(host);
    if (!v4.ok) return fail(`${expected}, got ${JSON.stringify(text)}`);
    return { ok: true, value: { host: v4.value.address, port } };
  }
  if (!/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    return fail(`${expected}, got ${JSON.stringify(text)}`);
  }
  return { ok: true, value: { host, port } };
}
