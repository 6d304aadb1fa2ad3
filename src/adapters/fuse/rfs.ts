/**
 * The rfs seam as the daemon sees it (DESIGN.md 4: the replicated file system of a module runs
 * in its own supervised child process, so FUSE load cannot stall heartbeats).
 *
 * Promises of every implementation:
 * - `mount(dir, mode)` resolves once `dir` is served in place in `mode`; a second mount on the
 *   same instance rejects with HAKIT_E_RFS_MOUNT.
 * - `setMode` applies to calls that arrive after it resolves; calls held by `blocked` are
 *   released (rw) or refused with EROFS (ro). Rejects with HAKIT_E_RFS when nothing is mounted.
 * - `unmount` resolves once the directory shows the underlying files again; idempotent.
 * - `stats` never changes anything.
 */
import type { RfsMode, RfsStats } from './passthrough.js';

export interface RfsStatus extends RfsStats {
  readonly mounted: boolean;
  readonly dir: string | null;
}

export interface Rfs {
  mount(dir: string, mode: RfsMode): Promise<void>;
  setMode(mode: RfsMode): Promise<void>;
  unmount(): Promise<{ lazy: boolean }>;
  stats(): Promise<RfsStatus>;
}

/** One line of the child's control protocol (stdin, JSON per line). */
export type RfsRequest =
  | { readonly id: number; readonly cmd: 'mount'; readonly dir: string; readonly mode: RfsMode }
  | { readonly id: number; readonly cmd: 'set-mode'; readonly mode: RfsMode }
  | { readonly id: number; readonly cmd: 'unmount' }
  | { readonly id: number; readonly cmd: 'stats' }
  /** Only with `--replicator recording`: the records seen so far (data as base64). */
  | { readonly id: number; readonly cmd: 'records' };

/** One line of the child's answers (stdout, JSON per line): one per request, same id. */
export type RfsReply =
  | { readonly id: number; readonly ok: true; readonly result?: unknown }
  | { readonly id: number; readonly ok: false; readonly error: { readonly code: string; readonly message: string } };
