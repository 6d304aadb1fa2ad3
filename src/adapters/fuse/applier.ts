/**
 * The secondary's record applier (DESIGN.md 5 "Replicated directories"): applies the primary's
 * records, in seq order and one at a time, to the underlying tree of a replicated directory.
 *
 * Promises:
 * - Applying the same record sequence to two equal trees gives equal trees: content, size, mode,
 *   uid/gid, symlink targets, hard links, and mtime where the record gives it (a `utimens`; a
 *   `write` sets this node's own clock, as on the primary). Created entries get the record's
 *   mode and owner (chown first, then chmod: chown clears set-id bits).
 * - `apply` resolves once the record is applied (an `fsync` record: once the file is on disk).
 *   It rejects with HakitError('RFS', {dir, detail}) when the record cannot be applied: the stream
 *   is broken, the caller closes the link (the primary goes ALONE).
 * - Descriptors of files being written are cached (LRU, at most `maxOpenFiles`). Every change of
 *   the name space the applier makes (unlink, rmdir, rename, replacing an entry, removals of a
 *   full sync) first drops the cached descriptors of that path and of every path below it, so a
 *   write never goes through a descriptor whose path now names another file. Nothing else
 *   changes the tree (the secondary's mount is read-only for local users).
 * - `tolerant` mode (full sync: records of the copy and live records interleave, so a live record
 *   may name a path the copy has not reached or has not cleaned yet):
 *     - ENOENT/ENOTDIR on the target (or its parent) of write, truncate, chmod, chown, utimens,
 *       setxattr, removexattr, fsync, link, and of a create/mkdir/symlink/mknod whose parent is
 *       missing, is ignored: the copy brings that path later; so is a target of another kind
 *       than the record needs (ELOOP, EISDIR, ENXIO: a stale symlink, dir or FIFO where the
 *       primary has a file), which the copy replaces later;
 *     - unlink and rmdir make the path absent whatever is there (a dir where a file was, a
 *       non-empty dir: removed recursively);
 *     - rename with a missing source changes nothing (the copy brings the destination, or it has
 *       come already: an incremental resync replays renames, and the same rename may follow
 *       live; the destination is left as it is); a destination that
 *       does not fit (a file over a dir, a non-empty dir) is removed first; a destination whose
 *       parent is missing makes the source absent;
 *     - create/mkdir/symlink/link/mknod replace a conflicting existing entry (mkdir on an existing
 *       dir only sets its mode and owner; create on an existing regular file opens it, as on the
 *       primary).
 *   Outside tolerant mode any failure rejects.
 * - Full sync records: `sync-begin`/`sync-end` enter/leave tolerant mode; `sync-dir` makes the
 *   path a directory with the mode/owner and, after its last record (`more` false), removes every
 *   entry not named by its records; `sync-file` makes the path a regular file with a single link,
 *   all zeros (holes), of the given size, mode and owner (its content follows as writes);
 *   `sync-zones` (incremental resync) resizes the regular file already there and sets its mode
 *   and owner (its changed zones follow as writes), and is refused when the path is not one.
 *
 * Extended attributes: setxattr/removexattr use the binding's lsetxattr/lremovexattr
 * (native/fuse3), on the entry itself (never through a symlink), without the primary's
 * create/replace flag (the primary's call succeeded: the name is set whatever it was here).
 *
 * Special files: FIFOs and regular files only (Node has no mknod(2)): a device or socket record
 * is refused.
 */
import * as fs from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { HakitError } from '../../core/errors.js';
import { type Record, payloadBytes, unpackXattrs } from '../../core/replication/records.js';
import { type ProbeAnswer, probe } from './probe.js';
import { type Fingerprint, fingerprint } from './verify.js';
import { fuse3 } from './fuse3.js';

const C = fs.constants;
/** Flags of a cached write descriptor: never follows a symlink, never blocks on a FIFO. */
const WRITE_FLAGS = C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
/**
 * Bytes per write(2). A 1 MiB record is written in 128 KiB calls: on the test VM the kernel
 * copies 1 GiB into the page cache in ~1.0 s that way and ~2.1 s in 1 MiB calls (the copy of a
 * slice stays in the CPU cache).
 */
const WRITE_SLICE = 128 * 1024;

export interface ApplierOptions {
  /** The tree the records apply to (a directory path, e.g. /proc/self/fd/N). */
  readonly root: string;
  /** The tree's name in errors (the configured path; default root). */
  readonly name?: string;
  /** Bound of the descriptor cache (default 256). */
  readonly maxOpenFiles?: number;
}

export interface ApplierStats {
  /** Records applied (or, in tolerant mode, skipped as allowed) so far. */
  readonly applied: number;
  /** Descriptors in the cache now. */
  readonly openFiles: number;
  /** Bytes of write data and xattr values applied. */
  readonly bytes: number;
}

type Code = string | undefined;
const codeOf = (e: unknown): Code => (e as NodeJS.ErrnoException | null)?.code;
const isMissing = (e: unknown): boolean => codeOf(e) === 'ENOENT' || codeOf(e) === 'ENOTDIR';
/** Tolerant mode: the target is missing or not (yet) of the kind the record needs (a stale
 *  symlink, dir or FIFO where the primary has a file): the copy replaces it later. */
const NOT_THERE_YET = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'ENXIO']);
const isNotThereYet = (e: unknown): boolean => NOT_THERE_YET.has(codeOf(e) ?? '');

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Says (in the link's failure detail, which the primary reads) that an incremental resync cannot work here. */
export const LOG_MISMATCH = 'this copy does not match the primary\'s change log';

export class RecordApplier {
  /** Full sync in progress: see the header. Set by sync-begin/sync-end records, or directly. */
  tolerant = false;
  private readonly root: string;
  private readonly name: string;
  private readonly maxOpen: number;
  /** path -> descriptor; Map order is the LRU order (oldest first). */
  private readonly fds = new Map<string, number>();
  /** Names listed so far by the sync-dir records of one directory (more: true seen). */
  private listing: { path: string; names: Set<string> } | null = null;
  private applied = 0;
  private bytes = 0;

  constructor(opts: ApplierOptions) {
    this.root = opts.root.replace(/\/+$/, '');
    this.name = opts.name ?? this.root;
    this.maxOpen = Math.max(1, opts.maxOpenFiles ?? 256);
  }

  stats(): ApplierStats {
    return { applied: this.applied, openFiles: this.fds.size, bytes: this.bytes };
  }

  /** Closes every cached descriptor. Later records still apply (descriptors are opened again). */
  close(): void {
    for (const fd of this.fds.values()) closeQuietly(fd);
    this.fds.clear();
  }

  /**
   * Applies one record (see the header). Records must come in seq order, one at a time. A
   * `verify` or `sync-probe` record changes nothing and resolves with the answer to send back:
   * this copy's fingerprint of its path (verify.ts), or what it has there (probe.ts).
   */
  async apply(rec: Record): Promise<Fingerprint | ProbeAnswer | undefined> {
    if (rec.op === 'verify') {
      this.applied++;
      return fingerprint(this.root, rec.path, rec.offset, rec.length);
    }
    if (rec.op === 'sync-probe') {
      this.applied++;
      return probe(this.root, rec.path, rec.offset, rec.length, rec.block);
    }
    try {
      await this.applyOne(rec);
    } catch (e) {
      if (e instanceof HakitError) throw e;
      // System errors name the descriptor path (/proc/self/fd/N/...): say the configured one.
      const why = String((e as Error)?.message ?? e).split(this.root).join(this.name);
      throw new HakitError('REPLICA_APPLY', { dir: this.name, detail: `record ${rec.seq} (${rec.op} ${rec.path}): ${why}` }, { cause: e });
    }
    this.applied++;
    this.bytes += payloadBytes(rec);
    return undefined;
  }

  /** The path under the root (`/` is the root itself, named with a trailing slash so that a
   *  /proc/self/fd/N root is followed even by the no-follow calls). */
  private abs(path: string): string {
    return this.root + path;
  }

  /** Runs `fn`; in tolerant mode a missing target or parent, or a target of another kind than
   *  the record needs, is not an error. */
  private tolerate(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (this.tolerant && isNotThereYet(e)) return;
      throw e;
    }
  }

  private async applyOne(rec: Record): Promise<void> {
    if (this.listing !== null && (rec.op !== 'sync-dir' || rec.path !== this.listing.path)) {
      throw new Error(`the listing of ${this.listing.path} was not finished (more: true) before this record`);
    }
    const p = this.abs(rec.path);
    switch (rec.op) {
      case 'create': {
        this.tolerate(() => {
          if (this.tolerant) this.clearUnless(rec.path, 'file');
          // A create on the primary made a new file (FUSE calls create only for a name that is
          // not there). In a resync this copy may still hold a stale file of that name (deleted
          // on the primary while apart, the listing not sent yet): it starts empty too
          // (simulator finding 13). Outside a resync both copies lack the name: nothing to cut.
          const trunc = this.tolerant ? C.O_TRUNC : 0;
          const fd = fs.openSync(p, C.O_CREAT | C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK | trunc, rec.mode & 0o7777);
          try {
            setOwnerAndMode(fd, rec.uid, rec.gid, rec.mode);
          } catch (e) {
            closeQuietly(fd);
            throw e;
          }
          this.cache(rec.path, fd);
        });
        return;
      }
      case 'mknod': {
        const type = rec.mode & C.S_IFMT;
        if (type !== C.S_IFIFO && type !== C.S_IFREG && type !== 0) {
          throw new Error(`mknod of file type 0o${type.toString(8)} is not supported (FIFOs and regular files only)`);
        }
        if (this.tolerant) {
          try {
            this.clearUnless(rec.path, null);
          } catch (e) {
            if (isMissing(e)) return;
            throw e;
          }
        }
        try {
          if (type === C.S_IFIFO) {
            const r = fuse3().mknod(p, C.S_IFIFO | (rec.mode & 0o7777), 0);
            if (r < 0) throw Object.assign(new Error(`mknod ${rec.path}: ${getSystemErrorName(r)}`), { errno: r, code: getSystemErrorName(r) });
          } else fs.closeSync(fs.openSync(p, C.O_CREAT | C.O_EXCL | C.O_WRONLY, rec.mode & 0o7777));
        } catch (e) {
          if (this.tolerant && (isMissing(e) || /No such file/.test((e as Error).message))) return;
          throw e;
        }
        fs.lchownSync(p, rec.uid, rec.gid);
        fs.chmodSync(p, rec.mode & 0o7777);
        return;
      }
      case 'mkdir': {
        this.tolerate(() => {
          if (this.tolerant) {
            this.clearUnless(rec.path, 'dir');
            if (!exists(p)) fs.mkdirSync(p, { mode: rec.mode & 0o7777 });
          } else fs.mkdirSync(p, { mode: rec.mode & 0o7777 });
          fs.lchownSync(p, rec.uid, rec.gid);
          fs.chmodSync(p, rec.mode & 0o7777);
        });
        return;
      }
      case 'symlink': {
        this.tolerate(() => {
          if (this.tolerant) this.clearUnless(rec.path, null);
          fs.symlinkSync(rec.target, p);
          fs.lchownSync(p, rec.uid, rec.gid);
        });
        return;
      }
      case 'link': {
        this.tolerate(() => {
          if (this.tolerant) {
            fs.lstatSync(this.abs(rec.from)); // a missing source: the copy brings the destination later
            this.clearUnless(rec.path, null);
          }
          fs.linkSync(this.abs(rec.from), p);
        });
        return;
      }
      case 'write': {
        this.tolerate(() => {
          const fd = this.writeFd(rec.path);
          let done = 0;
          while (done < rec.data.length) {
            done += fs.writeSync(fd, rec.data, done, Math.min(WRITE_SLICE, rec.data.length - done), rec.offset + done);
          }
        });
        return;
      }
      case 'truncate':
        this.tolerate(() => fs.ftruncateSync(this.writeFd(rec.path), rec.size));
        return;
      case 'unlink':
        this.drop(rec.path);
        if (this.tolerant) this.tolerate(() => this.removeAll(rec.path));
        else fs.unlinkSync(p);
        return;
      case 'rmdir':
        this.drop(rec.path);
        if (this.tolerant) this.tolerate(() => this.removeAll(rec.path));
        else fs.rmdirSync(p);
        return;
      case 'rename':
        this.rename(rec.from, rec.path);
        return;
      case 'chmod':
        this.tolerate(() => {
          if (fs.lstatSync(p).isSymbolicLink()) throw Object.assign(new Error('chmod names a symlink (the primary never sends one)'), { code: 'ELOOP' });
          fs.chmodSync(p, rec.mode & 0o7777);
        });
        return;
      case 'chown':
        this.tolerate(() => fs.lchownSync(p, rec.uid, rec.gid));
        return;
      case 'utimens': {
        const now = Date.now();
        this.tolerate(() => fs.lutimesSync(p, (rec.atimeMs < 0 ? now : rec.atimeMs) / 1000, (rec.mtimeMs < 0 ? now : rec.mtimeMs) / 1000));
        return;
      }
      case 'setxattr':
      case 'removexattr': {
        if (this.tolerant) {
          try {
            fs.lstatSync(p);
          } catch (e) {
            if (isMissing(e)) return;
            throw e;
          }
        }
        const r = rec.op === 'setxattr'
          ? fuse3().lsetxattr(p, rec.name, Buffer.from(rec.value.buffer, rec.value.byteOffset, rec.value.length), 0)
          : fuse3().lremovexattr(p, rec.name);
        // The primary's call succeeded: failing here (e.g. ENODATA: the name is not on this
        // copy) means the copies differ, which breaks the stream like any other failed apply.
        if (r < 0) throw Object.assign(new Error(`${rec.op} ${rec.name}: errno ${-r}`), { errno: r });
        return;
      }
      case 'sync-xattrs':
        this.syncXattrs(p, rec.xattrs);
        return;
      case 'fsync':
        await this.fsync(rec.path, rec.datasync);
        return;
      case 'sync-begin':
        this.tolerant = true;
        return;
      case 'sync-end':
        this.tolerant = false;
        return;
      case 'sync-dir':
        this.syncDir(rec.path, rec.mode, rec.uid, rec.gid, rec.names, rec.more);
        return;
      case 'sync-file':
        this.syncFile(rec.path, rec.mode, rec.uid, rec.gid, rec.size);
        return;
      case 'sync-zones':
        this.syncZones(rec.path, rec.mode, rec.uid, rec.gid, rec.size);
        return;
    }
  }

  /** A cached write descriptor of `path` (opened, and the oldest one closed, when needed). */
  private writeFd(path: string): number {
    const fd = this.fds.get(path);
    if (fd !== undefined) {
      this.fds.delete(path);
      this.fds.set(path, fd);
      return fd;
    }
    const opened = fs.openSync(this.abs(path), WRITE_FLAGS);
    this.cache(path, opened);
    return opened;
  }

  private cache(path: string, fd: number): void {
    const old = this.fds.get(path);
    if (old !== undefined) {
      this.fds.delete(path);
      closeQuietly(old);
    }
    this.fds.set(path, fd);
    while (this.fds.size > this.maxOpen) {
      const [oldest, ofd] = this.fds.entries().next().value as [string, number];
      this.fds.delete(oldest);
      closeQuietly(ofd);
    }
  }

  /** Closes the cached descriptors of `path` and of every path below it. */
  private drop(path: string): void {
    if (this.fds.size === 0) return;
    const below = path === '/' ? '/' : path + '/';
    for (const [k, fd] of this.fds) {
      if (k === path || k.startsWith(below)) {
        this.fds.delete(k);
        closeQuietly(fd);
      }
    }
  }

  /** Removes `path` whatever it is (recursively). A missing path is fine; a missing parent throws. */
  private removeAll(path: string): void {
    this.drop(path);
    const p = this.abs(path);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return;
      throw e;
    }
    if (st.isDirectory()) fs.rmSync(p, { recursive: true, force: true });
    else fs.unlinkSync(p);
  }

  /**
   * Tolerant mode: removes what is at `path` unless it is of the `keep` kind (`file`: a regular
   * file; `dir`: a directory; null: nothing may be there). Throws ENOENT/ENOTDIR when the parent
   * is missing.
   */
  private clearUnless(path: string, keep: 'file' | 'dir' | null): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.abs(path));
    } catch (e) {
      if (codeOf(e) === 'ENOENT') {
        fs.lstatSync(this.abs(parentOf(path))); // throws when the parent is missing too
        return;
      }
      throw e;
    }
    if ((keep === 'file' && st.isFile()) || (keep === 'dir' && st.isDirectory())) return;
    this.removeAll(path);
  }

  private rename(from: string, to: string): void {
    this.drop(from);
    this.drop(to);
    const src = this.abs(from);
    const dst = this.abs(to);
    if (!this.tolerant) {
      fs.renameSync(src, dst);
      return;
    }
    let srcSt: fs.Stats;
    try {
      srcSt = fs.lstatSync(src);
    } catch (e) {
      if (!isMissing(e)) throw e;
      // Not here: never copied (the copy brings what the primary has at `to`), or renamed
      // already (a replayed rename followed by the same rename live). `to` stays as it is.
      return;
    }
    try {
      fs.lstatSync(this.abs(parentOf(to)));
    } catch (e) {
      if (!isMissing(e)) throw e;
      this.removeAll(from);
      return;
    }
    try {
      fs.renameSync(src, dst);
      return;
    } catch (e) {
      const c = codeOf(e);
      if (c !== 'EISDIR' && c !== 'ENOTDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST') throw e;
    }
    // The destination does not fit the source (a dir over a file, a non-empty dir, ...).
    if (srcSt.isDirectory() && dst.startsWith(src + '/')) throw new Error(`rename of ${from} into itself`);
    this.removeAll(to);
    fs.renameSync(src, dst);
  }

  private async fsync(path: string, datasync: boolean): Promise<void> {
    let fd = this.fds.get(path);
    let own = false;
    if (fd === undefined) {
      try {
        fd = fs.openSync(this.abs(path), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
        own = true;
      } catch (e) {
        if (this.tolerant && isNotThereYet(e)) return;
        throw e;
      }
    }
    const sync = datasync ? fs.fdatasync : fs.fsync;
    try {
      await new Promise<void>((res, rej) => sync(fd, (err) => (err ? rej(err) : res())));
    } finally {
      if (own) closeQuietly(fd);
    }
  }

  private syncDir(path: string, mode: number, uid: number, gid: number, names: readonly string[], more: boolean): void {
    if (this.listing === null) {
      const p = this.abs(path);
      if (path !== '/') {
        try {
          this.clearUnless(path, 'dir');
        } catch (e) {
          if (isMissing(e)) throw new Error(`sync-dir ${path}: its parent directory is missing (the walk sends parents first)`, { cause: e });
          throw e;
        }
        if (!exists(p)) fs.mkdirSync(p, { mode: mode & 0o7777 });
      }
      fs.lchownSync(p, uid, gid);
      fs.chmodSync(p, mode & 0o7777);
      this.listing = { path, names: new Set() };
    }
    for (const n of names) this.listing.names.add(n);
    if (more) return;
    const keep = this.listing.names;
    this.listing = null;
    const base = path === '/' ? '' : path;
    for (const name of fs.readdirSync(this.abs(path))) {
      if (!keep.has(name)) this.removeAll(`${base}/${name}`);
    }
  }

  private syncFile(path: string, mode: number, uid: number, gid: number, size: number): void {
    const p = this.abs(path);
    this.drop(path);
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if (codeOf(e) !== 'ENOENT') throw e;
    }
    // A stale file with other links would carry the copy into its other names: a fresh file.
    if (st !== null && (!st.isFile() || st.nlink > 1)) this.removeAll(path);
    const fd = fs.openSync(p, C.O_CREAT | C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK, mode & 0o7777);
    try {
      fs.ftruncateSync(fd, 0);
      fs.ftruncateSync(fd, size);
      setOwnerAndMode(fd, uid, gid, mode);
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    this.cache(path, fd);
  }

  /** Incremental resync: the same file, resized; its changed zones follow (see records.ts). */
  private syncZones(path: string, mode: number, uid: number, gid: number, size: number): void {
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(this.abs(path));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
    if (st === null || !st.isFile()) {
      throw new HakitError('REPLICA_APPLY', {
        dir: this.name,
        detail: `incremental resync: ${path} is ${st === null ? 'missing' : 'not a regular file'} here, so ${LOG_MISMATCH}; the next resync is full`,
      });
    }
    const fd = this.writeFd(path);
    fs.ftruncateSync(fd, size);
    setOwnerAndMode(fd, uid, gid, mode);
  }

  /** `sync-xattrs`: exactly the primary's extended attributes on the entry (a missing entry in
   *  tolerant mode: nothing, its listing removes it). */
  private syncXattrs(p: string, packed: Uint8Array): void {
    const want = unpackXattrs(packed);
    const fail = (what: string, r: number): never => { throw Object.assign(new Error(`sync-xattrs: ${what}: errno ${-r}`), { errno: r }); };
    const list = fuse3().llistxattr(p);
    if (typeof list === 'number') {
      if (list === -2 && this.tolerant) return; // ENOENT
      if (list !== -95 || want.length > 0) fail('list', list); // EOPNOTSUPP: none to remove
      return;
    }
    const keep = new Set(want.map(([n]) => n));
    for (const name of list.toString('latin1').split('\0')) {
      if (name === '' || keep.has(Buffer.from(name, 'latin1').toString('utf8'))) continue;
      const r = fuse3().lremovexattr(p, Buffer.from(name, 'latin1').toString('utf8'));
      if (r < 0 && r !== -61) fail(`remove ${name}`, r); // ENODATA: gone meanwhile
    }
    for (const [name, value] of want) {
      const r = fuse3().lsetxattr(p, name, Buffer.from(value.buffer, value.byteOffset, value.length), 0);
      if (r < 0) fail(`set ${name}`, r);
    }
  }
}

/**
 * Gives the open file `fd` this owner and these permission bits: chown first (it clears set-id
 * bits), then chmod; each only when the file does not have it already (every metadata change
 * costs a journal write: on the test VM, ~0.6 ms each, more than creating the file).
 */
function setOwnerAndMode(fd: number, uid: number, gid: number, mode: number): void {
  const st = fs.fstatSync(fd);
  if (st.uid !== uid || st.gid !== gid) fs.fchownSync(fd, uid, gid);
  if (st.uid !== uid || st.gid !== gid || (st.mode & 0o7777) !== (mode & 0o7777)) fs.fchmodSync(fd, mode & 0o7777);
}

function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}
