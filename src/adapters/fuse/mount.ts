/**
 * Mounting a PassthroughFs in place over its own directory with hakit-fuse3, our N-API binding
 * to libfuse3 (native/fuse3; DESIGN.md 5 and 7 "FUSE").
 *
 * `mountInPlace(dir, ...)` opens `dir` (O_RDONLY|O_DIRECTORY) first, then mounts the FUSE file
 * system over the same path: the application keeps its paths and sees the mount, the rfs reaches
 * the files underneath through `/proc/self/fd/<fd>/...`. It resolves once the kernel finished the
 * FUSE handshake (the mount serves calls), rejects with HAKIT_E_RFS_MOUNT otherwise.
 *
 * Mount options: allow_other,default_permissions (owners and permissions as on a local
 * directory, checked by the kernel), fsname=hakit-rfs and subtype=hakit (the mount shows as type
 * `fuse.hakit`: `recoverStaleMount` looks for it). The binding itself asks for writes of up to
 * 1 MiB per call, inode numbers of the underlying files (use_ino: hard links look like hard
 * links) and no writeback cache (a write returns only once the rfs answered it: promise 2).
 * A call waits as long as replication (or `blocked` mode) makes it wait: no reply timeout.
 */
import * as fs from 'node:fs';
import { execFile } from 'node:child_process';
import { HakitError } from '../../core/errors.js';
import { fuse3, type Fuse3Handle, type Reply } from './fuse3.js';
import type { PassthroughFs, StatLike, StatfsLike } from './passthrough.js';

export const MOUNT_OPTIONS = ['allow_other', 'default_permissions', 'fsname=hakit-rfs', 'subtype=hakit'] as const;
/** The file system type of an rfs mount in /proc/self/mountinfo. */
export const RFS_FSTYPE = 'fuse.hakit';

/**
 * The binding's ops object for a PassthroughFs. The binding passes a call's token last; each op
 * here gets a `Reply` for it instead (a plain closure: cheap to make per call) and passes the
 * results on as they are.
 */
function fuseOps(pfs: PassthroughFs): object {
  const binding = fuse3();
  const ops = passthroughOps(pfs) as { [name: string]: (...args: unknown[]) => void };
  const out: { [name: string]: (...args: unknown[]) => void } = {};
  for (const [name, op] of Object.entries(ops)) {
    out[name] = (...args: unknown[]) => {
      const token = args.pop() as number;
      op(...args, (result: number, value?: unknown) => binding.reply(token, result, value));
    };
  }
  return out;
}

/** The ops of a PassthroughFs with a `Reply` last (see fuseOps). */
function passthroughOps(pfs: PassthroughFs): object {
  const reply = (cb: Reply) => (r: number) => cb(r);
  const replyValue = <T>(cb: Reply) => (r: number | T) => (typeof r === 'number' ? cb(r) : cb(0, r));
  const replyFd = (cb: Reply) => (r: number) => (r < 0 ? cb(r) : cb(0, r));
  return {
    getattr: (path: string, cb: Reply) => void pfs.getattr(path).then(replyValue<StatLike>(cb)),
    fgetattr: (_p: string, fd: number, cb: Reply) => void pfs.fgetattr(fd).then(replyValue<StatLike>(cb)),
    readdir: (path: string, cb: Reply) => void pfs.readdir(path).then(replyValue<string[]>(cb)),
    readlink: (path: string, cb: Reply) => void pfs.readlink(path).then(replyValue<string>(cb)),
    access: (path: string, mode: number, cb: Reply) => void pfs.access(path, mode).then(reply(cb)),
    statfs: (_path: string, cb: Reply) => void pfs.statfs().then(replyValue<StatfsLike>(cb)),
    open: (path: string, flags: number, cb: Reply) => void pfs.open(path, flags).then(replyFd(cb)),
    create: (path: string, mode: number, uid: number, gid: number, _flags: number, cb: Reply) =>
      void pfs.create(path, mode, { uid, gid }).then(replyFd(cb)),
    read: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Reply) => void pfs.read(fd, buf, len, pos).then(reply(cb)),
    write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Reply) => void pfs.write(p, fd, buf, len, pos).then(reply(cb)),
    release: (_p: string, fd: number, cb: Reply) => void pfs.release(fd).then(reply(cb)),
    fsync: (p: string, datasync: number, fd: number, cb: Reply) => void pfs.fsync(p, fd, datasync !== 0).then(reply(cb)),
    fsyncdir: (p: string, datasync: number, cb: Reply) => void pfs.fsyncdir(p, datasync !== 0).then(reply(cb)),
    truncate: (p: string, size: number, cb: Reply) => void pfs.truncate(p, size).then(reply(cb)),
    ftruncate: (p: string, fd: number, size: number, cb: Reply) => void pfs.ftruncate(p, fd, size).then(reply(cb)),
    fallocate: (p: string, fd: number, mode: number, offset: number, length: number, cb: Reply) =>
      void pfs.fallocate(p, fd, mode, offset, length).then(reply(cb)),
    mkdir: (p: string, mode: number, uid: number, gid: number, cb: Reply) => void pfs.mkdir(p, mode, { uid, gid }).then(reply(cb)),
    mknod: (p: string, mode: number, dev: number, uid: number, gid: number, cb: Reply) =>
      void pfs.mknod(p, mode, dev, { uid, gid }).then(reply(cb)),
    symlink: (target: string, p: string, uid: number, gid: number, cb: Reply) => void pfs.symlink(target, p, { uid, gid }).then(reply(cb)),
    link: (from: string, p: string, cb: Reply) => void pfs.link(from, p).then(reply(cb)),
    unlink: (p: string, cb: Reply) => void pfs.unlink(p).then(reply(cb)),
    rmdir: (p: string, cb: Reply) => void pfs.rmdir(p).then(reply(cb)),
    rename: (from: string, p: string, flags: number, cb: Reply) => void pfs.rename(from, p, flags).then(reply(cb)),
    chmod: (p: string, mode: number, cb: Reply) => void pfs.chmod(p, mode).then(reply(cb)),
    chown: (p: string, uid: number, gid: number, cb: Reply) => void pfs.chown(p, uid, gid).then(reply(cb)),
    utimens: (p: string, atime: number, mtime: number, cb: Reply) => void pfs.utimens(p, atime, mtime).then(reply(cb)),
    setxattr: (p: string, name: string, value: Buffer, flags: number, cb: Reply) => void pfs.setxattr(p, name, value, flags).then(reply(cb)),
    removexattr: (p: string, name: string, cb: Reply) => void pfs.removexattr(p, name).then(reply(cb)),
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
  let handle: Fuse3Handle;
  let ready!: () => void;
  let exited!: () => void;
  const readyP = new Promise<void>((res) => (ready = res));
  const exitP = new Promise<void>((res) => (exited = res));
  try {
    // getxattr/listxattr are served by the binding from the directory underneath (pfs.under('')).
    handle = fuse3().mount(dir, ['-o', MOUNT_OPTIONS.join(',')], fuseOps(pfs), (ev) => (ev === 'ready' ? ready() : exited()), pfs.under(''));
  } catch (e) {
    fs.closeSync(rootFd);
    throw new HakitError('RFS_MOUNT', { dir, detail: (e as Error).message }, { cause: e });
  }
  // The kernel's INIT is answered by the loop thread; a mount that ends first failed.
  const first = await Promise.race([readyP.then(() => 'ready'), exitP.then(() => 'exit')]);
  if (first !== 'ready') {
    fs.closeSync(rootFd);
    throw new HakitError('RFS_MOUNT', { dir, detail: 'the FUSE session ended before the kernel handshake' });
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
          // A busy mount lives on, detached, until its users close it: end the session now
          // (their calls then fail with ENOTCONN), as a plain unmount does.
          fuse3().exit(handle);
        }
        await exitP;
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
