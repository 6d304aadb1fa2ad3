/**
 * `hakit verify MODULE` (issue 5 part 6): the two replicas compared online, by content, while
 * the application keeps writing.
 *
 * How it is exact with live writes: the primary walks its tree and, for every entry (for a file:
 * every chunk of it), takes the entry's fingerprint and submits a `verify` record IN THE SAME
 * SYNCHRONOUS STEP, into the numbered stream the live records travel in. The secondary takes its
 * fingerprint of the same path when it applies that record, i.e. after every earlier record and
 * before every later one: both fingerprints describe the same point of the stream, so they are
 * equal exactly when the replicas agree there. The secondary sends its fingerprint back as a
 * REPLY frame of the link (seq + fingerprint); the primary compares.
 *
 * A fingerprint: the entry's type; for a file its permission bits, owner, size and link count
 * (with the first chunk), and the SHA-256 of the chunk's bytes; for a directory its mode, owner
 * and sorted names (the primary drops excluded names from both sides); for a symlink its owner
 * and target. Modification times are not compared (a live write sets each node's own clock).
 * The primary's event loop is held for one chunk's hash at a time (CHUNK, 4 MiB: milliseconds).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ExcludeMatcher } from '../../core/replication/exclude.js';
import type { RecordBody } from '../../core/replication/records.js';

export const VERIFY_CHUNK = 4 * 1024 * 1024;
/** Names of a directory beyond this many bytes are compared by their hash only. */
const MAX_NAMES_BYTES = 256 * 1024;

export interface Fingerprint {
  readonly type: 'file' | 'dir' | 'symlink' | 'fifo' | 'other' | 'missing';
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly nlink?: number;
  readonly sha?: string;
  readonly target?: string;
  readonly names?: readonly string[];
}

const buf = Buffer.alloc(1024 * 1024);

/** The fingerprint of `root + path` now (see the file comment); synchronous. */
export function fingerprint(root: string, path: string, offset: number, length: number): Fingerprint {
  return look(root, path, offset, length).fp;
}

/** The fingerprint, and a directory's names (also when the fingerprint has only their hash). */
function look(root: string, path: string, offset: number, length: number): { fp: Fingerprint; names?: string[] } {
  const fp = (f: Fingerprint): { fp: Fingerprint } => ({ fp: f });
  const p = root + path;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return fp({ type: 'missing' });
  }
  if (st.isDirectory()) {
    let names: string[];
    try {
      names = fs.readdirSync(p).sort();
    } catch {
      return fp({ type: 'missing' });
    }
    const base = { type: 'dir' as const, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    const bytes = names.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0);
    if (bytes > MAX_NAMES_BYTES) return { fp: { ...base, sha: createHash('sha256').update(names.join('\0')).digest('hex') }, names };
    return { fp: { ...base, names }, names };
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.readlinkSync(p);
    } catch {
      return fp({ type: 'missing' });
    }
    return fp({ type: 'symlink', uid: st.uid, gid: st.gid, target });
  }
  if (st.isFIFO()) return fp({ type: 'fifo', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  if (!st.isFile()) return fp({ type: 'other' });
  const h = createHash('sha256');
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return fp({ type: 'missing' });
  }
  try {
    const end = Math.min(offset + length, st.size);
    for (let at = offset; at < end;) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  const sha = h.digest('hex');
  return fp(offset === 0 ? { type: 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, sha } : { type: 'file', sha });
}

/** Why two fingerprints differ (null: they agree); `excluded` names of a directory are ignored. */
export function difference(mine: Fingerprint, theirs: Fingerprint, excludedName: (name: string) => boolean): string | null {
  if (mine.type !== theirs.type) return `${mine.type} here, ${theirs.type} on the peer`;
  const out: string[] = [];
  for (const k of ['mode', 'uid', 'gid', 'size', 'nlink', 'target'] as const) {
    if (mine[k] !== theirs[k]) out.push(`${k} ${fmt(k, mine[k])} here, ${fmt(k, theirs[k])} on the peer`);
  }
  if (mine.sha !== theirs.sha) out.push(mine.type === 'dir' ? 'names differ' : 'content differs');
  if (mine.names !== undefined || theirs.names !== undefined) {
    const a = (mine.names ?? []).filter((n) => !excludedName(n));
    const b = new Set((theirs.names ?? []).filter((n) => !excludedName(n)));
    const onlyHere = a.filter((n) => !b.has(n));
    const aSet = new Set(a);
    const onlyThere = [...b].filter((n) => !aSet.has(n));
    if (onlyHere.length > 0) out.push(`only here: ${onlyHere.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${onlyHere.length > 5 ? ', ...' : ''}`);
    if (onlyThere.length > 0) out.push(`only on the peer: ${onlyThere.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${onlyThere.length > 5 ? ', ...' : ''}`);
  }
  return out.length === 0 ? null : out.join('; ');
}

function fmt(k: string, v: unknown): string {
  return k === 'mode' && typeof v === 'number' ? `0${v.toString(8)}` : JSON.stringify(v ?? null);
}

export interface VerifyDifference {
  /** Replicated dir index and path below it. */
  readonly dir: number;
  readonly path: string;
  readonly why: string;
}

export interface VerifyWalkOptions {
  readonly root: string;
  readonly excluded: ExcludeMatcher;
  /** Numbers and sends the record IN THE SAME SYNCHRONOUS CALL; resolves with its seq once acked. */
  readonly submit: (body: RecordBody) => { seq: number; acked: Promise<void> };
  /** The fingerprint the peer answered for `seq` (resolves when its REPLY arrived). */
  readonly answer: (seq: number) => Promise<Fingerprint>;
  /** Entries in flight beyond which the walk waits (default 64). */
  readonly window?: number;
}

/** Walks one replicated dir and compares every entry with the peer; resolves the differences. */
export async function verifyTree(o: VerifyWalkOptions, dir: number, signal?: AbortSignal): Promise<{ entries: number; bytes: number; differ: VerifyDifference[] }> {
  const root = o.root.replace(/\/+$/, '');
  const differ: VerifyDifference[] = [];
  const inFlight = new Set<Promise<void>>();
  const window = o.window ?? 64;
  let entries = 0;
  let bytes = 0;
  let failure: unknown = null;
  /** Waits for room in the window, then lets live calls run before the next synchronous step. */
  const room = async (): Promise<void> => {
    while (inFlight.size >= window) await Promise.race(inFlight);
    await new Promise<void>((r) => setImmediate(r));
  };
  const check = (path: string, offset: number, length: number): { fp: Fingerprint; names?: string[] } => {
    // --- one synchronous step: my fingerprint and the record, at the same point of the stream ---
    const seen = look(root, path, offset, length);
    const mine = seen.fp;
    const { seq, acked } = o.submit({ op: 'verify', path, offset, length });
    const excludedName = (n: string): boolean => o.excluded(path === '/' ? `/${n}` : `${path}/${n}`);
    const p = acked.then(() => o.answer(seq)).then((theirs) => {
      const why = difference(mine, theirs, excludedName);
      if (why !== null) differ.push({ dir, path, why: offset > 0 ? `bytes from ${offset}: ${why}` : why });
    }, (e: unknown) => { failure ??= e; }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    return seen;
  };
  const stack = ['/'];
  while (stack.length > 0) {
    if (signal?.aborted) throw signal.reason ?? new Error('verify stopped');
    if (failure !== null) throw failure;
    await room();
    const path = stack.pop() as string;
    if (path !== '/' && o.excluded(path)) continue;
    const { fp: mine, names } = check(path, 0, VERIFY_CHUNK);
    entries++;
    if (names !== undefined) {
      for (let i = names.length - 1; i >= 0; i--) stack.push(path === '/' ? `/${names[i]}` : `${path}/${names[i]}`);
    } else if (mine.type === 'file' && (mine.size ?? 0) > VERIFY_CHUNK) {
      for (let off = VERIFY_CHUNK; off < (mine.size ?? 0); off += VERIFY_CHUNK) {
        await room();
        check(path, off, VERIFY_CHUNK);
      }
    }
    if (mine.type === 'file') bytes += mine.size ?? 0;
  }
  await Promise.all([...inFlight]);
  if (failure !== null) throw failure;
  return { entries, bytes, differ };
}
