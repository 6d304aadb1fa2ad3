/**
 * What a user can see of a directory tree, for comparing a replica with its source (DESIGN.md 5,
 * promise 1: the secondary's copy equals the primary's).
 *
 * `treeSnapshot(dir)` maps every path below `dir` (relative, leading `/`; `dir` itself is `/`)
 * to its type, permission bits, owner, size, link count, mtime (rounded to the millisecond, the
 * precision records carry), symlink target, and for regular files `sha256`: the SHA-256 of the
 * size and of every non-zero 1 MiB block with its offset. Equal content gives equal digests
 * whether a zero range is a hole or written zeros, and a 5 GiB sparse file is read without
 * hashing 5 GiB (hashing zeros costs ~3 s/GiB here; comparing them to zero ~0.5 s/GiB).
 *
 * Reads use synchronous calls: never point it at a FUSE mount served by the same process.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { fuse3 } from '../../src/adapters/fuse/fuse3.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'other';

export interface TreeEntry {
  readonly type: EntryType;
  /** Permission bits (st_mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly mtimeMs: number;
  readonly sha256?: string;
  readonly target?: string;
  /** Extended attributes, `name=hex` sorted and joined with `;` (absent when there are none). */
  readonly xattrs?: string;
}

export type TreeSnapshot = Map<string, TreeEntry>;

const BLOCK = 1024 * 1024;
const ZERO = Buffer.alloc(BLOCK);

function typeOf(st: fs.Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

/** The content digest described in the header. */
export function contentDigest(path: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const size = fs.fstatSync(fd).size;
    h.update(`size ${size}\n`);
    const buf = Buffer.alloc(BLOCK);
    for (let pos = 0; ; pos += BLOCK) {
      const n = fs.readSync(fd, buf, 0, BLOCK, pos);
      if (n === 0) break;
      const block = buf.subarray(0, n);
      if (block.equals(ZERO.subarray(0, n))) continue;
      h.update(`block ${pos} ${n}\n`);
      h.update(block);
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** The entry's own extended attributes (never through a symlink), as in TreeEntry.xattrs. */
export function xattrsOf(p: string): string {
  const list = fuse3().llistxattr(p);
  if (typeof list === 'number') return list === -95 ? '' : `error ${list}`; // EOPNOTSUPP: none
  const names = list.toString('latin1').split('\0').filter((n) => n !== '').sort();
  return names.map((n) => {
    const v = fuse3().lgetxattr(p, n);
    return `${n}=${typeof v === 'number' ? `error ${v}` : v.toString('hex')}`;
  }).join(';');
}

export function treeSnapshot(dir: string): TreeSnapshot {
  const out: TreeSnapshot = new Map();
  const base = dir.replace(/\/+$/, '');
  const visit = (rel: string) => {
    const p = base + (rel === '/' ? '/' : rel);
    const st = fs.lstatSync(p);
    const type = typeOf(st);
    const e: { -readonly [K in keyof TreeEntry]: TreeEntry[K] } = {
      type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === 'dir' ? 0 : st.size, nlink: st.nlink, mtimeMs: Math.round(st.mtimeMs),
    };
    if (type === 'file') e.sha256 = contentDigest(p);
    if (type === 'symlink') e.target = fs.readlinkSync(p);
    const xattrs = xattrsOf(p);
    if (xattrs !== '') e.xattrs = xattrs;
    out.set(rel, e);
    if (type === 'dir') {
      for (const name of fs.readdirSync(p).sort()) visit(rel === '/' ? `/${name}` : `${rel}/${name}`);
    }
  };
  visit('/');
  return out;
}

export interface CompareOptions {
  /** Paths whose mtime is not compared (a predicate or a list). Directories' mtimes are only
   *  compared when `compareDirMtimes` is set (entries added by the applier at another instant). */
  readonly ignoreMtimeOf?: readonly string[] | ((path: string) => boolean);
  readonly compareDirMtimes?: boolean;
  /** Paths left out of the comparison entirely (with everything below them). */
  readonly skip?: (path: string) => boolean;
}

/** The differences between two snapshots, one readable line each (empty when equal). */
export function diffTrees(a: TreeSnapshot, b: TreeSnapshot, opts: CompareOptions = {}): string[] {
  const ign = opts.ignoreMtimeOf;
  const ignoreMtime = (p: string) => (ign === undefined ? false : typeof ign === 'function' ? ign(p) : ign.includes(p));
  const skip = opts.skip ?? (() => false);
  const out: string[] = [];
  const show = (e: TreeEntry) => JSON.stringify({ ...e, mode: e.mode.toString(8), sha256: e.sha256?.slice(0, 12) });
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const p of paths) {
    if (skip(p)) continue;
    const x = a.get(p);
    const y = b.get(p);
    if (x === undefined) {
      out.push(`only in B: ${JSON.stringify(p)} ${show(y as TreeEntry)}`);
      continue;
    }
    if (y === undefined) {
      out.push(`only in A: ${JSON.stringify(p)} ${show(x)}`);
      continue;
    }
    const fields: string[] = [];
    for (const k of ['type', 'mode', 'uid', 'gid', 'size', 'nlink', 'sha256', 'target', 'xattrs', 'mtimeMs'] as const) {
      if (k === 'mtimeMs' && (ignoreMtime(p) || (x.type === 'dir' && !opts.compareDirMtimes))) continue;
      if (k === 'nlink' && x.type === 'dir') continue; // a dir's link count follows its subdirs, compared through them
      if (x[k] !== y[k]) {
        const fmt = (v: unknown) => (k === 'mode' && typeof v === 'number' ? v.toString(8) : k === 'sha256' && typeof v === 'string' ? v.slice(0, 12) : JSON.stringify(v));
        fields.push(`${k} ${fmt(x[k])} != ${fmt(y[k])}`);
      }
    }
    if (fields.length > 0) out.push(`differs: ${JSON.stringify(p)}: ${fields.join(', ')}`);
  }
  return out;
}

/** Asserts that the trees under `a` and `b` are equal (see CompareOptions), listing every difference. */
export function assertTreesEqual(a: string | TreeSnapshot, b: string | TreeSnapshot, opts: CompareOptions & { what?: string } = {}): void {
  const sa = typeof a === 'string' ? treeSnapshot(a) : a;
  const sb = typeof b === 'string' ? treeSnapshot(b) : b;
  const d = diffTrees(sa, sb, opts);
  if (d.length > 0) {
    const shown = d.slice(0, 40);
    if (d.length > shown.length) shown.push(`... and ${d.length - shown.length} more`);
    assert.fail(`trees differ${opts.what ? ` after ${opts.what}` : ''} (A: ${typeof a === 'string' ? a : 'snapshot'}, B: ${typeof b === 'string' ? b : 'snapshot'}):\n  ${shown.join('\n  ')}`);
  }
}
