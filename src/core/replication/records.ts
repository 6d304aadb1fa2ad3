/**
 * Replication records (DESIGN.md 5 "Replicated directories"): every mutating call made through a
 * replicated directory's mount becomes one record, numbered in the order the primary applied it.
 * The secondary applies records in `seq` order; applying the same sequence to two equal trees
 * gives two equal trees.
 *
 * Paths are relative to the replicated directory and start with `/` (as FUSE gives them: `/` is
 * the directory itself). Sizes and offsets are byte counts below 2^53. Times are milliseconds
 * since the epoch, with fractions (a float64 on the wire: microseconds survive). Modes are full `st_mode` bits for
 * create/mknod (type + permissions) and permission bits for mkdir/chmod.
 *
 * Wire format of one record (all integers big-endian), as `encodeRecord` writes it:
 *   u32 length of what follows | u8 version (2) | u8 op code | u64 seq | fields of the op
 * where a string is `u32 byte length + UTF-8`, bytes are `u32 length + bytes`, a list of names is
 * bytes holding the names' UTF-8 separated by NUL (no names: 0 bytes), integers are u32 or u64
 * as listed in FIELDS, times (f64) IEEE 754 doubles. Version 2: times became f64 (were i64 ms). A stream of records is records back to back; `RecordReader` splits
 * one. Authentication of the stream is the transport's job (next step), not this codec's.
 */
import { extend } from '../objects.js';

export type RecordBody =
  | { readonly op: 'create'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number }
  | { readonly op: 'mknod'; readonly path: string; readonly mode: number; readonly rdev: number; readonly uid: number; readonly gid: number }
  | { readonly op: 'mkdir'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number }
  | { readonly op: 'symlink'; readonly path: string; readonly target: string; readonly uid: number; readonly gid: number }
  | { readonly op: 'link'; readonly from: string; readonly path: string }
  | { readonly op: 'write'; readonly path: string; readonly offset: number; readonly data: Uint8Array }
  | { readonly op: 'truncate'; readonly path: string; readonly size: number }
  | { readonly op: 'unlink'; readonly path: string }
  | { readonly op: 'rmdir'; readonly path: string }
  | { readonly op: 'rename'; readonly from: string; readonly path: string }
  | { readonly op: 'chmod'; readonly path: string; readonly mode: number }
  | { readonly op: 'chown'; readonly path: string; readonly uid: number; readonly gid: number }
  /** `atimeMs`/`mtimeMs` of -1 mean "now" (the secondary uses its own clock). */
  | { readonly op: 'utimens'; readonly path: string; readonly atimeMs: number; readonly mtimeMs: number }
  | { readonly op: 'setxattr'; readonly path: string; readonly name: string; readonly value: Uint8Array; readonly flags: number }
  | { readonly op: 'removexattr'; readonly path: string; readonly name: string }
  /** A durability barrier: the secondary fsyncs `path` (fdatasync when `datasync`) before acking. */
  | { readonly op: 'fsync'; readonly path: string; readonly datasync: boolean }
  // --- full sync (an initial copy of the whole tree, live records interleaved; see fullsync.ts) ---
  /** The secondary enters tolerant mode (RecordApplier): live records may name paths the copy
   *  has not reached yet. `path` is always `/` (every record names a path). */
  | { readonly op: 'sync-begin'; readonly path: string }
  /** `path` is a directory with this mode (permission bits) and owner; `names` are the entries the
   *  primary's directory held when it was read. A big listing comes in several records, `more`
   *  on all but the last; after the last, every entry not named in any of them is removed. */
  | { readonly op: 'sync-dir'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly names: readonly string[]; readonly more: boolean }
  /** `path` is a regular file of `size` bytes, all zeros, with this mode (permission bits) and
   *  owner; its non-zero content follows as `write` records, then a `utimens`. */
  | { readonly op: 'sync-file'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly size: number }
  /** Incremental resync: `path` is a regular file that this node has too (same file, some
   *  zones changed): the secondary sets its size, mode and owner; the changed zones follow as
   *  `write` records, then a `utimens`. A secondary whose `path` is not a regular file refuses
   *  it (its copy does not match the primary's change log: the resync fails, the next is full). */
  | { readonly op: 'sync-zones'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly size: number }
  /** `hakit verify`: the secondary answers (a REPLY on the link) with the fingerprint of what it
   *  has at `path` at this point of the stream: type, mode, owner, size, link count and the
   *  SHA-256 of bytes [offset, offset + length) of a file (metadata only with offset 0), the
   *  names of a directory, the target of a symlink (verify.ts). Changes nothing. */
  | { readonly op: 'verify'; readonly path: string; readonly offset: number; readonly length: number }
  /** Full resync by comparison (fullsync.ts, probe.ts): the secondary answers (a REPLY) with what
   *  it has at `path` at this point of the stream. `length` 0: the entry's type, and for a
   *  regular file its size, mtime, mode, owner and link count (the quick check); otherwise the
   *  SHA-256 of each `block`-byte block of its bytes in [offset, offset + length). Changes nothing. */
  | { readonly op: 'sync-probe'; readonly path: string; readonly offset: number; readonly length: number; readonly block: number }
  /** The copy is complete: the secondary leaves tolerant mode. `path` is always `/`. */
  | { readonly op: 'sync-end'; readonly path: string }
  /** A resync's extended attributes of `path`: the secondary sets exactly these on the entry
   *  (never through a symlink) and removes the others. `xattrs` is `packXattrs`'s encoding. */
  | { readonly op: 'sync-xattrs'; readonly path: string; readonly xattrs: Uint8Array };

/**
 * A copy of the first `n` bytes of `bytes`, as a plain Uint8Array. (Not
 * `Uint8Array.prototype.slice.call(buffer)`: on a Node Buffer that takes V8's generic path, an
 * element-by-element copy about 20 times slower than this memcpy: 4 ms a MiB here.)
 */
export function copyBytes(bytes: Uint8Array, n = bytes.length): Uint8Array {
  return new Uint8Array(bytes.subarray(0, n));
}

/** A record: a body and its position in the primary's order (1, 2, 3, ...). */
export type Record = RecordBody & { readonly seq: number };

export type RecordOp = RecordBody['op'];

/** Op codes on the wire: never renumber, only append. */
export const OP_CODES: Readonly<{ [K in RecordOp]: number }> = {
  create: 1, mknod: 2, mkdir: 3, symlink: 4, link: 5, write: 6, truncate: 7, unlink: 8, rmdir: 9,
  rename: 10, chmod: 11, chown: 12, utimens: 13, setxattr: 14, removexattr: 15, fsync: 16,
  'sync-begin': 17, 'sync-dir': 18, 'sync-file': 19, 'sync-end': 20, 'sync-zones': 21, verify: 22, 'sync-probe': 23,
  'sync-xattrs': 24,
};

/** The ops whose records change the tree (all of them but `fsync`, `sync-begin`, `sync-end`). */
export const MUTATING_OPS: readonly RecordOp[] = (Object.keys(OP_CODES) as RecordOp[]).filter((op) => op !== 'fsync' && op !== 'sync-begin' && op !== 'sync-end' && op !== 'verify' && op !== 'sync-probe');

/** `names` is a list of file names (no NUL): on the wire one bytes field, names NUL-separated. */
type FieldKind = 'str' | 'bytes' | 'u32' | 'u64' | 'f64' | 'bool' | 'names';
/** Field order of each op on the wire (after version, op code and seq). */
const FIELDS: { readonly [K in RecordOp]: readonly (readonly [string, FieldKind])[] } = {
  create: [['path', 'str'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32']],
  mknod: [['path', 'str'], ['mode', 'u32'], ['rdev', 'u64'], ['uid', 'u32'], ['gid', 'u32']],
  mkdir: [['path', 'str'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32']],
  symlink: [['path', 'str'], ['target', 'str'], ['uid', 'u32'], ['gid', 'u32']],
  link: [['from', 'str'], ['path', 'str']],
  write: [['path', 'str'], ['offset', 'u64'], ['data', 'bytes']],
  truncate: [['path', 'str'], ['size', 'u64']],
  unlink: [['path', 'str']],
  rmdir: [['path', 'str']],
  rename: [['from', 'str'], ['path', 'str']],
  chmod: [['path', 'str'], ['mode', 'u32']],
  chown: [['path', 'str'], ['uid', 'u32'], ['gid', 'u32']],
  utimens: [['path', 'str'], ['atimeMs', 'f64'], ['mtimeMs', 'f64']],
  setxattr: [['path', 'str'], ['name', 'str'], ['value', 'bytes'], ['flags', 'u32']],
  removexattr: [['path', 'str'], ['name', 'str']],
  fsync: [['path', 'str'], ['datasync', 'bool']],
  'sync-begin': [['path', 'str']],
  'sync-dir': [['path', 'str'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['names', 'names'], ['more', 'bool']],
  'sync-file': [['path', 'str'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['size', 'u64']],
  'sync-end': [['path', 'str']],
  'sync-zones': [['path', 'str'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['size', 'u64']],
  verify: [['path', 'str'], ['offset', 'u64'], ['length', 'u64']],
  'sync-probe': [['path', 'str'], ['offset', 'u64'], ['length', 'u64'], ['block', 'u32']],
  'sync-xattrs': [['path', 'str'], ['xattrs', 'bytes']],
};

/** Extended attributes as one byte string: for each, u32 name length | name (UTF-8) | u32 value
 *  length | value. */
export function packXattrs(attrs: readonly (readonly [string, Uint8Array])[]): Uint8Array {
  const names = attrs.map(([n]) => utf8.encode(n));
  const size = attrs.reduce((a, [, v], i) => a + 8 + (names[i] as Uint8Array).length + v.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  attrs.forEach(([, v], i) => {
    const n = names[i] as Uint8Array;
    dv.setUint32(at, n.length);
    out.set(n, at + 4);
    at += 4 + n.length;
    dv.setUint32(at, v.length);
    out.set(v, at + 4);
    at += 4 + v.length;
  });
  return out;
}

/** The attributes `packXattrs` packed; throws RangeError on bytes it did not make. */
export function unpackXattrs(bytes: Uint8Array): [string, Uint8Array][] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: [string, Uint8Array][] = [];
  let at = 0;
  const field = (): Uint8Array => {
    if (at + 4 > bytes.length) throw new RangeError('xattrs: truncated');
    const len = dv.getUint32(at);
    if (at + 4 + len > bytes.length) throw new RangeError('xattrs: truncated');
    const f = bytes.subarray(at + 4, at + 4 + len);
    at += 4 + len;
    return f;
  };
  while (at < bytes.length) {
    const name = fromUtf8.decode(field());
    out.push([name, field()]);
  }
  return out;
}

export const RECORD_VERSION = 2;
/** Largest encoded record accepted by the reader (a 1 MiB write plus a long path fits). */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

const OPS_BY_CODE = new Map<number, RecordOp>((Object.entries(OP_CODES) as [RecordOp, number][]).map(([op, code]) => [code, op]));
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Hands out sequence numbers in call order. One numberer per replicated directory; the first
 * record gets `first` (1 by default, or the next number after a persisted last one).
 */
export class RecordNumberer {
  private nextSeq: number;
  constructor(first = 1) {
    this.nextSeq = first;
  }
  /** The record for `body` with the next number. */
  number(body: RecordBody): Record {
    return extend(body, { seq: this.nextSeq++ }) as Record;
  }
  /** The number the next record will get. */
  get next(): number {
    return this.nextSeq;
  }
}

/** Encodes one record as described in the header. Throws RangeError on a value the format cannot hold. */
export function encodeRecord(rec: Record): Uint8Array {
  return encodeRecordAfter(0, rec);
}

/**
 * `encodeRecord` after `headroom` zero bytes that the caller fills (a payload header: the data
 * is then copied once, not twice).
 */
export function encodeRecordAfter(headroom: number, rec: Record): Uint8Array {
  return encodeRecordParts(headroom, rec, Infinity)[0] as Uint8Array;
}

/**
 * `encodeRecordAfter` in parts to write one after the other: when the record's last field is
 * bytes of at least `lendAtLeast`, those bytes are the second part, the caller's own buffer (not
 * copied: it must stay unchanged until the parts are written); else one part.
 */
export function encodeRecordParts(headroom: number, rec: Record, lendAtLeast: number): Uint8Array[] {
  const fields = FIELDS[rec.op];
  const values = rec as unknown as { readonly [k: string]: unknown };
  const parts: Uint8Array[] = [];
  let size = 1 + 1 + 8;
  for (const [name, kind] of fields) {
    const v = values[name];
    if (kind === 'str') {
      const b = utf8.encode(String(v));
      parts.push(b);
      size += 4 + b.length;
    } else if (kind === 'bytes') {
      const b = v as Uint8Array;
      parts.push(b);
      size += 4 + b.length;
    } else if (kind === 'names') {
      const names = v as readonly string[];
      if (names.some((n) => n === '' || n.includes('\0'))) throw new RangeError(`${rec.op}.${name} holds an empty name or one with a NUL byte`);
      const b = utf8.encode(names.join('\0'));
      parts.push(b);
      size += 4 + b.length;
    } else if (kind === 'u32') size += 4;
    else if (kind === 'bool') size += 1;
    else size += 8;
  }
  const lastField = fields[fields.length - 1];
  const lastPart = parts[parts.length - 1];
  const lent = lastField !== undefined && lastField[1] === 'bytes' && lastPart !== undefined && lastPart.length >= lendAtLeast ? lastPart : null;
  const out = new Uint8Array(headroom + 4 + size - (lent?.length ?? 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(headroom, size);
  dv.setUint8(headroom + 4, RECORD_VERSION);
  dv.setUint8(headroom + 5, OP_CODES[rec.op]);
  setU64(dv, headroom + 6, rec.seq, 'seq');
  let at = headroom + 14;
  let part = 0;
  for (const [name, kind] of fields) {
    const v = values[name];
    if (kind === 'str' || kind === 'bytes' || kind === 'names') {
      const b = parts[part++] as Uint8Array;
      dv.setUint32(at, b.length);
      if (b !== lent) out.set(b, at + 4);
      at += 4 + b.length;
    } else if (kind === 'u32') {
      const n = v as number;
      if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${rec.op}.${name} is not a u32: ${n}`);
      dv.setUint32(at, n);
      at += 4;
    } else if (kind === 'bool') {
      dv.setUint8(at, v ? 1 : 0);
      at += 1;
    } else if (kind === 'u64') {
      setU64(dv, at, v as number, `${rec.op}.${name}`);
      at += 8;
    } else {
      const n = v as number;
      if (!Number.isFinite(n)) throw new RangeError(`${rec.op}.${name} is not a finite number: ${n}`);
      dv.setFloat64(at, n);
      at += 8;
    }
  }
  return lent === null ? [out] : [out, lent];
}

function setU64(dv: DataView, at: number, n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} is not a byte count or number below 2^53: ${n}`);
  dv.setBigUint64(at, BigInt(n));
}

export type DecodeResult = { readonly ok: true; readonly record: Record } | { readonly ok: false; readonly error: string };

/**
 * Decodes exactly one encoded record (length prefix included). A malformed record is a result,
 * not an exception: the caller drops the stream and counts it. Byte fields (write data, xattr
 * values) are views of `bytes`, not copies: the caller must not change `bytes` afterwards.
 */
export function decodeRecord(bytes: Uint8Array): DecodeResult {
  const bad = (error: string): DecodeResult => ({ ok: false, error });
  if (bytes.length < 14) return bad(`record too short (${bytes.length} bytes)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = dv.getUint32(0);
  if (len + 4 !== bytes.length) return bad(`length prefix ${len} does not match ${bytes.length - 4} bytes`);
  const version = dv.getUint8(4);
  if (version !== RECORD_VERSION) return bad(`unknown record version ${version}`);
  const op = OPS_BY_CODE.get(dv.getUint8(5));
  if (op === undefined) return bad(`unknown op code ${dv.getUint8(5)}`);
  const seqBig = dv.getBigUint64(6);
  if (seqBig > BigInt(Number.MAX_SAFE_INTEGER)) return bad('seq above 2^53');
  const out: { [k: string]: unknown } = { op, seq: Number(seqBig) };
  let at = 14;
  for (const [name, kind] of FIELDS[op]) {
    const need = kind === 'u32' || kind === 'str' || kind === 'bytes' || kind === 'names' ? 4 : kind === 'bool' ? 1 : 8;
    if (at + need > bytes.length) return bad(`${op}.${name} runs past the end of the record`);
    if (kind === 'str' || kind === 'bytes' || kind === 'names') {
      const n = dv.getUint32(at);
      if (at + 4 + n > bytes.length) return bad(`${op}.${name} runs past the end of the record`);
      // A view, not a copy: write data is most of the stream, and the caller's bytes are not
      // reused (a decoded record may keep them alive as long as it lives).
      const b = bytes.subarray(at + 4, at + 4 + n);
      if (kind === 'str' || kind === 'names') {
        let text: string;
        try {
          text = fromUtf8.decode(b);
        } catch {
          return bad(`${op}.${name} is not UTF-8`);
        }
        out[name] = kind === 'str' ? text : text === '' ? [] : text.split('\0');
      } else out[name] = b;
      at += 4 + n;
    } else if (kind === 'u32') {
      out[name] = dv.getUint32(at);
      at += 4;
    } else if (kind === 'bool') {
      const b = dv.getUint8(at);
      if (b > 1) return bad(`${op}.${name} is not a boolean`);
      out[name] = b === 1;
      at += 1;
    } else if (kind === 'f64') {
      const n = dv.getFloat64(at);
      if (!Number.isFinite(n)) return bad(`${op}.${name} is not a finite number`);
      out[name] = n;
      at += 8;
    } else {
      const big = dv.getBigUint64(at);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) return bad(`${op}.${name} is out of range`);
      out[name] = Number(big);
      at += 8;
    }
  }
  if (at !== bytes.length) return bad(`${bytes.length - at} bytes left after ${op}`);
  return { ok: true, record: out as unknown as Record };
}

/**
 * Splits a byte stream into encoded records. `push` a chunk, then `take` records until it
 * returns undefined. A length above `MAX_RECORD_BYTES` makes the reader `failed` (the stream is
 * not a record stream); it then returns nothing more.
 */
export class RecordReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  failed: string | undefined;

  push(chunk: Uint8Array): void {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
  }

  /** The next decoded record, a decode failure, or undefined when more bytes are needed. */
  take(): DecodeResult | undefined {
    if (this.failed !== undefined || this.buffered < 4) return undefined;
    const head = this.peek(4);
    const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
    if (len + 4 > MAX_RECORD_BYTES) {
      this.failed = `record of ${len} bytes is above the ${MAX_RECORD_BYTES}-byte limit`;
      return { ok: false, error: this.failed };
    }
    if (this.buffered < len + 4) return undefined;
    const res = decodeRecord(this.consume(len + 4));
    if (!res.ok) this.failed = res.error;
    return res;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length >= n) return first.subarray(0, n);
    return this.join(n, false);
  }

  private consume(n: number): Uint8Array {
    return this.join(n, true);
  }

  private join(n: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    let i = 0;
    while (got < n) {
      const c = this.chunks[i] as Uint8Array;
      const take = Math.min(c.length, n - got);
      out.set(c.subarray(0, take), got);
      got += take;
      if (remove) {
        if (take === c.length) this.chunks.shift();
        else {
          this.chunks[0] = c.subarray(take);
          i = 0;
        }
      } else i++;
    }
    if (remove) this.buffered -= n;
    return out;
  }
}

/** Byte count of the data a record carries (write data, xattr values); 0 for metadata records. */
export function payloadBytes(rec: RecordBody): number {
  if (rec.op === 'write') return rec.data.length;
  if (rec.op === 'setxattr') return rec.value.length;
  return 0;
}
