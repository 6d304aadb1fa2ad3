/**
 * The mirror state machine's contract with the daemon (DESIGN.md 4, 5; STYLE.md 1, 2).
 *
 *   const { state, actions } = step(state, event, params)
 *
 * `step` is pure and synchronous: no I/O, no timers, no clock reading. Time arrives in every
 * event as `now` (monotonic milliseconds). Randomness arrives once, as `idSeed` in `init`, and new
 * generation ids are `${idSeed}.${counter}`.
 *
 * The daemon (src/daemon) executes the returned actions in order, one step's actions after the
 * previous step's, and feeds the results back as events (`script-done`, `vip-added`/`vip-failed`). Scripts
 * never run in the timing path: `step` returns at once, the executor runs the script and later
 * delivers `script-done`. Heartbeats are sent by the daemon every `pulseMs` with `viewOf(state)`,
 * plus at once when an action asks for it (`send-heartbeat`).
 */
import type { CheckerAction } from '../config/types.js';

export type MirrorStateName = 'STOP' | 'WAIT' | 'ALONE' | 'PRIM' | 'SECOND';
export type ScriptName = 'prestart' | 'start_prim' | 'stop_prim' | 'start_second' | 'stop_second' | 'start_both' | 'stop_both' | 'poststop';
export type Role = 'prim' | 'second';

/**
 * Data generation (DESIGN.md 5, as DRBD's generation identifiers). `current` changes when a node
 * starts writing without its peer (goes ALONE) or when an admin forces it; the previous id goes
 * to the front of `history` (newest first, at most 32 kept).
 */
export interface Generation {
  readonly current: string;
  readonly history: readonly string[];
}

/** What the node stores durably per module (atomic write + fsync before the action that needs it). */
export interface Persisted {
  readonly generation: Generation;
  /** False when this node's copy is known to be behind or torn (resync interrupted, peer went on alone). */
  readonly upToDate: boolean;
  /** The admin wants the module running: set by `start`, cleared by `stop`; a daemon restart resumes it. */
  readonly enabled: boolean;
  /** `failover on|off` at runtime (initially the config's `failover`). */
  readonly failover: boolean;
  /** The last node known to be primary (for `default_primary: last`), null if never. */
  readonly lastPrimary: string | null;
  /** Counter for new generation ids. */
  readonly idCounter: number;
  /**
   * This copy may hold writes the peer never acknowledged: set (with replication) before a
   * primary mounts read-write, cleared when it releases with nothing held, and by a completed
   * resync. A daemon killed while primary, or a primary demoted with held calls (applied here,
   * failed to the application), keeps it: such a copy is never "in sync" with a peer of the same
   * generation (a resync follows). Absent in files of older versions: false.
   */
  readonly unacked?: boolean;
  /**
   * This copy may have lost writes it had applied (and, as a SECOND, acknowledged): its host
   * restarted while the module was not cleanly stopped, so what was in the page cache only is
   * gone, possibly under file times that were kept. Set (with `unacked`) by the daemon at start;
   * cleared by a completed resync, which compares every block (no size/mtime quick check).
   */
  readonly suspect?: boolean;
  /**
   * This node was PRIM when it last persisted as primary: its peer, an up-to-date SECOND of its
   * generation, applied every write it acknowledged. Set with the PRIM role and when it serves a
   * resync (which ends in synchronous replication), cleared by a new generation (ALONE). After a host crash (`suspect`) with it set, the peer may hold writes this
   * copy lost: the node does not start alone on a silent peer (it waits `suspect-copy`, as DRBD
   * waits for its peer after a crash of a connected primary). Absent in older files: false.
   */
  readonly peerSynced?: boolean;
  /** Daemon-owned: the host boot id when this file was written, and whether the module was then
   *  stopped with its replicated dirs flushed (how the daemon tells a host crash). */
  readonly bootId?: string;
  readonly cleanStop?: boolean;
  /**
   * Daemon-owned: this copy may hold, in the page cache only, changes its change log does not
   * name (records received as a SECOND, writes of a PRIM in sync mode, which a resync it serves
   * ends in). Set before either can
   * happen; cleared once the dirs are flushed in `alone` mode (everything from then on is
   * marked before it is written) or at a clean stop. After a host crash with it set (or absent),
   * the change log is made incomplete: the crash may have rolled back what no mark names, so
   * the next resync this node serves is a full one (simulator finding 12).
   */
  readonly unlogged?: boolean;
}

/** What a node tells its peer in every heartbeat (same shape as the UDP codec's HeartbeatView). */
export interface PeerView {
  readonly state: string;
  readonly ready: boolean;
  readonly reason: string | null;
  readonly generation: Generation;
  readonly upToDate: boolean;
  /** True in the heartbeats a node sends while it stops cleanly (or gives up the primary role on swap). */
  readonly stopping: boolean;
  /** Requests to the peer, repeated in every heartbeat until the peer's state answers them. */
  readonly msg?: unknown;
}

/** Fixed for the life of a module runtime (from the config). */
export interface MirrorParams {
  readonly module: string;
  readonly node: string;
  readonly peer: string;
  /** A node name, `last`, or undefined (newest data, then node name). */
  readonly defaultPrimary: string | undefined;
  /** Initial value of Persisted.failover. */
  readonly failover: boolean;
  readonly pulseMs: number;
  /** The peer is lost after this much silence on every heartbeat network. */
  readonly heartbeatTimeoutMs: number;
  /** Heartbeat networks of the module; silence on some (not all) raises a warning only. */
  readonly networks: readonly string[];
  /** After `count` restarts/stopstarts within `windowMs` the module goes to STOP. */
  readonly maxloop: { readonly count: number; readonly windowMs: number };
  /** False until the module has replicated dirs: such a module is always in sync. */
  readonly hasReplication: boolean;
  /** The module's `splitbrain` checker (DESIGN.md 5 "Split brain"); absent: none configured. */
  readonly splitBrain?: SplitBrainParams;
}

/**
 * Split-brain protection of a module (machine.ts, "Split brain"). Times in ms.
 *
 * Ping witnesses (`witnesses`): the runtime pings them every checker interval (each run bounded
 * by the checker timeout) and reports each change as a `witness` event. `graceMs` is the
 * checker's interval + timeout + the heartbeat pulse: a secondary takes over a silent peer only
 * after heartbeatTimeoutMs + graceMs of silence, while a primary that is cut off has blocked its
 * writes by heartbeatTimeoutMs, or interval + timeout after the cut, whichever is later: strictly
 * before (the bound is asserted in test/unit/mirror-splitbrain.test.ts).
 *
 * Arbitrator (`arbitrator`): a primary holds the module's lease of `hakit witness` (actions
 * `lease`, answered by `lease` events) and demotes at the lease's demote deadline
 * (src/core/witness/lease.ts) when its peer is silent; a secondary takes over only on a grant.
 */
export interface SplitBrainParams {
  readonly witnesses: boolean;
  readonly graceMs: number;
  readonly arbitrator: boolean;
}

export type MirrorCommand =
  | { readonly cmd: 'start' }
  | { readonly cmd: 'stop' }
  | { readonly cmd: 'restart' }
  | { readonly cmd: 'stopstart' }
  | { readonly cmd: 'swap' }
  | { readonly cmd: 'prim' }
  | { readonly cmd: 'second'; readonly fullsync?: boolean }
  | { readonly cmd: 'failover'; readonly on: boolean };

export type MirrorEvent =
  /** First event of a runtime: what the store held (null on first start) and a fresh random seed. */
  | { readonly type: 'init'; readonly now: number; readonly persisted: Persisted | null; readonly idSeed: string }
  /** Sent every pulse, and at the exact moment the peer would become silent; drives every timeout of the core. */
  | { readonly type: 'tick'; readonly now: number }
  /** An authenticated, fresh heartbeat of the peer on one network. */
  | { readonly type: 'heartbeat'; readonly now: number; readonly network: string; readonly view: PeerView }
  | { readonly type: 'command'; readonly now: number; readonly command: MirrorCommand }
  /** A script asked for by `run-script` ended (ok = exit 0; a script that does not exist is ok). */
  | { readonly type: 'script-done'; readonly now: number; readonly script: ScriptName; readonly ok: boolean; readonly detail: string }
  /** Adding the VIP failed (another host answers for it, or the interface is missing). */
  | { readonly type: 'vip-failed'; readonly now: number; readonly detail: string }
  /** Every VIP of the module was added and announced (the answer to a successful `vip add`). */
  | { readonly type: 'vip-added'; readonly now: number }
  /** A checker changed state (after rise/fall). `action` is what the checker asks for while down. */
  | { readonly type: 'checker'; readonly now: number; readonly name: string; readonly up: boolean; readonly action: CheckerAction }
  /** The daemon is shutting down: stop cleanly but keep `enabled` as it is. */
  | { readonly type: 'shutdown'; readonly now: number }
  /**
   * A resync asked for by `start-resync` ended (added for the replication issue; a module without
   * replication never sends it). ok: this node now holds the peer's current generation.
   */
  | { readonly type: 'resync-done'; readonly now: number; readonly ok: boolean; readonly detail: string; readonly generation?: string }
  /**
   * The primary's replication link failed (no ack within replication.timeout, or the peer closed
   * it) while records were sent synchronously. The rfs now HOLDS every mutating call (nothing is
   * acknowledged to the application) until the core answers with `replicate alone`, which it does
   * only once the peer is known not to take over on its copy (see machine.ts, "replication").
   */
  | { readonly type: 'replication-lost'; readonly now: number; readonly detail: string }
  /**
   * A write this node applied as primary failed (EIO to the application) after it let go: the
   * peer never acknowledged it, so this copy has a change the peer may lack. It is marked
   * (Persisted.unacked) even if the release already cleared the mark.
   */
  | { readonly type: 'unacked-write'; readonly now: number; readonly detail: string }
  /**
   * The replicated file system failed on this node (its process died, a mount failed): a primary
   * releases (reason `rfs-failed`, held like `vip-conflict`) so that the peer takes over.
   */
  | { readonly type: 'rfs-failed'; readonly now: number; readonly detail: string }
  /** Ping witnesses: at least one witness answers (true) or none does (false); sent on every change. */
  | { readonly type: 'witness'; readonly now: number; readonly reachable: boolean }
  /**
   * The answer to `lease acquire`: granted (`sentAtMs`: when the granted request left, this
   * node's clock; `leaseMs`: the length granted), refused (`holder` holds it; null: the witness
   * is in its quiet period after a start) or no answer (`error`: the witness is unreachable).
   */
  | { readonly type: 'lease'; readonly now: number; readonly granted: true; readonly sentAtMs: number; readonly leaseMs: number }
  | { readonly type: 'lease'; readonly now: number; readonly granted: false; readonly holder: string | null; readonly error?: string }
  /**
   * The rfs child blocked every mount by itself (self-fencing) because it did not hear the daemon
   * for its fencing bound, or the daemon found that it stalled that long (its timers were late).
   * Writes stay held until the core answers `unfence` (or releases: held writes then fail). The
   * peer's silence during the stall does not count: it gets a heartbeat timeout from this event.
   */
  | { readonly type: 'fenced'; readonly now: number; readonly detail: string }
  /**
   * The answer to `flush` number `seq`: what the page cache held of the replicated dirs when it
   * was asked is on disk (ok), or the flush failed (detail).
   */
  | { readonly type: 'flushed'; readonly now: number; readonly seq: number; readonly ok: boolean; readonly detail: string };

export type MirrorAction =
  /** Store durably before executing the next action. */
  | { readonly type: 'persist'; readonly persisted: Persisted }
  /** Run a script out of the timing path with `current-state next-state action` as arguments; answer with `script-done`. */
  | { readonly type: 'run-script'; readonly script: ScriptName; readonly args: readonly [string, string, string]; readonly role: Role | 'none' }
  /**
   * Add (and announce) or remove the module's VIPs. An add is answered with `vip-added` or
   * `vip-failed`, and the core starts nothing (mount rw, start_prim) before the answer: the
   * duplicate-address check is what stops a node taking over from a peer that still answers.
   */
  | { readonly type: 'vip'; readonly op: 'add' | 'remove' }
  /** Announce the VIPs again (gratuitous ARP / unsolicited NA), e.g. when the peer comes back. */
  | { readonly type: 'announce-vip' }
  /**
   * Mount the replicated dirs read-write, read-only, or unmount them (no-op without replication).
   * `blocked`: mutating calls are held (not acknowledged, not failed) from now on; the next
   * `mount ro|none` fails them (a primary that demotes itself: split brain).
   */
  | { readonly type: 'mount'; readonly mode: 'rw' | 'ro' | 'none' | 'blocked' }
  /**
   * Arbitrator witness: ask for (or renew) the module's lease, answered by a `lease` event; or
   * give it back (not answered). Never awaited by the executor.
   */
  | { readonly type: 'lease'; readonly op: 'acquire' | 'release' }
  /** The rfs child fenced itself (`fenced` event) and the core saw it is safe: writes go on. */
  | { readonly type: 'unfence' }
  /** Secondary: accept a resync from the primary (answered with `resync-done`). */
  | { readonly type: 'start-resync'; readonly full: boolean }
  /**
   * Primary: how the rfs replicates. `sync`: every mutating call waits for the peer's ack; a failed
   * link holds calls and reports `replication-lost`. `alone`: calls complete locally (held ones
   * too) and changed paths are recorded. `resync`: send the peer a resync of `generation` while
   * live records go along; at its end the rfs replicates in `sync` mode.
   */
  | { readonly type: 'replicate'; readonly mode: 'sync' | 'alone' }
  | { readonly type: 'replicate'; readonly mode: 'resync'; readonly full: boolean; readonly generation: string }
  | { readonly type: 'stop-resync' }
  /**
   * Write out what the page cache holds of the replicated dirs (syncfs of the file systems below
   * them), beside the other actions; answered with `flushed` and the same `seq`. Asked before a
   * new data generation (see machine.ts, newGenerationAfterFlush).
   */
  | { readonly type: 'flush'; readonly seq: number }
  /** Send a heartbeat now with the new view (a state change, a stop announcement). */
  | { readonly type: 'send-heartbeat' }
  /** A state change with its reason, for logs and status (STYLE.md 14). */
  | { readonly type: 'transition'; readonly from: string; readonly to: string; readonly ready: boolean; readonly reason: string | null }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly message: string; readonly fields?: Readonly<Record<string, unknown>> };

export interface MirrorStatus {
  readonly state: MirrorStateName;
  readonly ready: boolean;
  /** WAIT's reason (`peer-not-up-to-date`, `diverged`, `checker:<name>`, ...) or STOP's (`maxloop`, ...); null otherwise. */
  readonly reason: string | null;
  readonly peer: { readonly name: string; readonly state: string | null; readonly networks: Readonly<Record<string, boolean>> };
  readonly upToDate: boolean;
  /** Persisted.unacked while this node is not primary: its copy may hold writes the peer lacks (a full resync follows). */
  readonly unacked: boolean;
  readonly failover: boolean;
  readonly generation: Generation;
  /** Secondary: resyncs failed in a row, the last one's detail, and when the next is asked (null: none failed). */
  readonly resyncFailure: { readonly count: number; readonly error: string; readonly retryAt: number | null } | null;
}

/** A refused command: the daemon turns it into HAKIT_E_BAD_STATE (exit 6) with this message. */
export interface CommandRefusal {
  readonly message: string;
}
