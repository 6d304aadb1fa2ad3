/**
 * The file operations of the rfs (DESIGN.md 5 "Replicated directories"): a passthrough to the
 * underlying directory, reached through a descriptor opened before the FUSE mount hid it
 * (`/proc/self/fd/<rootFd>/<path>`), with every mutating call turned into a numbered record.
 *
 * Promises:
 * - Order. A mutating call is applied to the underlying directory and numbered in the same
 *   synchronous step (local applies use the *Sync calls), so record order = the order in which
 *   the underlying file system saw the changes, even for concurrent calls from many FUSE threads.
 *   The record is then submitted to the Replicator in that order.
 * - A mutating call resolves (and the application gets its reply) only after its local apply and
 *   `replicator.submit` both completed. A call that failed locally is not replicated.
 * - The change log first: when `replicator.prepare` returns a promise (a new mark while the peer
 *   does not get the records), the call waits for it before the local apply, so a crash never
 *   leaves a change on disk that the log does not name.
 * - `fsync` resolves when the local fsync and the replicator's fsync barrier both completed.
 * - Modes: `rw` passes everything through. `ro` refuses mutating calls and opens for writing
 *   with EROFS; reads go on. `blocked` (a primary that demotes itself) holds mutating calls
 *   without a time limit — nothing is applied or acknowledged — until the mode changes: to `rw`
 *   they proceed in arrival order, to `ro` (or at unmount) they fail with EROFS. Reads go on.
 *   Held calls are not timed out here: the daemon decides (it follows `blocked` with `ro` once
 *   the application is stopped, or with `rw` if it keeps the primary role).
 *
 * Results: 0 or a count/descriptor on success, a negative errno on failure (the binding's
 * convention, native/fuse3).
 *
 * Owners: a new entry (create, mkdir, mknod, symlink) gets the caller's uid, and its gid unless
 * the parent directory's set-group-ID bit gave it the parent's, as on a local file system (the
 * rfs runs as root and chowns after creating; the record carries the result).
 * Times: `utimens` gets milliseconds with sub-millisecond fractions, -1 for "now" (UTIME_NOW)
 * and -2 for "leave as is" (UTIME_OMIT); the record carries the times the file then has.
 * Extended attributes: setxattr/removexattr here (native, on the entry, never through a
 * symlink); reads (getxattr/listxattr) are served by the binding itself (native/fuse3).
 * Limits (see docs/replication.md): `fallocate` allocates (mode 0, KEEP_SIZE) but refuses
 * punching, zeroing, collapsing and inserting with EOPNOTSUPP; `rename` takes RENAME_NOREPLACE
 * and refuses RENAME_EXCHANGE/WHITEOUT with EINVAL; `mknod` makes FIFOs and regular files only.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import type { Change } from '../../core/replication/changes.js';
import { type RecordBody, RecordNumberer, payloadBytes } from '../../core/replication/records.js';
import type { Replicator } from './replicator.js';
import { fuse3 } from './fuse3.js';

export type RfsMode = 'rw' | 'ro' | 'blocked';
export const RFS_MODES: readonly RfsMode[] = ['rw', 'ro', 'blocked'];

const C = fs.constants;
const O_ACCMODE = 3;
const EIO = -5;
const EROFS = -30;
const EPERM = -1;
const EINVAL = -22;
const EOPNOTSUPP = -95;
const RENAME_NOREPLACE = 1;
const FALLOC_FL_KEEP_SIZE = 1;
/** utimens: the time is "now" (UTIME_NOW) / stays as it is (UTIME_OMIT). */
export const UTIME_NOW = -1;
export const UTIME_OMIT = -2;

/** The caller of a call that makes a new entry (the kernel gives it). */
export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface OpStats {
  calls: number;
  errors: number;
  /** Bytes read or written (read/write), or carried in records (setxattr). */
  bytes: number;
}

export interface RfsStats {
  readonly mode: RfsMode;
  /** Number of records submitted so far (the last seq). */
  readonly records: number;
  /** Mutating calls waiting in `blocked` mode. */
  readonly held: number;
  readonly ops: { readonly [op: string]: OpStats };
}

export interface StatLike {
  mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number;
  rdev: number; blksize: number; blocks: number; atime: number; mtime: number; ctime: number;
}

export interface StatfsLike {
  bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number;
  ffree: number; favail: number; fsid: number; flag: number; namemax: number;
}

/** The negative errno of a Node fs error (its `errno` is -errno on Linux); EIO when unknown. */
export function errnoOf(e: unknown): number {
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n < 0 ? n : EIO;
}

export interface PassthroughOptions {
  /** Descriptor of the underlying directory (O_RDONLY|O_DIRECTORY), opened before mounting. */
  readonly rootFd: number;
  readonly replicator: Replicator;
  readonly mode?: RfsMode;
  /** Where numbering starts (default: a fresh numberer starting at 1). */
  readonly numberer?: RecordNumberer;
}

type Gate = 0 | typeof EROFS;

export class PassthroughFs {
  private modeNow: RfsMode;
  private readonly root: string;
  private readonly numberer: RecordNumberer;
  private readonly replicator: Replicator;
  private held: ((g: Gate) => void)[] = [];
  private readonly counters = new Map<string, OpStats>();

  constructor(opts: PassthroughOptions) {
    this.root = `/proc/self/fd/${opts.rootFd}`;
    this.replicator = opts.replicator;
    this.modeNow = opts.mode ?? 'rw';
    this.numberer = opts.numberer ?? new RecordNumberer();
  }

  get mode(): RfsMode {
    return this.modeNow;
  }

  /** Changes the mode; calls held by `blocked` proceed (rw) or fail with EROFS (ro). */
  setMode(mode: RfsMode): void {
    this.modeNow = mode;
    if (mode === 'blocked') return;
    const held = this.held;
    this.held = [];
    for (const release of held) release(mode === 'rw' ? 0 : EROFS);
  }

  stats(): RfsStats {
    const ops: { [op: string]: OpStats } = {};
    for (const [k, v] of this.counters) ops[k] = { ...v };
    return { mode: this.modeNow, records: this.numberer.next - 1, held: this.held.length, ops };
  }

  /** The underlying path of a FUSE path (`/` = the directory itself). */
  under(path: string): string {
    return this.root + path;
  }

  private count(op: string, res: number, bytes = 0): number {
    let c = this.counters.get(op);
    if (c === undefined) {
      c = { calls: 0, errors: 0, bytes: 0 };
      this.counters.set(op, c);
    }
    c.calls++;
    if (res < 0) c.errors++;
    else c.bytes += bytes;
    return res;
  }

  private admit(): Gate | Promise<Gate> {
    if (this.modeNow === 'rw') return 0;
    if (this.modeNow === 'ro') return EROFS;
    return new Promise<Gate>((resolve) => this.held.push(resolve));
  }

  /**
   * Runs one mutating call: waits for the mode gate, applies locally and numbers the record in
   * one synchronous step, submits it, resolves with the local result once submit resolved.
   * `apply` returns the result for the caller and the record body (or throws a Node fs error).
   */
  private async mutate(op: string, change: Change, apply: () => { result: number; body: RecordBody }): Promise<number> {
    const gate = this.admit();
    const g = typeof gate === 'number' ? gate : await gate;
    if (g !== 0) return this.count(op, g);
    // The change log's mark is durable before the change is made (null: nothing new to mark).
    const marked = this.replicator.prepare?.(change) ?? null;
    if (marked !== null) {
      try {
        await marked;
      } catch {
        return this.count(op, EIO);
      }
      // The mode may have changed meanwhile (blocked by a fence, ro on demotion): admit again.
      const again = this.admit();
      const g2 = typeof again === 'number' ? again : await again;
      if (g2 !== 0) return this.count(op, g2);
    }
    let done: { result: number; body: RecordBody };
    try {
      done = apply();
    } catch (e) {
      return this.count(op, errnoOf(e));
    }
    const rec = this.numberer.number(done.body);
    try {
      await this.replicator.submit(rec, change);
    } catch {
      return this.count(op, EIO);
    }
    return this.count(op, done.result, payloadBytes(done.body));
  }

  // --- reads and metadata queries (not replicated) ---

  async getattr(path: string): Promise<number | StatLike> {
    try {
      const st = await fs.promises.lstat(this.under(path));
      this.count('getattr', 0);
      return toStat(st);
    } catch (e) {
      return this.count('getattr', errnoOf(e));
    }
  }

  async fgetattr(fd: number): Promise<number | StatLike> {
    try {
      const st = await new Promise<fs.Stats>((res, rej) => fs.fstat(fd, (err, s) => (err ? rej(err) : res(s))));
      this.count('fgetattr', 0);
      return toStat(st);
    } catch (e) {
      return this.count('fgetattr', errnoOf(e));
    }
  }

  async readdir(path: string): Promise<number | string[]> {
    try {
      const names = await fs.promises.readdir(this.under(path));
      this.count('readdir', 0);
      return ['.', '..', ...names];
    } catch (e) {
      return this.count('readdir', errnoOf(e));
    }
  }

  async readlink(path: string): Promise<number | string> {
    try {
      const t = await fs.promises.readlink(this.under(path));
      this.count('readlink', 0);
      return t;
    } catch (e) {
      return this.count('readlink', errnoOf(e));
    }
  }

  async access(path: string, mode: number): Promise<number> {
    try {
      await fs.promises.access(this.under(path), mode);
      return this.count('access', 0);
    } catch (e) {
      return this.count('access', errnoOf(e));
    }
  }

  async statfs(): Promise<number | StatfsLike> {
    try {
      const s = await fs.promises.statfs(this.under('/'));
      this.count('statfs', 0);
      return toStatfs(s);
    } catch (e) {
      return this.count('statfs', errnoOf(e));
    }
  }

  /** Opens the underlying file; resolves with the descriptor. O_TRUNC is a replicated truncate. */
  async open(path: string, flags: number): Promise<number> {
    const writing = (flags & O_ACCMODE) !== C.O_RDONLY;
    const local = underlyingFlags(flags);
    if ((flags & C.O_TRUNC) !== 0) {
      let fd = -1;
      const res = await this.mutate('open', { op: 'truncate', path, size: 0 }, () => {
        fd = fs.openSync(this.under(path), local | C.O_TRUNC);
        return { result: fd, body: { op: 'truncate', path, size: 0 } };
      });
      if (res < 0 && fd >= 0) fs.closeSync(fd);
      return res;
    }
    if (writing && this.modeNow === 'ro') return this.count('open', EROFS);
    try {
      const fd = await new Promise<number>((res, rej) => fs.open(this.under(path), local, (err, d) => (err ? rej(err) : res(d))));
      return this.count('open', fd);
    } catch (e) {
      return this.count('open', errnoOf(e));
    }
  }

  async read(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    try {
      const n = await new Promise<number>((res, rej) => fs.read(fd, buf, 0, len, pos, (err, got) => (err ? rej(err) : res(got))));
      return this.count('read', n, n);
    } catch (e) {
      return this.count('read', errnoOf(e));
    }
  }

  async release(fd: number): Promise<number> {
    try {
      await new Promise<void>((res, rej) => fs.close(fd, (err) => (err ? rej(err) : res())));
      return this.count('release', 0);
    } catch (e) {
      return this.count('release', errnoOf(e));
    }
  }

  /** Local fsync and the replicator's barrier, side by side; resolves when both are done. */
  async fsync(path: string, fd: number, datasync: boolean): Promise<number> {
    const local = new Promise<void>((res, rej) => (datasync ? fs.fdatasync : fs.fsync)(fd, (err) => (err ? rej(err) : res())));
    return this.barrier('fsync', path, datasync, local);
  }

  /** fsync of a directory (its entries), with the same barrier. */
  async fsyncdir(path: string, datasync: boolean): Promise<number> {
    const local = (async () => {
      const h = await fs.promises.open(this.under(path), C.O_RDONLY | C.O_DIRECTORY);
      try {
        await (datasync ? h.datasync() : h.sync());
      } finally {
        await h.close();
      }
    })();
    return this.barrier('fsyncdir', path, datasync, local);
  }

  private async barrier(op: string, path: string, datasync: boolean, local: Promise<void>): Promise<number> {
    // Only a writable primary has records in flight that the barrier must cover.
    const remote = this.modeNow === 'rw' ? this.replicator.submit(this.numberer.number({ op: 'fsync', path, datasync })) : Promise.resolve();
    const [l, r] = await Promise.allSettled([local, remote]);
    if (l.status === 'rejected') return this.count(op, errnoOf(l.reason));
    if (r.status === 'rejected') return this.count(op, EIO);
    return this.count(op, 0);
  }

  // --- mutating calls (replicated) ---

  create(path: string, mode: number, owner?: Owner): Promise<number> {
    return this.mutate('create', { op: 'create', path }, () => {
      const fd = fs.openSync(this.under(path), C.O_CREAT | C.O_RDWR, mode & 0o7777);
      let st: fs.Stats;
      try {
        st = this.own(path, fs.fstatSync(fd), owner, (u, g) => fs.fchownSync(fd, u, g));
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      return { result: fd, body: { op: 'create', path, mode: st.mode, uid: st.uid, gid: st.gid } };
    });
  }

  /**
   * Gives a new entry the caller's owner (see the file's comment): chowns when the caller is
   * not who the rfs created it as; returns the entry's stat with the owner it now has.
   */
  private own(path: string, st: fs.Stats, owner: Owner | undefined, chown: (uid: number, gid: number) => void): fs.Stats {
    if (owner === undefined || (owner.uid === st.uid && owner.gid === st.gid)) return st;
    const parentSetgid = (fs.statSync(this.under(dirname(path))).mode & 0o2000) !== 0;
    const gid = parentSetgid ? st.gid : owner.gid;
    if (owner.uid === st.uid && gid === st.gid) return st;
    chown(owner.uid, gid);
    return Object.assign(st, { uid: owner.uid, gid });
  }

  write(path: string, fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return this.mutate('write', { op: 'write', path, offset: pos, length: len }, () => {
      const n = fs.writeSync(fd, buf, 0, len, pos);
      // The data is lent to the replicator (libfuse's buffer, valid until this call is answered,
      // which waits for `submit`: replicator.ts), not copied.
      return { result: n, body: { op: 'write', path, offset: pos, data: buf.subarray(0, n) } };
    });
  }

  truncate(path: string, size: number): Promise<number> {
    return this.mutate('truncate', { op: 'truncate', path, size }, () => {
      fs.truncateSync(this.under(path), size);
      return { result: 0, body: { op: 'truncate', path, size } };
    });
  }

  ftruncate(path: string, fd: number, size: number): Promise<number> {
    return this.mutate('ftruncate', { op: 'truncate', path, size }, () => {
      fs.ftruncateSync(fd, size);
      return { result: 0, body: { op: 'truncate', path, size } };
    });
  }

  mkdir(path: string, mode: number, owner?: Owner): Promise<number> {
    return this.mutate('mkdir', { op: 'mkdir', path }, () => {
      const p = this.under(path);
      fs.mkdirSync(p, { mode: mode & 0o7777 });
      const st = this.own(path, fs.lstatSync(p), owner, (u, g) => fs.lchownSync(p, u, g));
      return { result: 0, body: { op: 'mkdir', path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } };
    });
  }

  /** FIFOs and regular files only (a FIFO through the binding's mknod: Node has none). */
  mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<number> {
    const type = mode & C.S_IFMT;
    if (type !== C.S_IFIFO && type !== C.S_IFREG && type !== 0) return Promise.resolve(this.count('mknod', EPERM));
    return this.mutate('mknod', { op: 'mknod', path }, () => {
      const p = this.under(path);
      if (type === C.S_IFIFO) {
        const r = fuse3().mknod(p, C.S_IFIFO | (mode & 0o7777), 0);
        if (r < 0) throw Object.assign(new Error('mknod'), { errno: r });
      } else {
        fs.closeSync(fs.openSync(p, C.O_CREAT | C.O_EXCL | C.O_WRONLY, mode & 0o7777));
      }
      const st = this.own(path, fs.lstatSync(p), owner, (u, g) => fs.lchownSync(p, u, g));
      return { result: 0, body: { op: 'mknod', path, mode: st.mode, rdev, uid: st.uid, gid: st.gid } };
    });
  }

  symlink(target: string, path: string, owner?: Owner): Promise<number> {
    return this.mutate('symlink', { op: 'symlink', path }, () => {
      const p = this.under(path);
      fs.symlinkSync(target, p);
      const st = this.own(path, fs.lstatSync(p), owner, (u, g) => fs.lchownSync(p, u, g));
      return { result: 0, body: { op: 'symlink', path, target, uid: st.uid, gid: st.gid } };
    });
  }

  link(from: string, path: string): Promise<number> {
    return this.mutate('link', { op: 'link', from, path }, () => {
      fs.linkSync(this.under(from), this.under(path));
      return { result: 0, body: { op: 'link', from, path } };
    });
  }

  unlink(path: string): Promise<number> {
    return this.mutate('unlink', { op: 'unlink', path }, () => {
      fs.unlinkSync(this.under(path));
      return { result: 0, body: { op: 'unlink', path } };
    });
  }

  rmdir(path: string): Promise<number> {
    return this.mutate('rmdir', { op: 'rmdir', path }, () => {
      fs.rmdirSync(this.under(path));
      return { result: 0, body: { op: 'rmdir', path } };
    });
  }

  /** `flags`: RENAME_NOREPLACE (the record is a plain rename: it was applied only if the target
   *  did not exist, and the peer's copy is the same); EXCHANGE and WHITEOUT: EINVAL. */
  rename(from: string, path: string, flags = 0): Promise<number> {
    if ((flags & ~RENAME_NOREPLACE) !== 0) return Promise.resolve(this.count('rename', EINVAL));
    return this.mutate('rename', { op: 'rename', from, path }, () => {
      if (flags === 0) fs.renameSync(this.under(from), this.under(path));
      else {
        const r = fuse3().renameat2(this.under(from), this.under(path), flags);
        if (r < 0) throw Object.assign(new Error('renameat2'), { errno: r });
      }
      return { result: 0, body: { op: 'rename', from, path } };
    });
  }

  chmod(path: string, mode: number): Promise<number> {
    return this.mutate('chmod', { op: 'chmod', path }, () => {
      fs.chmodSync(this.under(path), mode & 0o7777);
      return { result: 0, body: { op: 'chmod', path, mode: mode & 0o7777 } };
    });
  }

  /** uid or gid 0xffffffff (-1) leaves that id unchanged, as chown(2). */
  chown(path: string, uid: number, gid: number): Promise<number> {
    return this.mutate('chown', { op: 'chown', path }, () => {
      fs.lchownSync(this.under(path), uid, gid);
      return { result: 0, body: { op: 'chown', path, uid, gid } };
    });
  }

  /**
   * Sets access and modification times (ms since the epoch, with fractions; UTIME_NOW or
   * UTIME_OMIT for either). The record carries the times the entry then has, so the peer gets
   * the same ones (not its own "now").
   */
  utimens(path: string, atimeMs: number, mtimeMs: number): Promise<number> {
    return this.mutate('utimens', { op: 'utimens', path }, () => {
      const p = this.under(path);
      const now = Date.now();
      const old = atimeMs === UTIME_OMIT || mtimeMs === UTIME_OMIT ? fs.lstatSync(p) : undefined;
      const pick = (ms: number, kept: number | undefined): number => (ms === UTIME_NOW ? now : ms === UTIME_OMIT ? (kept as number) : ms);
      fs.lutimesSync(p, pick(atimeMs, old?.atimeMs) / 1000, pick(mtimeMs, old?.mtimeMs) / 1000);
      const st = fs.lstatSync(p);
      return { result: 0, body: { op: 'utimens', path, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs } };
    });
  }

  /**
   * fallocate(2): allocation (mode 0, which may grow the file, or KEEP_SIZE) is made locally and
   * replicated as a truncate to the size the file then has (the peer's new bytes are the same
   * zeros);
   * the other modes change content in ways no record carries yet: EOPNOTSUPP.
   */
  fallocate(path: string, fd: number, mode: number, offset: number, length: number): Promise<number> {
    if ((mode & ~FALLOC_FL_KEEP_SIZE) !== 0) return Promise.resolve(this.count('fallocate', EOPNOTSUPP));
    const end = offset + length;
    return this.mutate('fallocate', { op: 'truncate', path, size: end }, () => {
      const r = fuse3().fallocate(fd, mode, offset, length);
      if (r < 0) throw Object.assign(new Error('fallocate'), { errno: r });
      // The size it now has (unchanged after KEEP_SIZE: the peer's allocation is its own).
      return { result: 0, body: { op: 'truncate', path, size: fs.fstatSync(fd).size } };
    });
  }

  setxattr(path: string, name: string, value: Buffer, flags: number): Promise<number> {
    return this.mutate('setxattr', { op: 'setxattr', path }, () => {
      const r = fuse3().lsetxattr(this.under(path), name, value, flags);
      if (r < 0) throw Object.assign(new Error('lsetxattr'), { errno: r });
      return { result: 0, body: { op: 'setxattr', path, name, value: new Uint8Array(value), flags } };
    });
  }

  removexattr(path: string, name: string): Promise<number> {
    return this.mutate('removexattr', { op: 'removexattr', path }, () => {
      const r = fuse3().lremovexattr(this.under(path), name);
      if (r < 0) throw Object.assign(new Error('lremovexattr'), { errno: r });
      return { result: 0, body: { op: 'removexattr', path, name } };
    });
  }
}

/** Flags for opening the underlying file: O_APPEND is dropped (the kernel gives the offset of
 *  every write, and records carry that offset), so are the creation flags and O_DIRECT. */
function underlyingFlags(flags: number): number {
  return flags & ~(C.O_CREAT | C.O_EXCL | C.O_TRUNC | C.O_APPEND | C.O_NOCTTY | C.O_DIRECT);
}

function toStat(st: fs.Stats): StatLike {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, dev: st.dev, nlink: st.nlink, ino: st.ino,
    rdev: st.rdev, blksize: st.blksize, blocks: st.blocks, atime: st.atimeMs, mtime: st.mtimeMs, ctime: st.ctimeMs,
  };
}

/** Block counts as they are (statvfs fields are 64-bit in libfuse3); kept within u32 by bigger
 *  fragments (f_frsize) only for a file system of more than 2^32 blocks, so `df` shows the same. */
function toStatfs(s: fs.StatsFs): StatfsLike {
  let { blocks, bfree, bavail } = s;
  let frsize = s.bsize;
  while (blocks > 0xffffffff) {
    blocks = Math.floor(blocks / 2);
    bfree = Math.floor(bfree / 2);
    bavail = Math.floor(bavail / 2);
    frsize *= 2;
  }
  const files = Math.min(s.files, 0xffffffff);
  const ffree = Math.min(s.ffree, 0xffffffff);
  return { bsize: s.bsize, frsize, blocks, bfree, bavail, files, ffree, favail: ffree, fsid: 0, flag: 0, namemax: 255 };
}
