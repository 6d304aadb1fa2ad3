/**
 * A deterministic two-node world for the REAL mirror core (src/core/mirror), STYLE.md 5.
 *
 * Everything here is simulated and driven by one seed: a clock (integer ms) with an event queue,
 * one heartbeat link per network and direction (cut, loss, delay, hence reorder, duplicates), the
 * daemon's executor of core actions (src/daemon/mirror-runtime.ts), scripts, a disk per node and
 * the faults. Nothing reads the wall clock or Math.random.
 *
 * What is copied from the daemon (mirror-runtime.ts) and must follow it:
 * - `deliver` steps the core at once; the actions of one step run in order, after the previous
 *   step's; `persist`, `vip`, `mount`, `announce-vip` take simulated time; `run-script` only
 *   starts the script, which answers later with `script-done`.
 * - The view published to the peer is the view after ALL actions of a step have executed;
 *   heartbeats carry it every pulse, plus at once after a batch holding `send-heartbeat`.
 * - Ticks every pulse, plus one just after the heartbeat timeout following each heartbeat
 *   received (the exact silence deadline).
 * - `vip add` is answered with `vip-added` or `vip-failed`; the add fails when the peer answers
 *   for the address (the duplicate-address check), which it can see only while the VIP's network
 *   (`lan`) carries traffic both ways.
 * - Start: leftover VIPs removed; if the store says enabled and this node was the last primary,
 *   `stop_prim` (cleanup) runs and is awaited before `init` (a crashed daemon may have left the
 *   application running).
 * - Shutdown: `shutdown` event, wait until quiet (bounded), one last pulse, then silent.
 * - Scripts: start scripts are killed at `timeoutMs` (ok=false); stop scripts are rerun with
 *   `force` at `stopTimeoutMs` and killed after as long again (src/adapters/scripts/supervise.ts).
 * - The heartbeat transport drops a datagram whose seq is not newer than the last one seen from
 *   the same sender epoch on the same network, and datagrams of an older sender epoch
 *   (src/adapters/udp/transport.ts): duplicates and same-network reorders never reach the core,
 *   reorders across networks do.
 *
 * Split brain (modules with a splitbrain checker, `World.sb`): a witness host with one path per
 * node (`witness.cut`) that can also be down or restart. Each node's daemon pings it every
 * checker interval (a run that starts while the path is open succeeds within 20 ms, else fails
 * at the timeout; each change is a `witness` event), and asks the arbitrator's lease table (the
 * REAL LeaseTable of src/core/witness/lease.ts, witness time = simulated time) for `lease`
 * actions: request and reply take 1-20 ms each way and need the path open both times, else the
 * answer is an error at the client's 1 s timeout. `mount blocked` is not a writer resource.
 *
 * Data (runs with replication, `World.data`): test/sim/data.ts models the copies, the
 * application, the change log, the link and the resyncs; the executor hands it `mount`,
 * `replicate`, `start-resync`/`stop-resync` and `transition`, and crash, boot and shutdown tell it
 * (a resync then ends when the primary's rfs has served it, not after a random delay).
 *
 * The writer resources a node holds are tracked from the EXECUTED effects, conservatively: the VIP
 * from the end of a successful `vip add` to the end of `vip remove`; the application from the start of
 * `start_prim` to the end of `stop_prim` (whatever its result: a failed stop script is assumed to
 * have stopped the application); the rw mount from the start of `mount rw` to the end of the next
 * mount. A crash is a power loss: every resource is gone at once and a `persist` that had not
 * completed is lost.
 */
import { deepFreeze } from '../helpers/freeze.js';
import {
  initialState, stampView, step, viewOf,
  type MirrorAction, type MirrorCommand, type MirrorEvent, type MirrorParams, type MirrorState, type PeerView, type Persisted,
  type ScriptName,
} from '../../src/core/mirror/index.js';
import type { CheckerAction } from '../../src/core/config/types.js';
import { LeaseTable } from '../../src/core/witness/lease.js';
import type { DataWorld } from './data.js';
import { Random } from './prng.js';
import { Trace } from './trace.js';

/** One direction of one heartbeat network. Delays in ms. */
export interface Link {
  cut: boolean;
  /** Probability that a datagram is dropped. */
  loss: number;
  /** Probability that a datagram is delivered twice. */
  dup: number;
  delayMin: number;
  delayMax: number;
}

export const CLEAN_LINK: Readonly<Link> = { cut: false, loss: 0, dup: 0, delayMin: 1, delayMax: 3 };

/** How scripts, disks and VIP commands behave in a run (probabilities per call; times in ms). */
export interface Behaviour {
  scriptFail: number;
  startPrimFail: number;
  scriptHang: number;
  /** A stop script's `force` rerun hangs too (then both are killed). */
  forceHang: number;
  scriptMaxMs: number;
  vipFail: number;
  diskMaxMs: number;
  resyncFail: number;
  resyncMaxMs: number;
}

export const CALM: Readonly<Behaviour> = {
  scriptFail: 0, startPrimFail: 0, scriptHang: 0, forceHang: 0, scriptMaxMs: 200, vipFail: 0, diskMaxMs: 10, resyncFail: 0, resyncMaxMs: 500,
};

type VipState = 'none' | 'adding' | 'held' | 'removing';

/** One step's actions; `i` is the executor's cursor. */
interface Batch { readonly actions: readonly MirrorAction[]; readonly view: PeerView; i: number }

/** A violated promise: stops the run; the runner prints the seed and the trace. */
export class Violation extends Error {
  constructor(readonly kind: string, message: string, readonly at: number) { super(message); }
}

/** One node: host, daemon, core, executor, disk, the resources it holds. */
export class SimNode {
  /** Host and daemon running (false after a crash, or after a clean shutdown ended). */
  up = false;
  /** The daemon is shutting down: events still flow until it closes. */
  closing = false;
  /** Changes on every crash and boot: callbacks of an older life are ignored. */
  life = 0;
  upSince = 0;
  state: MirrorState;
  published: PeerView;
  queue: Batch[] = [];
  /** The executor is in the middle of an action with a duration. */
  busy = false;
  /** The durable store (survives crashes). */
  disk: Persisted | null = null;
  vip: VipState = 'none';
  app = false;
  mount: 'none' | 'ro' | 'rw' | 'blocked' = 'none';
  /** Split brain: the last witness reachability reported to the core in this life (null: none yet). */
  witnessReported: boolean | null = null;
  scripts = 0;
  /** Token of the running resync, null if none. */
  resync: number | null = null;
  /** Time the core last got a heartbeat of the peer (mirrors the core's lastHeard), null since boot. */
  lastHeard: number | null = null;
  /** The daemon is in MirrorRuntime.start before `init` (cleanup): no heartbeats in or out. */
  starting = false;
  /** Token of the pending silence tick (only the latest one fires). */
  silenceTick = 0;
  /** Life of the peer whose heartbeat this node's core heard last (what its `sees` echoes). */
  heardLife = 0;
  /** The last peer view delivered to the core in this life (what its decisions rest on). */
  lastView: PeerView | null = null;
  /** The view of the newest heartbeat of the peer's current life (what MirrorRuntime keeps). */
  newestView: PeerView | null = null;
  /** This node holds a primary role it took on a peer view that echoed an earlier life of it (finding 6). */
  staleEcho = false;
  /** Transport replay state (per receiving daemon life). */
  rx: { epoch: number; seq: Map<string, number>; max: number } | null = null;
  txSeq = 0;
  /** Checkers currently down (name -> action), as last reported to the core. */
  checkersDown = new Map<string, CheckerAction>();
  /** Steps of the core in this run (for stats). */
  steps = 0;
  peer!: SimNode;

  constructor(readonly name: string, readonly params: MirrorParams) {
    this.state = initialState(params);
    this.published = viewOf(this.state);
  }

  /** Holds any writer resource (VIP, application, rw mount). */
  writer(): boolean { return this.vip === 'held' || this.vip === 'removing' || this.app || this.mount === 'rw'; }

  resources(): string {
    const r = [this.vip === 'held' || this.vip === 'removing' ? `vip:${this.vip}` : '', this.app ? 'app' : '', this.mount === 'rw' ? 'rw' : ''].filter(Boolean);
    return r.length ? r.join(',') : '-';
  }

  label(): string {
    const s = this.state;
    return `${s.name}${s.ready ? '' : '~'}${s.reason ? `(${s.reason})` : ''}`;
  }
}

interface Timer { at: number; seq: number; run: () => void }

/** The splitbrain checker of a run (both nodes alike). */
export interface SimSplitBrain {
  readonly witnesses: boolean;
  readonly arbitrator: boolean;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly leaseMs: number;
}

/** Client timeout of a lease request (adapters/witness DEFAULT_WITNESS_TIMEOUT_MS). */
export const LEASE_TIMEOUT_MS = 1000;

/** A binary min-heap of timers ordered by (at, seq): equal times run in scheduling order. */
class Agenda {
  private h: Timer[] = [];
  private seq = 0;
  get size(): number { return this.h.length; }
  push(at: number, run: () => void): void {
    const t = { at, seq: this.seq++, run };
    const h = this.h;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(t, h[p]!)) break;
      h[i] = h[p]!; i = p;
    }
    h[i] = t;
  }
  peek(): Timer | undefined { return this.h[0]; }
  pop(): Timer | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
      if (!less(h[c]!, last)) break;
      h[i] = h[c]!; i = c;
    }
    h[i] = last;
    return top;
  }
}
function less(a: Timer, b: Timer): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq); }

/** Script settings of the simulated daemon (ms). */
export const SCRIPT_TIMEOUT_MS = 4_000;
export const STOP_TIMEOUT_MS = 1_500;

const STOP_SCRIPTS = new Set<ScriptName>(['stop_prim', 'stop_second', 'stop_both', 'poststop']);

/**
 * The world: two nodes, the links between them, the clock. Observers (the invariant checker) get
 * a call after every core step and every change of a node's resources.
 */
export class World {
  now = 0;
  readonly agenda = new Agenda();
  readonly nodes: [SimNode, SimNode];
  /** links.get(`${net}:${from}`): the direction from node `from` to its peer on `net`. */
  readonly links = new Map<string, Link>();
  behaviour: Behaviour;
  readonly stats = {
    takeovers: 0, swaps: 0, crashes: 0, shutdowns: 0, commands: 0, refused: 0, scripts: 0, hangs: 0, heartbeats: 0, dropped: 0,
    vipFailed: 0, resyncs: 0, checkers: 0, netFaults: 0, staleViewsDropped: 0, witnessFaults: 0, splitBrainRuns: 0,
  };
  /**
   * Drop a heartbeat older (lower seq) than one already delivered from another network, as the
   * suggested fix of finding 1 would (docs/simulator.md). False: the transport as it is (per
   * network only), which lets an old view overwrite a newer one.
   */
  dropStaleViews = true;
  /** The life of the peer each published view echoes (see SimNode.heardLife). */
  readonly echo = new WeakMap<PeerView, number>();
  /** The splitbrain checker, null when the run has none. */
  sb: SimSplitBrain | null = null;
  /** The witness host: down, restarted (a fresh lease table), and the cut paths (node names). */
  readonly witness = { down: false, cut: new Set<string>(), table: null as LeaseTable | null };
  /** The data model (runs with replication only; data.ts), null otherwise. */
  data: DataWorld | null = null;
  onStep: (n: SimNode, e: MirrorEvent, before: MirrorState, actions: readonly MirrorAction[]) => void = () => {};
  onResources: (n: SimNode) => void = () => {};

  constructor(readonly rand: Random, params: [MirrorParams, MirrorParams], behaviour: Behaviour, readonly trace: Trace) {
    const a = new SimNode(params[0].node, params[0]);
    const b = new SimNode(params[1].node, params[1]);
    a.peer = b; b.peer = a;
    this.nodes = [a, b];
    this.behaviour = behaviour;
    for (const net of params[0].networks) for (const n of this.nodes) this.links.set(`${net}:${n.name}`, { ...CLEAN_LINK });
  }

  link(net: string, from: SimNode): Link {
    const l = this.links.get(`${net}:${from.name}`);
    if (!l) throw new Error(`no link ${net}:${from.name}`);
    return l;
  }

  get networks(): readonly string[] { return this.nodes[0].params.networks; }

  /** Runs timers up to and including time `until` (or until the agenda is empty). */
  runUntil(until: number, stop: () => boolean = () => false): void {
    for (;;) {
      const t = this.agenda.peek();
      if (!t || t.at > until) break;
      this.agenda.pop();
      this.now = t.at;
      t.run();
      if (stop()) return;
    }
    this.now = Math.max(this.now, until);
  }

  /** Schedules `fn` at now + ms for node `n`'s current life only (dropped if it crashes meanwhile). */
  later(n: SimNode | null, ms: number, fn: () => void): void {
    if (!n) { this.agenda.push(this.now + ms, fn); return; }
    const life = n.life;
    this.agenda.push(this.now + ms, () => { if (n.life === life && n.up) fn(); });
  }

  // ---- daemon life -------------------------------------------------------------------------------

  /** The daemon starts (MirrorRuntime.start): leftover VIPs removed, store read, init, timers. */
  boot(n: SimNode): void {
    n.up = true; n.closing = false; n.life++; n.upSince = this.now;
    n.state = initialState(n.params);
    n.published = viewOf(n.state);
    n.queue = []; n.busy = false; n.resync = null; n.lastHeard = null; n.rx = null; n.txSeq = 0; n.starting = true;
    n.checkersDown.clear();
    n.staleEcho = false; n.heardLife = 0; n.lastView = null; n.newestView = null; n.witnessReported = null;
    if (n.vip !== 'none') { n.vip = 'none'; this.onResources(n); }
    // The rfs child of a daemon that closed unmounts when its stdin closes (docs/replication.md),
    // so a new daemon never finds its predecessor's read-write mount.
    if (n.mount !== 'none') { n.mount = 'none'; this.onResources(n); }
    this.trace.note(this.now, n.name, `BOOT disk=${n.disk ? `gen=${n.disk.generation.current} up=${+n.disk.upToDate} en=${+n.disk.enabled} last=${n.disk.lastPrimary ?? '-'}` : 'empty'}`);
    const go = (): void => {
      n.starting = false;
      // MirrorRuntime.start: a host restart without a clean stop makes the copy suspect (data.ts).
      const persisted = this.data ? this.data.boot(n, n.disk) : n.disk;
      if (persisted !== n.disk) n.disk = persisted;
      this.deliver(n, { type: 'init', now: this.now, persisted, idSeed: `${n.name}-${this.rand.hex()}` });
      const pulse = (): void => { if (n.up) { this.pulse(n); this.later(n, n.params.pulseMs, pulse); } };
      const tick = (): void => { if (n.up) { this.deliver(n, { type: 'tick', now: this.now }); this.later(n, n.params.pulseMs, tick); } };
      this.later(n, n.params.pulseMs, pulse);
      this.later(n, n.params.pulseMs, tick);
      if (this.sb?.witnesses) this.probeWitness(n);
    };
    if (n.disk?.enabled && n.disk.lastPrimary === n.name) {
      // MirrorRuntime.start: stop_prim cleanup, awaited, before init.
      const ms = this.rand.int(0, this.behaviour.scriptMaxMs);
      this.later(n, ms, () => {
        if (n.app) { n.app = false; this.data?.abandon(n); this.onResources(n); }
        this.trace.note(this.now, n.name, 'stop_prim (cleanup at start) ended');
        go();
      });
      return;
    }
    go();
  }

  /** Power loss: everything the node held is gone, its pending disk write lost. */
  crash(n: SimNode): void {
    if (!n.up && !n.writer()) return;
    this.stats.crashes++;
    n.up = false; n.closing = false; n.life++;
    n.vip = 'none'; n.app = false; n.mount = 'none'; n.scripts = 0; n.resync = null; n.queue = []; n.busy = false;
    this.trace.note(this.now, n.name, 'CRASH (power loss)');
    this.data?.crash(n);
    this.onResources(n);
  }

  /** Clean daemon stop (MirrorRuntime.shutdown): `shutdown`, wait until quiet (bounded), last pulse, silent. */
  shutdown(n: SimNode): void {
    if (!n.up || n.closing) return;
    this.stats.shutdowns++;
    n.closing = true;
    this.trace.note(this.now, n.name, 'SHUTDOWN (daemon stops cleanly)');
    this.deliver(n, { type: 'shutdown', now: this.now });
    const limit = this.now + 2 * STOP_TIMEOUT_MS + 10_000;
    const poll = (): void => {
      const quiet = n.state.name === 'STOP' && n.state.ready && n.queue.length === 0 && !n.busy && n.scripts === 0;
      if (!quiet && this.now < limit) { this.later(n, 20, poll); return; }
      this.pulse(n);
      n.up = false; n.closing = false; n.life++;
      this.data?.closed(n);
      this.trace.note(this.now, n.name, `daemon closed${quiet ? '' : ' (NOT quiet: limit reached)'} holding ${n.resources()}`);
    };
    this.later(n, 20, poll);
  }

  // ---- the core and the executor --------------------------------------------------------------------

  /** MirrorRuntime.deliver: step the core now, queue the actions, run the executor. */
  deliver(n: SimNode, e: MirrorEvent): void {
    if (!n.up || n.starting) return;
    const before = n.state;
    const r = step(before, e, n.params);
    n.steps++;
    n.state = deepFreeze(r.state);
    this.trace.step(this.now, n.name, e, before, r.state, r.actions);
    this.onStep(n, e, before, r.actions);
    const view = viewOf(r.state);
    this.echo.set(view, n.heardLife);
    if (r.actions.length === 0 && n.queue.length === 0 && !n.busy) { n.published = view; return; }
    n.queue.push({ actions: r.actions, view, i: 0 });
    if (!n.busy) this.drain(n);
  }

  /** Executes queued actions in order until one takes time (then resumes when it completes). */
  private drain(n: SimNode): void {
    while (n.up && !n.busy && n.queue.length > 0) {
      const batch = n.queue[0]!;
      if (batch.i >= batch.actions.length) {
        n.queue.shift();
        n.published = batch.view;
        if (batch.actions.some((a) => a.type === 'send-heartbeat')) this.pulse(n);
        continue;
      }
      const a = batch.actions[batch.i++]!;
      const ms = this.execute(n, a);
      if (ms === null) continue;
      n.busy = true;
      this.later(n, ms, () => { n.busy = false; this.complete(n, a); this.drain(n); });
    }
  }

  /** Starts one action; returns its duration (null: done at once). Resource gains happen here. */
  private execute(n: SimNode, a: MirrorAction): number | null {
    const b = this.behaviour;
    switch (a.type) {
      case 'persist': return this.rand.int(1, b.diskMaxMs);
      case 'vip':
        if (a.op === 'add') n.vip = 'adding'; else if (n.vip !== 'none') n.vip = 'removing';
        return this.rand.int(2, 60);
      case 'mount':
        this.data?.mountStart(n, a.mode);
        if (a.mode === 'rw') { n.mount = 'rw'; this.onResources(n); }
        return this.rand.int(1, 10);
      case 'lease': this.lease(n, a.op); return null;
      // No self-fencing in the simulator (the daemon never stalls here): nothing to lift.
      case 'unfence': return null;
      case 'announce-vip': return this.rand.int(1, 5);
      case 'run-script': this.startScript(n, a.script, a.args); return null;
      case 'start-resync':
        // With the data model the primary's rfs serves it (data.ts); else a random delay.
        if (this.data) { this.stats.resyncs++; this.data.expectSync(n); } else this.startResync(n, a.full);
        return null;
      case 'stop-resync': n.resync = null; this.data?.stopExpect(n); return null;
      case 'flush':
        if (this.data) this.data.flush(n, a.seq);
        else { const seq = a.seq; this.later(n, this.rand.int(5, 200), () => this.deliver(n, { type: 'flushed', now: this.now, seq, ok: true, detail: '' })); }
        return null;
      case 'replicate':
        this.data?.replicate(n, a.mode, a.mode === 'resync' ? a.generation : undefined, a.mode === 'resync' ? a.full : undefined);
        return null;
      case 'transition': this.data?.transition(n, a.from, a.to, a.ready); return null;
      case 'send-heartbeat': case 'log': return null;
    }
  }

  /** The end of an action that took time. Resource losses happen here. */
  private complete(n: SimNode, a: MirrorAction): void {
    switch (a.type) {
      case 'persist':
        n.disk = a.persisted;
        return;
      case 'vip': {
        if (a.op === 'remove') { n.vip = 'none'; this.onResources(n); return; }
        const p = n.peer;
        const duplicate = (p.vip === 'held' || p.vip === 'removing') && !this.link('lan', n).cut && !this.link('lan', p).cut;
        if (duplicate || this.rand.chance(this.behaviour.vipFail)) {
          n.vip = 'none';
          this.stats.vipFailed++;
          this.trace.note(this.now, n.name, `vip add FAILED${duplicate ? ` (duplicate: ${p.name} answers)` : ''}`);
          this.deliver(n, { type: 'vip-failed', now: this.now, detail: duplicate ? 'duplicate address' : 'simulated failure' });
          return;
        }
        n.vip = 'held';
        this.onResources(n);
        this.deliver(n, { type: 'vip-added', now: this.now });
        return;
      }
      case 'mount':
        if (a.mode !== 'rw') { n.mount = a.mode; this.onResources(n); }
        this.data?.mountDone(n, a.mode);
        return;
      default:
        return;
    }
  }

  private startScript(n: SimNode, script: ScriptName, args: readonly string[]): void {
    const b = this.behaviour;
    this.stats.scripts++;
    if (script === 'start_prim') {
      n.app = true; this.onResources(n);
      this.data?.onAppStart(n);
      if (args[2] === 'takeover') this.stats.takeovers++;
      if (args[2] === 'swap') this.stats.swaps++;
    }
    n.scripts++;
    const stop = STOP_SCRIPTS.has(script);
    let ms: number;
    let ok: boolean;
    let detail: string;
    if (this.rand.chance(b.scriptHang)) {
      this.stats.hangs++;
      if (!stop) { ms = SCRIPT_TIMEOUT_MS; ok = false; detail = 'hung: killed at its timeout'; }
      else if (this.rand.chance(b.forceHang)) { ms = 2 * STOP_TIMEOUT_MS; ok = false; detail = 'hung, force rerun hung too: killed'; }
      else { ms = STOP_TIMEOUT_MS + this.rand.int(1, b.scriptMaxMs); ok = true; detail = 'hung: ended by the force rerun'; }
    } else {
      ms = this.rand.int(0, b.scriptMaxMs);
      ok = !this.rand.chance(script === 'start_prim' ? b.startPrimFail : b.scriptFail);
      detail = ok ? 'exit 0' : 'exit 1';
    }
    this.later(n, ms, () => {
      n.scripts--;
      if (script === 'stop_prim') { n.app = false; this.data?.abandon(n); this.onResources(n); }
      this.trace.note(this.now, n.name, `script ${script} ended: ${detail}`);
      this.deliver(n, { type: 'script-done', now: this.now, script, ok, detail });
    });
  }

  private startResync(n: SimNode, full: boolean): void {
    this.stats.resyncs++;
    const token = this.stats.resyncs;
    n.resync = token;
    const ms = this.rand.int(20, full ? 2 * this.behaviour.resyncMaxMs : this.behaviour.resyncMaxMs);
    this.later(n, ms, () => {
      if (n.resync !== token) return; // stopped
      n.resync = null;
      const reachable = n.peer.up && this.networks.some((net) => !this.link(net, n).cut && !this.link(net, n.peer).cut);
      const ok = reachable && !this.rand.chance(this.behaviour.resyncFail);
      this.deliver(n, { type: 'resync-done', now: this.now, ok, detail: ok ? '' : reachable ? 'simulated failure' : 'peer unreachable' });
    });
  }

  // ---- split brain: the witness host -----------------------------------------------------------

  /** Node `n` reaches the witness host now. */
  witnessReachable(n: SimNode): boolean {
    return !this.witness.down && !this.witness.cut.has(n.name);
  }

  /** The splitbrain probe loop of `n`'s daemon (MirrorRuntime.runWitnessProbe): one run per interval. */
  private probeWitness(n: SimNode): void {
    const sb = this.sb;
    if (!sb) return;
    const ok = this.witnessReachable(n);
    const ms = ok ? this.rand.int(1, 20) : sb.timeoutMs;
    this.later(n, ms, () => {
      if (n.witnessReported !== ok) {
        n.witnessReported = ok;
        this.deliver(n, { type: 'witness', now: this.now, reachable: ok });
      }
      this.later(n, Math.max(0, sb.intervalMs - ms), () => this.probeWitness(n));
    });
  }

  /** A `lease` action (MirrorRuntime.lease): not awaited; an acquire is answered by a `lease` event. */
  private lease(n: SimNode, op: 'acquire' | 'release'): void {
    const sentAt = this.now;
    const life = n.life;
    const mine = (): boolean => n.life === life && n.up;
    const answer = (e: MirrorEvent): void => { if (mine()) this.deliver(n, e); };
    const fail = (): void => this.later(null, LEASE_TIMEOUT_MS - (this.now - sentAt), () => answer({ type: 'lease', now: this.now, granted: false, holder: null, error: 'timeout' }));
    if (!this.witnessReachable(n)) { if (op === 'acquire') fail(); return; }
    this.later(null, this.rand.int(1, 20), () => {
      const t = this.witness.table;
      if (!t || !this.witnessReachable(n)) { if (op === 'acquire') fail(); return; }
      if (op === 'release') { t.release('sim', 'app', n.name, this.now); return; }
      const r = t.acquire('sim', 'app', n.name, this.now);
      this.later(null, this.rand.int(1, 20), () => {
        if (!this.witnessReachable(n)) { fail(); return; }
        answer(r.granted ? { type: 'lease', now: this.now, granted: true, sentAtMs: sentAt, leaseMs: r.leaseMs }
          : { type: 'lease', now: this.now, granted: false, holder: r.holder });
      });
    });
  }

  /**
   * Since when each node is cut off from everything (every heartbeat link cut both ways and no
   * path to the witness), by name; absent: not cut off. Kept by `isolationChanged`, which the
   * fault process calls after every network or witness fault.
   */
  readonly isolatedSince = new Map<string, number>();

  isolationChanged(): void {
    for (const n of this.nodes) {
      const cut = this.networks.every((net) => this.link(net, n).cut && this.link(net, n.peer).cut) && !this.witnessReachable(n);
      if (!cut) this.isolatedSince.delete(n.name);
      else if (!this.isolatedSince.has(n.name)) this.isolatedSince.set(n.name, this.now);
    }
  }

  /** The witness host restarts: its leases are forgotten (the quiet period protects them). */
  restartWitness(fresh = true): void {
    if (!this.sb) return;
    // Not fresh: a witness that has run for long (its quiet period is over at the start of the run).
    this.witness.table = new LeaseTable({ leaseMs: this.sb.leaseMs, startMs: fresh ? this.now : this.now - this.sb.leaseMs });
  }

  // ---- heartbeats --------------------------------------------------------------------------------

  /** Sends the published view on every network (MirrorRuntime.pulse). */
  pulse(n: SimNode): void {
    const view = stampView(n.published, n.state, this.now);
    const epoch = n.life;
    for (const net of n.params.networks) {
      const seq = ++n.txSeq;
      const l = this.link(net, n);
      this.stats.heartbeats++;
      if (l.cut || (l.loss > 0 && this.rand.chance(l.loss))) { this.stats.dropped++; continue; }
      const copies = l.dup > 0 && this.rand.chance(l.dup) ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const to = n.peer;
        this.later(null, this.rand.int(l.delayMin, l.delayMax), () => this.receive(to, net, n.name, epoch, seq, view));
      }
    }
  }

  /** The transport's replay filter, then the core. */
  private receive(r: SimNode, net: string, from: string, epoch: number, seq: number, heard: PeerView): void {
    let view = heard;
    if (!r.up || r.starting || from !== r.peer.name) return;
    const rx = r.rx;
    if (rx === null || epoch > rx.epoch) {
      r.rx = { epoch, seq: new Map([[net, seq]]), max: seq };
      r.newestView = view;
    } else if (epoch < rx.epoch) {
      return;
    } else {
      const last = rx.seq.get(net);
      if (last !== undefined && seq <= last) return;
      rx.seq.set(net, seq);
      if (seq < rx.max && this.dropStaleViews) {
        // As MirrorRuntime does: the datagram proves its network alive, the view is old news.
        this.stats.staleViewsDropped++;
        view = r.newestView ?? view;
      } else {
        r.newestView = view;
      }
      rx.max = Math.max(rx.max, seq);
    }
    r.lastHeard = this.now;
    r.heardLife = epoch;
    r.lastView = view;
    this.deliver(r, { type: 'heartbeat', now: this.now, network: net, view });
    // MirrorRuntime.armSilenceTick: a tick just after the silence deadline.
    const token = ++r.silenceTick;
    this.later(r, r.params.heartbeatTimeoutMs + 1, () => { if (r.silenceTick === token) this.deliver(r, { type: 'tick', now: this.now }); });
  }

  // ---- admin and checkers --------------------------------------------------------------------------

  /** An admin command through the daemon (MirrorRuntime.command): the caller has validated it. */
  command(n: SimNode, command: MirrorCommand): void {
    this.stats.commands++;
    this.deliver(n, { type: 'command', now: this.now, command });
  }

  /** A checker reports a change. */
  checker(n: SimNode, name: string, up: boolean, action: CheckerAction): void {
    if (up) { if (!n.checkersDown.delete(name)) return; } else { if (n.checkersDown.has(name)) return; n.checkersDown.set(name, action); }
    this.stats.checkers++;
    this.deliver(n, { type: 'checker', now: this.now, name, up, action });
  }
}
