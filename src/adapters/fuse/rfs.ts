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
import type { LinkReplicatorStats } from './link-replicator.js';
import type { RfsMode, RfsStats } from './passthrough.js';
import type { ReplicaReceiverStats } from './replica-receiver.js';
import type { VerifyDifference } from './verify.js';

/** What `verify` found: entries and file bytes compared, and where the replicas differ. */
export interface VerifyReport {
  readonly entries: number;
  readonly bytes: number;
  readonly differ: readonly VerifyDifference[];
}

export interface RfsStatus extends RfsStats {
  readonly mounted: boolean;
  readonly dir: string | null;
  /** A configured module rfs: both sides of its replication. */
  readonly replication?: {
    readonly primary: LinkReplicatorStats;
    readonly secondary: ReplicaReceiverStats;
    /** The last quarantine (null: none in this rfs's life). */
    readonly quarantine?: { readonly dir: string; readonly paths: number; readonly at: number } | null;
  };
}

export interface Rfs {
  mount(dir: string, mode: RfsMode): Promise<void>;
  setMode(mode: RfsMode): Promise<void>;
  unmount(): Promise<{ lazy: boolean }>;
  stats(): Promise<RfsStatus>;
}

/** What a module's rfs needs to know (the `configure` request). */
export interface RfsConfig {
  readonly module: string;
  readonly cluster: string;
  /** This node and its peer. */
  readonly node: string;
  readonly peer: string;
  /** The cluster key file (read by the child; the key never travels on the pipe). */
  readonly keyFile: string;
  readonly dirs: readonly { readonly path: string; readonly exclude: readonly string[] }[];
  /** Where this node listens for its primary's link, and where the peer listens. */
  readonly listen: { readonly address: string; readonly port: number };
  readonly peerAddress: { readonly address: string; readonly port: number };
  /** replication.timeout in ms. */
  readonly timeoutMs: number;
  /**
   * Self-fencing bound in ms (absent: no self-fencing). A child with a read-write mount that has
   * not heard from the daemon (a line, or the keepalive stamp the daemon writes every pulse:
   * RfsProcess.keepalive) for this long blocks every
   * mount by itself (writes held), reports `fenced` with its next line to the daemon, and stays
   * blocked until `unfence`, or fails the held writes at `mount-all ro|none`. A `mount-all rw`
   * while fenced stays blocked.
   */
  readonly fenceMs?: number;
  /** The module's change log file (absent: none kept, every resync is full). */
  readonly changeLog?: string;
  /** Zone size of the change log's marks (replication.zone_size; default 1 MiB). */
  readonly zoneBytes?: number;
  /** Cap of what a resync this node serves sends, bytes a second (replication.resync_bandwidth; absent: none). */
  readonly resyncBytesPerSec?: number;
  /** Where this node's changed paths are copied before a full resync overwrites them (absent: not kept). */
  readonly quarantineDir?: string;
}

/** Bytes of the keepalive stamp (fd 3 of the child): the daemon's CLOCK_MONOTONIC in ns, little-endian. */
export const STAMP_BYTES = 8;

/** Unsolicited lines of the child (stdout, no `id`). */
export type RfsEvent =
  /** The primary's link failed in sync mode: writes are held until `replicate alone`. */
  | { readonly event: 'replication-lost'; readonly detail: string }
  /** A sync record failed after the node let go of the primary role (EIO to the application):
   *  this copy has a change the peer never acknowledged. */
  | { readonly event: 'unacked-write'; readonly detail: string }
  /** Secondary: a resync ended (`generation`: the one it was made for, null if it never started). */
  | { readonly event: 'resync-done'; readonly ok: boolean; readonly detail: string; readonly generation: string | null }
  /** Primary: a resync this node served ended or was abandoned (for logs). */
  | { readonly event: 'resync-served'; readonly ok: boolean; readonly detail: string }
  /** Secondary: a record replicated outside a resync could not be applied here (e.g. ENOSPC); the link closes. */
  | { readonly event: 'apply-failed'; readonly detail: string }
  /** The child fenced itself (see RfsConfig.fenceMs); sent before the answer to the daemon's next request. */
  | { readonly event: 'fenced'; readonly detail: string }
  /** Before a full resync: this node's changed paths were copied to `dir` (quarantine.ts). */
  | { readonly event: 'quarantined'; readonly dir: string; readonly paths: number; readonly failed: readonly string[] }
  /**
   * A configured child's status, sent when it differs from the last one sent (checked every
   * second): `hakit status` never waits on the child, and the daemon never polls an idle one.
   */
  | { readonly event: 'stats'; readonly stats: RfsStatus };

/** One line of the child's control protocol (stdin, JSON per line). */
export type RfsRequest =
  | { readonly id: number; readonly cmd: 'configure'; readonly config: RfsConfig }
  | { readonly id: number; readonly cmd: 'mount-all'; readonly mode: RfsMode | 'none' }
  /** `resync` is incremental when `full` is false and the change log allows it (see LinkReplicator.startResync). */
  | { readonly id: number; readonly cmd: 'replicate'; readonly mode: 'sync' | 'alone' | 'resync'; readonly generation?: string; readonly full?: boolean }
  /** `distrust`: this copy may have lost writes under kept file times (Persisted.suspect): its
   *  answers to the resync's quick checks give no mtime, so every file is compared by blocks. */
  | { readonly id: number; readonly cmd: 'expect-sync'; readonly ms: number; readonly distrust?: boolean }
  | { readonly id: number; readonly cmd: 'stop-resync' }
  /**
   * Answers the paths (`/proc/<child pid>/fd/<fd>`) of the replicated dirs as opened before the
   * mounts, for the daemon's flush (RfsProcess.flush: `sync -f` of each, a syncfs of the file
   * system below the mount; `sync -f` on the mount itself reaches only FUSE, which has nothing
   * to write). The daemon forks `sync`, not the child: a fork write-protects every page of the
   * forking process, and the child's next writes to its heap (FUSE buffers, replication records)
   * each take a page fault again: with the flush in the child, the primary's rfs spent 140-200 ms
   * of CPU instead of 47-68 ms on the bench's incremental resync after a takeover's flush.
   */
  | { readonly id: number; readonly cmd: 'flush-paths' }
  /** `hakit verify` on the primary: compares every dir with the peer's copy (answers a VerifyReport). */
  | { readonly id: number; readonly cmd: 'verify' }
  /** The daemon is alive; answered at once. (The daemon's keepalive is a stamp, or without one an empty line: any line counts, an empty one is not answered.) */
  | { readonly id: number; readonly cmd: 'keepalive' }
  /** Lifts a self-fence: blocked mounts go back to rw (no-op when not fenced). */
  | { readonly id: number; readonly cmd: 'unfence' }
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

/**
 * A module's rfs as the daemon drives it (RfsProcess; the daemon supervises it). Every request
 * rejects with HAKIT_E_RFS when the child is gone; `exited` resolves when it is.
 */
export interface ModuleRfs {
  configure(config: RfsConfig): Promise<void>;
  mountAll(mode: RfsMode | 'none'): Promise<void>;
  replicate(mode: 'sync' | 'alone' | 'resync', generation?: string, full?: boolean): Promise<void>;
  expectSync(ms: number, distrust?: boolean): Promise<void>;
  stopResync(): Promise<void>;
  /** Writes out the file systems below the mounts (see RfsRequest `flush-paths`); resolves once done. */
  flush(): Promise<void>;
  /** Compares the replicas online (the primary's rfs, in sync mode); see verify.ts. */
  verify(): Promise<VerifyReport>;
  /** Tells the child the daemon is alive (every pulse); never rejects. */
  keepalive(): void;
  /** Lifts the child's self-fence (see RfsConfig.fenceMs). */
  unfence(): Promise<void>;
  stats(): Promise<RfsStatus>;
  onEvent(fn: (e: RfsEvent) => void): void;
  readonly exited: Promise<number | string>;
  readonly pid: number | undefined;
  /** Unmounts and exits (SIGTERM); resolves when gone. */
  stop(): Promise<number | string>;
}
