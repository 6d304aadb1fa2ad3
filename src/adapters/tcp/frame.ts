/**
 * Wire format of the replication link (DESIGN.md 3 promises 2 and 6; docs/security.md
 * "Replication channel"). Pure byte work: no sockets, no timers; node:crypto only.
 *
 * A connection starts with a three-message handshake, then carries frames. Integers big-endian.
 *
 *   HELLO      sender -> receiver   "HKRP" | version | type 0x10 | cluster id (8) | nonceC (32)
 *                                   | module | sender node | receiver node   (names: u8 len + UTF-8)
 *   CHALLENGE  receiver -> sender   "HKRP" | version | type 0x11 | nonceS (32)
 *                                   | proofS = HMAC(kRepl, "hakit repl server" || HELLO || the bytes before proofS) (32)
 *   AUTH       sender -> receiver   "HKRP" | version | type 0x12
 *                                   | proofC = HMAC(kRepl, "hakit repl client" || HELLO || CHALLENGE) (32)
 *
 * kRepl = HKDF-SHA-256(cluster key, info "hakit replication v1"). Both proofs cover both random
 * nonces and every name, so neither side accepts a recorded handshake: each proof is fresh for
 * the other side's nonce. Once the handshake is done, each direction has its own session key:
 *
 *   th   = SHA-256(HELLO || CHALLENGE)
 *   kS2R = HMAC(kRepl, "hakit repl s2r" || th)      (frames sender -> receiver)
 *   kR2S = HMAC(kRepl, "hakit repl r2s" || th)      (frames receiver -> sender)
 *
 * Frames (both directions):
 *
 *   0   1  type: 1 DATA (payload = one opaque record), 2 ACK (payload = u64 cumulative seq
 *          of the last DATA applied), 3 BYE (payload = UTF-8 reason; the sender of it closes),
 *          4 REPLY (receiver -> sender only: one opaque message of the secondary, e.g. its
 *          manifest during a resync; written after the ACK of everything applied before it)
 *   1   4  payload length (u32), at most MAX_PAYLOAD
 *   5   8  seq (u64): 1, 2, 3, ... per direction and connection; anything else is a gap
 *   13  n  payload
 *   -16 16 MAC = GMAC: the tag of AES-256-GCM under the session key of this direction, with
 *          nonce = 4 zero bytes || seq (u64), header || payload as associated data, and nothing
 *          to encrypt. Each (key, nonce) pair is used once: the keys are new for every
 *          connection and direction, and seq never repeats within one.
 *
 * Because the session keys depend on both nonces, a frame of one connection is never valid on
 * another (no splicing, no replay), and because each direction has its own key a frame cannot be
 * reflected back to its sender. The seq inside the MAC makes drops, duplicates and reordering
 * within a connection detectable.
 */
import { createCipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKey } from '../key/cluster-key.js';

export const MAGIC = Buffer.from('HKRP', 'ascii');
/** 2: frames carry a GMAC (version 1 had HMAC-SHA-256, 5 times the CPU a MiB). */
export const VERSION = 2;
/** Largest payload of one frame: a 1 MiB write plus room for its record header and path. */
export const MAX_PAYLOAD = 1024 * 1024 + 16 * 1024;
export const HEADER_BYTES = 13;
export const MAC_BYTES = 16;
export const NONCE_BYTES = 32;
const PROOF_BYTES = 32;
/** Largest handshake message (3 names of at most 255 bytes + fixed parts). */
export const MAX_HANDSHAKE = 6 + 8 + NONCE_BYTES + 3 * 256 + PROOF_BYTES;

/** Frame types (see the table above). */
export const FrameType = { Data: 1, Ack: 2, Bye: 3, Reply: 4 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const HELLO = 0x10;
const CHALLENGE = 0x11;
const AUTH = 0x12;

/** Why a connection was refused or closed; each is counted (stats().failures). */
export type LinkFailure =
  | 'bad-handshake' // not a hakit replication handshake, or another version
  | 'wrong-cluster' | 'wrong-module' | 'wrong-node' | 'unknown-peer'
  | 'bad-proof' // the other side does not hold the cluster key (or replayed a handshake)
  | 'bad-mac' | 'too-large' | 'bad-type' | 'seq-gap' | 'bad-ack';

export const LINK_FAILURES: readonly LinkFailure[] = [
  'bad-handshake', 'wrong-cluster', 'wrong-module', 'wrong-node', 'unknown-peer', 'bad-proof', 'bad-mac', 'too-large', 'bad-type', 'seq-gap', 'bad-ack',
];

/** The long-lived secrets and identity of one cluster. */
export interface LinkKeys {
  replKey: Buffer;
  clusterId: Buffer;
}

export function linkKeys(clusterKey: Buffer, cluster: string): LinkKeys {
  return {
    replKey: deriveKey(clusterKey, 'replication v1'),
    clusterId: createHash('sha256').update(`hakit cluster ${cluster}`).digest().subarray(0, 8),
  };
}

function hmac(key: Buffer, ...parts: (Buffer | string)[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

function name(s: string, what: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > 255) throw new RangeError(`replication ${what} name must be 1..255 bytes of UTF-8, got ${b.length}`);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

function head(type: number): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([VERSION, type])]);
}

export interface Hello {
  clusterId: Buffer;
  nonce: Buffer;
  module: string;
  from: string;
  to: string;
}

export function encodeHello(h: Hello): Buffer {
  return Buffer.concat([head(HELLO), h.clusterId, h.nonce, name(h.module, 'module'), name(h.from, 'node'), name(h.to, 'node')]);
}

/** Parses a complete HELLO; null when malformed. */
export function decodeHello(b: Buffer): Hello | null {
  if (b.length < 6 + 8 + NONCE_BYTES + 6 || !b.subarray(0, 4).equals(MAGIC) || b[4] !== VERSION || b[5] !== HELLO) return null;
  let off = 6 + 8 + NONCE_BYTES;
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const n = b[off];
    if (n === undefined || n === 0 || off + 1 + n > b.length) return null;
    names.push(b.toString('utf8', off + 1, off + 1 + n));
    off += 1 + n;
  }
  if (off !== b.length) return null;
  return { clusterId: b.subarray(6, 14), nonce: b.subarray(14, 14 + NONCE_BYTES), module: names[0] as string, from: names[1] as string, to: names[2] as string };
}

/** Length of the HELLO at the start of `b`, once enough bytes are there to tell; null: need more; -1: not a HELLO. */
export function helloLength(b: Buffer): number | null {
  if (b.length >= 6 && (!b.subarray(0, 4).equals(MAGIC) || b[4] !== VERSION || b[5] !== HELLO)) return -1;
  let off = 6 + 8 + NONCE_BYTES;
  for (let i = 0; i < 3; i++) {
    const n = b[off];
    if (n === undefined) return null;
    if (n === 0) return -1;
    off += 1 + n;
  }
  return off;
}

export const CHALLENGE_BYTES = 6 + NONCE_BYTES + PROOF_BYTES;
export const AUTH_BYTES = 6 + PROOF_BYTES;

export function encodeChallenge(keys: LinkKeys, hello: Buffer, nonce: Buffer): Buffer {
  const body = Buffer.concat([head(CHALLENGE), nonce]);
  return Buffer.concat([body, hmac(keys.replKey, 'hakit repl server', hello, body)]);
}

/** Checks a CHALLENGE against the HELLO it answers: 'malformed', 'bad-proof' or ok. */
export function checkChallenge(keys: LinkKeys, hello: Buffer, challenge: Buffer): 'ok' | 'malformed' | 'bad-proof' {
  if (challenge.length !== CHALLENGE_BYTES || !challenge.subarray(0, 4).equals(MAGIC) || challenge[4] !== VERSION || challenge[5] !== CHALLENGE) return 'malformed';
  const body = challenge.subarray(0, 6 + NONCE_BYTES);
  return timingSafeEqual(hmac(keys.replKey, 'hakit repl server', hello, body), challenge.subarray(6 + NONCE_BYTES)) ? 'ok' : 'bad-proof';
}

export function encodeAuth(keys: LinkKeys, hello: Buffer, challenge: Buffer): Buffer {
  return Buffer.concat([head(AUTH), hmac(keys.replKey, 'hakit repl client', hello, challenge)]);
}

export function checkAuth(keys: LinkKeys, hello: Buffer, challenge: Buffer, auth: Buffer): 'ok' | 'malformed' | 'bad-proof' {
  if (auth.length !== AUTH_BYTES || !auth.subarray(0, 4).equals(MAGIC) || auth[4] !== VERSION || auth[5] !== AUTH) return 'malformed';
  return timingSafeEqual(hmac(keys.replKey, 'hakit repl client', hello, challenge), auth.subarray(6)) ? 'ok' : 'bad-proof';
}

/** The two per-connection frame keys, from the handshake transcript. */
export function sessionKeys(keys: LinkKeys, hello: Buffer, challenge: Buffer): { s2r: Buffer; r2s: Buffer } {
  const th = createHash('sha256').update(hello).update(challenge).digest();
  return { s2r: hmac(keys.replKey, 'hakit repl s2r', th), r2s: hmac(keys.replKey, 'hakit repl r2s', th) };
}

/** A payload as its parts (one part: itself) and their total length. */
export function payloadParts(payload: Buffer | readonly Buffer[]): { parts: readonly Buffer[]; length: number } {
  const parts = Buffer.isBuffer(payload) ? [payload] : payload;
  let length = 0;
  for (const p of parts) length += p.length;
  return { parts, length };
}

/**
 * Encodes one frame as [header, payload..., mac] so a large payload is never copied; write the
 * buffers in order. A payload in parts is their concatenation. Throws RangeError when the
 * payload exceeds MAX_PAYLOAD.
 */
export function encodeFrame(key: Buffer, type: FrameType, seq: bigint, payload: Buffer | readonly Buffer[]): Buffer[] {
  const { parts, length } = payloadParts(payload);
  if (length > MAX_PAYLOAD) throw new RangeError(`replication payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(length, 1);
  header.writeBigUInt64BE(seq, 5);
  return [header, ...parts, frameMac(key, seq, header, ...parts)];
}

/** The frame's MAC (see the header): the GMAC of header || payload under `key`, nonce from `seq`. */
function frameMac(key: Buffer, seq: bigint, ...parts: Buffer[]): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(seq, 4);
  const gcm = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: MAC_BYTES });
  for (const p of parts) gcm.setAAD(p);
  gcm.final();
  return gcm.getAuthTag();
}

export function ackPayload(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq, 0);
  return b;
}

export interface Frame {
  type: FrameType;
  seq: bigint;
  payload: Buffer;
}

/**
 * Incremental reader of byte chunks. `push` returns whole messages in arrival order; bytes of
 * an incomplete message are kept (never more than one frame's worth: a header announcing more
 * than MAX_PAYLOAD is refused at once, before its payload is buffered).
 */
export class ChunkReader {
  private chunks: Buffer[] = [];
  private length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  get available(): number {
    return this.length;
  }

  /** The first `n` bytes without consuming them (n <= available). */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    this.length = (this.chunks[0] as Buffer).length;
    return (this.chunks[0] as Buffer).subarray(0, n);
  }

  /** Consumes and returns the first `n` bytes (n <= available). */
  take(n: number): Buffer {
    const out = this.peek(n);
    const first = this.chunks[0] as Buffer;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.length -= n;
    return out;
  }
}

/**
 * Verifies frames of one direction: MAC, size, type and seq continuity. `next` returns the next
 * complete, authenticated frame, null when more bytes are needed, or a failure (the connection
 * must then be closed: nothing after a bad frame is trusted).
 */
export class FrameVerifier {
  private lastSeq = 0n;

  constructor(private readonly key: Buffer, private readonly allowed: readonly FrameType[]) {}

  next(r: ChunkReader): Frame | null | { failure: LinkFailure } {
    if (r.available < HEADER_BYTES) return null;
    const header = r.peek(HEADER_BYTES);
    const type = header.readUInt8(0) as FrameType;
    const length = header.readUInt32BE(1);
    if (length > MAX_PAYLOAD) return { failure: 'too-large' };
    if (r.available < HEADER_BYTES + length + MAC_BYTES) return null;
    const whole = r.take(HEADER_BYTES + length + MAC_BYTES);
    const body = whole.subarray(0, HEADER_BYTES + length);
    const seq = whole.readBigUInt64BE(5);
    const mac = frameMac(this.key, seq, body);
    if (!timingSafeEqual(mac, whole.subarray(HEADER_BYTES + length))) return { failure: 'bad-mac' };
    // Authenticated from here on: a wrong type or seq is a peer bug or a replay within the link.
    if (!this.allowed.includes(type)) return { failure: 'bad-type' };
    if (seq !== this.lastSeq + 1n) return { failure: 'seq-gap' };
    this.lastSeq = seq;
    return { type, seq, payload: whole.subarray(HEADER_BYTES, HEADER_BYTES + length) };
  }
}
