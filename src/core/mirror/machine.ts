/**
 * The mirror failover state machine (DESIGN.md 2, 3, 5; STYLE.md 1, 13). Pure: events in, actions
 * out, time as an input. docs/states.md explains it for administrators.
 *
 *                       start (prestart)
 *          +------+  ----------------------->  +------------------------+
 *          | STOP |                            | WAIT peer-not-seen     |  listens heartbeatTimeoutMs
 *          +------+  <-----------------------  +------------------------+
 *             ^        stop (stop_*, poststop)    |        |          |
 *             |                                   |        |          | peer silent: up to date
 *   stop,     |           peer is primary, or     |        |          | (last primary / in sync)?
 *   maxloop   |           lost the election       |        |          v
 *             |          (start_both,             |        |     +-------+  no: WAIT
 *             |           start_second)           |        |     | ALONE |  peer-not-up-to-date
 *             |                 +--------+ <------+        |     +-------+
 *             +---------------- | SECOND |                 |       ^   |  peer SECOND, up to date
 *                               +--------+                 |  peer |   v  and same generation
 *                  peer silent / |    ^  swap (handover)   |  lost +------+
 *                  released:     |    |   conflict loser   +-----> | PRIM |  won the election
 *                  takeover      |    +----------------------------+------+  (start_both,
 *                  (stop_second, |                                    ^       vip add, mount rw,
 *                   start_prim)  +------------------------------------+       start_prim)
 *                                          swap request of the peer
 *
 *   WAIT reasons: peer-not-seen, peer-not-up-to-date, diverged, failover-off, isolated (re-decided
 *   on every heartbeat and tick), checker:<name> (held while the checker is down), start_prim-failed,
 *   vip-conflict, rfs-failed (held: the node only becomes SECOND of a primary peer, or an admin acts).
 *
 * Every state is `ready` or transient; it is transient while the scripts of a transition run, one
 * at a time (`run-script`, then wait for its `script-done`). Script arguments are
 * `origin-state target-state action`.
 *
 * The handshake that keeps one writer (DESIGN.md 3.1):
 * - A node announces PRIM or ALONE in its view *before* it adds the VIP, mounts rw or starts the
 *   application, and leaves PRIM/ALONE only *after* stop_prim ended, the VIP is removed and the
 *   mount is ro/none. So a view whose state is neither PRIM nor ALONE means "I hold no primary
 *   resource": a SECOND that hears its peer in STOP, in a held WAIT, or handing over
 *   (`stopping: true` with `msg.swap`) takes over at once. `stopping: true` is sent from the moment
 *   a clean stop or a swap handover has released the resources.
 * - Two candidates (WAIT listening, SECOND) decide with `elect`, a function of data both views
 *   carry (generations, upToDate, lastPrimary in `msg`, the second flag) and of the shared config:
 *   both sides compute the same winner.
 * - A node takes the primary role on the strength of a peer view (election won, or a peer in STOP
 *   or a held WAIT) only if that view echoes this node's current change counter (`msg.sees` ==
 *   own `msg.n`): the peer decided knowing this node as it is now. Silence (timeout) and an
 *   explicit handover need no echo. The two-node driver test fails without this rule.
 * - Two primaries that meet (healed partition) resolve with the same rule: newer data stays, the
 *   other releases and becomes SECOND (or WAIT diverged when the generations diverged; then the
 *   tie rule keeps one of them running).
 *
 * Split brain (a `splitbrain` checker, MirrorParams.splitBrain; DESIGN.md 3.1, 5), see the
 * section at the end of this file for the timing bound:
 * - The peer silent on every heartbeat network (not a clean stop) is a takeover only through
 *   `silentGate`: a witness answers and heartbeatTimeoutMs + graceMs of silence passed (ping
 *   witnesses), and/or the arbitrator granted this node the lease. No witness: WAIT `isolated`.
 * - A primary (or a node about to mount rw) whose peer is silent and that is cut off (no witness
 *   answers / no live lease) holds its writes at once (`mount blocked`, even during a
 *   transition), then releases to WAIT `isolated` (stop_prim, VIP removed, mount none).
 * - With the arbitrator a primary asks for the lease before `vip add` and renews it every pulse;
 *   while the peer is heard, and hears this node, a missing lease changes nothing.
 * - "Silent" for a primary's own guard also covers a peer that is heard but deaf: its newest
 *   view echoes (`heard`, stamped at send time by `stampView`) no heartbeat of this node sent
 *   within heartbeatTimeoutMs - pulse - slack (`peerDeaf`). Heartbeats lost one way only (the
 *   secondary hears nothing, the primary still hears it) then demote a cut-off primary before the
 *   secondary's silence timeout, as a cut both ways does.
 * - Self-fencing: after a `fenced` event the rfs holds writes until `unfence`, which the core
 *   gives on a peer view made after the fence (`sees` echo) that is not primary, or after
 *   heartbeatTimeoutMs + graceMs of silence with the split-brain checks passing.
 *
 * Replication (modules with replicated dirs; DESIGN.md 3.2, 5):
 * - PRIM means "the peer is SECOND with my data": the rfs replicates synchronously (`replicate
 *   sync`, given before `mount rw`). ALONE means the peer may be behind: calls complete locally
 *   (`replicate alone`); ALONE becomes PRIM once the peer reports SECOND, up to date, same
 *   generation (after a resync that this node serves: `replicate resync`).
 * - `replication-lost` (no ack in time): the rfs holds every write. The core starts a new
 *   generation (the peer's copy is now behind), announces it, and answers `replicate alone` —
 *   releasing the held writes — only once the peer cannot take over on its old copy: it is silent
 *   on every heartbeat network, or its view, made after it saw the new generation (`sees` echo),
 *   says it is not up to date or not SECOND. So a write acknowledged to the application is either
 *   on the peer or the peer knows it is behind (no failover onto stale data, RPO = 0).
 * - A SECOND that is behind asks for a resync (`start-resync`, `msg.resyncReq` counts requests);
 *   the primary serves each request once; `resync-done` names the generation the resync was for
 *   and is refused if the primary moved on meanwhile.
 */
import type {
  CommandRefusal, Generation, MirrorAction, MirrorCommand, MirrorEvent, MirrorParams, MirrorStateName, MirrorStatus,
  PeerView, Persisted, Role, ScriptName,
} from './types.js';
import type { CheckerAction } from '../config/types.js';
import { NO_DATA, compareGenerations, nextGeneration } from './generation.js';
import { recordRestart } from './maxloop.js';
import { demoteDeadline } from '../witness/lease.js';
import { extend } from '../objects.js';

/** What a node puts in `PeerView.msg` (every heartbeat). Unknown fields are ignored. */
export interface MirrorMsg {
  /** The sender's persisted lastPrimary (tie-break for `default_primary: last`). */
  readonly lastPrimary: string | null;
  /** The sender, a former primary, has released everything and asks its SECOND to take over. */
  readonly swap?: true;
  /** The sender (SECOND and default_primary) asks its PRIM to swap back. */
  readonly wantSwap?: true;
  /** The sender was told `second`: it never elects itself. */
  readonly second?: true;
  /** The sender's state-change counter (+1 on every change of state, ready or reason). */
  readonly n: number;
  /**
   * The peer's `n` in the last view the sender received from it (null: silent). A node takes the
   * primary role on the strength of its peer's view (an election, or a peer that is STOP/held)
   * only when that view's `sees` equals its own current `n`: the peer has seen this node as it
   * is now, and decided knowing it. This closes the races where both nodes act on stale views of
   * each other (both start at once, a restarted primary holding an old SECOND view).
   */
  readonly sees: number | null;
  /** The sender's life (its daemon's random `idSeed`): `n` restarts at 0 with every life. */
  readonly life?: string;
  /**
   * The peer's `life` in the view that `sees` echoes: a view made for an earlier life of a
   * restarted node can carry the same `n` (simulator finding 6); both must match.
   */
  readonly seesLife?: string | null;
  /** A SECOND that is behind asks its primary for a resync; a new number is a new request. */
  readonly resyncReq?: number;
  /**
   * With `resyncReq`: the requester's copy is the one the primary last replicated to, so the
   * primary may send only what its change log names (absent: a full resync is needed).
   */
  readonly incremental?: boolean;
  /** When the sender sent this heartbeat, on its own clock (ms); set by `stampView` at send time. */
  readonly t?: number;
  /**
   * The `t` of the newest heartbeat the sender had received from its peer when it sent this one
   * (null: none in this life of the peer, named by `heardLife`). It tells a primary until when
   * its peer is known to hear it, on the primary's own clock: see `peerDeaf`.
   */
  readonly heard?: number | null;
  readonly heardLife?: string | null;
  /** Sent by a node that is not primary while its copy may hold unacknowledged writes (Persisted.unacked). */
  readonly unacked?: boolean;
  /**
   * Sent by a node that is not primary while its copy is suspect (Persisted.suspect: its host
   * crashed; it may have lost writes it had applied and acknowledged). On equal data the other
   * copy is preferred (simulator finding 9).
   */
  readonly suspect?: boolean;
}

type Step =
  | { readonly k: 'script'; readonly script: ScriptName; readonly args: readonly [string, string, string]; readonly role: Role | 'none' }
  /** `release`: the mount of a primary that lets go; with nothing held it clears Persisted.unacked. */
  | { readonly k: 'act'; readonly action: MirrorAction; readonly release?: boolean }
  /** Change the visible state (transient). */
  | { readonly k: 'enter'; readonly name: MirrorStateName; readonly reason: string | null; readonly stopping: boolean; readonly swap?: boolean }
  /** New generation, this node up to date and last primary; persisted. `absorb`: the peer's diverged id. */
  | { readonly k: 'newgen'; readonly absorb: readonly string[] }
  | { readonly k: 'patch'; readonly patch: Partial<Persisted> }
  | { readonly k: 'stop-resync' }
  /** Ask for a flush of the replicated dirs (not awaited here: `newgen` waits for it). */
  | { readonly k: 'flush' }
  /** Arbitrator: hold a live lease (ask and await the answer if none) before going on. */
  | { readonly k: 'lease' }
  /** The end of a transition: this state, ready. `listen`: WAIT peer-not-seen for heartbeatTimeoutMs. */
  | { readonly k: 'done'; readonly name: MirrorStateName; readonly reason: string | null; readonly listen?: boolean };

interface Plan {
  steps: Step[];
  /** The script (or `vip`: the answer to a `vip add`) the plan waits for. */
  waiting: ScriptName | 'vip' | 'lease' | 'flush' | null;
  /** Set by `vip-failed` while a script runs: fail the primary once it ends. */
  failure: string | null;
}

/** T with its fields writable (a view's msg, filled field by field in viewOf). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Deeply read-only: parts of the state a step shares with the one before it (copyState). */
type Frozen<T> = T extends readonly (infer U)[] ? readonly Frozen<U>[] : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

interface PeerTrack {
  view: Frozen<PeerView> | null;
  /** Last heartbeat on any network (ms), null if none since the runtime started. */
  lastHeard: number | null;
  /** Start of the current connection (the first heartbeat after silence). */
  since: number | null;
  perNet: Record<string, number>;
  /** Networks reported silent (warned once). */
  silentNets: string[];
}

/** Every field required (`| null` for "none"): copyState lists them by name. */
interface S {
  name: MirrorStateName;
  ready: boolean;
  reason: string | null;
  stopping: boolean;
  initialized: boolean;
  idSeed: string;
  persisted: Frozen<Persisted>;
  peer: PeerTrack;
  /** WAIT peer-not-seen: decide alone at this time. */
  listenUntil: number | null;
  plan: Plan | null;
  /** Times of recent restarts/stopstarts (maxloop). */
  restarts: readonly number[];
  /** This runtime saw the peer as primary with the same generation while this node was up to date. */
  inSync: boolean;
  /** The last comparison with the peer said diverged: the next resync must be full. */
  wasDiverged: boolean;
  resyncing: boolean;
  /** Secondary: the resync asked for may be incremental (msg.incremental). */
  resyncIncremental: boolean;
  /**
   * Secondary: resyncs failed in a row (reset by one that completes), the last one's detail, and
   * when the next may be asked (resyncBackoffMs): a cause that lasts (this copy's file system
   * full) makes one attempt every few seconds, not one per round trip.
   */
  resyncFailures: number;
  resyncError: string | null;
  resyncRetryAt: number | null;
  /** Checkers with action `wait` that are down. */
  waitCheckers: string[];
  pendingStop: 'stop' | 'shutdown' | null;
  /** Outgoing handover flag (swap) and swap-back request. */
  swapOut: boolean;
  wantSwap: boolean;
  swapBackAsked: boolean;
  /** The swap back was put off (swapBackDeferred), already logged. */
  swapBackDeferred: boolean;
  /** `second [--fullsync]` given: never elect this node; full resync when set. */
  forcedSecond: Frozen<{ full: boolean }> | null;
  /** Two primaries met; cleared (with a VIP announce) once the peer is no longer primary. */
  conflict: boolean;
  /** The peer was heard within heartbeatTimeoutMs at the last event (for validateCommand, which has no clock). */
  peerLive: boolean;
  /** State-change counter, published as `msg.n`. */
  changes: number;
  /** Primary: the rfs holds writes after `replication-lost` until the peer is known to be behind. */
  holdWrites: boolean;
  /**
   * Flushes asked for (`flush` seq, counted per runtime) and the newest answered: a new
   * generation waits for the last one asked; `genPending`: a primary that lost its secondary
   * starts its new generation once that flush is answered (newGenerationAfterFlush).
   */
  flushAsked: number;
  flushDone: number;
  genPending: boolean;
  /**
   * Primary: Persisted.unacked was set already when this node took the primary role (older
   * unacknowledged writes: a crash, a failed write after an earlier release) and no new
   * generation began since. A release with nothing held then keeps the mark: it clears only the
   * mark of this stint's own writes (simulator finding 10).
   */
  unackedBefore: boolean;
  /** Secondary: number of resync requests made (msg.resyncReq). */
  resyncReq: number;
  /** Primary: the peer's request (`life:resyncReq`) served last. */
  served: string | null;
  /** Ping witnesses: the last reported reachability (false until the first report). */
  witnessUp: boolean;
  /** Arbitrator: the demote deadline (this node's clock) of the lease last granted; null if none. */
  leaseDeadline: number | null;
  /** Arbitrator: a `lease acquire` is out (its answer not in yet), and when it was asked. */
  leaseAsking: boolean;
  leaseAskedAt: number | null;
  /** Arbitrator: the last answer: 'error' (no answer: unreachable), a holder's name, 'quiet', or null (granted / none yet). */
  leaseRefused: string | null;
  /**
   * Split brain: this primary found itself cut off and asked the rfs to hold writes (`mount
   * blocked`); it is committed to demote (WAIT isolated) once the running transition ends.
   */
  writesBlocked: boolean;
  /** Self-fencing: the time the rfs reported `fenced`, null when not fenced. */
  fencedAt: number | null;
  /** The mode of the last `mount` action emitted (what the rfs serves once the queue ran). */
  mounted: 'rw' | 'ro' | 'none' | 'blocked';
}

/** The state of one mirror module on this node. Opaque to the daemon; plain data (cloneable). */
export type MirrorState = Readonly<S>;

const LISTENING = new Set(['peer-not-seen', 'peer-not-up-to-date', 'diverged', 'failover-off', 'isolated', 'second-no-primary', 'suspect-copy']);
const PRIMARY = new Set<string>(['PRIM', 'ALONE']);

function isPrimaryName(n: string): boolean { return PRIMARY.has(n); }

/** STOP, not initialized: the state before the `init` event. */
export function initialState(params: MirrorParams): MirrorState {
  return {
    name: 'STOP', ready: true, reason: null, stopping: false, initialized: false, idSeed: '',
    persisted: {
      generation: { current: '', history: [] }, upToDate: !params.hasReplication, enabled: false,
      failover: params.failover, lastPrimary: null, idCounter: 0,
    },
    peer: { view: null, lastHeard: null, since: null, perNet: {}, silentNets: [] },
    listenUntil: null, plan: null, restarts: [], inSync: false, wasDiverged: false, resyncing: false, resyncIncremental: false,
    resyncFailures: 0, resyncError: null, resyncRetryAt: null,
    waitCheckers: [], pendingStop: null, swapOut: false, wantSwap: false, swapBackAsked: false, swapBackDeferred: false,
    forcedSecond: null, conflict: false, peerLive: false, changes: 0, holdWrites: false, flushAsked: 0, flushDone: 0, genPending: false, unackedBefore: false, resyncReq: 0, served: null,
    witnessUp: false, leaseDeadline: null, leaseAsking: false, leaseAskedAt: null, leaseRefused: null, writesBlocked: false, fencedAt: null, mounted: 'none',
  };
}

/** What heartbeats carry now. */
export function viewOf(state: MirrorState): PeerView {
  const msg: Mutable<MirrorMsg> = {
    lastPrimary: state.persisted.lastPrimary,
    n: state.changes,
    sees: state.peerLive && state.peer.view && typeof peerMsg(state.peer.view).n === 'number' ? peerMsg(state.peer.view).n ?? null : null,
    life: state.idSeed,
    seesLife: state.peerLive && state.peer.view ? peerMsg(state.peer.view).life ?? null : null,
  };
  // Optional fields set one by one (a conditional spread allocates and copies per field).
  if (state.swapOut) msg.swap = true;
  if (state.wantSwap) msg.wantSwap = true;
  if (state.forcedSecond) msg.second = true;
  if (state.resyncing) {
    msg.resyncReq = state.resyncReq;
    if (state.resyncIncremental) msg.incremental = true;
  }
  if (state.persisted.unacked === true && !isPrimaryName(state.name)) msg.unacked = true;
  if (state.persisted.suspect === true && !isPrimaryName(state.name)) msg.suspect = true;
  return {
    state: state.name, ready: state.ready, reason: state.reason,
    generation: { current: state.persisted.generation.current, history: [...state.persisted.generation.history] },
    upToDate: state.persisted.upToDate, stopping: state.stopping, msg,
  };
}

/**
 * The view to put in a heartbeat sent at `now` (the daemon's pulse, a batch's extra heartbeat):
 * `view` (the published view) with this send time and the echo of the peer's newest send time
 * taken from `state` (the current state, which may be newer than the published view).
 */
export function stampView(view: PeerView, state: MirrorState, now: number): PeerView {
  const pv = state.peer.view;
  const pm = pv ? peerMsg(pv) : {};
  const heard = state.peerLive && typeof pm.t === 'number' ? pm.t : null;
  const base = typeof view.msg === 'object' && view.msg !== null ? view.msg as MirrorMsg : {};
  // The view's fields by name (a spread copies on V8's slow path; this runs every pulse).
  return {
    state: view.state, ready: view.ready, reason: view.reason, generation: view.generation, upToDate: view.upToDate, stopping: view.stopping,
    msg: extend(base, { t: now, heard, heardLife: heard === null ? null : pm.life ?? null }),
  };
}

function peerMsg(v: PeerView): Partial<MirrorMsg> {
  return typeof v.msg === 'object' && v.msg !== null ? v.msg as Partial<MirrorMsg> : {};
}

function peerAlive(s: MirrorState, params: MirrorParams, now: number): boolean {
  return s.peer.lastHeard !== null && now - s.peer.lastHeard < params.heartbeatTimeoutMs;
}

export function statusOf(state: MirrorState, params: MirrorParams, now: number): MirrorStatus {
  const alive = peerAlive(state, params, now);
  const networks: Record<string, boolean> = {};
  for (const n of params.networks) {
    const t = state.peer.perNet[n];
    networks[n] = t !== undefined && now - t < params.heartbeatTimeoutMs;
  }
  return {
    state: state.name, ready: state.ready, reason: state.reason,
    peer: { name: params.peer, state: alive && state.peer.view ? state.peer.view.state : null, networks },
    upToDate: state.persisted.upToDate, unacked: state.persisted.unacked === true && !isPrimaryName(state.name),
    failover: state.persisted.failover,
    generation: state.persisted.generation,
    resyncFailure: state.resyncFailures > 0 && state.resyncError !== null
      ? { count: state.resyncFailures, error: state.resyncError, retryAt: state.resyncRetryAt }
      : null,
  };
}

/**
 * How long a secondary waits before it asks again after `failures` resyncs failed in a row: the
 * first failure (a link that dropped, a primary that restarted) is retried at once, then 1 s,
 * 2 s, 4 s, ... up to RESYNC_RETRY_MAX_MS.
 */
export function resyncBackoffMs(failures: number): number {
  if (failures <= 1) return 0;
  return Math.min(RESYNC_RETRY_MAX_MS, 1000 * 2 ** (failures - 2));
}
export const RESYNC_RETRY_MAX_MS = 10_000;

/** The peer's role as seen from here. */
type PeerRole = 'silent' | 'primary' | 'candidate' | 'handover' | 'passive';

function peerRole(s: MirrorState, params: MirrorParams, now: number | null): PeerRole {
  const v = s.peer.view;
  if (!v || !(now === null ? s.peerLive : peerAlive(s, params, now))) return 'silent';
  if (isPrimaryName(v.state)) return 'primary';
  if (v.state === 'SECOND') return peerMsg(v).swap ? 'handover' : 'candidate';
  if (v.state === 'WAIT' && v.ready && v.reason !== null && LISTENING.has(v.reason)) return 'candidate';
  return 'passive';
}

/**
 * True when the heard peer is not known to hear this node any more: its newest view echoes a send
 * time of this node's life (`heard`) older than heartbeatTimeoutMs - pulse - slack, or none. The
 * peer takes over a silent node no earlier than heartbeatTimeoutMs after the last heartbeat it
 * received, which was sent at or after that echo, so a primary that holds its writes at this
 * point (a tick comes at least every pulse) stops before the peer may start, also when the
 * heartbeats are lost in one direction only (the peer hears nothing, this node still hears the
 * peer). A view without the echo (a peer of an older version) tells nothing: false.
 */
function peerDeaf(s: MirrorState, params: MirrorParams, now: number): boolean {
  const v = s.peer.view;
  if (!v || !peerAlive(s, params, now)) return false;
  const m = peerMsg(v);
  if (!('heard' in m)) return false;
  if (typeof m.heard !== 'number' || m.heardLife !== s.idSeed) return true;
  return now >= m.heard + params.heartbeatTimeoutMs - params.pulseMs - deafSlackMs(params);
}

/** Room for the executor to hold the writes and for clock rates (1 %), beside the pulse. */
function deafSlackMs(params: MirrorParams): number {
  return Math.max(50, Math.ceil(params.heartbeatTimeoutMs / 50));
}

/** Data comparison used for decisions: without replication every node is in sync. */
function dataCmp(s: MirrorState, params: MirrorParams, peer: Generation): ReturnType<typeof compareGenerations> {
  return params.hasReplication ? compareGenerations(s.persisted.generation, peer) : 'equal';
}

/**
 * Who of two candidates becomes primary; both nodes compute the same answer from their views:
 * newer data; then (with replication) the up-to-date one; then (with replication) a suspect copy
 * loses; then a node told `second` loses; then default_primary (a node, or `last` when both nodes name the same last primary); then the lowest
 * node name. `none`: the generations diverged.
 */
function elect(s: MirrorState, params: MirrorParams, v: PeerView): 'me' | 'peer' | 'none' {
  const cmp = dataCmp(s, params, v.generation);
  if (cmp === 'ahead') return 'me';
  if (cmp === 'behind') return 'peer';
  if (cmp === 'diverged') return 'none';
  return tieBreak(s, params, v);
}

function tieBreak(s: MirrorState, params: MirrorParams, v: PeerView): 'me' | 'peer' {
  if (params.hasReplication && s.persisted.upToDate !== v.upToDate) return s.persisted.upToDate ? 'me' : 'peer';
  const pm = peerMsg(v);
  // A copy whose host crashed may have lost acknowledged writes the other one holds: it loses
  // even to a node told `second` (which then waits, second-no-primary, for an admin's `prim`
  // on either node): an admin's wish for a role does not outrank those writes (finding 9, seed 6095).
  if (params.hasReplication) {
    const meSuspect = s.persisted.suspect === true;
    if (meSuspect !== (pm.suspect === true)) return meSuspect ? 'peer' : 'me';
  }
  const meSecond = s.forcedSecond !== null;
  const peerSecond = pm.second === true;
  if (meSecond !== peerSecond) return meSecond ? 'peer' : 'me';
  const dp = params.defaultPrimary;
  if (dp === 'last') {
    const mine = s.persisted.lastPrimary;
    if (mine !== null && mine === pm.lastPrimary) {
      if (mine === params.node) return 'me';
      if (mine === params.peer) return 'peer';
    }
  } else if (dp === params.node) return 'me';
  else if (dp === params.peer) return 'peer';
  return params.node < params.peer ? 'me' : 'peer';
}

// ---------------------------------------------------------------------------------------------
// step

/** A mutable working copy of the state plus the actions emitted so far. */
interface Ctx { s: S; out: MirrorAction[]; params: MirrorParams; now: number }

/**
 * Applies one event. Never throws for expected faults; an event that makes no sense in the
 * current state is logged and ignored. The returned actions must be executed in order.
 */
export function step(state: MirrorState, event: MirrorEvent, params: MirrorParams): { state: MirrorState; actions: MirrorAction[] } {
  const c: Ctx = { s: copyState(state as S), out: [], params, now: event.now };
  if (!c.s.initialized && event.type !== 'init') {
    if (event.type === 'heartbeat') hearPeer(c, event.network, event.view);
    c.s.peerLive = peerAlive(c.s, params, c.now);
    return { state: c.s, actions: c.out };
  }
  switch (event.type) {
    case 'init': onInit(c, event.persisted, event.idSeed); break;
    case 'tick': watchNetworks(c); break;
    case 'heartbeat': hearPeer(c, event.network, event.view); watchNetworks(c); break;
    case 'command': onCommand(c, event.command); break;
    case 'script-done': onScriptDone(c, event.script, event.ok, event.detail); break;
    case 'vip-failed': onVipFailed(c, event.detail); break;
    case 'vip-added': onVipAdded(c); break;
    case 'checker': onChecker(c, event.name, event.up, event.action); break;
    case 'shutdown':
      if (c.s.name === 'STOP' && !c.s.plan) break;
      if (c.s.plan) c.s.pendingStop = c.s.pendingStop ?? 'shutdown';
      else stopPlan(c, 'shutdown', null);
      break;
    case 'resync-done': onResyncDone(c, event.ok, event.detail, event.generation); break;
    case 'replication-lost': onReplicationLost(c, event.detail); break;
    case 'unacked-write': onUnackedWrite(c, event.detail); break;
    case 'rfs-failed': onResourceFailed(c, 'rfs-failed', `replicated file system failed: ${event.detail}`); break;
    case 'witness': onWitness(c, event.reachable); break;
    case 'lease': onLease(c, event); break;
    case 'fenced': onFenced(c, event.detail); break;
    case 'flushed': onFlushed(c, event.seq, event.ok, event.detail); break;
  }
  evaluate(c);
  c.s.peerLive = peerAlive(c.s, params, c.now);
  return { state: c.s, actions: c.out };
}

/**
 * The state a step works on: a new object for every part a step may change in place (the top
 * level, `peer`, `plan`, `waitCheckers`); the parts typed Frozen (`persisted`, the peer's view,
 * `restarts`, `forcedSecond`), which are only ever replaced, are shared with the state before.
 * So `step` stays pure at a fraction of a deep copy's allocations (structuredClone before): a
 * step runs for every heartbeat and tick, and an idle daemon's CPU is mostly what it allocates
 * (issue 3). The transcript tests and the simulator freeze every state a step returns.
 */
function copyState(s: S): S {
  const p = s.peer;
  // Every field by name, not `{ ...s, peer, ... }`: V8 copies that on a slow path (1.3 KiB and
  // ~2 us a copy on the test VM against 0.55 KiB and 0.12 us; core/objects.ts). Keep every field
  // of S, PeerTrack and Plan required (`| null`, never `?:`): one missing here is then a compile error.
  return {
    name: s.name, ready: s.ready, reason: s.reason, stopping: s.stopping, initialized: s.initialized,
    idSeed: s.idSeed, persisted: s.persisted,
    peer: { view: p.view, lastHeard: p.lastHeard, since: p.since, perNet: { ...p.perNet }, silentNets: [...p.silentNets] },
    listenUntil: s.listenUntil,
    plan: s.plan === null ? null : { steps: [...s.plan.steps], waiting: s.plan.waiting, failure: s.plan.failure },
    restarts: s.restarts, inSync: s.inSync, wasDiverged: s.wasDiverged, resyncing: s.resyncing,
    resyncIncremental: s.resyncIncremental, resyncFailures: s.resyncFailures, resyncError: s.resyncError,
    resyncRetryAt: s.resyncRetryAt, waitCheckers: [...s.waitCheckers], pendingStop: s.pendingStop,
    swapOut: s.swapOut, wantSwap: s.wantSwap, swapBackAsked: s.swapBackAsked,
    swapBackDeferred: s.swapBackDeferred, forcedSecond: s.forcedSecond, conflict: s.conflict,
    peerLive: s.peerLive, changes: s.changes, holdWrites: s.holdWrites, flushAsked: s.flushAsked,
    flushDone: s.flushDone, genPending: s.genPending, unackedBefore: s.unackedBefore, resyncReq: s.resyncReq,
    served: s.served, witnessUp: s.witnessUp, leaseDeadline: s.leaseDeadline, leaseAsking: s.leaseAsking,
    leaseAskedAt: s.leaseAskedAt, leaseRefused: s.leaseRefused, writesBlocked: s.writesBlocked,
    fencedAt: s.fencedAt, mounted: s.mounted,
  };
}

function log(c: Ctx, level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void {
  c.out.push(fields ? { type: 'log', level, message, fields } : { type: 'log', level, message });
}

/** Sets the visible state; emits `transition` + `send-heartbeat` when name/ready/reason change. */
function setState(c: Ctx, name: MirrorStateName, ready: boolean, reason: string | null, stopping = c.s.stopping): void {
  const s = c.s;
  const changed = s.name !== name || s.ready !== ready || s.reason !== reason;
  const from = s.name;
  const hb = changed || s.stopping !== stopping;
  s.name = name; s.ready = ready; s.reason = reason; s.stopping = stopping;
  if (changed) s.changes++;
  if (changed) c.out.push({ type: 'transition', from, to: name, ready, reason });
  if (hb) c.out.push({ type: 'send-heartbeat' });
}

function persist(c: Ctx, patch: Partial<Persisted>): void {
  const p = { ...c.s.persisted, ...patch };
  const same = JSON.stringify(p) === JSON.stringify(c.s.persisted);
  c.s.persisted = p;
  if (!same) c.out.push({ type: 'persist', persisted: p });
}

function onInit(c: Ctx, persisted: Persisted | null, idSeed: string): void {
  const s = c.s;
  if (s.initialized) { log(c, 'warn', 'init received twice: ignored'); return; }
  s.initialized = true;
  s.idSeed = idSeed;
  if (persisted) {
    s.persisted = persisted;
  } else {
    // A replicated module starts with no data generation (NO_DATA: behind any data). Two such
    // nodes elect the first primary (default_primary, then the lowest name), which starts a
    // generation; the other gets a full sync from it. Alone, such a node waits (it is not the
    // last primary), unless forced with `prim`.
    s.persisted = {
      ...s.persisted, generation: { current: c.params.hasReplication ? NO_DATA : `${idSeed}.0`, history: [] }, idCounter: 1, upToDate: true,
    };
    c.out.push({ type: 'persist', persisted: s.persisted });
  }
  if (s.persisted.enabled) startPlan(c, 'start', []);
}

// ---- heartbeats and silence ----------------------------------------------------------------------

function hearPeer(c: Ctx, network: string, view: PeerView): void {
  const p = c.s.peer;
  if (p.lastHeard === null || c.now - p.lastHeard >= c.params.heartbeatTimeoutMs) {
    p.since = c.now;
    p.silentNets = [];
    p.perNet = {};
  }
  p.lastHeard = c.now;
  p.perNet[network] = c.now;
  p.view = view;
}

/** Warns once per heartbeat network that goes silent while another still carries heartbeats. */
function watchNetworks(c: Ctx): void {
  const { s, params, now } = c;
  const p = s.peer;
  if (!peerAlive(s, params, now) || p.since === null) return;
  for (const n of params.networks) {
    const last = p.perNet[n] ?? p.since;
    const silent = now - last >= params.heartbeatTimeoutMs;
    const known = p.silentNets.includes(n);
    if (silent && !known) {
      p.silentNets.push(n);
      log(c, 'warn', `heartbeat network ${n} silent: peer ${params.peer} still heard on another network`, { network: n });
    } else if (!silent && known) {
      p.silentNets = p.silentNets.filter((x) => x !== n);
      log(c, 'info', `heartbeat network ${n} carries heartbeats again`, { network: n });
    }
  }
}

// ---- plans (sequences of scripts and actions) ------------------------------------------------------

function runPlan(c: Ctx, steps: Step[]): void {
  c.s.plan = { steps, waiting: null, failure: null };
  advance(c);
}

/** Executes steps until a script must be awaited or the plan ends. */
function advance(c: Ctx): void {
  const s = c.s;
  while (s.plan && s.plan.waiting === null) {
    const st = s.plan.steps.shift();
    if (!st) { s.plan = null; break; }
    switch (st.k) {
      case 'script':
        s.plan.waiting = st.script;
        c.out.push({ type: 'run-script', script: st.script, args: st.args, role: st.role });
        break;
      case 'act': {
        let a = st.action;
        if (a.type === 'mount') {
          // A primary committed to demote keeps its writes held: a transition that was running
          // when it found itself cut off does not mount read-write again.
          if (a.mode === 'rw' && s.writesBlocked) a = { type: 'mount', mode: 'blocked' };
          // Calls held when a primary lets go were applied here and now fail: its copy stays
          // marked (Persisted.unacked) until a resync; with nothing held every call was acknowledged.
          const held = s.writesBlocked || s.fencedAt !== null;
          if (a.mode === 'ro' || a.mode === 'none') { s.writesBlocked = false; s.fencedAt = null; }
          s.mounted = a.mode;
          // A mark older than this stint (unackedBefore) stays: those writes were never acknowledged by the peer.
          if (st.release && !held && !s.unackedBefore && s.persisted.unacked === true) { c.out.push(a); persist(c, { unacked: false }); break; }
        }
        if (a.type === 'lease' && a.op === 'release') { s.leaseDeadline = null; s.leaseRefused = null; }
        c.out.push(a);
        if (a.type === 'vip' && a.op === 'add') s.plan.waiting = 'vip';
        break;
      }
      case 'lease':
        if (s.leaseDeadline !== null && c.now < s.leaseDeadline) break;
        s.plan.waiting = 'lease';
        askLease(c, true);
        break;
      case 'enter':
        if (st.swap !== undefined) s.swapOut = st.swap;
        setState(c, st.name, false, st.reason, st.stopping);
        break;
      case 'newgen':
        if (s.flushDone < s.flushAsked) { s.plan.steps.unshift(st); s.plan.waiting = 'flush'; break; }
        newGeneration(c, st.absorb);
        break;
      case 'flush': requestFlush(c); break;
      case 'patch': persist(c, st.patch); break;
      case 'stop-resync':
        if (s.resyncing) { s.resyncing = false; c.out.push({ type: 'stop-resync' }); }
        break;
      case 'done':
        s.plan = null;
        s.listenUntil = st.listen ? c.now + c.params.heartbeatTimeoutMs : null;
        setState(c, st.name, true, st.reason);
        break;
    }
  }
}

/** Starts a new data generation: this node writes without its peer from now on (persisted). */
function newGeneration(c: Ctx, absorb: readonly string[]): void {
  const s = c.s;
  const id = `${s.idSeed}.${s.persisted.idCounter}`;
  persist(c, {
    generation: nextGeneration(s.persisted.generation, id, absorb), idCounter: s.persisted.idCounter + 1,
    upToDate: true, lastPrimary: c.params.node, ...(c.params.hasReplication ? { unacked: true, peerSynced: false } : {}),
    // This copy is the reference from now on: what its host's crash took is gone for good.
    ...(s.persisted.suspect === true ? { suspect: false } : {}),
  });
  s.inSync = false;
  // From a new generation on, the peer resyncs from this copy (its change log names what this
  // copy holds that the peer may lack): an older mark has done its work.
  s.unackedBefore = false;
}

/**
 * Asks for a flush of the replicated dirs; a new generation waits for it (flushAsked). Before a
 * generation ends, this copy's part of it goes to disk: the peer's copy of that generation may
 * hold writes this node acknowledged and has in its page cache only. A power loss after the new
 * generation would otherwise leave this node ahead by generation and without them, and the peer
 * that holds them would resync from it (simulator finding 9, seed 16663). DRBD has the same
 * order by construction: its primary's writes are on its disk before they are acknowledged.
 */
function requestFlush(c: Ctx): void {
  const s = c.s;
  if (!c.params.hasReplication) return;
  s.flushAsked++;
  c.out.push({ type: 'flush', seq: s.flushAsked });
}

/**
 * A primary loses its secondary (it stopped, fell silent, or the replication link failed): the
 * new generation starts once this copy is flushed (requestFlush). Meanwhile the copy is marked
 * (Persisted.unacked, as the new generation would mark it), writes stay held where they were
 * (releaseWrites waits for the generation), and heartbeats still name the old generation, which
 * the peer, a SECOND, does not count as in sync with an ALONE node (finding 5).
 */
function newGenerationAfterFlush(c: Ctx): void {
  const s = c.s;
  if (!c.params.hasReplication) { newGeneration(c, []); return; }
  if (s.persisted.unacked !== true) persist(c, { unacked: true });
  s.genPending = true;
  requestFlush(c);
}

function onFlushed(c: Ctx, seq: number, ok: boolean, detail: string): void {
  const s = c.s;
  s.flushDone = Math.max(s.flushDone, seq);
  if (!ok) log(c, 'warn', `the replicated dirs could not be flushed before the new generation (${detail}): going on; a power loss of this host now may lose writes ${c.params.peer} holds`, { detail });
  if (s.flushDone < s.flushAsked) return;
  if (s.genPending) {
    s.genPending = false;
    if (isPrimaryName(s.name)) {
      newGeneration(c, []);
      s.changes++; // the peer must echo a view made after it saw the new generation
      c.out.push({ type: 'send-heartbeat' });
    }
  }
  const plan = s.plan;
  if (!plan || plan.waiting !== 'flush') return;
  plan.waiting = null;
  if (abortTakeover(c)) return;
  if (plan.failure !== null) { failPrimary(c, plan.failure); return; }
  advance(c);
}

function script(script: ScriptName, args: readonly [string, string, string], role: Role | 'none'): Step {
  return { k: 'script', script, args, role };
}
const act = (action: MirrorAction): Step => ({ k: 'act', action });

/** Steps that release a primary or a secondary (the state itself is left to the caller). */
function releaseSteps(c: Ctx, from: MirrorStateName, to: MirrorStateName, action: string, mount: 'ro' | 'none'): Step[] {
  const args = [from, to, action] as const;
  if (isPrimaryName(from)) {
    const steps: Step[] = [script('stop_prim', args, 'prim'), act({ type: 'vip', op: 'remove' }), { k: 'act', action: { type: 'mount', mode: mount }, release: true }];
    // The arbitrator's lease goes back once nothing of the primary is left, so that the peer
    // gets it at once (not only when it expires).
    if (c.params.splitBrain?.arbitrator) steps.push(act({ type: 'lease', op: 'release' }));
    return steps;
  }
  if (from === 'SECOND') return [{ k: 'stop-resync' }, script('stop_second', args, 'second'), act({ type: 'mount', mode: mount })];
  return [];
}

function running(n: MirrorStateName): boolean { return n === 'PRIM' || n === 'ALONE' || n === 'SECOND'; }

/** From `from` (any state but STOP) to primary `target`. ALONE starts a new generation before mount rw. */
function becomePrimary(c: Ctx, target: 'PRIM' | 'ALONE', action: string, absorb: readonly string[] = []): void {
  const from = c.s.name;
  const args = [from, target, action] as const;
  const steps: Step[] = [{ k: 'enter', name: target, reason: null, stopping: false, swap: false }];
  if (from === 'SECOND') steps.push({ k: 'stop-resync' }, script('stop_second', args, 'second'));
  else steps.push(script('start_both', args, 'prim'));
  // The copy goes to disk while the lease and the VIP are taken; the new generation waits for it.
  if (target === 'ALONE') steps.push({ k: 'flush' });
  if (c.params.splitBrain?.arbitrator) steps.push({ k: 'lease' });
  steps.push(act({ type: 'vip', op: 'add' }));
  if (target === 'ALONE') steps.push({ k: 'newgen', absorb });
  else steps.push({ k: 'patch', patch: { lastPrimary: c.params.node, ...(c.params.hasReplication ? { unacked: true, peerSynced: true } : {}) } });
  if (c.params.hasReplication) steps.push(act({ type: 'replicate', mode: target === 'PRIM' ? 'sync' : 'alone' }));
  steps.push(act({ type: 'mount', mode: 'rw' }), script('start_prim', args, 'prim'), { k: 'done', name: target, reason: null });
  c.s.holdWrites = false;
  c.s.unackedBefore = c.s.persisted.unacked === true;
  c.s.wantSwap = false;
  c.s.swapBackAsked = false;
  c.s.swapBackDeferred = false;
  c.s.forcedSecond = null;
  runPlan(c, steps);
}

/** From WAIT (or a primary: swap, conflict loser) to SECOND. */
function becomeSecond(c: Ctx, action: string, handover: boolean): void {
  const from = c.s.name;
  const args = [from, 'SECOND', action] as const;
  const steps: Step[] = [];
  if (isPrimaryName(from)) steps.push({ k: 'enter', name: from, reason: null, stopping: false }, ...releaseSteps(c, from, 'SECOND', action, 'ro'));
  steps.push({ k: 'enter', name: 'SECOND', reason: null, stopping: handover, swap: handover });
  if (!running(from)) steps.push(script('start_both', args, 'second'), act({ type: 'mount', mode: 'ro' }));
  steps.push(script('start_second', args, 'second'), { k: 'done', name: 'SECOND', reason: null });
  c.s.inSync = false;
  // A node that hands over on purpose (an admin's swap) does not ask for the role back: the
  // default_primary swap-back is for a node that rejoins after a failover, not for undoing a swap.
  if (handover) c.s.swapBackAsked = true;
  runPlan(c, steps);
}

/** Releases whatever this node holds and waits with `reason`. */
function releaseToWait(c: Ctx, reason: string, action: string): void {
  const from = c.s.name;
  const steps: Step[] = [{ k: 'enter', name: from, reason: c.s.reason, stopping: false }, ...releaseSteps(c, from, 'WAIT', action, 'none')];
  if (running(from)) steps.push(script('stop_both', [from, 'WAIT', action], 'none'));
  steps.push({ k: 'done', name: 'WAIT', reason });
  // A SECOND that waits `isolated` keeps its claim to take over once a witness answers: its copy
  // is what it had in sync when the peer fell silent.
  if (!(reason === 'isolated' && from === 'SECOND')) c.s.inSync = false;
  c.s.wantSwap = false;
  runPlan(c, steps);
}

function stopSteps(c: Ctx, action: string, reason: string | null): Step[] {
  const from = c.s.name;
  const steps: Step[] = [{ k: 'enter', name: from, reason: c.s.reason, stopping: false }, ...releaseSteps(c, from, 'STOP', action, 'none')];
  if (running(from)) steps.push(script('stop_both', [from, 'STOP', action], 'none'));
  steps.push({ k: 'enter', name: 'STOP', reason, stopping: true, swap: false }, script('poststop', [from, 'STOP', action], 'none'));
  return steps;
}

/** stop / shutdown / maxloop: ends in STOP (ready) with `reason`. `shutdown` keeps `enabled`. */
function stopPlan(c: Ctx, action: 'stop' | 'shutdown' | 'maxloop', reason: string | null): void {
  const steps = stopSteps(c, action === 'shutdown' ? 'stop' : action, reason);
  if (action !== 'shutdown') steps.push({ k: 'patch', patch: { enabled: false } });
  steps.push({ k: 'done', name: 'STOP', reason });
  c.s.inSync = false;
  c.s.wantSwap = false;
  c.s.pendingStop = null;
  runPlan(c, steps);
}

/** From STOP: prestart, then WAIT peer-not-seen. `prefix`: steps to run first (stopstart). */
function startPlan(c: Ctx, action: string, prefix: Step[]): void {
  runPlan(c, [...prefix,
    { k: 'enter', name: 'STOP', reason: null, stopping: false, swap: false },
    script('prestart', ['STOP', 'WAIT', action], 'none'),
    { k: 'patch', patch: { enabled: true } },
    { k: 'done', name: 'WAIT', reason: 'peer-not-seen', listen: true }]);
}

function stopstartPlan(c: Ctx, action: string): void {
  c.s.inSync = false;
  c.s.wantSwap = false;
  startPlan(c, action, stopSteps(c, action, null));
}

/** Counts a restart/stopstart; false (and the module stops, reason maxloop) when over maxloop. */
function countRestart(c: Ctx): boolean {
  const r = recordRestart(c.s.restarts, c.now, c.params.maxloop);
  c.s.restarts = r.times;
  if (!r.allowed) {
    log(c, 'error', `maxloop: ${c.params.maxloop.count} restarts within ${c.params.maxloop.windowMs} ms: stopping the module`);
    stopPlan(c, 'maxloop', 'maxloop');
  }
  return r.allowed;
}

/** A primary that could not start (start_prim failed, VIP conflict): release, let the peer take over. */
function failPrimary(c: Ctx, reason: string): void {
  c.s.plan = null;
  if (!countRestart(c)) return;
  releaseToWait(c, reason, 'stopstart');
}

/**
 * A stop (or daemon shutdown) asked for while this node is taking the primary role and has not
 * yet mounted rw (nor started a generation): the takeover is abandoned at the next awaited
 * answer and the node stops, so a node that was never written on does not leave a new
 * generation behind (two daemons stopped at once would otherwise diverge).
 */
function abortTakeover(c: Ctx): boolean {
  const s = c.s;
  const plan = s.plan;
  if (!plan || !s.pendingStop || !isPrimaryName(s.name)) return false;
  if (!plan.steps.some((st) => st.k === 'act' && st.action.type === 'mount' && st.action.mode === 'rw')) return false;
  log(c, 'info', `${s.pendingStop} during the takeover, before anything was written: abandoning it`);
  s.plan = null;
  stopPlan(c, s.pendingStop, null);
  return true;
}

function onScriptDone(c: Ctx, name: ScriptName, ok: boolean, detail: string): void {
  const plan = c.s.plan;
  if (!plan || plan.waiting !== name) {
    log(c, 'warn', `script-done for ${name} that was not awaited: ignored`, { script: name });
    return;
  }
  plan.waiting = null;
  if (abortTakeover(c)) return;
  if (plan.failure !== null) { failPrimary(c, plan.failure); return; }
  if (!ok) {
    if (name === 'start_prim') {
      log(c, 'error', `start_prim failed: releasing so that the peer can take over (${detail})`, { script: name, detail });
      failPrimary(c, 'start_prim-failed');
      return;
    }
    log(c, 'error', `script ${name} failed: continuing (${detail})`, { script: name, detail });
  }
  advance(c);
}

function onVipAdded(c: Ctx): void {
  const plan = c.s.plan;
  if (!plan || plan.waiting !== 'vip') { log(c, 'warn', 'vip-added that was not awaited: ignored'); return; }
  plan.waiting = null;
  if (abortTakeover(c)) return;
  advance(c);
}

function onVipFailed(c: Ctx, detail: string): void {
  // The awaited add failed: release without mounting rw or starting the application.
  if (c.s.plan && c.s.plan.waiting === 'vip') {
    log(c, 'error', `virtual IP could not be added: ${detail}`, { detail });
    c.s.plan.waiting = null;
    failPrimary(c, 'vip-conflict');
    return;
  }
  onResourceFailed(c, 'vip-conflict', `virtual IP could not be added: ${detail}`);
}

/** A resource of the primary failed: release now, or once the awaited script ends. */
function onResourceFailed(c: Ctx, reason: string, message: string): void {
  log(c, 'error', message, { reason });
  if (!isPrimaryName(c.s.name)) return;
  if (c.s.plan && c.s.plan.waiting !== null) { c.s.plan.failure ??= reason; return; }
  failPrimary(c, reason);
}

function onResyncDone(c: Ctx, ok: boolean, detail: string, generation: string | undefined): void {
  const s = c.s;
  if (!s.resyncing) return;
  s.resyncing = false;
  if (!ok) {
    s.resyncFailures++;
    s.resyncError = detail;
    const wait = resyncBackoffMs(s.resyncFailures);
    s.resyncRetryAt = c.now + wait;
    const again = wait === 0 ? 'asking again now' : `asking again in ${wait / 1000} s`;
    log(c, 'error', `resync failed (${s.resyncFailures} in a row; ${again}): ${detail}`, { detail, failures: s.resyncFailures });
    return;
  }
  if (s.resyncFailures > 0) log(c, 'info', `resync complete after ${s.resyncFailures} failed ${s.resyncFailures === 1 ? 'attempt' : 'attempts'}`);
  s.resyncFailures = 0;
  s.resyncError = null;
  s.resyncRetryAt = null;
  const v = s.peer.view;
  if (v && generation !== undefined && v.generation.current !== generation) {
    log(c, 'warn', `resync of generation ${generation} ended, but ${c.params.peer} is at ${v.generation.current} now: resyncing again`);
    return;
  }
  if (v) {
    persist(c, { generation: { current: v.generation.current, history: [...v.generation.history] }, upToDate: true, unacked: false, ...(s.persisted.suspect === true ? { suspect: false } : {}) });
    s.wasDiverged = false;
  }
}

/**
 * The rfs lost its link to the secondary and holds writes. A new generation (persisted before
 * anything else runs) makes the peer's copy "behind"; the writes are released by `releaseWrites`.
 */
function onReplicationLost(c: Ctx, detail: string): void {
  const s = c.s;
  if (!c.params.hasReplication || !isPrimaryName(s.name)) {
    log(c, 'warn', `replication link lost while ${s.name}: ignored (${detail})`, { detail });
    if (c.params.hasReplication) c.out.push({ type: 'replicate', mode: 'alone' });
    return;
  }
  log(c, 'warn', `replication to ${c.params.peer} lost (${detail}): writes held until ${c.params.peer} knows it is behind`, { detail });
  s.holdWrites = true;
  newGenerationAfterFlush(c);
  if (s.name === 'PRIM') setState(c, 'ALONE', s.ready, s.reason);
}

/** A write failed after this primary let go (see MirrorEvent `unacked-write`): the copy is marked. */
function onUnackedWrite(c: Ctx, detail: string): void {
  if (!c.params.hasReplication || c.s.persisted.unacked === true) return;
  log(c, 'warn', `a write applied here was never acknowledged by ${c.params.peer} (${detail}): this copy may differ from the peer's, a full resync follows when it is a secondary`, { detail });
  persist(c, { unacked: true });
  c.out.push({ type: 'send-heartbeat' });
}

/** Releases held writes once the peer cannot take over on its old copy (see the file comment). */
function releaseWrites(c: Ctx, role: PeerRole): void {
  const s = c.s;
  if (!s.holdWrites || s.genPending) return;
  const v = s.peer.view;
  let why: string | null = null;
  if (role === 'silent' || !v) why = `${c.params.peer} is silent`;
  else if (peerSawMe(s, v) && (v.state !== 'SECOND' || !v.upToDate)) why = `${c.params.peer} knows it is behind (${v.state}${v.upToDate ? '' : ', not up to date'})`;
  if (why === null) return;
  s.holdWrites = false;
  log(c, 'info', `writes go on alone: ${why}`);
  c.out.push({ type: 'replicate', mode: 'alone' });
}

function onChecker(c: Ctx, name: string, up: boolean, action: CheckerAction): void {
  const s = c.s;
  log(c, up ? 'info' : 'warn', `checker ${name} ${up ? 'up' : 'down'} (action ${action})`, { checker: name, up, action });
  if (action === 'wait') {
    if (up) {
      s.waitCheckers = s.waitCheckers.filter((x) => x !== name);
      if (s.name === 'WAIT' && s.reason?.startsWith('checker:') && !s.plan) {
        const next = s.waitCheckers[0];
        if (next !== undefined) setState(c, 'WAIT', true, `checker:${next}`);
        else { setState(c, 'WAIT', true, 'peer-not-seen'); s.listenUntil = Math.max(s.listenUntil ?? c.now, c.now); }
      }
      return;
    }
    if (!s.waitCheckers.includes(name)) s.waitCheckers.push(name);
    return; // applied by evaluate (also after a running transition ends)
  }
  if (up || s.plan || s.name === 'STOP') return;
  if (action === 'restart' || action === 'stopstart' || action === 'stop') {
    if (validateCommand(s, { cmd: action }, c.params) === null) onCommand(c, { cmd: action });
  }
}

// ---- commands ----------------------------------------------------------------------------------

/** Why a command makes no sense now, or null if `step` will carry it out. */
export function validateCommand(state: MirrorState, command: MirrorCommand, params: MirrorParams): CommandRefusal | null {
  const s = state;
  const where = `${params.module} is ${s.name}${s.ready ? '' : ' (transient)'}${s.reason ? ` (${s.reason})` : ''}`;
  if (!s.initialized) return { message: `${params.module} is not initialised yet: retry in a moment` };
  if (command.cmd === 'failover') return null;
  if (command.cmd === 'stop') return s.name === 'STOP' && !s.plan ? { message: `${params.module} is already stopped` } : null;
  if (s.plan) {
    const running = s.plan.waiting === 'vip' ? ': the virtual IP is being added' : s.plan.waiting ? `: ${s.plan.waiting} is running` : '';
    return { message: `${where}${running}; retry when the transition ends` };
  }
  switch (command.cmd) {
    case 'start':
      return s.name === 'STOP' ? null : { message: `${where}: already started (use stop first, or stopstart)` };
    case 'restart':
      return isPrimaryName(s.name) ? null : { message: `${where}: restart reruns the application's scripts on the primary only` };
    case 'stopstart':
      return s.name === 'STOP' ? { message: `${where}: use start` } : null;
    case 'swap': {
      if (s.name !== 'PRIM') return { message: `${where}: swap is run on the primary (PRIM) while its secondary is ready` };
      const v = s.peer.view;
      if (peerRole(s, params, null) !== 'candidate' || !v || v.state !== 'SECOND' || !v.ready) {
        return { message: `${where}: no ready secondary to swap with` };
      }
      if (!v.upToDate || dataCmp(s, params, v.generation) !== 'equal' || (params.hasReplication && peerMsg(v).unacked === true)) {
        return { message: `${where}: the secondary ${params.peer} is not up to date; wait for its resync to end` };
      }
      return null;
    }
    case 'prim':
      if (s.name !== 'WAIT') return { message: `${where}: prim forces a waiting node (WAIT) to become primary` };
      if (s.waitCheckers.length > 0) return { message: `${where}: checker ${s.waitCheckers[0] ?? ''} is down` };
      if (s.peer.view && peerRole(s, params, null) === 'primary') {
        return { message: `${where}: the peer ${params.peer} is primary (${s.peer.view.state}); stop it first` };
      }
      // A live SECOND peer takes over by itself from a node that waits without listening (a held
      // WAIT: vip-conflict, start_prim-failed, diverged, checker): forcing this node then could
      // make two primaries (simulator finding 4). A listening WAIT may be forced.
      if (s.peer.view && s.peerLive && s.peer.view.state === 'SECOND' && !(s.reason !== null && LISTENING.has(s.reason))) {
        return { message: `${where}: the peer ${params.peer} is SECOND and takes over by itself when it may; stop it first to force this node` };
      }
      return null;
    case 'second':
      return s.name === 'WAIT' || s.name === 'STOP' ? null : { message: `${where}: second applies to a waiting or stopped node` };
  }
}

function onCommand(c: Ctx, command: MirrorCommand): void {
  const s = c.s;
  const refusal = validateCommand(s, command, c.params);
  if (refusal) { log(c, 'warn', `command ${command.cmd} refused: ${refusal.message}`); return; }
  log(c, 'info', `command ${command.cmd}`, { command });
  switch (command.cmd) {
    case 'failover':
      persist(c, { failover: command.on });
      break;
    case 'start':
      s.restarts = [];
      startPlan(c, 'start', []);
      break;
    case 'stop':
      if (s.plan) s.pendingStop = 'stop';
      else stopPlan(c, 'stop', null);
      break;
    case 'restart': {
      if (!countRestart(c)) return;
      const n = s.name;
      runPlan(c, [{ k: 'enter', name: n, reason: null, stopping: false },
        script('stop_prim', [n, n, 'restart'], 'prim'), script('start_prim', [n, n, 'restart'], 'prim'),
        { k: 'done', name: n, reason: null }]);
      break;
    }
    case 'stopstart':
      if (!countRestart(c)) return;
      stopstartPlan(c, 'stopstart');
      break;
    case 'swap':
      becomeSecond(c, 'swap', true);
      break;
    case 'prim': {
      const v = s.peer.view;
      const absorb = v && c.params.hasReplication && compareGenerations(s.persisted.generation, v.generation) === 'diverged'
        ? [v.generation.current] : [];
      s.wasDiverged = false;
      s.forcedSecond = null; // `prim` overrides an earlier `second`
      becomePrimary(c, 'ALONE', 'prim', absorb);
      break;
    }
    case 'second':
      s.forcedSecond = { full: command.fullsync === true };
      if (s.name === 'STOP') startPlan(c, 'start', []);
      else setState(c, 'WAIT', true, 'peer-not-seen');
      s.listenUntil = null;
      break;
  }
}

// ---- decisions when no transition runs ----------------------------------------------------------

function evaluate(c: Ctx): void {
  const s = c.s;
  // Held writes are released (or, once this node left the primary role, failed by the rfs) even
  // while a transition runs: its scripts may wait for an application that waits for its writes.
  if (s.holdWrites && !isPrimaryName(s.name)) s.holdWrites = false;
  if (s.genPending && !isPrimaryName(s.name)) s.genPending = false;
  if (s.initialized && s.holdWrites) releaseWrites(c, peerRole(s, c.params, c.now));
  // Split brain and self-fencing act even while a transition runs: a cut-off primary holds its
  // writes at once, not once its scripts end.
  if (s.initialized) guardSplitBrain(c);
  if (!s.initialized || s.plan) return;
  if (s.pendingStop) {
    if (s.name === 'STOP') s.pendingStop = null;
    else { stopPlan(c, s.pendingStop, null); return; }
  }
  if (s.name === 'STOP') return;
  // A `wait` checker that came up again while the release into WAIT ran (simulator finding 3):
  // no checker holds the module any more, so it listens for its peer again.
  if (s.waitCheckers.length === 0 && s.name === 'WAIT' && s.reason?.startsWith('checker:')) {
    setState(c, 'WAIT', true, 'peer-not-seen');
    // The start's listening period still holds (seed 3850: a checker up 0.2 s after the start
    // made the node decide alone before it could hear its peer).
    s.listenUntil = Math.max(s.listenUntil ?? c.now, c.now);
  }
  if (s.waitCheckers.length > 0) {
    const reason = `checker:${s.waitCheckers[0] ?? ''}`;
    if (s.name !== 'WAIT') { log(c, 'warn', `checker down: releasing the module (${reason})`); releaseToWait(c, reason, 'stopstart'); }
    else if (!s.reason?.startsWith('checker:')) setState(c, 'WAIT', true, reason);
    return;
  }
  const role = peerRole(s, c.params, c.now);
  if (role !== 'primary' && s.conflict) { s.conflict = false; c.out.push({ type: 'announce-vip' }); }
  if (role === 'silent' && s.swapBackAsked) s.swapBackAsked = false;
  switch (s.name) {
    case 'WAIT': evalWait(c, role); break;
    case 'SECOND': evalSecond(c, role); break;
    case 'PRIM': case 'ALONE': evalPrimary(c, role); break;
  }
}

/** This node may run alone: up to date and it was the last primary, or in sync when the peer left. */
function mayRunAlone(c: Ctx): boolean {
  const s = c.s;
  if (!c.params.hasReplication) return true;
  return s.persisted.upToDate && (s.persisted.lastPrimary === c.params.node || s.inSync);
}

/** The peer's view was made after it saw this node in its current state (see MirrorMsg.sees). */
function peerSawMe(s: MirrorState, v: PeerView): boolean {
  const m = peerMsg(v);
  return m.sees === s.changes && m.seesLife === s.idSeed;
}

function evalWait(c: Ctx, role: PeerRole): void {
  const s = c.s;
  const r = s.reason ?? '';
  const v = s.peer.view;
  if (role === 'silent' || !v) {
    const listened = r === 'peer-not-seen' && s.listenUntil !== null && c.now >= s.listenUntil && !s.forcedSecond;
    // Silence counted from the last heartbeat heard, else from the start of listening.
    const ref = s.peer.lastHeard ?? (s.listenUntil !== null ? s.listenUntil - c.params.heartbeatTimeoutMs : null);
    if (listened || (r === 'isolated' && !s.forcedSecond)) {
      // The last view of the peer may name newer data (it went on alone before it fell silent).
      const cmp = v ? dataCmp(s, c.params, v.generation) : 'equal';
      if (!mayRunAlone(c) || cmp === 'behind') { setState(c, 'WAIT', true, 'peer-not-up-to-date'); return; }
      if (cmp === 'diverged') { waitFor(c, 'diverged'); return; }
      if (suspectYields(s, c.params, v)) { waitSuspect(c, `peer ${c.params.peer} silent`); return; }
      const g = silentGate(c, ref);
      if (g === 'go') becomePrimary(c, 'ALONE', r === 'isolated' ? 'takeover' : 'start');
      else if (g === 'isolated' && r !== 'isolated') { log(c, 'warn', `peer ${c.params.peer} silent and ${isolation(c)}: waiting`); setState(c, 'WAIT', true, 'isolated'); }
    } else if (r === 'failover-off' && s.persisted.failover && mayRunAlone(c)) {
      const g = silentGate(c, ref);
      if (g === 'go') becomePrimary(c, 'ALONE', 'takeover');
      else if (g === 'isolated') setState(c, 'WAIT', true, 'isolated');
    }
    return;
  }
  const cmp = dataCmp(s, c.params, v.generation);
  if (role === 'primary') {
    if (cmp === 'equal' || cmp === 'behind' || s.forcedSecond) { s.wasDiverged ||= cmp === 'diverged'; becomeSecond(c, 'start', false); } else waitFor(c, 'diverged');
    return;
  }
  if (!LISTENING.has(r)) return; // held reasons: start_prim-failed, vip-conflict
  if (role === 'candidate') {
    const e = elect(s, c.params, v);
    if (e === 'me' && s.forcedSecond) { secondNoPrimary(c, v); return; }
    if (e === 'me') { if (peerSawMe(s, v)) becomePrimary(c, peerInSync(s, c.params, v) ? 'PRIM' : 'ALONE', 'start'); }
    else if (e === 'peer') becomeSecond(c, 'start', false);
    else if (e === 'none') waitFor(c, 'diverged');
    return;
  }
  // The peer is passive (STOP, held WAIT): it holds nothing and will not start without us.
  if (s.forcedSecond || (r === 'failover-off' && !s.persisted.failover)) return;
  if (suspectYields(s, c.params, v)) { waitSuspect(c, `peer ${c.params.peer} is ${v.state}`); return; }
  if (cmp === 'ahead' || (cmp === 'equal' && s.persisted.upToDate)) { if (peerSawMe(s, v)) becomePrimary(c, 'ALONE', 'start'); }
  else waitFor(c, cmp === 'diverged' ? 'diverged' : 'peer-not-up-to-date');
}

/**
 * This copy is suspect (its host crashed: it may have lost writes it had acknowledged, the page
 * cache gone) while the peer's copy of the same data, up to date and not suspect, may hold them
 * (simulator finding 9): this node does not start the application on its copy; it waits
 * (`suspect-copy`) for the peer, which wins the election when it starts, or for an admin's
 * `prim`. The peer is judged by its last view (stopped, releasing, or silent since); never
 * heard since this start: by Persisted.peerSynced (DRBD waits for its peer after a crash of a
 * connected primary too). A peer held in WAIT (`start_prim-failed`, ...) cannot run the
 * application: this node takes over as before, unless that peer was the last primary.
 */
function suspectYields(s: MirrorState, params: MirrorParams, v: PeerView | null): boolean {
  if (!params.hasReplication || s.persisted.suspect !== true) return false;
  // Silent (never heard since the start): this copy was PRIM, its peer in sync, when it crashed.
  if (v === null) return s.persisted.peerSynced === true;
  const pm = peerMsg(v);
  // A peer held in WAIT (start_prim-failed, ...) cannot run the application: this copy takes
  // over, unless the peer was the last primary: its attempt may have acknowledged writes before
  // it failed, which this copy lost (seeds 4241, 7164, 8954). Both wait then, for an admin.
  const held = v.state === 'WAIT' && v.reason !== null && !LISTENING.has(v.reason);
  if (held && pm.lastPrimary !== params.peer) return false;
  return v.upToDate && pm.suspect !== true && dataCmp(s, params, v.generation) === 'equal';
}

function waitSuspect(c: Ctx, why: string): void {
  if (c.s.name === 'WAIT' && c.s.reason === 'suspect-copy') return;
  log(c, 'warn', `${why}, and this copy's host crashed: ${c.params.peer}'s copy may hold writes this one lost; waiting for ${c.params.peer} (run \`hakit prim\` here to start on this copy)`);
  waitFor(c, 'suspect-copy');
}

/**
 * This node was told `second`, but its candidate peer will not become primary: the election
 * (which both compute alike) names this node (the peer's data is older, or it was told `second`
 * too). Nothing would move (simulator finding 2): wait with a reason that says what to do.
 */
function secondNoPrimary(c: Ctx, v: PeerView): void {
  const s = c.s;
  if (s.name === 'WAIT' && s.reason === 'second-no-primary') return;
  const pm = peerMsg(v);
  const why = c.params.hasReplication && pm.suspect === true && s.persisted.suspect !== true && dataCmp(s, c.params, v.generation) === 'equal'
    ? 'has a suspect copy (its host crashed: it may lack writes this copy holds)'
    : pm.second ? 'was told `second` too' : 'has older data';
  log(c, 'warn', `told second, but ${c.params.peer} ${why} and will not become primary: waiting (run \`hakit prim\` on this node to keep its data)`);
  if (s.name === 'WAIT') setState(c, 'WAIT', true, 'second-no-primary');
  else releaseToWait(c, 'second-no-primary', 'stopstart');
}

/**
 * The peer holds this node's data: up to date, the same generation, and neither copy may hold
 * writes the other never acknowledged (Persisted.unacked: a primary killed or demoted with held
 * calls; a primary's own mark only says it writes now). Always, without replication.
 */
function peerInSync(s: MirrorState, params: MirrorParams, v: PeerView): boolean {
  return !params.hasReplication || (v.upToDate && v.generation.current !== NO_DATA && dataCmp(s, params, v.generation) === 'equal' &&
    (isPrimaryName(s.name) || s.persisted.unacked !== true) && peerMsg(v).unacked !== true);
}

/** Primary: answers a new resync request of a SECOND that is behind (each request once). */
function serveResync(c: Ctx, v: PeerView): void {
  const s = c.s;
  const req = peerMsg(v).resyncReq;
  if (typeof req !== 'number' || v.upToDate || s.holdWrites || s.genPending) return;
  const key = `${peerMsg(v).life ?? ''}:${req}`;
  if (s.served === key) return;
  s.served = key;
  const full = peerMsg(v).incremental !== true;
  log(c, 'info', `serving resync request ${req} of ${c.params.peer} (generation ${s.persisted.generation.current}, ${full ? 'full' : 'incremental if the change log allows'})`);
  // From the resync's end on, the rfs replicates synchronously (before the core hears that the
  // peer is up to date): the peer may hold acknowledged writes from then on (Persisted.peerSynced).
  persist(c, { peerSynced: true });
  c.out.push({ type: 'replicate', mode: 'resync', full, generation: s.persisted.generation.current });
}

function waitFor(c: Ctx, reason: string): void {
  if (reason === 'diverged') c.s.wasDiverged = true;
  if (c.s.name === 'WAIT') setState(c, 'WAIT', true, reason);
  else releaseToWait(c, reason, 'stopstart');
}

/**
 * The peer is gone or released everything: take over, or wait. `silent`: the peer is silent on
 * every heartbeat network (not heard releasing): the split-brain gate applies.
 */
function takeoverOrWait(c: Ctx, why: string, silent = false): void {
  const s = c.s;
  if (!s.persisted.failover) { log(c, 'warn', `peer ${c.params.peer} ${why}; failover is off: waiting`); releaseToWait(c, 'failover-off', 'stopstart'); return; }
  if (!mayRunAlone(c)) { log(c, 'warn', `peer ${c.params.peer} ${why}; this node is not up to date: waiting`); releaseToWait(c, 'peer-not-up-to-date', 'stopstart'); return; }
  // The last view of the peer may name newer data than ours (it went ALONE, then released):
  // taking over would serve older data (simulator finding 5).
  const v = s.peer.view;
  const cmp = v ? dataCmp(s, c.params, v.generation) : 'equal';
  if (cmp === 'behind' || cmp === 'diverged') {
    log(c, 'warn', `peer ${c.params.peer} ${why}; its data (${v?.generation.current ?? '?'}) is newer than this node's: waiting`);
    if (cmp === 'diverged') waitFor(c, 'diverged'); else releaseToWait(c, 'peer-not-up-to-date', 'stopstart');
    return;
  }
  if (suspectYields(s, c.params, v)) { waitSuspect(c, `peer ${c.params.peer} ${why}`); return; }
  if (silent) {
    const g = silentGate(c, s.peer.lastHeard);
    if (g === 'wait') return;
    if (g === 'isolated') {
      log(c, 'warn', `peer ${c.params.peer} ${why} and ${isolation(c)}: not taking over, waiting`);
      releaseToWait(c, 'isolated', 'isolated');
      return;
    }
  }
  log(c, 'warn', `peer ${c.params.peer} ${why}: taking over`);
  becomePrimary(c, 'ALONE', 'takeover');
}

/**
 * The default primary does not ask for its role back while a restart or stopstart of this node
 * (a checker's, a failing start_prim's, an admin's) is within the maxloop window: the failure
 * that moved the role would likely move it again, up to maxloop (a failing health check
 * flip-flopped the role three times in 3 s). After the window, or a `start`, or a `swap`, it does.
 * Logged once per stay as SECOND.
 */
function swapBackDeferred(c: Ctx): boolean {
  const s = c.s;
  const recent = s.restarts.filter((t) => t > c.now - c.params.maxloop.windowMs);
  if (recent.length === 0) return false;
  if (!s.swapBackDeferred) {
    s.swapBackDeferred = true;
    const latest = Math.max(...recent);
    const until = latest + c.params.maxloop.windowMs;
    log(c, 'info', `default primary ${c.params.node} is in sync, but it was restarted or failed over ${Math.round((c.now - latest) / 1000)} s ago: not asking ${c.params.peer} to swap back for ${Math.round((until - c.now) / 1000)} s (\`hakit swap\` does it now)`);
  }
  return true;
}

function evalSecond(c: Ctx, role: PeerRole): void {
  const s = c.s;
  const v = s.peer.view;
  if (role === 'silent' || !v) { s.swapOut = false; takeoverOrWait(c, 'silent on every heartbeat network', true); return; }
  const cmp = dataCmp(s, c.params, v.generation);
  if (role === 'primary') {
    if (s.swapOut) { s.swapOut = false; setState(c, 'SECOND', true, null, false); }
    if (s.persisted.lastPrimary !== c.params.peer) persist(c, { lastPrimary: c.params.peer });
    if (!c.params.hasReplication) {
      if (s.persisted.generation.current !== v.generation.current) {
        persist(c, { generation: { current: v.generation.current, history: [...v.generation.history] }, upToDate: true });
      }
    } else if (cmp === 'behind' || (s.forcedSecond && cmp !== 'equal') || (cmp === 'diverged' && s.wasDiverged) ||
        (cmp === 'equal' && (!s.persisted.upToDate || s.persisted.unacked === true))) {
      if (!s.resyncing && (s.resyncRetryAt === null || c.now >= s.resyncRetryAt)) {
        s.resyncing = true;
        s.resyncReq++;
        // A copy with unacknowledged writes (Persisted.unacked) may differ anywhere: full.
        const full = s.wasDiverged || cmp === 'diverged' || s.forcedSecond?.full === true || s.persisted.unacked === true;
        s.resyncIncremental = !full;
        persist(c, { upToDate: false });
        c.out.push({ type: 'start-resync', full }, { type: 'send-heartbeat' });
      }
      return;
    } else if (cmp !== 'equal') { waitFor(c, 'diverged'); return; }
    s.forcedSecond = null;
    // In sync only with a PRIM: a peer that is ALONE (even transiently, before its new
    // generation is announced) writes without this node (simulator finding 5).
    s.inSync = s.persisted.upToDate && dataCmp(s, c.params, v.generation) === 'equal' && (!c.params.hasReplication || v.state === 'PRIM');
    const dp = c.params.defaultPrimary;
    if (dp === c.params.node && s.inSync && v.state === 'PRIM' && v.ready && !s.swapBackAsked && swapBackDeferred(c)) return;
    if (dp === c.params.node && s.inSync && v.state === 'PRIM' && v.ready && !s.swapBackAsked) {
      s.swapBackAsked = true;
      s.wantSwap = true;
      log(c, 'info', `default primary ${c.params.node} is in sync: asking ${c.params.peer} to swap back`);
      c.out.push({ type: 'send-heartbeat' });
    }
    return;
  }
  if (s.wantSwap) { s.wantSwap = false; c.out.push({ type: 'send-heartbeat' }); }
  if (role === 'handover') {
    // Only with the peer's data: a primary that lost the link during its swap started a new
    // generation this node lacks (simulator finding 14). It gives the swap up and serves a resync.
    // Nor with a marked copy (Persisted.unacked: its host crashed, or it holds writes the peer
    // never acknowledged): it may lack what the peer acknowledged (finding 9, seed 11039).
    if (c.params.hasReplication && !(s.persisted.upToDate && cmp === 'equal' && s.persisted.unacked !== true)) return;
    log(c, 'info', `peer ${c.params.peer} hands over (swap): taking over`);
    becomePrimary(c, 'PRIM', 'swap');
    return;
  }
  if (s.swapOut) {
    // Our own handover: wait for the peer to take over (or fall silent). It goes to a SECOND only
    // (validateCommand); a peer that left SECOND meanwhile (told `failover off`, stopped, held by
    // a checker) will never take it (simulator finding 7): give the handover up and decide as any
    // SECOND does, so that one of the two becomes primary again.
    // A SECOND without this node's data (finding 14: the link was lost during the swap, this
    // node began a new generation) will not take it either.
    const peerReady = v.state === 'SECOND' && (!c.params.hasReplication || (v.upToDate && cmp === 'equal' && peerMsg(v).unacked !== true));
    if (peerReady) return;
    s.swapOut = false;
    log(c, 'warn', `swap abandoned: ${c.params.peer} is ${v.state}${v.reason ? ` ${v.reason}` : ''}${v.state === 'SECOND' ? ' without this node\'s data' : ', not SECOND'}`);
    setState(c, 'SECOND', true, null, false);
  }
  if (role === 'candidate') {
    const e = elect(s, c.params, v);
    if (e === 'me' && s.forcedSecond) { secondNoPrimary(c, v); return; }
    if (e === 'me') { if (peerSawMe(s, v)) becomePrimary(c, peerInSync(s, c.params, v) ? 'PRIM' : 'ALONE', 'start'); }
    else if (e === 'none') waitFor(c, 'diverged');
    return;
  }
  takeoverOrWait(c, v.stopping ? 'stopped cleanly' : `released the primary role (${v.state}${v.reason ? ` ${v.reason}` : ''})`);
}

function evalPrimary(c: Ctx, seen: PeerRole): void {
  const s = c.s;
  const role = seen === 'handover' ? 'candidate' : seen; // a handing-over SECOND is still our secondary
  const v = s.peer.view;
  if (s.writesBlocked) {
    // Cut off (guardSplitBrain): writes are held already; now release everything (held writes
    // fail at `mount none`) and wait.
    log(c, 'warn', 'split brain: demoting (stop_prim, VIP removed, held writes fail)');
    releaseToWait(c, 'isolated', 'isolated');
    return;
  }
  if (role === 'primary' && v) {
    const cmp = dataCmp(s, c.params, v.generation);
    const winner = cmp === 'ahead' ? 'me' : cmp === 'behind' ? 'peer' : tieBreak(s, c.params, v);
    if (!s.conflict) {
      s.conflict = true;
      log(c, 'error', `two primaries: peer ${c.params.peer} is ${v.state} too (data ${cmp}); ${winner === 'me' ? 'this node stays' : 'this node releases'}`, { cmp });
    }
    if (winner === 'me') return;
    s.conflict = false;
    if (cmp === 'diverged') waitFor(c, 'diverged');
    else { s.wasDiverged = false; becomeSecond(c, 'conflict', false); }
    return;
  }
  const peerSecondInSync = role === 'candidate' && v !== null && v.state === 'SECOND' && v.ready && peerInSync(s, c.params, v);
  const peerComing = role === 'candidate' && v !== null && (v.state === 'SECOND' || v.reason === 'peer-not-seen');
  if (c.params.hasReplication && role === 'candidate' && v !== null && v.state === 'SECOND' && !s.plan) serveResync(c, v);
  if (s.name === 'ALONE' && peerSecondInSync && !s.holdWrites && !s.genPending) {
    if (c.params.hasReplication) persist(c, { peerSynced: true });
    setState(c, 'PRIM', true, null);
    return;
  }
  if (c.params.hasReplication && s.name === 'PRIM' && v !== null && v.state === 'SECOND' && v.ready && !peerInSync(s, c.params, v)) {
    // PRIM promises a secondary with this node's data; a SECOND that is behind makes it ALONE.
    log(c, 'warn', `${c.params.peer} is SECOND but not up to date: ALONE until its resync ends`);
    setState(c, 'ALONE', true, null);
    return;
  }
  if (s.name === 'PRIM' && !peerComing) {
    // A peer that left SECOND (a clean stop) applies nothing more: writes would wait for acks
    // until replication.timeout. Replication goes alone as soon as the peer has seen the new
    // generation (one heartbeat), as after a lost link (releaseWrites).
    if (c.params.hasReplication && role !== 'silent' && v !== null) s.holdWrites = true;
    newGenerationAfterFlush(c);
    log(c, 'warn', `peer ${c.params.peer} ${role === 'silent' ? 'silent on every heartbeat network' : `is ${v?.state ?? '?'}`}: going on alone`);
    setState(c, 'ALONE', true, null);
    return;
  }
  if (s.name === 'PRIM' && peerSecondInSync && v && peerMsg(v).wantSwap && validateCommand(s, { cmd: 'swap' }, c.params) === null) {
    log(c, 'info', `swap back to the default primary ${c.params.peer}`);
    becomeSecond(c, 'swap', true);
  }
}

// ---- split brain: witnesses, the arbitrator's lease, self-fencing ----------------------------------
//
// Bound (ping witnesses; DESIGN.md 3.1, 5). Let X be the moment the primary P is cut off from its
// peer S and from every witness, T = heartbeatTimeoutMs, I and TO the splitbrain checker's
// interval and timeout, p the pulse, grace = I + TO + p (MirrorParams.splitBrain.graceMs).
// - P's last heartbeat to S left at or after X - p, so S hears P until X - p at least and, on
//   silence, takes over no earlier than X - p + T + grace = X + T + I + TO (`silentGate`).
// - P learns that no witness answers by X + I + TO (the probe that starts after X fails within
//   its timeout; a run that started before X may still succeed) and hears S's silence at X + T
//   at the latest (its silence tick). It asks the rfs to hold writes (`mount blocked`) on the
//   step where both are known: by X + max(T, I + TO), even while a transition runs
//   (`guardSplitBrain`). max(T, I + TO) < T + I + TO: P stops acknowledging writes strictly
//   before S may take over (the margin is min(T, I + TO)), as long as the executor runs the
//   `mount blocked` within that margin. stop_prim, the VIP removal and `mount none` follow.
// Arbitrator: P must have blocked by its lease's demote deadline (src/core/witness/lease.ts),
// checked on every tick (one per pulse; the deadline's margin includes a pulse); S takes over only
// on a grant, which the witness gives only after P's lease ended at the witness.

/** What cuts this primary off, when its peer is silent; null: it may go on. */
function cutOff(c: Ctx): string | null {
  const s = c.s;
  const sb = c.params.splitBrain;
  if (!sb) return null;
  if (sb.witnesses && !s.witnessUp) return 'no witness answers';
  if (sb.arbitrator && !(s.leaseDeadline !== null && c.now < s.leaseDeadline)) {
    return s.leaseDeadline === null ? 'it holds no witness lease' : 'its witness lease was not renewed in time';
  }
  return null;
}

/** Why this node does not take over (for logs). */
function isolation(c: Ctx): string {
  const s = c.s;
  const sb = c.params.splitBrain;
  if (sb?.witnesses && !s.witnessUp) return 'no witness answers';
  if (s.leaseRefused === 'error') return 'the arbitrator witness does not answer';
  if (s.leaseRefused === 'quiet') return 'the arbitrator witness just started';
  if (s.leaseRefused !== null) return `the arbitrator witness gives the lease to ${s.leaseRefused}`;
  return 'the split-brain checks fail';
}

/**
 * May this node take the primary role from a peer that is silent on every heartbeat network
 * since `since` (null: never heard)? `go`; `wait` (decide again later: the grace after the
 * silence has not passed, or a lease request is out or was refused); `isolated` (no witness
 * answers, or the arbitrator does not).
 */
function silentGate(c: Ctx, since: number | null): 'go' | 'wait' | 'isolated' {
  const s = c.s;
  const sb = c.params.splitBrain;
  if (!sb) return 'go';
  if (sb.witnesses) {
    if (!s.witnessUp) return 'isolated';
    if (since !== null && c.now < since + c.params.heartbeatTimeoutMs + sb.graceMs) return 'wait';
  }
  if (sb.arbitrator) {
    if (s.leaseDeadline !== null && c.now < s.leaseDeadline) return 'go';
    askLease(c, false);
    return s.leaseRefused === 'error' ? 'isolated' : 'wait';
  }
  return 'go';
}

/** Sends `lease acquire` unless one is out; at most once per pulse unless `now`. */
function askLease(c: Ctx, now: boolean): void {
  const s = c.s;
  if (s.leaseAsking) return;
  if (!now && s.leaseAskedAt !== null && c.now - s.leaseAskedAt < c.params.pulseMs) return;
  s.leaseAsking = true;
  s.leaseAskedAt = c.now;
  c.out.push({ type: 'lease', op: 'acquire' });
}

/**
 * Every event: renews the lease of a primary (every pulse), holds the writes of a primary that
 * is cut off (see the bound above), and lifts a self-fence once it is safe.
 */
function guardSplitBrain(c: Ctx): void {
  const s = c.s;
  const sb = c.params.splitBrain;
  if (s.fencedAt !== null) checkFence(c);
  // Only a node that serves, or is about to serve, read-write: not one whose release already
  // unmounted (its state still says PRIM/ALONE until the release ends).
  const willMountRw = s.plan?.steps.some((st) => st.k === 'act' && st.action.type === 'mount' && st.action.mode === 'rw') ?? false;
  if (!sb || !isPrimaryName(s.name) || (s.mounted !== 'rw' && s.mounted !== 'blocked' && !willMountRw)) return;
  if (sb.arbitrator) askLease(c, false);
  if (s.writesBlocked || s.mounted === 'blocked') return;
  const silent = peerRole(s, c.params, c.now) === 'silent';
  if (!silent && !peerDeaf(s, c.params, c.now)) return;
  const why = cutOff(c);
  if (why === null) return;
  s.writesBlocked = true;
  const peerWhy = silent ? 'silent on every heartbeat network' : 'heard, but it has not heard this node for too long (heartbeats lost one way)';
  log(c, 'error', `split brain: peer ${c.params.peer} ${peerWhy} and ${why}: holding writes, demoting`);
  c.out.push({ type: 'mount', mode: 'blocked' }); // a no-op without replicated dirs, as every mount
}

function onWitness(c: Ctx, reachable: boolean): void {
  const s = c.s;
  if (s.witnessUp === reachable) return;
  s.witnessUp = reachable;
  log(c, reachable ? 'info' : 'warn', reachable ? 'witness reachable' : 'no witness answers');
}

function onLease(c: Ctx, e: Extract<MirrorEvent, { type: 'lease' }>): void {
  const s = c.s;
  s.leaseAsking = false;
  if (e.granted) {
    try {
      s.leaseDeadline = demoteDeadline({ grantSentAtMs: e.sentAtMs, leaseMs: e.leaseMs, pulseMs: c.params.pulseMs });
    } catch (err) {
      log(c, 'error', `witness lease unusable: ${(err as Error).message}`);
      s.leaseDeadline = null;
    }
    if (s.leaseRefused !== null) log(c, 'info', 'witness lease granted');
    s.leaseRefused = null;
  } else {
    const refused = e.error !== undefined ? 'error' : e.holder ?? 'quiet';
    if (refused !== s.leaseRefused) {
      log(c, 'warn', refused === 'error' ? `the arbitrator witness does not answer (${e.error ?? ''})`
        : refused === 'quiet' ? 'the arbitrator witness just started: no lease yet' : `witness lease held by ${refused}`);
    }
    s.leaseRefused = refused;
  }
  const plan = s.plan;
  if (plan?.waiting !== 'lease') return;
  if (s.leaseDeadline !== null && c.now < s.leaseDeadline) { plan.waiting = null; advance(c); return; }
  if (peerAlive(s, c.params, c.now) && !peerDeaf(s, c.params, c.now)) {
    // The peer hears this node and let it take the role: no second primary is possible while
    // that lasts; without a lease the node demotes as soon as the peer falls silent or deaf.
    log(c, 'warn', `no witness lease (${isolation(c)}), but ${c.params.peer} is heard: going on without it`);
    plan.waiting = null;
    advance(c);
    return;
  }
  log(c, 'error', `no witness lease (${isolation(c)}) and ${c.params.peer} is silent: releasing`);
  s.plan = null;
  releaseToWait(c, 'isolated', 'isolated');
}

/** The rfs fenced itself: writes are held until `checkFence` lifts it (or a release fails them). */
function onFenced(c: Ctx, detail: string): void {
  const s = c.s;
  log(c, 'warn', `the rfs fenced itself (${detail}): writes held until ${c.params.peer} is known not to be primary`);
  s.fencedAt = c.now;
  s.changes++; // a view of the peer counts only when it was made after it saw this one
  // The daemon stalled: the peer's silence meanwhile proves nothing (its heartbeats wait in the
  // socket, behind this event). It gets a heartbeat timeout from now to be heard, so that a
  // stalled primary does not go on alone (a new generation, diverged from a peer that took over).
  if (s.peer.lastHeard !== null) s.peer.lastHeard = Math.max(s.peer.lastHeard, c.now);
  c.out.push({ type: 'send-heartbeat' });
}

/**
 * Lifts a self-fence (`unfence`) when a view of the peer made after the fence (`sees` echo) shows
 * it is not primary, or when the peer stayed silent for heartbeatTimeoutMs (+ grace) after the
 * fence and this node passes the split-brain checks. A primary peer: evalPrimary resolves the
 * two primaries; the loser releases and its held writes fail.
 */
function checkFence(c: Ctx): void {
  const s = c.s;
  if (s.fencedAt === null) return;
  if (!isPrimaryName(s.name)) { if (!s.plan) s.fencedAt = null; return; }
  if (s.writesBlocked) return;
  const v = s.peer.view;
  const role = peerRole(s, c.params, c.now);
  let why: string | null = null;
  if (role !== 'silent' && v && peerSawMe(s, v)) {
    if (role === 'primary') return;
    why = `${c.params.peer} is ${v.state} (a view made after the fence)`;
  } else if (role === 'silent' && c.now >= s.fencedAt + c.params.heartbeatTimeoutMs + (c.params.splitBrain?.graceMs ?? 0) && cutOff(c) === null) {
    why = `${c.params.peer} stayed silent since the fence`;
  }
  if (why === null) return;
  s.fencedAt = null;
  log(c, 'info', `self-fence lifted: ${why}`);
  c.out.push({ type: 'unfence' });
}
