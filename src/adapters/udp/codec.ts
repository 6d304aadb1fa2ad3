/**
 * Heartbeat datagram codec (DESIGN.md 3 promise 6, 5 "Heartbeats"; wire format in docs/security.md).
 *
 * All integers are big-endian. Offsets in bytes:
 *
 *     0   4   magic "HKHB"
 *     4   1   version (1)
 *     5   1   flags (0; a receiver refuses anything else)
 *     6   8   cluster id = SHA-256("hakit cluster " + cluster name)[0..8)
 *     14  8   epoch = the sender's boot id, random per daemon start
 *     22  8   epoch start = the sender's wall clock at daemon start, ms since 1970 (u64)
 *     30  8   seq (u64): 1, 2, 3, ... per datagram the sender sends in this epoch
 *     38  1+n network name   (u8 length + UTF-8)
 *         1+n module name    (u8 length + UTF-8)
 *         1+n sender node    (u8 length + UTF-8)
 *         2+n payload        (u16 length + UTF-8 JSON of the HeartbeatView)
 *     -16 16  MAC = HMAC-SHA-256(heartbeat subkey, every byte before it), first 16 bytes
 *
 * The heartbeat subkey is HKDF-SHA-256(cluster key, info "hakit heartbeat v1").
 * `decodeDatagram` checks magic, version, flags, cluster and MAC before it parses anything else,
 * so the variable part of a datagram is only read once it is authenticated (a datagram cut short
 * after the fixed header therefore fails as `bad-mac`, not `malformed`). Replay and membership
 * are the receive pipeline's job (transport.ts) because they need state.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { deriveKey } from '../key/cluster-key.js';

export const MAGIC = Buffer.from('HKHB', 'ascii');
export const VERSION = 1;
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
  generation: { current: string; history: string[] };
  upToDate: boolean;
  stopping: boolean;
  msg?: unknown;
}

const viewSchema = z.strictObject({
  state: z.string().max(32),
  ready: z.boolean(),
  reason: z.string().max(200).nullable(),
  generation: z.strictObject({ current: z.string().max(64), history: z.array(z.string().max(64)).max(32) }),
  upToDate: z.boolean(),
  stopping: z.boolean(),
  msg: z.unknown().optional(),
});

/** The header fields a sender fills in for every datagram. */
export interface HeartbeatHeader {
  network: string;
  module: string;
  node: string;
  /** 8 bytes, hex. */
  epoch: string;
  /** ms since 1970 at the sender's daemon start. */
  epochStart: number;
  seq: bigint;
}

export interface Decoded extends HeartbeatHeader {
  view: HeartbeatView;
}

export type DecodeFailure = 'too-large' | 'malformed' | 'bad-version' | 'wrong-cluster' | 'bad-mac';

/** Keys and identity shared by encoder and decoder of one cluster. */
export interface CodecKeys {
  macKey: Buffer;
  clusterId: Buffer;
}

export function codecKeys(clusterKey: Buffer, clusterName: string): CodecKeys {
  return {
    macKey: deriveKey(clusterKey, 'heartbeat v1'),
    clusterId: createHash('sha256').update(`hakit cluster ${clusterName}`).digest().subarray(0, 8),
  };
}

function mac(keys: CodecKeys, body: Buffer): Buffer {
  return createHmac('sha256', keys.macKey).update(body).digest().subarray(0, MAC_BYTES);
}

function str(s: string, what: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > 255) throw new RangeError(`heartbeat ${what} must be 1..255 bytes of UTF-8, got ${b.length}`);
  return b;
}

/** Encodes one datagram; throws RangeError when a field does not fit or the result exceeds MAX_DATAGRAM. */
export function encodeDatagram(keys: CodecKeys, h: HeartbeatHeader, view: HeartbeatView): Buffer {
  const epoch = Buffer.from(h.epoch, 'hex');
  if (epoch.length !== EPOCH_BYTES) throw new RangeError('heartbeat epoch must be 8 bytes of hex');
  const fixed = Buffer.alloc(FIXED);
  MAGIC.copy(fixed, 0);
  fixed.writeUInt8(VERSION, 4);
  fixed.writeUInt8(0, 5);
  keys.clusterId.copy(fixed, 6);
  epoch.copy(fixed, 14);
  fixed.writeBigUInt64BE(BigInt(h.epochStart), 22);
  fixed.writeBigUInt64BE(h.seq, 30);
  const payload = Buffer.from(JSON.stringify(view), 'utf8');
  if (payload.length > 0xffff) throw new RangeError('heartbeat payload too large');
  const plen = Buffer.alloc(2);
  plen.writeUInt16BE(payload.length, 0);
  const parts: Buffer[] = [fixed];
  for (const [s, what] of [[h.network, 'network'], [h.module, 'module'], [h.node, 'node']] as const) {
    const b = str(s, what);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(plen, payload);
  const body = Buffer.concat(parts);
  if (body.length + MAC_BYTES > MAX_DATAGRAM) {
    throw new RangeError(`heartbeat datagram would be ${body.length + MAC_BYTES} bytes, more than ${MAX_DATAGRAM}: keep msg small`);
  }
  return Buffer.concat([body, mac(keys, body)]);
}

/** Checks framing, version, cluster and MAC (constant time), then parses; never throws. */
export function decodeDatagram(keys: CodecKeys, data: Buffer): { ok: true; value: Decoded } | { ok: false; reason: DecodeFailure } {
  if (data.length > MAX_DATAGRAM) return { ok: false, reason: 'too-large' };
  if (data.length < FIXED + 3 + 2 + MAC_BYTES || !data.subarray(0, 4).equals(MAGIC)) return { ok: false, reason: 'malformed' };
  if (data.readUInt8(4) !== VERSION) return { ok: false, reason: 'bad-version' };
  if (data.readUInt8(5) !== 0) return { ok: false, reason: 'malformed' };
  if (!data.subarray(6, 14).equals(keys.clusterId)) return { ok: false, reason: 'wrong-cluster' };
  const body = data.subarray(0, data.length - MAC_BYTES);
  if (!timingSafeEqual(mac(keys, body), data.subarray(data.length - MAC_BYTES))) return { ok: false, reason: 'bad-mac' };
  // Authenticated from here on: a parse failure means a peer bug, still counted as malformed.
  let off = FIXED;
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    if (off >= body.length) return { ok: false, reason: 'malformed' };
    const n = body.readUInt8(off);
    if (n === 0 || off + 1 + n > body.length) return { ok: false, reason: 'malformed' };
    names.push(body.toString('utf8', off + 1, off + 1 + n));
    off += 1 + n;
  }
  if (off + 2 > body.length) return { ok: false, reason: 'malformed' };
  const plen = body.readUInt16BE(off);
  off += 2;
  if (off + plen !== body.length) return { ok: false, reason: 'malformed' };
  let view: HeartbeatView;
  try {
    const parsed = viewSchema.safeParse(JSON.parse(body.toString('utf8', off, off + plen)));
    if (!parsed.success) return { ok: false, reason: 'malformed' };
    view = parsed.data as HeartbeatView;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const epochStart = body.readBigUInt64BE(22);
  if (epochStart > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'malformed' };
  return {
    ok: true,
    value: {
      network: names[0] as string,
      module: names[1] as string,
      node: names[2] as string,
      epoch: body.toString('hex', 14, 22),
      epochStart: Number(epochStart),
      seq: body.readBigUInt64BE(30),
      view,
    },
  };
}
