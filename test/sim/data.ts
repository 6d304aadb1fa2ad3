/**
 * The simulator's data model (issue 8 part 1: "no acknowledged write missing on the node that is
 * primary afterwards; replicas equal after resync; divergent data kept"). Runs with replication
 * only. Everything is driven by the world's clock and a Random of its own.
 *
 * What is modelled, and from where (follow these files when they change):
 * - **A copy** per node (`NodeData`): one replicated dir, flat, of a few files. A file is an
 *   array of zones (zone size 1 for the change log), each holding the number (`wid`) of the
 *   write that put it there (0: a hole). `cache` is what the node's file system shows (page cache
 *   included), `disk` what survives a power loss: `fsync` of a file copies its entry, a periodic
 *   writeback (the kernel's) copies everything, and so does the daemon's flush at a clean STOP
 *   (mirror-runtime.ts `cleanStop`). A crash sets `cache` back to `disk`.
 * - **The daemon's suspect copy** (mirror-runtime.ts start): a host that lost power while its
 *   module was not cleanly stopped starts with `suspect` and `unacked` set in its store, and its
 *   change log incomplete unless `unlogged` was clear (flushed in alone mode since its last
 *   SECOND or sync-mode stint: MirrorRuntime.flushWhenAlone).
 * - **The change log**: the REAL `ChangeSet` (src/core/replication/changes.ts) with the
 *   complete/incomplete state of adapters/store/changelog.ts, durable (a mark is durable before
 *   the change it covers is made; the log survives crashes).
 * - **The primary's replicator** (`Rfs`, from adapters/fuse/link-replicator.ts, one per daemon
 *   life): modes alone / sync / resync / lost and their change-log rules (enterSyncLog,
 *   settleSyncLog, failHeld, startResync, failedResync), held calls, `replication-lost` and
 *   `unacked-write` events, the incremental plan (`ChangeSet.plan`, replays) or a full copy.
 * - **The secondary's receiver** (replica-receiver.ts, applier.ts, rfs-main.ts): applies records
 *   in order only while its mount is `ro` (accepting), waits otherwise; the newest connection
 *   replaces older ones; `expect-sync` deadline; `sync-start` (a full one quarantines what its
 *   own change log names first, then the log is emptied, incomplete), `sync-complete` (log
 *   emptied, complete; `resync-done ok` with the generation); tolerant mode between them; a
 *   `zones` item for a file it lacks is refused (LOG_MISMATCH: the next resync is full).
 * - **The link** (adapters/tcp/link.ts): one ordered stream per connection, acks back, no ack
 *   within `repTimeoutMs` fails the connection (every pending send), a cut `lan` (either way)
 *   carries nothing; a closed connection is seen by the receiver after the records already sent.
 * - **The application** (`App`): on a node holding the application and a rw mount, one call at a
 *   time (write a zone: overwrite or append; create; delete; rename over; fsync). A call returns
 *   (is ACKNOWLEDGED) by passthrough.ts's rules: local apply and the replicator's submit both
 *   done; alone: after its change-log mark; sync: after the peer applied it.
 *
 * Not modelled: several dirs, subdirectories, truncate, metadata (mode, owner, times, xattrs),
 * hard links, excluded paths, the blocks/hashes of the comparison (a compared file is copied
 * whole: same result), the bandwidth cap, self-fencing, `hakit verify`, the log's size limit.
 */
import { ChangeSet, type Change, type PathChanges, replaysMatchTree } from '../../src/core/replication/changes.js';
import type { MirrorEvent } from '../../src/core/mirror/index.js';
import type { Random } from './prng.js';
import type { SimNode, World } from './world.js';

/** A file: one wid per zone (0: hole). Never mutated in place (copies share arrays). */
export type File = readonly number[];
export type Tree = Map<string, File>;

/** The files the application uses, and a temporary name it renames over them. */
export const FILES: readonly string[] = ['/a', '/b', '/c'];
const TMP = '/t';
const MAX_ZONES = 6;
/** Zone size given to the real change log (a zone of the model is one "byte"). */
const ZONE = 1;
const DIR = 0;

export type OpKind = 'write' | 'create' | 'delete' | 'rename' | 'fsync';

/** One call of the application. */
export interface AppOp {
  readonly wid: number;
  readonly kind: OpKind;
  readonly path: string;
  readonly from?: string;
  readonly zone?: number;
  readonly node: SimNode;
  readonly life: number;
  readonly at: number;
  status: 'pending' | 'acked' | 'failed' | 'abandoned';
}

/** What the application was told: the newest acknowledged write of one zone. */
export interface Expect {
  readonly wid: number;
  readonly ackedAt: number;
  readonly by: string;
  /** An fsync of its file returned after it was acknowledged. */
  fsynced: boolean;
  /**
   * Acknowledged in sync mode while the peer was up to date with this node's generation: the
   * peer, which could take over, applied it (promise 2). Otherwise (alone, a resync, or sync mode
   * before the peer recorded the resync's end) the peer could not take over with it: until an
   * fsync it is as durable as on one server.
   */
  readonly inSync: boolean;
}

/** Messages of the replication stream. */
type Item =
  | { readonly k: 'whole'; readonly path: string }
  | { readonly k: 'listing' }
  | { readonly k: 'zones'; readonly path: string; readonly changes: PathChanges };
type Msg =
  | { readonly k: 'op'; readonly op: AppOp }
  | { readonly k: 'sync-start'; readonly gen: string; readonly full: boolean }
  | { readonly k: 'replay'; readonly from: string; readonly to: string }
  | { readonly k: 'copy'; readonly item: Item; readonly names: readonly string[]; readonly path: string; readonly file: File | undefined }
  | { readonly k: 'sync-complete'; readonly gen: string; readonly snapshot: Tree };

/** The resync walker's state (fullsync.ts): root listed, files copied (or made by live records), re-copy queue. */
interface Walker { listed: boolean; readonly done: Set<string>; readonly recopy: Set<string>; readonly stack: Item[]; readonly full: boolean }

interface Send { readonly msg: Msg; settled: boolean; readonly ok: () => void; readonly fail: (why: string) => void }

/** One connection of the replication link, primary -> secondary. */
interface Conn {
  readonly id: number;
  readonly from: SimNode;
  readonly fromLife: number;
  readonly to: SimNode;
  readonly toLife: number;
  open: boolean;
  closedAt: number;
  lastArrival: number;
  readonly pending: Set<Send>;
  /** Sent, not arrived yet, in order (TCP: a cut delays what follows, never reorders it). */
  readonly wire: { readonly s: Send; readonly at: number }[];
  retrying: boolean;
  readonly inbox: Send[];
}

/** The durable data of one node (survives daemon restarts and crashes). */
export class NodeData {
  cache: Tree = new Map();
  disk: Tree = new Map();
  readonly log = new ChangeSet();
  /** The log's state line; a missing file is incomplete. */
  logComplete = false;
  /** Persisted.cleanStop: the module reached STOP and its dirs were flushed. A first start is clean. */
  cleanStop = true;
  /** The host lost power while the module was not cleanly stopped (the next start marks the copy suspect). */
  crashedDirty = false;
  /** Persisted.unlogged: the page cache may hold changes the log does not name (a SECOND's records, sync-mode writes). */
  unlogged = true;
  /** Cancels a flush in flight (MirrorRuntime.unloggedEpoch). */
  unloggedEpoch = 0;
  lastCrash = -Infinity;
  readonly quarantines: Tree[] = [];
}

/** The rfs child of one daemon life: the primary's replicator and the secondary's receiver. */
class Rfs {
  mode: 'alone' | 'sync' | 'resync' | 'lost' = 'alone';
  conn: Conn | null = null;
  held: AppOp[] = [];
  /** Sync-mode sends not settled. */
  readonly inflight = new Set<AppOp>();
  incompleteBySync = false;
  forceFull = false;
  leaving = false;
  /**
   * The mode of the mount gate (PassthroughFs.setMode): it changes when rfs-main's mount-all
   * begins, before the mount action ends; the application's calls pass only while `rw`.
   */
  gate = 'none';
  resync: { readonly token: number; readonly gen: string; readonly incremental: boolean; readonly conn: Conn; readonly walker: Walker } | null = null;
  // receiver
  accepting = false;
  recvConn: Conn | null = null;
  syncing: string | null = null;
  tolerant = false;
  syncFull = true;
  expectToken = 0;
  constructor(readonly life: number) {}
}

function applyOp(cache: Tree, disk: Tree | null, op: AppOp, tolerant: boolean): string | null {
  switch (op.kind) {
    case 'write': {
      const f = cache.get(op.path);
      if (f === undefined) return tolerant ? null : `write to a missing ${op.path}`;
      const z = op.zone ?? 0;
      const nf = f.slice();
      while (nf.length < z) nf.push(0);
      nf[z] = op.wid;
      cache.set(op.path, nf);
      return null;
    }
    // The application creates only names that are not there (FUSE create); in a resync the
    // receiver's stale file of that name starts empty (RecordApplier, finding 13).
    case 'create': if (tolerant || !cache.has(op.path)) cache.set(op.path, []); return null;
    case 'delete':
      if (!cache.delete(op.path) && !tolerant) return `unlink of a missing ${op.path}`;
      return null;
    case 'rename': {
      const f = cache.get(op.from ?? '');
      if (f === undefined) return tolerant ? null : `rename of a missing ${op.from ?? ''}`;
      cache.set(op.path, f);
      cache.delete(op.from ?? '');
      return null;
    }
    case 'fsync': {
      const f = cache.get(op.path);
      if (disk !== null && f !== undefined) disk.set(op.path, f);
      return null;
    }
  }
}

export function treeText(t: Tree): string {
  return [...t.keys()].sort().map((p) => `${p}=[${(t.get(p) ?? []).join(',')}]`).join(' ') || '(empty)';
}

export function treesEqual(a: Tree, b: Tree): boolean {
  if (a.size !== b.size) return false;
  for (const [p, f] of a) {
    const g = b.get(p);
    if (g === undefined || g.length !== f.length) return false;
    for (let i = 0; i < f.length; i++) if (f[i] !== g[i]) return false;
  }
  return true;
}

/**
 * The data of both nodes, the link and the application. The world calls the hooks (crash,
 * boot, actions, resources); the invariants get `onAppStart` (a node starts the application on
 * its copy) and `onResynced` (a secondary applied `sync-complete`, with the primary's copy at
 * that point of the stream).
 */
export class DataWorld {
  readonly nodes = new Map<SimNode, NodeData>();
  private readonly rfs = new Map<SimNode, Rfs>();
  private wid = 0;
  private connIds = 0;
  private tokens = 0;
  /** Per node: the application's call in progress (null: none). */
  private readonly busy = new Map<SimNode, AppOp | null>();
  /** The application's knowledge: newest acknowledged write per file and zone. */
  readonly expect = new Map<string, Map<number, Expect>>();
  /** A forced `prim` or a split-brain episode happened: acknowledged writes may be in a quarantine only. */
  diverged = false;
  /**
   * Known findings (docs/simulator.md) whose situation arose in this run, with the first time
   * (none open in the data model: 11, 13, 16 and 17 are fixed, their tags gone; finding 9 is
   * told from the failure itself).
   */
  readonly findings = new Map<number, number>();
  /** Stops new application calls (end of the run: the stream drains). */
  frozen = false;
  readonly stats = {
    appOps: 0, acked: 0, ackedSync: 0, ackedAlone: 0, failedOps: 0, abandonedOps: 0, heldOps: 0, fsyncs: 0, replicationLost: 0, unackedEvents: 0,
    resyncsServed: 0, resyncsIncremental: 0, resyncsFull: 0, resyncsInterrupted: 0, resyncsCompleted: 0, logMismatches: 0, quarantines: 0,
    writebacks: 0, suspectBoots: 0, ackedChecks: 0, lostExcusedCrash: 0, keptInQuarantine: 0, replicaChecks: 0, applyErrors: 0,
  };
  /** Application calls in the trace (a full-trace replay only: the sweep's ring would hold little else). */
  private readonly verbose: boolean;
  onAppStart: (n: SimNode) => void = () => {};
  onResynced: (receiver: SimNode, primaryCopy: Tree, gen: string) => void = () => {};

  constructor(private readonly w: World, private readonly rand: Random, readonly repTimeoutMs: number, private readonly appGapMs: number, private readonly fsyncRate: number) {
    for (const n of w.nodes) { this.nodes.set(n, new NodeData()); this.busy.set(n, null); }
    this.verbose = w.trace.size === Infinity;
  }

  d(n: SimNode): NodeData { return this.nodes.get(n) as NodeData; }
  private r(n: SimNode): Rfs | null { const r = this.rfs.get(n); return r && r.life === n.life && n.up ? r : null; }

  /** Starts the application and writeback loops. */
  start(): void {
    const app = (): void => {
      for (const n of this.w.nodes) if (!this.frozen) this.appCall(n);
      this.w.later(null, this.rand.int(1, 2 * this.appGapMs), app);
    };
    this.w.later(null, this.appGapMs, app);
    for (const n of this.w.nodes) {
      const wb = (): void => {
        if (n.up) { this.d(n).disk = new Map(this.d(n).cache); this.stats.writebacks++; }
        this.w.later(null, this.rand.int(500, 6000), wb);
      };
      this.w.later(null, this.rand.int(500, 6000), wb);
    }
  }

  // ---- node life ----------------------------------------------------------------------------------

  /** Power loss: the page cache is gone; the rfs child with it (its held and in-flight calls never return). */
  crash(n: SimNode): void {
    const d = this.d(n);
    d.cache = new Map(d.disk);
    d.lastCrash = this.w.now;
    if (!d.cleanStop) d.crashedDirty = true;
    this.abandon(n);
    const r = this.rfs.get(n);
    if (r?.conn) this.close(r.conn, 'sender crashed');
    this.rfs.delete(n);
  }

  /**
   * The daemon starts (MirrorRuntime.start): a host restart without a clean stop makes the copy
   * suspect and unacked (persisted before init). A fresh rfs child (mode alone).
   */
  boot(n: SimNode, persisted: SimNode['disk']): SimNode['disk'] {
    const d = this.d(n);
    this.abandon(n);
    this.rfs.set(n, new Rfs(n.life));
    if (!d.crashedDirty) return persisted;
    d.crashedDirty = false;
    if (persisted === null) return null;
    this.stats.suspectBoots++;
    // Finding 12: the crash may have rolled back what no mark names (MirrorRuntime.start).
    if (d.unlogged) d.logComplete = false;
    // Finding 17: a replayed rename may be one the crash undid: unless the tree shows them all
    // done, the replays become whole marks (MirrorRuntime, replaysMatchTree).
    else if (d.log.replaysToMarks((_dir, rs) => replaysMatchTree(rs, (p) => d.cache.has(p))) > 0) this.w.trace.note(this.w.now, n.name, 'replays of the change log turned into whole marks');
    this.w.trace.note(this.w.now, n.name, `host restarted without a clean stop: copy marked suspect + unacked${d.unlogged ? ', change log incomplete' : ''}`);
    return { ...persisted, suspect: true, unacked: true };
  }

  /** The daemon stopped (clean shutdown ended): its rfs child exits. */
  closed(n: SimNode): void {
    this.abandon(n);
    const r = this.rfs.get(n);
    if (r) { r.accepting = false; if (r.conn) this.close(r.conn, 'rfs exits'); }
    this.rfs.delete(n);
  }

  /** A `transition` action ran: reaching STOP flushes the dirs (cleanStop); leaving STOP clears it. */
  transition(n: SimNode, from: string, to: string, ready: boolean): void {
    const d = this.d(n);
    if (to === 'STOP' && ready && !d.cleanStop) { d.disk = new Map(d.cache); d.cleanStop = true; d.unlogged = false; d.unloggedEpoch++; }
    else if (from === 'STOP' && to !== 'STOP') d.cleanStop = false;
  }

  /** The application on `n` stopped (stop_prim ended, or the host died): its call in progress is uncertain. */
  abandon(n: SimNode): void {
    const op = this.busy.get(n);
    if (op && op.status === 'pending') { op.status = 'abandoned'; this.stats.abandonedOps++; this.uncertain(op); }
    this.busy.set(n, null);
  }

  // ---- core actions -------------------------------------------------------------------------------

  /** `mount` starts: leaving rw fails held calls (rfs-main mountAll: failHeld); leaving ro stops accepting. */
  mountStart(n: SimNode, mode: string): void {
    if (mode === 'ro') { const d = this.d(n); d.unlogged = true; d.unloggedEpoch++; } // before a SECOND's records
    const r = this.r(n);
    if (!r) return;
    if (mode !== 'rw') this.failHeld(n, r, 'this node left the primary role');
    if (mode !== 'ro') this.accept(n, r, false);
    // With failHeld, in one step: no call slips in between as if the node were still primary
    // (the old seed 47192: a call admitted while `mount blocked` ran was acknowledged alone).
    r.gate = mode;
  }

  /** `mount` done: `ro` accepts the primary's records (ReplicaReceiver.accept). */
  mountDone(n: SimNode, mode: string): void {
    const r = this.r(n);
    if (r && mode === 'ro') this.accept(n, r, true);
  }

  replicate(n: SimNode, mode: 'sync' | 'alone' | 'resync', gen?: string, full?: boolean): void {
    const d = this.d(n);
    if (mode === 'sync' || mode === 'resync') { d.unlogged = true; d.unloggedEpoch++; } // a served resync ends in sync mode
    const r = this.r(n);
    if (!r) return;
    if (mode === 'sync') this.setSync(n, r);
    else if (mode === 'alone') { this.setAlone(n, r); this.flushWhenAlone(n); }
    else this.startResync(n, r, gen ?? '', full !== false);
  }

  /** MirrorRuntime.flushWhenAlone: the dirs flushed beside the actions, then `unlogged` cleared (a fixed 50 ms here). */
  private flushWhenAlone(n: SimNode): void {
    const d = this.d(n);
    if (!d.unlogged) return;
    const epoch = ++d.unloggedEpoch;
    this.w.later(n, 50, () => {
      if (epoch !== d.unloggedEpoch) return;
      d.disk = new Map(d.cache);
      d.unlogged = false;
    });
  }

  /**
   * The core's `flush` (MirrorRuntime.flushForCore, the rfs child's syncfs): what the page cache
   * holds when it is asked goes to disk; `flushed` comes 5-200 ms later.
   */
  flush(n: SimNode, seq: number): void {
    const d = this.d(n);
    d.disk = new Map(d.cache);
    this.w.later(n, this.rand.int(5, 200), () => this.deliver(n, { type: 'flushed', now: this.w.now, seq, ok: true, detail: '' }));
  }

  /** `start-resync`: the primary must start within replication.timeout + 10 s (mirror-runtime.ts). */
  expectSync(n: SimNode): void {
    const r = this.r(n);
    if (!r) return;
    const token = ++r.expectToken;
    this.w.later(n, this.repTimeoutMs + 10_000, () => {
      if (r.expectToken !== token || r.syncing !== null) return;
      r.expectToken++;
      this.deliver(n, { type: 'resync-done', now: this.w.now, ok: false, detail: 'the primary did not start the resync in time' });
    });
  }

  stopExpect(n: SimNode): void {
    const r = this.r(n);
    if (!r) return;
    r.expectToken++;
    r.syncing = null;
  }

  /** An rfs event reaches the core a moment later (IPC), in this daemon life only. */
  private deliver(n: SimNode, e: MirrorEvent): void { this.w.later(n, 1, () => this.w.deliver(n, { ...e, now: this.w.now })); }

  // ---- the primary's replicator (link-replicator.ts) ---------------------------------------------

  private setSync(n: SimNode, r: Rfs): void {
    if (r.held.length > 0) this.failHeld(n, r, 'replication restarted');
    this.stopResync(r);
    // enterSyncLog: emptied and incomplete before the first record is sent.
    r.incompleteBySync = true;
    this.resetLog(n, false);
    r.leaving = false;
    this.openConn(n, r);
    r.mode = 'sync';
  }

  private setAlone(n: SimNode, r: Rfs): void {
    this.stopResync(r);
    r.mode = 'alone';
    r.leaving = false;
    if (r.conn) this.close(r.conn, 'replication goes alone');
    this.settleSyncLog(n, r);
    const held = r.held;
    r.held = [];
    for (const op of held) this.ack(op, 'alone');
  }

  private failHeld(n: SimNode, r: Rfs, why: string): void {
    const wasSync = r.mode === 'sync' && r.held.length === 0 && r.inflight.size === 0;
    this.stopResync(r);
    r.mode = 'alone';
    r.leaving = true;
    if (r.conn) this.close(r.conn, why);
    const held = r.held;
    r.held = [];
    for (const op of held) this.fail(op);
    if (wasSync && r.incompleteBySync) { r.incompleteBySync = false; this.resetLog(n, true); } else this.settleSyncLog(n, r);
  }

  /** Out of sync mode, every sync record settled (closing the connection settles them here): complete again. */
  private settleSyncLog(n: SimNode, r: Rfs): void {
    if (r.incompleteBySync && r.mode !== 'sync') { r.incompleteBySync = false; this.d(n).logComplete = true; }
  }

  private resetLog(n: SimNode, complete: boolean): void {
    const d = this.d(n);
    d.log.clear();
    d.logComplete = complete;
  }

  private stopResync(r: Rfs): void { r.resync = null; }

  private startResync(n: SimNode, r: Rfs, gen: string, full: boolean): void {
    if (r.mode === 'lost') return;
    this.stopResync(r);
    r.leaving = false;
    const d = this.d(n);
    const incremental = !full && d.logComplete && !r.forceFull;
    const replays = incremental ? [...d.log.replays(DIR)] : [];
    // Replays cannot be replayed twice, and a full copy rewrites the peer anywhere: until the
    // resync completes only a full one is safe (durable before the first record).
    if (replays.length > 0) d.logComplete = false;
    else if (!incremental) { r.incompleteBySync = false; d.logComplete = false; }
    const conn = this.openConn(n, r);
    r.mode = 'resync';
    const token = ++this.tokens;
    // The walker (fullsync.ts): the plan is a snapshot taken now (snapshotPlan); a full copy
    // walks the root. Live records update `listed`, `done` and `recopy` (noteLive).
    const plan: Item[] = incremental
      ? d.log.plan(DIR).map(({ path, changes }): Item => path === '/' ? { k: 'listing' } : changes.whole ? { k: 'whole', path } : { k: 'zones', path, changes: { ...changes, zones: new Set(changes.zones) } })
      : [{ k: 'listing' }];
    const walker: Walker = { listed: false, done: new Set(), recopy: new Set(), stack: plan.reverse(), full: !incremental };
    r.resync = { token, gen, incremental, conn, walker };
    this.stats.resyncsServed++;
    if (incremental) this.stats.resyncsIncremental++; else this.stats.resyncsFull++;
    this.w.trace.note(this.w.now, n.name, `rfs: serving ${incremental ? 'incremental' : 'full'} resync of ${gen}: ${replays.length} replays, ${plan.length} plan items`);
    const live = (): boolean => r.resync?.token === token && this.r(n) === r;
    const failed = (why: string): void => {
      if (!live()) return;
      this.resyncLost(n, r, why);
    };
    const send = (m: Msg): void => this.send(conn, m, () => {}, failed);
    send({ k: 'sync-start', gen, full: !incremental });
    for (const rp of replays) send({ k: 'replay', from: rp.from, to: rp.to });
    const per = Math.max(2, Math.floor(this.w.behaviour.resyncMaxMs / 4));
    // One synchronous step of the walk: look at one entry and send what it is now.
    const next = (): void => {
      if (!live()) return;
      let item = walker.stack.pop();
      if (item === undefined) {
        const again = walker.recopy.values().next();
        if (!again.done) { walker.recopy.delete(again.value); item = { k: 'whole', path: again.value }; }
      }
      if (item !== undefined) {
        if (item.k === 'listing') {
          const names = [...d.cache.keys()].sort();
          walker.listed = true;
          send({ k: 'copy', item, names, path: '/', file: undefined });
          // A full walk: the root's entries, in name order.
          if (walker.full) for (const p of names.reverse()) walker.stack.push({ k: 'whole', path: p });
        } else {
          const file = d.cache.get(item.path);
          // Vanished: its removal is in the stream already (or its parent's listing removes it).
          if (file !== undefined) {
            send({ k: 'copy', item, names: [], path: item.path, file });
            if (item.k === 'whole') walker.done.add(item.path);
          }
        }
        this.w.later(n, this.rand.int(1, per), next);
        return;
      }
      this.send(conn, { k: 'sync-complete', gen, snapshot: new Map(d.cache) }, () => {
        if (!live()) return;
        // The peer has everything: the log is emptied (incomplete) for sync mode.
        r.resync = null;
        r.incompleteBySync = true;
        this.resetLog(n, false);
        r.mode = 'sync';
        r.forceFull = false;
        this.w.trace.note(this.w.now, n.name, `rfs: resync of ${gen} served (${incremental ? 'incremental' : 'full'})`);
      }, failed);
    };
    this.w.later(n, this.rand.int(1, per), next);
  }

  /**
   * LinkReplicator.resyncLost: the resync served failed; what was sent may still be delivered
   * up to its sync-complete, so calls are held and the core told (replication-lost), as in sync
   * mode (finding 11).
   */
  private resyncLost(n: SimNode, r: Rfs, why: string): void {
    const rs = r.resync;
    if (rs === null) return;
    this.stats.resyncsInterrupted++;
    r.resync = null;
    if (r.conn) this.close(r.conn, why);
    if (rs.incremental && why.includes('LOG_MISMATCH')) { r.forceFull = true; this.stats.logMismatches++; }
    this.w.trace.note(this.w.now, n.name, `rfs: resync served failed (${why}): writes held`);
    r.mode = 'lost';
    this.stats.replicationLost++;
    this.deliver(n, { type: 'replication-lost', now: this.w.now, detail: `the resync failed: ${why}` });
  }

  /** FullSync.noteLive: a live record during the resync. */
  private noteLive(wk: Walker, op: AppOp): void {
    switch (op.kind) {
      case 'create': if (wk.listed) wk.done.add(op.path); else wk.done.delete(op.path); return;
      case 'delete': wk.done.delete(op.path); return;
      case 'rename': {
        const from = op.from ?? '';
        if (wk.done.has(from) && wk.listed) { wk.done.delete(from); wk.done.add(op.path); return; }
        wk.done.delete(from);
        wk.done.delete(op.path);
        wk.recopy.add(op.path);
        return;
      }
      default: return;
    }
  }

  private openConn(n: SimNode, r: Rfs): Conn {
    if (r.conn) this.close(r.conn, 'a new connection');
    const p = n.peer;
    const c: Conn = { id: ++this.connIds, from: n, fromLife: n.life, to: p, toLife: p.life, open: true, closedAt: Infinity, lastArrival: this.w.now, pending: new Set(), wire: [], retrying: false, inbox: [] };
    r.conn = c;
    return c;
  }

  private ends(c: Conn): boolean { return c.from.up && c.from.life === c.fromLife && c.to.up && c.to.life === c.toLife; }

  private pathOk(c: Conn): boolean {
    return this.ends(c) && !this.w.link('lan', c.from).cut && !this.w.link('lan', c.to).cut;
  }

  /**
   * Moves what has arrived into the receiver's inbox, in order. While `lan` is cut the stream
   * waits (retried every 50 ms); a host that died, or a connection closed for longer than the
   * timeout, loses what was still on the way.
   */
  private flushWire(c: Conn): void {
    while (c.wire.length > 0 && (c.wire[0]?.at ?? Infinity) <= this.w.now) {
      if (!this.ends(c) || this.w.now > c.closedAt + this.repTimeoutMs) { c.wire.length = 0; return; }
      if (!this.pathOk(c)) {
        if (!c.retrying) { c.retrying = true; this.w.later(null, 50, () => { c.retrying = false; this.flushWire(c); }); }
        return;
      }
      c.inbox.push((c.wire.shift() as { s: Send }).s);
    }
    this.pump(c);
  }

  /** Sends on `c`: `ok` once the receiver applied it, `fail` if the connection fails first. */
  private send(c: Conn, msg: Msg, ok: () => void, fail: (why: string) => void): void {
    const s: Send = { msg, settled: false, ok, fail };
    if (!c.open) { this.w.later(null, 0, () => { if (!s.settled) { s.settled = true; fail('the link is closed'); } }); return; }
    c.pending.add(s);
    const at = Math.max(c.lastArrival, this.w.now + this.rand.int(1, 4));
    c.lastArrival = at;
    c.wire.push({ s, at });
    this.w.later(null, at - this.w.now, () => this.flushWire(c));
    this.w.later(null, this.repTimeoutMs, () => { if (!s.settled && c.open) this.close(c, `no ack within ${this.repTimeoutMs} ms`); });
  }

  /** The sender closes `c` (or it failed): every pending send fails; the receiver sees it after what was sent. */
  private close(c: Conn, why: string): void {
    if (!c.open) return;
    c.open = false;
    c.closedAt = this.w.now;
    const from = this.rfs.get(c.from);
    if (from?.conn === c) from.conn = null;
    const pending = [...c.pending];
    c.pending.clear();
    // The pending sends reject a moment later (promise callbacks), after the caller's mode change.
    if (pending.length > 0) this.w.later(null, 0, () => { for (const s of pending) if (!s.settled) { s.settled = true; s.fail(why); } });
    const ms = this.pathOk(c) ? Math.max(0, c.lastArrival - this.w.now) + this.rand.int(1, 4) : this.repTimeoutMs;
    this.w.later(null, ms, () => {
      const r = this.rfs.get(c.to);
      if (!r || r.life !== c.toLife || r.recvConn !== c) return;
      this.pump(c);
      c.inbox.length = 0;
      r.recvConn = null;
      if (r.syncing !== null) this.resyncEnded(c.to, r, false, `the link dropped during the resync: ${why}`);
    });
  }

  /** The receiver applies what arrived on `c`, in order, while it accepts. */
  private pump(c: Conn): void {
    const r = this.rfs.get(c.to);
    if (!r || r.life !== c.toLife || !c.to.up) { c.inbox.length = 0; return; }
    // The newest connection replaces an older one.
    if (r.recvConn !== c) {
      if (r.recvConn !== null && r.recvConn.id > c.id) { c.inbox.length = 0; return; }
      r.recvConn = c;
    }
    while (r.accepting && c.inbox.length > 0) {
      const s = c.inbox.shift() as Send;
      if (s.msg.k === 'sync-complete' && !c.open && r.syncing === s.msg.gen) {
        // Finding 11 (fixed): the primary gave this resync up; it holds its calls and begins a
        // new generation, so this copy is behind again when it hears of it.
        this.w.trace.note(this.w.now, c.to.name, `rfs: sync-complete of ${s.msg.gen} applied after ${c.from.name} gave the resync up`);
      }
      const err = this.receive(c.to, r, s.msg);
      if (err !== null) {
        this.stats.applyErrors++;
        this.w.trace.note(this.w.now, c.to.name, `rfs: refused a record: ${err}`);
        c.inbox.length = 0;
        r.recvConn = null;
        if (r.syncing !== null) this.resyncEnded(c.to, r, false, err);
        // A handler rejection closes the connection (BYE): the sender's pending sends fail.
        this.w.later(null, this.rand.int(1, 4), () => this.close(c, `the peer refused a record: ${err}`));
        return;
      }
      this.ackLater(c, s, this.rand.int(1, 4));
    }
  }

  /** The ack of `s` reaches the sender (delayed, not lost, while `lan` is cut). */
  private ackLater(c: Conn, s: Send, ms: number): void {
    this.w.later(null, ms, () => {
      if (s.settled || !c.open || !this.ends(c)) return;
      if (!this.pathOk(c)) { this.ackLater(c, s, 50); return; }
      s.settled = true;
      c.pending.delete(s);
      s.ok();
    });
  }

  /** ReplicaReceiver.accept. */
  private accept(n: SimNode, r: Rfs, on: boolean): void {
    r.accepting = on;
    const c = r.recvConn;
    if (on) { if (c) this.pump(c); return; }
    if (c && c.inbox.length > 0) {
      c.inbox.length = 0;
      r.recvConn = null;
      this.w.later(null, this.rand.int(1, 4), () => this.close(c, 'the peer is not a secondary any more'));
    }
    if (r.syncing !== null) this.resyncEnded(n, r, false, 'this node left the SECOND state');
  }

  private resyncEnded(n: SimNode, r: Rfs, ok: boolean, detail: string): void {
    const gen = r.syncing;
    r.syncing = null;
    r.expectToken++;
    const event = (): MirrorEvent => ({ type: 'resync-done', now: this.w.now, ok, detail, ...(gen !== null ? { generation: gen } : {}) });
    if (!ok) { this.deliver(n, event()); return; }
    this.resetLog(n, true);
    // MirrorRuntime: the copy is flushed (the rfs child's syncfs) before the core hears it is
    // up to date (finding 9, seed 1337); a fixed 20 ms here.
    const d = this.d(n);
    this.w.later(n, 20, () => { d.disk = new Map(d.cache); this.deliver(n, event()); });
  }

  /** Applies one message on the receiver; returns an error (the record is refused) or null. */
  private receive(n: SimNode, r: Rfs, m: Msg): string | null {
    const d = this.d(n);
    switch (m.k) {
      case 'op':
        return applyOp(d.cache, d.disk, m.op, r.tolerant);
      case 'sync-start':
        r.expectToken++;
        r.syncing = m.gen;
        r.syncFull = m.full;
        r.tolerant = true;
        // rfs-main onSyncStart: a full copy overwrites this node's changes: keep them first.
        if (m.full && d.log.paths > 0) {
          const q: Tree = new Map();
          for (const { path } of d.log.plan(DIR)) {
            const f = d.cache.get(path);
            if (path !== '/' && f !== undefined) q.set(path, f);
          }
          if (q.size > 0) { d.quarantines.push(q); this.stats.quarantines++; this.w.trace.note(this.w.now, n.name, `rfs: quarantine before the full resync: ${treeText(q)}`); }
        }
        this.resetLog(n, false);
        return null;
      case 'replay': {
        const f = d.cache.get(m.from);
        if (f !== undefined) { d.cache.set(m.to, f); d.cache.delete(m.from); }
        return null;
      }
      case 'copy': {
        const it = m.item;
        if (it.k === 'listing') {
          for (const p of [...d.cache.keys()]) if (!m.names.includes(p)) d.cache.delete(p);
          return null;
        }
        if (it.k === 'whole') {
          if (m.file === undefined) d.cache.delete(it.path); else d.cache.set(it.path, m.file);
          return null;
        }
        const mine = d.cache.get(it.path);
        if (m.file === undefined) return null; // gone on the primary: its parent's listing removes it
        if (mine === undefined) return `LOG_MISMATCH: ${it.path} is not here (this copy does not match the primary's change log)`;
        // sync-zones: size set, the marked zones (and the tail from its first zone) sent.
        const nf = mine.slice(0, m.file.length);
        while (nf.length < m.file.length) nf.push(0);
        for (let z = 0; z < m.file.length; z++) if (it.changes.zones.has(z) || z >= it.changes.tail) nf[z] = m.file[z] as number;
        d.cache.set(it.path, nf);
        return null;
      }
      case 'sync-complete':
        r.tolerant = false;
        if (r.syncing !== m.gen) return null;
        this.stats.resyncsCompleted++;
        this.onResynced(n, m.snapshot, m.gen);
        this.resyncEnded(n, r, true, `resync of generation ${m.gen} complete`);
        return null;
    }
  }

  // ---- the application -------------------------------------------------------------------------------

  /** One call of the application on `n` if it runs there on a rw mount and has no call in progress. */
  private appCall(n: SimNode): void {
    const r = this.r(n);
    if (!r || !n.app || n.mount !== 'rw' || r.gate !== 'rw' || this.busy.get(n) !== null) return;
    const d = this.d(n);
    const rand = this.rand;
    const existing = FILES.filter((p) => d.cache.has(p));
    const wid = ++this.wid;
    const base = { wid, node: n, life: n.life, at: this.w.now, status: 'pending' as const };
    let op: AppOp;
    const x = rand.next();
    if (existing.length === 0 || (x < 0.08 && existing.length < FILES.length)) {
      op = { ...base, kind: 'create', path: rand.pick(FILES.filter((p) => !d.cache.has(p))) };
    } else if (x < 0.12) {
      op = { ...base, kind: 'delete', path: rand.pick(existing) };
    } else if (x < 0.18) {
      // "write a temporary file, rename it over": create and write /t first (as separate calls).
      op = d.cache.has(TMP) ? { ...base, kind: 'rename', from: TMP, path: rand.pick(FILES) } : { ...base, kind: 'create', path: TMP };
    } else if (x < 0.22) {
      const p = rand.pick(existing);
      op = { ...base, kind: 'rename', from: p, path: rand.pick(FILES.filter((q) => q !== p)) };
    } else if (x < 0.22 + this.fsyncRate) {
      op = { ...base, kind: 'fsync', path: rand.pick(existing) };
    } else {
      const p = d.cache.has(TMP) && rand.chance(0.3) ? TMP : rand.pick(existing);
      const len = d.cache.get(p)?.length ?? 0;
      op = { ...base, kind: 'write', path: p, zone: len < MAX_ZONES && rand.chance(0.4) ? len : rand.int(0, Math.max(0, Math.min(len, MAX_ZONES - 1))) };
    }
    this.busy.set(n, op);
    this.stats.appOps++;
    if (this.verbose) this.w.trace.note(this.w.now, n.name, `app call ${op.wid}: ${op.kind} ${op.from ? `${op.from} -> ` : ''}${op.path}${op.zone !== undefined ? ` zone ${op.zone}` : ''} (rfs ${r.mode})`);
    this.submit(n, r, op);
  }

  /** PassthroughFs.mutate + LinkReplicator.prepare/submit for one call. */
  private submit(n: SimNode, r: Rfs, op: AppOp): void {
    const d = this.d(n);
    // The change log first (alone, resync): durable before the change is made. Marked again
    // later (the peer may lack it), a rename is not: a replay made twice is another rename
    // (LinkReplicator.markBodies; seed 46323).
    const prepared = op.kind !== 'fsync' && (r.mode === 'alone' || r.mode === 'resync');
    if (prepared) this.mark(d, op);
    const markAgain = (): void => { if (op.kind !== 'fsync' && !(prepared && op.kind === 'rename')) this.mark(d, op); };
    const err = applyOp(d.cache, d.disk, op, false);
    if (err !== null) { this.fail(op); return; }
    const mode = r.mode;
    if (mode === 'alone') { this.w.later(n, 1, () => this.ack(op, 'alone')); return; }
    if (mode === 'lost') { markAgain(); r.held.push(op); this.stats.heldOps++; return; }
    const c = r.conn;
    if (c === null) { this.fail(op); return; }
    if (mode === 'sync') r.inflight.add(op);
    if (r.resync) this.noteLive(r.resync.walker, op);
    this.send(c, { k: 'op', op }, () => {
      r.inflight.delete(op);
      // In sync mode with a peer that could take over with it: up to date (durably: its state
      // file), of this node's generation. Sync mode begins when a served resync ends, before the
      // peer has recorded that it is up to date.
      const p = n.peer.state.persisted;
      this.ack(op, 'sync', mode === 'sync' && p.upToDate && p.generation.current === n.state.persisted.generation.current);
    }, (why) => {
      r.inflight.delete(op);
      if (this.r(n) !== r) return;
      // Not acknowledged: the peer may lack it; the log names it before anything else happens.
      markAgain();
      // As LinkReplicator.submit: the node let go first, in any mode: EIO and unacked-write
      // (finding 15 was the resync-mode case, acknowledged without the event).
      if (r.leaving) {
        this.stats.unackedEvents++;
        this.deliver(n, { type: 'unacked-write', now: this.w.now, detail: `${op.kind} ${op.path}: ${why}` });
        this.fail(op);
        return;
      }
      if (r.mode === 'alone') { this.ack(op, 'alone'); return; }
      // As LinkReplicator.enterLost: sent in sync or resync mode (or sent in sync mode, failed
      // once a resync began: finding 16), the call is held and the core told.
      if (r.mode === 'resync') this.resyncLost(n, r, why);
      else if (r.mode === 'sync') {
        r.mode = 'lost';
        if (r.conn) this.close(r.conn, why);
        this.stats.replicationLost++;
        this.deliver(n, { type: 'replication-lost', now: this.w.now, detail: why });
      }
      r.held.push(op);
      this.stats.heldOps++;
    });
  }

  private mark(d: NodeData, op: AppOp): void {
    const c: Change = op.kind === 'write' ? { op: 'write', path: op.path, offset: (op.zone ?? 0) * ZONE, length: ZONE }
      : op.kind === 'create' ? { op: 'create', path: op.path }
      : op.kind === 'delete' ? { op: 'unlink', path: op.path }
      : { op: 'rename', path: op.path, from: op.from ?? '' };
    d.log.record(DIR, c, ZONE);
  }

  /** The call returns to the application. */
  private ack(op: AppOp, how: 'sync' | 'alone', inSync = false): void {
    if (op.status !== 'pending') return;
    op.status = 'acked';
    if (this.verbose) this.w.trace.note(this.w.now, op.node.name, `app call ${op.wid} acknowledged (${how})`);
    this.stats.acked++;
    if (how === 'sync') this.stats.ackedSync++; else this.stats.ackedAlone++;
    if (this.busy.get(op.node) === op) this.busy.set(op.node, null);
    const now = this.w.now;
    const by = op.node.name;
    switch (op.kind) {
      case 'write': {
        let f = this.expect.get(op.path);
        if (!f) { f = new Map(); this.expect.set(op.path, f); }
        f.set(op.zone ?? 0, { wid: op.wid, ackedAt: now, by, fsynced: false, inSync });
        return;
      }
      case 'create': return;
      case 'delete': this.expect.delete(op.path); return;
      case 'rename': {
        const f = this.expect.get(op.from ?? '');
        this.expect.delete(op.from ?? '');
        // The rename itself is durable only with an fsync of the directory (not modelled): the
        // moved writes are on disk under the old name only.
        if (!f) { this.expect.delete(op.path); return; }
        // After a divergence the two copies' files went separate ways: a write that this node's
        // copy never had (the other side's, under the same name) stays under the old name for
        // that side's own renames and deletes (seed 20021: n1's rename of its own /b carried
        // n2's write to /a, and n2's later delete of its /b could no longer cancel it).
        const mine = this.d(op.node).cache;
        const theirs = this.diverged ? new Map([...f].filter(([z, e]) => DataWorld.at(mine, op.path, z) < e.wid)) : new Map<number, Expect>();
        for (const z of theirs.keys()) f.delete(z);
        if (theirs.size > 0) this.expect.set(op.from ?? '', theirs);
        for (const e of f.values()) e.fsynced = false;
        if (f.size > 0) this.expect.set(op.path, f); else this.expect.delete(op.path);
        return;
      }
      case 'fsync':
        this.stats.fsyncs++;
        // An fsync covers what this copy holds (not a write a crash took from it before).
        for (const [z, e] of this.expect.get(op.path) ?? []) if (e.ackedAt <= op.at && DataWorld.at(this.d(op.node).cache, op.path, z) >= e.wid) e.fsynced = true;
        return;
    }
  }

  /** The call failed (EIO, EROFS): the application does not know whether it was applied. */
  private fail(op: AppOp): void {
    if (op.status !== 'pending') return;
    op.status = 'failed';
    if (this.verbose) this.w.trace.note(this.w.now, op.node.name, `app call ${op.wid} FAILED`);
    this.stats.failedOps++;
    if (this.busy.get(op.node) === op) this.busy.set(op.node, null);
    this.uncertain(op);
  }

  /** A delete or rename that may or may not have happened: what the application knew of those files is unknown now. */
  private uncertain(op: AppOp): void {
    if (op.kind === 'delete' || op.kind === 'rename') { this.expect.delete(op.path); if (op.from) this.expect.delete(op.from); }
  }

  /** The application's calls still waiting for an answer, described. */
  pendingCalls(): string[] {
    const out: string[] = [];
    for (const op of this.busy.values()) {
      if (op === null) continue;
      const r = this.r(op.node);
      out.push(`call ${op.wid} (${op.kind} ${op.path}) on ${op.node.name} since ${op.at}, rfs ${r ? `${r.mode}${r.held.includes(op) ? ', held' : ''}` : 'gone'}`);
    }
    return out;
  }

  /** Calls in progress or held anywhere, or records not yet applied by the receiver. */
  quiet(): boolean {
    for (const op of this.busy.values()) if (op !== null) return false;
    for (const r of this.rfs.values()) if (r.conn && r.conn.pending.size > 0) return false;
    return true;
  }

  /** Write `wid` is somewhere in `t`. */
  static holds(t: Tree, wid: number): boolean {
    for (const f of t.values()) if (f.includes(wid)) return true;
    return false;
  }

  /** Zone `z` of `path` in `t` (0: missing). */
  static at(t: Tree, path: string, z: number): number { return t.get(path)?.[z] ?? 0; }
}
