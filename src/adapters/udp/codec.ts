/**
 * Heartbeat datagram codec (DESIGN.md 3 promise 6, 5 "Heartbeats"; wire format in docs/security.md).
 *
 * One datagram carries the views of every module the sender has with the receiver (a bundle), so
 * a node with several modules sends one datagram per peer and network per pulse, not one per
 * module: issue 3's idle cost is mostly per datagram (a syscall, a MAC, a decode, garbage).
 *
 * All integers are big-endian. Offsets in bytes:
 *
 *     0   4   magic "HKHB"
 *     4   1   version (2)
 *     5   1   flags (0; a receiver refuses anything else)
 *     6   8   cluster id = SHA-256("hakit cluster " + cluster name)[0..8)
 *     14  8   epoch = the sender's boot id, random per daemon start
 *     22  8   epoch start = the sender's wall clock at daemon start, ms since 1970 (u64)
 *     30  8   seq (u64): 1, 2, 3, ... per datagram the sender sends in this epoch
 *     38  1+n network name   (u8 length + UTF-8)
 *         1+n sender node    (u8 length + UTF-8)
 *         1   count k of module views, 1..255
 *         k x { 1+n module name (u8 length + UTF-8), 2+n payload (u16 length + UTF-8 JSON of the HeartbeatView) }
 *     -16 16  MAC = HMAC-SHA-256(heartbeat subkey, every byte before it), first 16 bytes
 *
 * The heartbeat subkey is HKDF-SHA-256(cluster key, info "hakit heartbeat v1").
 * `decodeDatagram` checks magic, version, flags, cluster and MAC before it parses anything else,
 * so the variable part of a datagram is only read once it is authenticated (a datagram cut short
 * after the fixed header therefore fails as `bad-mac`, not `malformed`). A view is checked by
 * hand (`parseView`), not by a schema library: it runs for every heartbeat. Replay and
 * membership are the receive pipeline's job (transport.ts) because they need state.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { deriveKey } from '../key/cluster-key.js';
import { hmacSha256 } from '../key/hmac.js';

export const MAGIC = Buffer.from('HKHB', 'ascii');
export const VERSION = 2;
export const MAC_BYTES = 16;
/** Default UDP port of heartbeats. */
export const DEFAULT_HEARTBEAT_PORT = 7405;
/** Largest datagram sent or accepted: fits one Ethernet frame with IPv6 + UDP headers. */
export const MAX_DATAGRAM = 1400;
const FIXED = 38;
const EPOCH_BYTES = 8;

/** What a node tells its peers in every heartbeat. `msg` carries peer commands (free form). */
export interface HeartbeatView {
  state: string;
  ready: boolean;
  reason: string | null;
  generation: { readonly current: string; readonly history: readonly string[] };
  upToDate: boolean;
  stopping: boolean;
  msg?: unknown;
}

const STATE_MAX = 32;
const REASON_MAX = 200;
const GEN_MAX = 64;
const HISTORY_MAX = 32;
const VIEW_KEYS = new Set(['state', 'ready', 'reason', 'generation', 'upToDate', 'stopping', 'msg']);

function shortString(x: unknown, max: number): x is string {
  return typeof x === 'string' && x.length <= max;
}

/**
 * The view of an authenticated payload, or null when it is not one: exactly the fields of
 * HeartbeatView (no others), of their types and bounds (state <= 32 characters, reason <= 200,
 * generation ids <= 64, history <= 32 ids). `msg` is free form.
 */
export function parseView(x: unknown): HeartbeatView | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const o = x as Record<string, unknown>;
  for (const k in o) if (!VIEW_KEYS.has(k)) return null;
  if (!shortString(o.state, STATE_MAX) || typeof o.ready !== 'boolean' || typeof o.upToDate !== 'boolean' || typeof o.stopping !== 'boolean') return null;
  if (o.reason !== null && !shortString(o.reason, REASON_MAX)) return null;
  const g = o.generation;
  if (typeof g !== 'object' || g === null || Array.isArray(g)) return null;
  const gr = g as Record<string, unknown>;
  for (const k in gr) if (k !== 'current' && k !== 'history') return null;
  if (!shortString(gr.current, GEN_MAX) || !Array.isArray(gr.history) || gr.history.length > HISTORY_MAX) return null;
  for (const h of gr.history) if (!shortString(h, GEN_MAX)) return null;
  return o as unknown as HeartbeatView;
}

/** The header fields a sender fills in for every datagram. */
export interface DatagramHeader {
  network: string;
  node: string;
  /** 8 bytes, hex. */
  epoch: string;
  /** ms since 1970 at the sender's daemon start. */
  epochStart: number;
  seq: bigint;
}

/** One module's view in a datagram. */
export interface ModuleView {
  module: string;
  view: HeartbeatView;
}

/** One module's heartbeat as a receiver sees it: the datagram's header and that module's view. */
export interface HeartbeatHeader extends DatagramHeader {
  module: string;
}

export interface Decoded extends HeartbeatHeader {
  view: HeartbeatView;
}

/** A decoded datagram: its header and every view it carried, in order (at least one). */
export interface DecodedDatagram extends DatagramHeader {
  views: ModuleView[];
}

export type DecodeFailure = 'too-large' | 'malformed' | 'bad-version' | 'wrong-cluster' | 'bad-mac';

/** Keys and identity shared by encoder and decoder of one cluster. */
export interface CodecKeys {
  macKey: Buffer;
  clusterId: Buffer;
  /** HMAC-SHA-256 under macKey (key/hmac.ts). */
  hmac: (body: Buffer) => Buffer;
}

export function codecKeys(clusterKey: Buffer, clusterName: string): CodecKeys {
  const macKey = deriveKey(clusterKey, 'heartbeat v1');
  return {
    macKey,
    clusterId: createHash('sha256').update(`hakit cluster ${clusterName}`).digest().subarray(0, 8),
    hmac: hmacSha256(macKey, MAX_DATAGRAM),
  };
}

function mac(keys: CodecKeys, body: Buffer): Buffer {
  return keys.hmac(body).subarray(0, MAC_BYTES);
}

function str(s: string, what: string): Buffer {
  let b = names.get(s);
  if (b !== undefined) return b;
  b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > 255) throw new RangeError(`heartbeat ${what} must be 1..255 bytes of UTF-8, got ${b.length}`);
  if (names.size >= 256) names.clear();
  names.set(s, b);
  return b;
}

/**
 * Encoded names (network, node, module: the same few on every pulse), never changed once made
 * (they are only copied into datagrams); bounded.
 */
const names = new Map<string, Buffer>();

/** A module view serialized once: its name and its JSON payload. */
interface Item {
  readonly module: Buffer;
  readonly payload: Buffer;
}

/**
 * Payloads already serialized, by view object: a module's view goes out on every heartbeat
 * network in the same pulse (one datagram per network), serialized once. A view handed to the
 * encoders is not changed afterwards (the runtime makes a new one per pulse).
 */
const serialized = new WeakMap<HeartbeatView, Buffer>();

function item(v: ModuleView): Item {
  let payload = serialized.get(v.view);
  if (payload === undefined) {
    payload = Buffer.from(JSON.stringify(v.view), 'utf8');
    serialized.set(v.view, payload);
  }
  if (payload.length > 0xffff) throw new RangeError('heartbeat payload too large');
  return { module: str(v.module, 'module'), payload };
}

function itemBytes(i: Item): number {
  return 1 + i.module.length + 2 + i.payload.length;
}

/** Bytes of a datagram before its items: fixed header, network, node, count. */
function headBytes(network: Buffer, node: Buffer): number {
  return FIXED + 1 + network.length + 1 + node.length + 1;
}

function tooLarge(bytes: number): RangeError {
  return new RangeError(`heartbeat datagram would be ${bytes} bytes, more than ${MAX_DATAGRAM}: keep msg small`);
}

function epochBytes(hex: string): Buffer {
  if (hex === lastEpoch.hex) return lastEpoch.bytes;
  const epoch = Buffer.from(hex, 'hex');
  if (epoch.length !== EPOCH_BYTES) throw new RangeError('heartbeat epoch must be 8 bytes of hex');
  lastEpoch = { hex, bytes: epoch };
  return epoch;
}

/** The epoch of the last datagram encoded (a daemon has one for its life). */
let lastEpoch: { hex: string; bytes: Buffer } = { hex: '', bytes: Buffer.alloc(0) };

/** One datagram of `items`; `epoch`, `network` and `node` already encoded (once per call of the encoders). */
function build(keys: CodecKeys, h: Pick<DatagramHeader, 'epochStart' | 'seq'>, epoch: Buffer, network: Buffer, node: Buffer, items: readonly Item[]): Buffer {
  let size = headBytes(network, node);
  for (const i of items) size += itemBytes(i);
  if (size + MAC_BYTES > MAX_DATAGRAM) throw tooLarge(size + MAC_BYTES);
  const out = Buffer.allocUnsafe(size + MAC_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt8(VERSION, 4);
  out.writeUInt8(0, 5);
  keys.clusterId.copy(out, 6);
  epoch.copy(out, 14);
  out.writeBigUInt64BE(BigInt(h.epochStart), 22);
  out.writeBigUInt64BE(h.seq, 30);
  let off = FIXED;
  for (const b of [network, node]) {
    out.writeUInt8(b.length, off);
    off += 1 + b.copy(out, off + 1);
  }
  out.writeUInt8(items.length, off++);
  for (const i of items) {
    out.writeUInt8(i.module.length, off);
    off += 1 + i.module.copy(out, off + 1);
    out.writeUInt16BE(i.payload.length, off);
    off += 2 + i.payload.copy(out, off + 2);
  }
  mac(keys, out.subarray(0, size)).copy(out, size);
  return out;
}

/**
 * Encodes one datagram carrying `views` (1..255, in order); throws RangeError when a field does
 * not fit or the result exceeds MAX_DATAGRAM (`encodeDatagrams` splits views over datagrams).
 */
export function encodeDatagram(keys: CodecKeys, h: DatagramHeader, views: readonly ModuleView[]): Buffer {
  if (views.length === 0 || views.length > 255) throw new RangeError(`a heartbeat datagram carries 1..255 module views, got ${views.length}`);
  return build(keys, h, epochBytes(h.epoch), str(h.network, 'network'), str(h.node, 'node'), views.map(item));
}

/**
 * Encodes `views` into as few datagrams as fit MAX_DATAGRAM (each view whole, in order), each
 * with the next seq from `nextSeq`, called only once everything is known to fit. Throws
 * RangeError when one view alone does not fit; nothing is encoded then.
 */
export function encodeDatagrams(keys: CodecKeys, h: Omit<DatagramHeader, 'seq'>, views: readonly ModuleView[], nextSeq: () => bigint): Buffer[] {
  const epoch = epochBytes(h.epoch);
  const network = str(h.network, 'network');
  const node = str(h.node, 'node');
  const head = headBytes(network, node) + MAC_BYTES;
  const groups: Item[][] = [];
  let cur: Item[] = [];
  let size = head;
  for (const v of views) {
    const i = item(v);
    const n = itemBytes(i);
    if (head + n > MAX_DATAGRAM) throw tooLarge(head + n);
    if (cur.length > 0 && (cur.length === 255 || size + n > MAX_DATAGRAM)) {
      groups.push(cur);
      cur = [];
      size = head;
    }
    cur.push(i);
    size += n;
  }
  if (cur.length > 0) groups.push(cur);
  return groups.map((g) => build(keys, { epochStart: h.epochStart, seq: nextSeq() }, epoch, network, node, g));
}

function readName(body: Buffer, off: number): { name: string; next: number } | null {
  if (off >= body.length) return null;
  const n = body.readUInt8(off);
  if (n === 0 || off + 1 + n > body.length) return null;
  return { name: body.toString('utf8', off + 1, off + 1 + n), next: off + 1 + n };
}

/**
 * The last payload parsed per sender and module, and its view (ViewCache). The same view comes
 * on every heartbeat network in a pulse: the second datagram's payload, byte for byte the same,
 * is not parsed again and its view is the same object (views are not changed by receivers).
 */
export type ViewCache = Map<string, { payload: Buffer; view: HeartbeatView }>;
/** Entries a ViewCache takes (sender x module pairs; a config has a handful). */
const VIEW_CACHE_MAX = 256;

/** Checks framing, version, cluster and MAC (constant time), then parses; never throws. */
export function decodeDatagram(keys: CodecKeys, data: Buffer, cache?: ViewCache): { ok: true; value: DecodedDatagram } | { ok: false; reason: DecodeFailure } {
  if (data.length > MAX_DATAGRAM) return { ok: false, reason: 'too-large' };
  if (data.length < FIXED + 2 + 2 + 1 + 2 + 2 + MAC_BYTES || !data.subarray(0, 4).equals(MAGIC)) return { ok: false, reason: 'malformed' };
  if (data.readUInt8(4) !== VERSION) return { ok: false, reason: 'bad-version' };
  if (data.readUInt8(5) !== 0) return { ok: false, reason: 'malformed' };
  if (!data.subarray(6, 14).equals(keys.clusterId)) return { ok: false, reason: 'wrong-cluster' };
  const body = data.subarray(0, data.length - MAC_BYTES);
  if (!timingSafeEqual(mac(keys, body), data.subarray(data.length - MAC_BYTES))) return { ok: false, reason: 'bad-mac' };
  // Authenticated from here on: a parse failure means a peer bug, still counted as malformed.
  const network = readName(body, FIXED);
  const node = network && readName(body, network.next);
  if (!network || !node || node.next >= body.length) return { ok: false, reason: 'malformed' };
  const count = body.readUInt8(node.next);
  let off = node.next + 1;
  if (count === 0) return { ok: false, reason: 'malformed' };
  const views: ModuleView[] = [];
  for (let i = 0; i < count; i++) {
    const m = readName(body, off);
    if (!m || m.next + 2 > body.length) return { ok: false, reason: 'malformed' };
    const plen = body.readUInt16BE(m.next);
    off = m.next + 2;
    if (off + plen > body.length) return { ok: false, reason: 'malformed' };
    const bytes = body.subarray(off, off + plen);
    const key = cache === undefined ? '' : `${node.name}\u0000${m.name}`;
    const hit = cache?.get(key);
    let view: HeartbeatView | null;
    if (hit !== undefined && hit.payload.equals(bytes)) {
      view = hit.view;
    } else {
      try {
        view = parseView(JSON.parse(bytes.toString('utf8')));
      } catch {
        view = null;
      }
      if (view !== null && cache !== undefined && (cache.size < VIEW_CACHE_MAX || cache.has(key))) cache.set(key, { payload: Buffer.from(bytes), view });
    }
    if (view === null) return { ok: false, reason: 'malformed' };
    views.push({ module: m.name, view });
    off += plen;
  }
  if (off !== body.length) return { ok: false, reason: 'malformed' };
  const epochStart = body.readBigUInt64BE(22);
  if (epochStart > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'malformed' };
  return {
    ok: true,
    value: { network: network.name, node: node.name, epoch: body.toString('hex', 14, 22), epochStart: Number(epochStart), seq: body.readBigUInt64BE(30), views },
  };
}
