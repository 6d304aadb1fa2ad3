/**
 * Mounting a PassthroughFs in place over its own directory with fuse-native 2.2.6 (libfuse2)
 * (DESIGN.md 5 and 7 "FUSE").
 *
 * `mountInPlace(dir, ...)` opens `dir` (O_RDONLY|O_DIRECTORY) first, then mounts the FUSE file
 * system over the same path: the application keeps its paths and sees the mount, the rfs reaches
 * the files underneath through `/proc/self/fd/<fd>/...`. It resolves once the kernel finished the
 * FUSE handshake (the mount serves calls), rejects with HAKIT_E_RFS_MOUNT otherwise.
 *
 * Mount options: allow_other,default_permissions (owners and permissions as on a local
 * directory, checked by the kernel), nonempty (libfuse2 refuses a non-empty mount point
 * without it), big_writes,max_write=131072 (else writes come 4 KiB at a time), use_ino (inode
 * numbers of the underlying files, so hard links look like hard links), fsname=hakit-rfs and
 * subtype=hakit (the mount shows as type `fuse.hakit`: `recoverStaleMount` looks for it).
 * fuse-native's 15 s reply timeout is off: a call waits as long as replication (or `blocked`
 * mode) makes it wait.
 */
import * as fs from 'node:fs';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import Fuse from 'fuse-native';
import { HakitError } from '../../core/errors.js';
import type { PassthroughFs, StatLike, StatfsLike } from './passthrough.js';

export const MOUNT_OPTIONS = [
  'allow_other', 'default_permissions', 'nonempty', 'big_writes', 'max_write=131072', 'use_ino',
  'fsname=hakit-rfs', 'subtype=hakit',
] as const;
/** The file system type of an rfs mount in /proc/self/mountinfo. */
export const RFS_FSTYPE = 'fuse.hakit';

const require = createRequire(import.meta.url);
interface Binding {
  sizeof_fuse_thread_t: number;
  fuse_native_mount(mnt: string, opts: string, thread: Buffer, ctx: object, malloc: unknown, handlers: unknown, implemented: Uint32Array): void;
  fuse_native_unmount(mnt: string, thread: Buffer): void;
}
// The same native module instance fuse-native loaded (require caches it by path).
const binding = (require('node-gyp-build') as (dir: string) => Binding)(dirname(require.resolve('fuse-native/package.json')));

interface FuseInternals {
  _thread: Buffer | null;
  _openCallback: ((err: Error | null) => void) | null;
  _malloc: unknown;
  _handlers: unknown;
  _getImplementedArray(): Uint32Array;
}

/**
 * fuse-native with our option string and without its "mount point in use" check (it refuses a
 * directory that is itself a mount point, e.g. a data disk mounted at /srv/app/data — exactly
 * what we mount over).
 */
class InPlaceFuse extends Fuse {
  _fuseOptions(): string {
    return '-o' + MOUNT_OPTIONS.join(',');
  }

  _open(cb: (err: Error | null) => void): void {
    const self = this as unknown as FuseInternals;
    self._thread = Buffer.alloc(binding.sizeof_fuse_thread_t);
    self._openCallback = cb;
    try {
      binding.fuse_native_mount(this.mnt, this._fuseOptions(), self._thread, this, self._malloc, self._handlers, self._getImplementedArray());
    } catch (err) {
      self._openCallback = null;
      cb(err as Error);
    }
  }

  get thread(): Buffer | null {
    return (this as unknown as FuseInternals)._thread;
  }
}

type Cb = (...args: unknown[]) => void;

/** fuse-native's ops object for a PassthroughFs: results are passed on as they are. */
function fuseOps(pfs: PassthroughFs): object {
  const reply = (cb: Cb) => (r: number) => cb(r);
  const replyValue = <T>(cb: Cb) => (r: number | T) => (typeof r === 'number' ? cb(r) : cb(0, r));
  return {
    getattr: (path: string, cb: Cb) => void pfs.getattr(path).then(replyValue<StatLike>(cb)),
    readdir: (path: string, cb: Cb) => void pfs.readdir(path).then(replyValue<string[]>(cb)),
    readlink: (path: string, cb: Cb) => void pfs.readlink(path).then(replyValue<string>(cb)),
    access: (path: string, mode: number, cb: Cb) => void pfs.access(path, mode).then(reply(cb)),
    statfs: (_path: string, cb: Cb) => void pfs.statfs().then(replyValue<StatfsLike>(cb)),
    open: (path: string, flags: number, cb: Cb) => void pfs.open(path, flags).then((r) => (r < 0 ? cb(r) : cb(0, r))),
    create: (path: string, mode: number, cb: Cb) => void pfs.create(path, mode).then((r) => (r < 0 ? cb(r) : cb(0, r))),
    read: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => void pfs.read(fd, buf, len, pos).then(reply(cb)),
    write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => void pfs.write(p, fd, buf, len, pos).then(reply(cb)),
    release: (_p: string, fd: number, cb: Cb) => void pfs.release(fd).then(reply(cb)),
    flush: (_p: string, _fd: number, cb: Cb) => cb(0),
    // fuse-native passes (path, datasync, fd), not the order its README shows (DESIGN.md 7).
    fsync: (p: string, datasync: number, fd: number, cb: Cb) => void pfs.fsync(p, fd, datasync !== 0).then(reply(cb)),
    fsyncdir: (p: string, datasync: number, _fd: number, cb: Cb) => void pfs.fsyncdir(p, datasync !== 0).then(reply(cb)),
    truncate: (p: string, size: number, cb: Cb) => void pfs.truncate(p, size).then(reply(cb)),
    ftruncate: (p: string, fd: number, size: number, cb: Cb) => void pfs.ftruncate(p, fd, size).then(reply(cb)),
    mkdir: (p: string, mode: number, cb: Cb) => void pfs.mkdir(p, mode).then(reply(cb)),
    mknod: (p: string, mode: number, dev: number, cb: Cb) => void pfs.mknod(p, mode, dev).then(reply(cb)),
    // fuse-native passes (target, new link path).
    symlink: (target: string, p: string, cb: Cb) => void pfs.symlink(target, p).then(reply(cb)),
    link: (from: string, p: string, cb: Cb) => void pfs.link(from, p).then(reply(cb)),
    unlink: (p: string, cb: Cb) => void pfs.unlink(p).then(reply(cb)),
    rmdir: (p: string, cb: Cb) => void pfs.rmdir(p).then(reply(cb)),
    rename: (from: string, p: string, cb: Cb) => void pfs.rename(from, p).then(reply(cb)),
    chmod: (p: string, mode: number, cb: Cb) => void pfs.chmod(p, mode).then(reply(cb)),
    chown: (p: string, uid: number, gid: number, cb: Cb) => void pfs.chown(p, uid, gid).then(reply(cb)),
    utimens: (p: string, atime: number, mtime: number, cb: Cb) => void pfs.utimens(p, atime, mtime).then(reply(cb)),
  };
}

export interface InPlaceMount {
  readonly dir: string;
  /** Descriptor of the underlying directory (stays open while mounted). */
  readonly rootFd: number;
  /**
   * Unmounts: `fusermount -u`, or lazily (`-uz`) when the mount is busy; then closes the root
   * descriptor. Resolves `{ lazy }` telling which one it took.
   */
  unmount(): Promise<{ lazy: boolean }>;
}

/**
 * Opens `dir`, builds the file system with `makeFs(rootFd)` and mounts it in place. The
 * returned mount is live (the FUSE handshake is done).
 */
export async function mountInPlace(dir: string, makeFs: (rootFd: number) => PassthroughFs): Promise<InPlaceMount> {
  let rootFd: number;
  try {
    rootFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw new HakitError('RFS_MOUNT', { dir, detail: (e as Error).message }, { cause: e });
  }
  const pfs = makeFs(rootFd);
  const fuse = new InPlaceFuse(dir, fuseOps(pfs), { timeout: false });
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (e) {
    fs.closeSync(rootFd);
    throw new HakitError('RFS_MOUNT', { dir, detail: (e as Error).message }, { cause: e });
  }
  let unmounted: Promise<{ lazy: boolean }> | undefined;
  return {
    dir,
    rootFd,
    unmount: () => {
      unmounted ??= (async () => {
        let lazy = false;
        if ((await fusermount(['-u', dir])) !== 0) {
          lazy = true;
          const code = await fusermount(['-uz', dir]);
          if (code !== 0) throw new HakitError('RFS_MOUNT', { dir, detail: `fusermount -uz exited with ${code}` });
        }
        const thread = fuse.thread;
        if (thread !== null) binding.fuse_native_unmount(dir, thread);
        fs.closeSync(rootFd);
        return { lazy };
      })();
      return unmounted;
    },
  };
}

/** Runs fusermount with `args`; resolves its exit status (127 when it cannot be started). */
export function fusermount(args: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    execFile('fusermount', [...args], { timeout: 10_000 }, (err) => {
      if (err === null) resolve(0);
      else resolve(typeof err.code === 'number' ? err.code : 127);
    });
  });
}
