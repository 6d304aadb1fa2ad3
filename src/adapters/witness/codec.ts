/**
 * Witness datagram codec (DESIGN.md 3 promise 6 "Authenticated"; docs/witness.md "Wire format").
 * Same scheme as heartbeats (adapters/udp/codec.ts), with its own subkey, so a heartbeat can
 * never pass for a witness message nor the other way round.
 *
 * All integers are big-endian. Offsets in bytes:
 *
 *     0   4   magic "HKWT"
 *     4   1   version (1)
 *     5   1   type: 1 acquire (also renews), 2 release, 3 reply
 *     6   8   cluster id = SHA-256("hakit cluster " + cluster name)[0..8)
 *     14  8   client epoch: random per client start
 *     22  8   client epoch start: the client's wall clock at its start, ms since 1970 (u64)
 *     30  8   seq (u64): 1, 2, 3, ... per request the client sends in this epoch
 *     38  1+n module          (u8 length + UTF-8)
 *         1+n node            (u8 length + UTF-8): the requesting node
 *   reply only (type 3), which echoes epoch, epoch start, seq, module and node of its request:
 *         1   result: 1 granted, 2 refused (held), 3 refused (witness starting),
 *                     4 released, 5 not released (held by another node)
 *         4   ms (u32): granted lease length (1); remaining time (2, 3, 5); 0 (4)
 *         1+n holder (u8 length, may be 0) : the holder for 2 and 5
 *     -16 16  MAC = HMAC-SHA-256(witness subkey, every byte before it), first 16 bytes
 *
 * The subkey is HKDF-SHA-256(cluster key, info "hakit witness v1"). `decodeWitness` checks the
 * fixed header and the MAC before it parses the variable part. Replay protection needs state:
 * the server refuses a (node, epoch, seq) it has seen (service.ts); the client accepts a reply
 * only for a request it has pending, matched by (epoch, seq) (udp-client.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { deriveKey } from '../key/cluster-key.js';
import { hmacSha256 } from '../key/hmac.js';

export const WITNESS_MAGIC = Buffer.from('HKWT', 'ascii');
export const WITNESS_VERSION = 1;
/** Default UDP port of `hakit witness`. */
export const DEFAULT_WITNESS_PORT = 7407;
/** Largest datagram sent or accepted. */
export const MAX_WITNESS_DATAGRAM = 1024;
const MAC_BYTES = 16;
const FIXED = 38;

export type WitnessMessageType = 'acquire' | 'release' | 'reply';
const TYPE_CODE: Record<WitnessMessageType, number> = { acquire: 1, release: 2, reply: 3 };
const TYPE_OF: Record<number, WitnessMessageType> = { 1: 'acquire', 2: 'release', 3: 'reply' };

export type ReplyResult = 'granted' | 'held' | 'starting' | 'released' | 'not-released';
const RESULT_CODE: Record<ReplyResult, number> = { granted: 1, held: 2, starting: 3, released: 4, 'not-released': 5 };
const RESULT_OF: Record<number, ReplyResult> = { 1: 'granted', 2: 'held', 3: 'starting', 4: 'released', 5: 'not-released' };

export interface WitnessHeader {
  type: WitnessMessageType;
  /** 8 bytes, hex. */
  epoch: string;
  /** ms since 1970 at the client's start. */
  epochStart: number;
  seq: bigint;
  module: string;
  node: string;
}

export interface WitnessReplyBody {
  result: ReplyResult;
  /** Lease length for `granted`, remaining ms for `held`, `starting`, `not-released`; 0 for `released`. */
  ms: number;
  /** The holder for `held` and `not-released`, '' otherwise. */
  holder: string;
}

export type WitnessMessage = WitnessHeader & { reply?: WitnessReplyBody };

export type WitnessDecodeFailure = 'too-large' | 'malformed' | 'bad-version' | 'wrong-cluster' | 'bad-mac';

export interface WitnessKeys {
  macKey: Buffer;
  /** HMAC-SHA-256 under macKey (key/hmac.ts). */
  hmac: (body: Buffer) => Buffer;
  clusterId: Buffer;
}

export function witnessKeys(clusterKey: Buffer, clusterName: string): WitnessKeys {
  const macKey = deriveKey(clusterKey, 'witness v1');
  return {
    macKey,
    clusterId: createHash('sha256').update(`hakit cluster ${clusterName}`).digest().subarray(0, 8),
    hmac: hmacSha256(macKey, MAX_WITNESS_DATAGRAM),
  };
}

function mac(keys: WitnessKeys, body: Buffer): Buffer {
  return keys.hmac(body).subarray(0, MAC_BYTES);
}

function str(s: string, what: string, allowEmpty = false): Buffer {
  const b = Buffer.from(s, 'utf8');
  if ((!allowEmpty && b.length === 0) || b.length > 255) throw new RangeError(`witness ${what} must be 1..255 bytes of UTF-8, got ${b.length}`);
  return Buffer.from([b.length, ...b]);
}

/** Encodes one message (a reply needs `reply`); throws RangeError when a field does not fit. */
export function encodeWitness(keys: WitnessKeys, m: WitnessMessage): Buffer {
  const epoch = Buffer.from(m.epoch, 'hex');
  if (epoch.length !== 8) throw new RangeError('witness epoch must be 8 bytes of hex');
  if ((m.type === 'reply') !== (m.reply !== undefined)) throw new RangeError('a witness reply, and only a reply, carries a result');
  const fixed = Buffer.alloc(FIXED);
  WITNESS_MAGIC.copy(fixed, 0);
  fixed.writeUInt8(WITNESS_VERSION, 4);
  fixed.writeUInt8(TYPE_CODE[m.type], 5);
  keys.clusterId.copy(fixed, 6);
  epoch.copy(fixed, 14);
  fixed.writeBigUInt64BE(BigInt(m.epochStart), 22);
  fixed.writeBigUInt64BE(m.seq, 30);
  const parts = [fixed, str(m.module, 'module'), str(m.node, 'node')];
  if (m.reply) {
    const r = Buffer.alloc(5);
    r.writeUInt8(RESULT_CODE[m.reply.result], 0);
    r.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.ceil(m.reply.ms))), 1);
    parts.push(r, str(m.reply.holder, 'holder', true));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, mac(keys, body)]);
}

/** Checks size, framing, version, cluster and MAC (constant time), then parses; never throws. */
export function decodeWitness(keys: WitnessKeys, data: Buffer): { ok: true; value: WitnessMessage } | { ok: false; reason: WitnessDecodeFailure } {
  if (data.length > MAX_WITNESS_DATAGRAM) return { ok: false, reason: 'too-large' };
  if (data.length < FIXED + 2 + 2 + MAC_BYTES || !data.subarray(0, 4).equals(WITNESS_MAGIC)) return { ok: false, reason: 'malformed' };
  if (data.readUInt8(4) !== WITNESS_VERSION) return { ok: false, reason: 'bad-version' };
  const type = TYPE_OF[data.readUInt8(5)];
  if (type === undefined) return { ok: false, reason: 'malformed' };
  if (!data.subarray(6, 14).equals(keys.clusterId)) return { ok: false, reason: 'wrong-cluster' };
  const body = data.subarray(0, data.length - MAC_BYTES);
  if (!timingSafeEqual(mac(keys, body), data.subarray(data.length - MAC_BYTES))) return { ok: false, reason: 'bad-mac' };
  // Authenticated from here on: a parse failure is a peer bug, counted as malformed.
  let off = FIXED;
  const read = (allowEmpty: boolean): string | undefined => {
    if (off >= body.length) return undefined;
    const n = body.readUInt8(off);
    if ((!allowEmpty && n === 0) || off + 1 + n > body.length) return undefined;
    const s = body.toString('utf8', off + 1, off + 1 + n);
    off += 1 + n;
    return s;
  };
  const module = read(false);
  const node = read(false);
  if (module === undefined || node === undefined) return { ok: false, reason: 'malformed' };
  let reply: WitnessReplyBody | undefined;
  if (type === 'reply') {
    if (off + 5 > body.length) return { ok: false, reason: 'malformed' };
    const result = RESULT_OF[body.readUInt8(off)];
    const ms = body.readUInt32BE(off + 1);
    off += 5;
    const holder = read(true);
    if (result === undefined || holder === undefined) return { ok: false, reason: 'malformed' };
    reply = { result, ms, holder };
  }
  if (off !== body.length) return { ok: false, reason: 'malformed' };
  const epochStart = body.readBigUInt64BE(22);
  if (epochStart > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'malformed' };
  const value: WitnessMessage = {
    type, epoch: body.toString('hex', 14, 22), epochStart: Number(epochStart), seq: body.readBigUInt64BE(30), module, node,
  };
  if (reply) value.reply = reply;
  return { ok: true, value };
}
