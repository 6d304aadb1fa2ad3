/**
 * The typed face of hakit-fuse3, our N-API binding to libfuse3 (native/fuse3/src/hakit_fuse3.c
 * tells how a call travels between the kernel, libfuse's threads and the Node main thread).
 * Loaded on first use, so that code which never mounts (the CLI, the simulator) does not need
 * the compiled addon.
 */
import { createRequire } from 'node:module';

/** How an op answers (mount.ts makes one per call from its token): `reply(result)` or
 *  `reply(0, value)`; result < 0 is -errno. */
export type Reply = (result: number, value?: unknown) => void;

/** An opaque handle of one mount. */
export type Fuse3Handle = object & { readonly __fuse3: unique symbol };

export interface Fuse3 {
  /**
   * Mounts `mountpoint` (libfuse3's `fuse_new` + `fuse_mount`, then `fuse_loop_mt` on a thread of
   * its own); `ops` maps op names to functions (see fuseOps in mount.ts for their arguments),
   * each called with the call's token last (answer with `reply`). `root` (the underlying
   * directory as /proc/self/fd/N, shorter than 64 bytes): getxattr and listxattr are read from
   * it on libfuse's thread, not asked of `ops` (the kernel asks for security.capability before
   * every write).
   * `onEvent('ready')` once the kernel's handshake is answered, `onEvent('exit', code)` once the
   * session ended (after an unmount, or `exit`) and every call was answered. Throws when the
   * options are refused or the mount fails.
   */
  mount(mountpoint: string, args: readonly string[], ops: object, onEvent: (ev: 'ready' | 'exit', code: number) => void, root: string): Fuse3Handle;
  /** Answers the call `token` (every op gets its token last): result < 0 is -errno; a second
   *  answer to the same call is ignored. */
  reply(token: number, result: number, value?: unknown): void;
  /** Ends the session of a mount (needed after a lazy unmount of a busy mount). */
  exit(handle: Fuse3Handle): void;
  /** Synchronous xattr calls on the entry itself (never through a symlink): a Buffer / 0, or -errno. */
  lgetxattr(path: string, name: string): Buffer | number;
  llistxattr(path: string): Buffer | number;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): number;
  lremovexattr(path: string, name: string): number;
  /** fallocate(2) on a descriptor: 0 or -errno. */
  fallocate(fd: number, mode: number, offset: number, length: number): number;
  /** renameat2(2) with flags (RENAME_NOREPLACE = 1): 0 or -errno. */
  renameat2(from: string, to: string, flags: number): number;
  /** mknodat(2) at the cwd (a FIFO: S_IFIFO | permissions, dev 0): 0 or -errno. Not umasked in the rfs (umask 0). */
  mknod(path: string, mode: number, dev: number): number;
  readonly MAX_WRITE: number;
}

let loaded: Fuse3 | undefined;

/** The binding (throws HakitError-friendly text when the addon is not built: run scripts/setup.sh). */
export function fuse3(): Fuse3 {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url);
    try {
      loaded = require('hakit-fuse3') as Fuse3;
    } catch (e) {
      throw new Error(`the libfuse3 binding (native/fuse3) is not built: run 'bash scripts/setup.sh' (${(e as Error).message})`, { cause: e });
    }
  }
  return loaded;
}
