/**
 * The runtime of one mirror module on this node: feeds events to the pure state machine
 * (src/core/mirror) and executes the actions it returns through the adapters.
 *
 * Timing path (DESIGN.md 3 promise 8, STYLE.md 9): `deliver` steps the core synchronously and
 * returns; actions run in an executor queue, one step's actions after the previous step's, and
 * nothing in the queue waits for a script (scripts report back with a `script-done` event).
 * Heartbeats are sent by their own timer every pulse, so neither a slow script nor a slow
 * `ip`/`arping` call delays them.
 *
 * What the peer sees (the published view) is the view of the last step whose actions have all
 * been executed: a node never tells its peer "I released the VIP" before the `ip addr del` ran.
 */
import { existsSync, lstatSync } from 'node:fs';
import type { Clock, TimerHandle } from '../adapters/clock/index.js';
import type { ModuleRfs, RfsConfig } from '../adapters/fuse/rfs.js';
import { probeFor as realProbeFor, type Probe, type ProbeContext, type ProbeFactory } from '../adapters/probes/index.js';
import type { ScriptRequest, ScriptRunner } from '../adapters/scripts/index.js';
import type { StateStore } from '../adapters/store/index.js';
import { openFileChangeLog } from '../adapters/store/changelog.js';
import { replaysMatchTree } from '../core/replication/changes.js';
import type { HeartbeatTransport } from '../adapters/udp/transport.js';
import type { VipManager } from '../adapters/vip/index.js';
import type { WitnessClient } from '../adapters/witness/index.js';
import type { ClusterConfig, MirrorModuleConfig, SplitbrainChecker } from '../core/config/index.js';
import { HakitError } from '../core/errors.js';
import {
  initialState, stampView, statusOf, step, validateCommand, viewOf,
  type MirrorAction, type MirrorCommand, type MirrorEvent, type MirrorParams, type MirrorState, type Persisted, type PeerView,
  type Role, type ScriptName,
} from '../core/mirror/index.js';
import type { ModuleStatus } from '../core/status.js';
import { CheckerRunner, type CheckerStatusView } from './checker-runner.js';
import type { Logbook } from './logbook.js';
import { RfsSupervisor } from './rfs-supervisor.js';
import { ClockPacer, type Pacer } from './heartbeat-batcher.js';

/** The first port of replication links (a module's default: this + its index, see config docs). */
export const REPLICATION_BASE_PORT = 7406;

/** Name of the module's state document in its store. */
export const MIRROR_STATE_NAME = 'mirror';

export interface MirrorRuntimeDeps {
  readonly clock: Clock;
  readonly store: StateStore;
  readonly scripts: ScriptRunner;
  readonly vips: VipManager;
  readonly transport: HeartbeatTransport;
  /** Calls the pulse (default: a pacer of this runtime's own on `clock`). The agent shares one
   *  among its modules so their heartbeats leave together (heartbeat-batcher.ts). */
  readonly pacer?: Pacer;
  readonly logbook: Logbook;
  /** A fresh random seed for generation ids (hex). */
  readonly idSeed: () => string;
  /** The host's boot id (boot-id.ts; absent or '': host restarts are not detected). */
  readonly bootId?: () => string;
  /** Writes out what the file system holding `dir` has in the page cache (tests; default: RfsProcess.flush, syncfs below the mounts). */
  readonly flushDir?: (dir: string) => Promise<void>;
  /** Makes the checkers' probes (default: the real ones). */
  readonly probeFor?: ProbeFactory;
  /** The state of another module on this node (for `module` checkers). */
  readonly moduleState?: (name: string) => string | undefined;
  /** Starts a module's rfs child (modules with replicated dirs only). */
  readonly spawnRfs?: () => ModuleRfs;
  /** Removes stale rfs mounts on a dir. */
  readonly recoverMount?: (dir: string) => Promise<number>;
  /** Opens a client of the arbitrator witness at "IP:PORT" (modules whose splitbrain checker has an arbitrator). */
  readonly openWitness?: (witness: string) => Promise<WitnessClient>;
}

export interface MirrorRuntimeConfig {
  readonly module: MirrorModuleConfig;
  readonly cluster: ClusterConfig;
  readonly node: string;
  readonly configDir: string;
  /** `<state-dir>/modules/<module>`: script logs go under it. */
  readonly moduleStateDir: string;
  /** The replication link's port (config `replication.port` or its default). */
  readonly replicationPort?: number;
}

interface Batch {
  readonly actions: readonly MirrorAction[];
  /** The state the step left: its view is published once the actions ran. */
  readonly state: MirrorState;
}

/** Params of the core from the module's config. */
export function mirrorParams(m: MirrorModuleConfig, node: string): MirrorParams {
  const peer = m.nodes.find((n) => n !== node);
  if (peer === undefined) throw new HakitError('CONFIG', { detail: `module ${m.name} needs two nodes` });
  const sb = splitbrainOf(m);
  const pulse = m.heartbeat.pulseMs;
  return {
    // graceMs (core/mirror/types.ts SplitBrainParams): with ping witnesses, the checker's interval
    // + timeout + a pulse; with the arbitrator alone, two pulses (a primary without a live lease
    // demotes when it hears the silence, at most a pulse before its peer may hear it).
    ...(sb ? { splitBrain: {
      witnesses: sb.witnesses.length > 0, arbitrator: sb.arbitrator !== undefined,
      graceMs: (sb.witnesses.length > 0 ? sb.intervalMs + sb.timeoutMs : pulse) + pulse,
    } } : {}),
    module: m.name,
    node,
    peer,
    defaultPrimary: m.defaultPrimary,
    failover: m.failover,
    pulseMs: m.heartbeat.pulseMs,
    heartbeatTimeoutMs: m.heartbeat.timeoutMs,
    networks: m.heartbeat.networks,
    maxloop: m.maxloop,
    hasReplication: m.replication.dirs.length > 0,
  };
}

/** The module's splitbrain checker, if any (at most one is used: the first). */
export function splitbrainOf(m: MirrorModuleConfig): SplitbrainChecker | undefined {
  return m.checkers.find((c): c is SplitbrainChecker => c.type === 'splitbrain');
}

/** "IP:PORT" as the witness client takes it ("[v6]:port" for IPv6). */
function witnessAddress(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export class MirrorRuntime {
  readonly name: string;
  readonly params: MirrorParams;
  private state: MirrorState;
  /** The state whose view is published (see the header), and that view once made: a view is
   *  made when a heartbeat needs it (4 times a second), not at every step (issue 3's idle CPU). */
  private publishedState: MirrorState;
  private publishedView: PeerView | null = null;
  private readonly queue: Batch[] = [];
  private draining: Promise<void> | null = null;
  private stopPulse: (() => void) | null = null;
  /** Persisted.unlogged as this daemon knows it, and a counter that cancels a flush in flight. */
  private unlogged = true;
  private unloggedEpoch = 0;
  private silenceTimer: TimerHandle | null = null;
  /** When the silence tick is due: just after the heartbeat timeout that follows the last heartbeat. */
  private silenceDue = 0;
  /** The newest heartbeat of the peer (its epoch = daemon life, and sequence number). */
  private newest: { epoch: string; seq: bigint; view: PeerView } = { epoch: '', seq: -1n, view: undefined as unknown as PeerView };
  private running = 0;
  private closed = false;
  private unsubscribe: (() => void) | null = null;
  private readonly peerAddress: ReadonlyMap<string, string>;
  private readonly checkers: CheckerRunner | null = null;
  private readonly rfs: RfsSupervisor | null = null;
  private readonly probeCtx: ProbeContext;
  /** Ping witnesses: the probe, its timer, the last result (null: none yet) and since when. */
  private witnessProbe: Probe | null = null;
  private witnessTimer: TimerHandle | null = null;
  private witnessResult: { ok: boolean; detail: string; since: number } | null = null;
  private readonly witnessStop = new AbortController();
  /** The arbitrator witness client (null: none configured, or it could not be opened). */
  private witness: WitnessClient | null = null;
  private lastLease: string = 'none asked yet';
  /** This boot's id, and whether the module is stopped with its dirs flushed (Persisted.cleanStop). */
  private bootId = '';
  private cleanStop = false;
  /** The state last written (the core's, plus the daemon-owned fields at write time). */
  private lastWritten: Persisted | null = null;
  /** When the pulse timer last ran (stall detection: see noteStall). */
  private lastBeat = 0;

  constructor(private readonly cfg: MirrorRuntimeConfig, private readonly deps: MirrorRuntimeDeps) {
    this.name = cfg.module.name;
    this.params = mirrorParams(cfg.module, cfg.node);
    this.state = initialState(this.params);
    this.publishedState = this.state;
    const m = cfg.module;
    const moduleDir = `${cfg.configDir}/modules/${m.name}`;
    this.probeCtx = {
      moduleDir, binDir: `${moduleDir}/bin`, node: cfg.node, module: m.name, vip: m.vip,
      moduleState: deps.moduleState ?? (() => undefined), clock: deps.clock,
    };
    if (m.checkers.length > 0) {
      this.checkers = new CheckerRunner(m.checkers, deps.probeFor ?? realProbeFor, this.probeCtx, deps.clock, (c) => {
        this.log(c.up ? 'info' : 'warn', `checker ${c.name} ${c.up ? 'up' : 'down'}: ${c.detail}`, { event: 'checker', checker: c.name, up: c.up, action: c.action });
        this.deliver({ type: 'checker', now: this.deps.clock.now(), name: c.name, up: c.up, action: c.action });
      });
    }
    const peerNode = cfg.cluster.nodes.find((n) => n.name === this.params.peer);
    this.peerAddress = new Map(this.params.networks.flatMap((net) => {
      const a = peerNode?.addresses[net];
      return a === undefined ? [] : [[net, a] as const];
    }));
    if (this.params.hasReplication) {
      if (!deps.spawnRfs || !deps.recoverMount) throw new HakitError('INTERNAL', { detail: `module ${m.name} has replicated dirs but the daemon has no rfs` });
      this.rfs = new RfsSupervisor(this.rfsConfig(), { spawn: deps.spawnRfs, recover: deps.recoverMount, logbook: deps.logbook }, (e) => {
        const now = this.deps.clock.now();
        if (e.event === 'replication-lost') this.deliver({ type: 'replication-lost', now, detail: e.detail });
        else if (e.event === 'unacked-write') this.deliver({ type: 'unacked-write', now, detail: e.detail });
        else if (e.event === 'fenced') this.deliver({ type: 'fenced', now, detail: e.detail });
        else if (e.event === 'quarantined') {
          this.log('warn', `before the full resync from ${this.params.peer}: ${e.paths} changed paths of this node's copy kept in ${e.dir}${e.failed.length > 0 ? `; not kept: ${e.failed.slice(0, 5).join('; ')}` : ''}`, { event: 'quarantine', dir: e.dir, paths: e.paths });
        } else if (e.event === 'resync-done') {
          const done = (ok: boolean, detail: string): void =>
            this.deliver({ type: 'resync-done', now: this.deps.clock.now(), ok, detail, ...(e.generation !== null ? { generation: e.generation } : {}) });
          // Up to date only once the copy is on disk: what the resync wrote sits in the page
          // cache, and this node may take over (and its host crash) before writeback (simulator
          // finding 9, seed 1337).
          if (!e.ok) done(false, e.detail);
          else void this.flushDirs().then(() => done(true, e.detail), (err: unknown) => done(false, `the resync completed but the copy could not be flushed to disk: ${(err as Error).message}`));
        }
        else if (e.event === 'apply-failed') {
          this.log('error', `this copy could not apply what ${this.params.peer} replicated; it is behind now and resyncs once the cause is fixed: ${e.detail}`, { event: 'apply-failed' });
        } else this.log(e.ok ? 'info' : 'warn', `resync served to ${this.params.peer}: ${e.ok ? 'done' : 'abandoned'} (${e.detail})`);
      }, (detail) => this.deliver({ type: 'rfs-failed', now: this.deps.clock.now(), detail }));
    }
  }

  private changeLogPath(): string {
    return `${this.cfg.moduleStateDir}/changes.log`;
  }

  /** The rfs child's configuration: dirs, and both ends of the replication link. */
  private rfsConfig(): RfsConfig {
    const m = this.cfg.module;
    const net = this.params.networks[0] ?? '';
    const me = this.cfg.cluster.nodes.find((n) => n.name === this.params.node);
    const peerAddr = this.peerAddress.get(net);
    const myAddr = me?.addresses[net];
    if (myAddr === undefined || peerAddr === undefined) {
      throw new HakitError('CONFIG', { detail: `module ${m.name}: both nodes need an address on heartbeat network ${net} for the replication link` });
    }
    const port = this.cfg.replicationPort ?? m.replication.port ?? REPLICATION_BASE_PORT;
    return {
      module: m.name, cluster: this.cfg.cluster.name, node: this.params.node, peer: this.params.peer, keyFile: this.cfg.cluster.keyFile,
      dirs: m.replication.dirs.map((d) => ({ path: d.path, exclude: d.exclude })),
      listen: { address: myAddr, port }, peerAddress: { address: peerAddr, port }, timeoutMs: m.replication.timeoutMs,
      // Self-fencing bound: half the heartbeat timeout. A daemon that stalls stops the child's
      // keepalives (one per pulse); its rw mounts block by stall + T/2, before the peer may take
      // over (stall - pulse + T at the earliest) as long as pulse < T/2.
      fenceMs: Math.floor(this.params.heartbeatTimeoutMs / 2),
      changeLog: this.changeLogPath(),
      quarantineDir: `${this.cfg.moduleStateDir}/quarantine`,
      zoneBytes: m.replication.zoneSizeBytes,
      ...(m.replication.resyncBandwidthBytesPerSec !== undefined ? { resyncBytesPerSec: m.replication.resyncBandwidthBytesPerSec } : {}),
    };
  }

  /**
   * Removes VIPs left over from a crash, restores the persisted state and starts the timers.
   * Resolves when the first step's actions are queued (not executed).
   */
  async start(): Promise<void> {
    for (const vip of this.cfg.module.vip) {
      if (await this.deps.vips.holds(vip)) {
        this.log('warn', `removing VIP ${vip.cidr} left over from an earlier run`, { vip: vip.cidr });
        await this.deps.vips.remove(vip);
      }
    }
    let persisted: Persisted | null;
    try {
      persisted = (await this.deps.store.read<Persisted>(MIRROR_STATE_NAME)) ?? null;
    } catch (e) {
      // A corrupt state file means the data generation is unknown: start as a node that may be
      // behind (the core's start rules then wait for the peer), and say so.
      this.log('error', (e as Error).message, { code: (e as HakitError).code });
      persisted = null;
    }
    this.bootId = this.deps.bootId?.() ?? '';
    if (persisted !== null) {
      // The host restarted (a new boot id) while the module was not cleanly stopped: what this
      // copy had only in the page cache is gone, maybe under file times that were kept.
      const crashed = this.params.hasReplication && this.bootId !== '' && persisted.bootId !== undefined &&
        persisted.bootId !== this.bootId && persisted.cleanStop !== true;
      if (crashed) {
        this.log('warn', 'the host restarted without a clean stop of this module: its copy may have lost recent writes; it gets a full resync that compares every block before it is a secondary in sync again');
        persisted = { ...persisted, suspect: true, unacked: true };
        if (persisted.unlogged !== false) {
          // Finding 12: the crash may have rolled back what no mark names; the rfs child opens
          // the log only after this (rfs.start below).
          this.log('warn', 'the copy may have lost changes its change log does not name: the next resync this node serves is a full one (by comparison)');
          await markChangeLogIncomplete(this.changeLogPath());
        } else {
          // Finding 17: a rename or link the log would replay may be one the crash undid here.
          const turned = await changeLogReplaysToMarks(this.changeLogPath(), this.cfg.module.replication.dirs.map((d) => d.path));
          if (turned > 0) this.log('warn', `the crash may have undone renames or links of the change log: the next resync copies the ${turned} renamed or linked ${turned === 1 ? 'entry' : 'entries'} whole instead of renaming them on ${this.params.peer}`);
        }
      }
      this.unlogged = persisted.unlogged !== false;
      this.cleanStop = persisted.cleanStop === true && !crashed;
      await this.writeState(persisted);
    }
    if (persisted?.enabled && persisted.lastPrimary === this.params.node) {
      // The last daemon may have died while this node was primary, leaving the application
      // running (only the daemon was killed). Stop it before anything else, so a restarted daemon
      // never runs a second copy behind the peer's back (DESIGN.md 3.1). stop_prim must be
      // idempotent (docs/scripts.md). The VIP was removed above.
      this.log('info', 'this node was the last primary: running stop_prim to clean up what a crashed daemon may have left running');
      const r = await this.deps.scripts.run(this.scriptRequest({ script: 'stop_prim', args: ['STOP', 'STOP', 'cleanup'], role: 'prim' }));
      if (!r.missing) this.log(r.ok ? 'info' : 'error', `script stop_prim (cleanup) ${r.ok ? 'done' : 'failed'}: ${r.detail}`);
    }
    // The rfs child listens for the peer's link before this node can be elected anything.
    if (this.rfs) await this.rfs.start();
    await this.startSplitBrain();
    this.unsubscribe = this.deps.transport.onReceive((network, _from, d) => {
      if (d.module !== this.name || d.node !== this.params.peer) return;
      // The peer numbers its datagrams across all networks. One that is older than a datagram
      // already heard on another network (a slower network) still proves that its network is
      // alive, but its view is old news: the core gets the newest view (simulator finding 1:
      // a delayed STOP view made a SECOND take over from a live primary).
      if (d.epoch !== this.newest.epoch || d.seq > this.newest.seq) this.newest = { epoch: d.epoch, seq: d.seq, view: d.view };
      this.deliver({ type: 'heartbeat', now: this.deps.clock.now(), network, view: this.newest.view });
      this.armSilenceTick();
    });
    this.deliver({ type: 'init', now: this.deps.clock.now(), persisted, idSeed: this.deps.idSeed() });
    this.lastBeat = this.deps.clock.now();
    this.schedulePulse();
  }

  /** Steps the core with one event and queues its actions; never blocks, never throws. */
  deliver(event: MirrorEvent): void {
    if (this.closed) return;
    if (event.type !== 'fenced') this.noteStall();
    let r: { state: MirrorState; actions: MirrorAction[] };
    try {
      r = step(this.state, event, this.params);
    } catch (e) {
      this.log('error', `state machine failed on ${event.type}: ${(e as Error).message}`, { stack: (e as Error).stack });
      return;
    }
    this.state = r.state;
    for (const a of r.actions) {
      if (a.type === 'transition') {
        this.checkers?.setRole(a.to, a.ready);
        this.log(a.to === 'STOP' && a.reason ? 'warn' : 'info', `${a.from} -> ${a.to}${a.ready ? '' : ' (transient)'}${a.reason ? ` reason=${a.reason}` : ''}`,
          { event: 'transition', from: a.from, to: a.to, ready: a.ready, reason: a.reason });
      } else if (a.type === 'log') {
        this.log(a.level, a.message, { ...(a.fields ?? {}) });
      }
    }
    // Most steps (a heartbeat, a tick) have nothing to execute: with nothing queued before them,
    // publishing the view now is what the drain would do, without its promises (issue 3's idle cost).
    if (!this.draining && this.queue.length === 0 && r.actions.every((a) => a.type === 'log')) {
      this.publish(r.state);
      return;
    }
    this.queue.push({ actions: r.actions, state: r.state });
    if (!this.draining) this.draining = this.drain().finally(() => { this.draining = null; });
  }

  /** Validates and applies an admin command; throws HakitError BAD_STATE when refused. */
  command(command: MirrorCommand): string {
    const refusal = validateCommand(this.state, command, this.params);
    const s = statusOf(this.state, this.params, this.deps.clock.now());
    if (refusal) {
      throw new HakitError('BAD_STATE', { command: command.cmd, module: this.name, state: s.state, detail: refusal.message });
    }
    this.deliver({ type: 'command', now: this.deps.clock.now(), command });
    return `${command.cmd}: accepted by module ${this.name} on ${this.params.node} (was ${s.state}${s.ready ? '' : ', transient'})`;
  }

  /**
   * `hakit verify`: the replicas compared online by content (the primary's rfs, verify.ts).
   * Refused unless this node is PRIM (its peer an up-to-date SECOND) with replicated dirs.
   */
  async verify(): Promise<{ message: string; differ: string[] }> {
    const s = statusOf(this.state, this.params, this.deps.clock.now());
    if (!this.params.hasReplication || !this.rfs) throw new HakitError('BAD_REQUEST', { detail: `module ${this.name} has no replicated dirs: there is nothing to verify` });
    if (s.state !== 'PRIM') {
      throw new HakitError('BAD_STATE', { command: 'verify', module: this.name, state: s.state, detail: 'run verify on the primary (PRIM), while its peer is an up-to-date SECOND' });
    }
    const t0 = this.deps.clock.now();
    const r = await this.rfs.verify();
    const dirs = this.cfg.module.replication.dirs;
    const differ = r.differ.map((d) => `${dirs[d.dir]?.path ?? `dir #${d.dir}`}${d.path === '/' ? '' : d.path}: ${d.why}`);
    const what = `${r.entries} entries, ${(r.bytes / 1e6).toFixed(1)} MB of file data compared with ${this.params.peer} in ${((this.deps.clock.now() - t0) / 1000).toFixed(1)} s`;
    const message = differ.length === 0 ? `verify ${this.name}: the replicas are equal (${what})` : `verify ${this.name}: ${differ.length} ${differ.length === 1 ? 'path differs' : 'paths differ'} (${what})`;
    this.log(differ.length === 0 ? 'info' : 'warn', message, { event: 'verify', differ: differ.length });
    for (const d of differ.slice(0, 100)) this.log('warn', `verify: differs: ${d}`);
    return { message, differ };
  }

  status(): ModuleStatus {
    const s = statusOf(this.state, this.params, this.deps.clock.now());
    const rs = this.rfs?.stats()?.replication;
    const primary = rs && (s.state === 'PRIM' || s.state === 'ALONE') ? rs.primary : null;
    const secondary = rs && s.state === 'SECOND' ? rs.secondary : null;
    const idle = { active: false, bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 };
    const f = s.resyncFailure;
    const failed = f && s.state === 'SECOND' ? {
      failures: f.count, lastError: f.error,
      retryInSeconds: f.retryAt === null ? 0 : Math.max(0, Math.ceil((f.retryAt - this.deps.clock.now()) / 1000)),
    } : {};
    return {
      name: this.name,
      kind: 'mirror',
      state: s.state,
      ready: s.ready,
      reason: s.reason,
      peer: { name: s.peer.name, state: s.peer.state ?? 'UNKNOWN' },
      vip: this.cfg.module.vip.map((v) => v.cidr),
      replication: {
        upToDate: s.upToDate,
        resync: primary ? primary.resync : { ...idle, ...(secondary?.syncing ? { active: true } : {}), ...failed },
        ...(this.params.hasReplication ? {
          dirs: this.cfg.module.replication.dirs.map((d) => d.path),
          mode: primary ? primary.mode : secondary ? 'receiving' : 'none',
          link: primary ? primary.link : secondary ? secondary.link : 'none',
          recordsSent: primary?.recordsSent ?? 0,
          bytesSent: primary?.bytesSent ?? 0,
          ackLatencyMsP50: primary?.ackLatencyMsP50 ?? 0,
          ackLatencyMsP99: primary?.ackLatencyMsP99 ?? 0,
          heldWrites: primary?.held ?? 0,
          dirtyPaths: primary?.dirtyPaths ?? 0,
          // False: the next resync this node serves is full (docs/replication.md, change log).
          changeLogComplete: primary?.logComplete ?? false,
          // The last quarantine of this node's changed paths before a full resync (docs/replication.md).
          quarantine: rs?.quarantine ?? null,
          recordsApplied: secondary?.applied ?? 0,
          unacked: s.unacked,
        } : {}),
      },
      failover: s.failover,
      heartbeat: { networks: s.peer.networks },
      generation: s.generation,
      checkers: { ...(this.checkers?.views() ?? {}), ...this.splitbrainView() },
    };
  }

  /** `hakit checker on|off`: the names whose switch changed. Throws HakitError NO_CHECKER. */
  checker(on: boolean, name?: string): string[] {
    if (!this.checkers) throw new HakitError('NO_CHECKER', { checker: name ?? '(any)', known: 'none' });
    const changed = this.checkers.setEnabled(on, name);
    this.log('info', `checker${name ? ` ${name}` : 's'} ${on ? 'on' : 'off'} by an administrator${changed.length ? '' : ' (no change)'}`, { event: 'checker-switch', on, changed });
    return changed;
  }

  /**
   * Stops the module cleanly (stop scripts, VIP removed, `stopping` announced to the peer)
   * without changing whether it is enabled, then stops the timers. Bounded by the scripts'
   * stop timeouts.
   */
  async shutdown(): Promise<void> {
    this.deliver({ type: 'shutdown', now: this.deps.clock.now() });
    const limit = this.deps.clock.now() + 2 * this.cfg.module.scripts.stopTimeoutMs + 10_000;
    while (!this.isQuiet() && this.deps.clock.now() < limit) await this.deps.clock.sleep(20);
    // Tell the peer a last time, then go silent.
    this.pulse();
    this.closed = true;
    this.checkers?.stop();
    this.witnessStop.abort();
    if (this.witnessTimer) this.deps.clock.clearTimer(this.witnessTimer);
    await this.witness?.close();
    await this.rfs?.close();
    this.stopPulse?.();
    this.stopPulse = null;
    if (this.silenceTimer) this.deps.clock.clearTimer(this.silenceTimer);
    this.unsubscribe?.();
  }

  /** True when the module is stopped, no action is queued and no script runs. */
  private isQuiet(): boolean {
    const st = statusOf(this.state, this.params, this.deps.clock.now());
    return st.state === 'STOP' && st.ready && this.queue.length === 0 && this.draining === null && this.running === 0;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.shift()!;
      let sendNow = false;
      for (const a of batch.actions) {
        if (a.type === 'send-heartbeat') sendNow = true;
        else await this.execute(a);
      }
      this.publish(batch.state);
      if (sendNow) this.pulse();
    }
  }

  private async execute(a: MirrorAction): Promise<void> {
    try {
      switch (a.type) {
        case 'persist':
          await this.writeState(a.persisted);
          return;
        case 'run-script':
          this.runScript(a);
          return;
        case 'vip':
          if (a.op === 'add') await this.addVips();
          else for (const v of this.cfg.module.vip) await this.deps.vips.remove(v);
          return;
        case 'announce-vip':
          for (const v of this.cfg.module.vip) await this.deps.vips.announce(v);
          return;
        case 'mount':
          if (!this.rfs) return;
          if (a.mode === 'ro') await this.setUnlogged(); // a SECOND's records are not marked
          // Logged before rw is requested and after it is left, so that the log brackets every
          // moment this node could write (the chaos suite checks that from the logs).
          if (a.mode === 'rw') this.log('info', 'replicated dirs: mounting read-write', { event: 'mount', mode: a.mode });
          await this.rfs.mount(a.mode);
          if (a.mode !== 'rw') this.log('info', `replicated dirs: ${a.mode === 'none' ? 'unmounted' : a.mode}`, { event: 'mount', mode: a.mode });
          return;
        case 'unfence':
          await this.rfs?.unfence();
          return;
        case 'lease':
          this.lease(a.op);
          return;
        case 'replicate':
          // Writes in sync mode are not marked, and a resync this node serves ends in sync mode.
          if (a.mode === 'sync' || a.mode === 'resync') await this.setUnlogged();
          await this.rfs?.replicate(a.mode, a.mode === 'resync' ? a.generation : undefined, a.mode === 'resync' ? a.full : undefined);
          if (a.mode === 'alone') this.flushWhenAlone();
          return;
        case 'start-resync':
          // The primary serves the request within a few pulses; the deadline only ends a
          // request nobody answered (the core then asks again).
          await this.rfs?.expectSync(this.cfg.module.replication.timeoutMs + 10_000, this.state.persisted.suspect === true);
          return;
        case 'stop-resync':
          await this.rfs?.stopResync();
          return;
        case 'flush':
          this.flushForCore(a.seq);
          return;
        case 'transition':
          await this.noteCleanStop(a.from, a.to, a.ready);
          return;
        case 'send-heartbeat':
        case 'log':
          return;
      }
    } catch (e) {
      this.log('error', `action ${a.type} failed: ${(e as Error).message}`, { action: a });
      if (a.type === 'vip' && a.op === 'add') this.deliver({ type: 'vip-failed', now: this.deps.clock.now(), detail: (e as Error).message });
      // The application must not start on a directory that is not replicated: release.
      if (a.type === 'mount' && a.mode === 'rw') this.deliver({ type: 'rfs-failed', now: this.deps.clock.now(), detail: (e as Error).message });
      if (a.type === 'start-resync') this.deliver({ type: 'resync-done', now: this.deps.clock.now(), ok: false, detail: (e as Error).message });
    }
  }

  /** Writes the module's state with the daemon-owned fields (boot id, clean stop). */
  private async writeState(p: Persisted): Promise<void> {
    const full: Persisted = {
      ...p, ...(this.bootId !== '' ? { bootId: this.bootId } : {}), cleanStop: this.cleanStop, ...(this.params.hasReplication ? { unlogged: this.unlogged } : {}),
    };
    await this.deps.store.write(MIRROR_STATE_NAME, full);
    this.lastWritten = full;
  }

  /**
   * Leaving STOP: the copy is about to change, so it is not a clean stop any more (written before
   * anything is mounted). Reaching STOP (ready): the replicated dirs are unmounted; what the page
   * cache holds of them is written out, then the stop is clean: a host restart after it loses
   * nothing (no suspect copy at the next start).
   */
  private async noteCleanStop(from: string, to: string, ready: boolean): Promise<void> {
    if (!this.params.hasReplication || this.lastWritten === null) return;
    if (from === 'STOP' && to !== 'STOP' && this.cleanStop) {
      this.cleanStop = false;
      await this.writeState(this.lastWritten);
    } else if (to === 'STOP' && ready && !this.cleanStop) {
      try {
        await this.flushDirs();
      } catch (e) {
        this.log('warn', `could not flush the replicated dirs at stop (${(e as Error).message}): a host crash now would make this copy suspect`);
        return;
      }
      this.cleanStop = true;
      this.unlogged = false;
      this.unloggedEpoch++;
      await this.writeState(this.lastWritten);
    }
  }

  /**
   * Writes out what the page cache holds of every replicated dir: syncfs of the file systems
   * below the mounts, through the rfs child's descriptors (RfsProcess.flush; `sync -f` on a FUSE
   * mount writes nothing out: measured, 300 MB stayed dirty), or deps.flushDir (tests).
   */
  private async flushDirs(): Promise<void> {
    const flush = this.deps.flushDir;
    if (flush !== undefined) {
      for (const d of this.cfg.module.replication.dirs) await flush(d.path);
      return;
    }
    if (!this.rfs) throw new HakitError('INTERNAL', { detail: `module ${this.name}: no rfs to flush its replicated dirs` });
    await this.rfs.flush();
  }

  /**
   * The core's `flush` (before a new generation): runs beside the actions that follow (a takeover
   * adds its VIP meanwhile) and is answered with `flushed`.
   */
  private flushForCore(seq: number): void {
    const t0 = this.deps.clock.now();
    const done = (ok: boolean, detail: string): void => {
      const durationMs = Math.round(this.deps.clock.now() - t0);
      if (ok) this.log('info', `replicated dirs flushed in ${durationMs} ms (before the new generation)`, { event: 'flush', durationMs });
      this.deliver({ type: 'flushed', now: this.deps.clock.now(), seq, ok, detail });
    };
    void this.flushDirs().then(() => done(true, ''), (e: unknown) => done(false, (e as Error).message));
  }

  /** Persists `unlogged` before what it covers can happen (see Persisted.unlogged). */
  private async setUnlogged(): Promise<void> {
    this.unloggedEpoch++;
    if (this.unlogged || !this.params.hasReplication || this.lastWritten === null) return;
    this.unlogged = true;
    await this.writeState(this.lastWritten);
  }

  /**
   * `replicate alone`: from now on every change is marked before it is written, so once what the
   * page cache holds is on disk, a host crash cannot roll back anything the log does not name.
   * The flush runs beside the actions (a takeover never waits for it); a `sync` or `ro` mount
   * before it ends keeps the flag.
   */
  private flushWhenAlone(): void {
    if (!this.unlogged || !this.params.hasReplication) return;
    const epoch = ++this.unloggedEpoch;
    void (async () => {
      await this.flushDirs();
      if (epoch !== this.unloggedEpoch || this.closed || this.lastWritten === null) return;
      this.unlogged = false;
      await this.writeState(this.lastWritten);
    })().catch((e: unknown) => this.log('warn', `could not flush the replicated dirs after going alone (${(e as Error).message}): a host crash now makes the next resync this node serves a full one`));
  }

  private async addVips(): Promise<void> {
    const added = [];
    for (const v of this.cfg.module.vip) {
      const t0 = this.deps.clock.now();
      const r = await this.deps.vips.add(v);
      if (!r.ok) {
        for (const done of added) await this.deps.vips.remove(done);
        this.log('error', `cannot add VIP ${v.cidr}: ${r.detail}`, { vip: v.cidr, reason: r.reason });
        this.deliver({ type: 'vip-failed', now: this.deps.clock.now(), detail: `${v.cidr}: ${r.reason}: ${r.detail}` });
        return;
      }
      added.push(v);
      this.log('info', `VIP ${v.cidr} added on ${v.interface} and announced`, { vip: v.cidr, durationMs: Math.round(this.deps.clock.now() - t0) });
    }
    this.deliver({ type: 'vip-added', now: this.deps.clock.now() });
  }

  private runScript(a: Extract<MirrorAction, { type: 'run-script' }>): void {
    this.running++;
    this.log('info', `script ${a.script} ${a.args.join(' ')}`, { event: 'script-start', script: a.script, args: a.args });
    void this.deps.scripts.run(this.scriptRequest(a)).then((r) => {
      this.running--;
      if (!r.missing) {
        this.log(r.ok ? 'info' : 'error', `script ${a.script} ${r.ok ? 'done' : 'failed'}: ${r.detail}`,
          { event: 'script-done', script: a.script, ok: r.ok, code: r.code, forced: r.forced, killed: r.killed, durationMs: r.durationMs, logFile: r.logFile });
      }
      this.deliver({ type: 'script-done', now: this.deps.clock.now(), script: a.script, ok: r.ok, detail: r.detail });
    }, (e: unknown) => {
      this.running--;
      this.log('error', `script ${a.script} could not run: ${(e as Error).message}`);
      this.deliver({ type: 'script-done', now: this.deps.clock.now(), script: a.script, ok: false, detail: (e as Error).message });
    });
  }

  private scriptRequest(a: { script: ScriptName; args: readonly [string, string, string]; role: Role | 'none' }): ScriptRequest {
    const m = this.cfg.module;
    const moduleDir = `${this.cfg.configDir}/modules/${m.name}`;
    return {
      module: m.name,
      node: this.params.node,
      role: a.role,
      script: a.script,
      binDir: `${moduleDir}/bin`,
      moduleDir,
      args: a.args,
      timeoutMs: m.scripts.timeoutMs,
      stopTimeoutMs: m.scripts.stopTimeoutMs,
      logDir: `${this.cfg.moduleStateDir}/logs`,
    };
  }

  /**
   * Split-brain protection (core/mirror/machine.ts "Split brain"): pings the witnesses every
   * checker interval (each run bounded by its timeout, rise/fall not applied: every result
   * counts at once, which the core's bound assumes) and reports each change; opens the
   * arbitrator witness client.
   */
  private async startSplitBrain(): Promise<void> {
    const sb = splitbrainOf(this.cfg.module);
    if (!sb) return;
    if (sb.arbitrator !== undefined) {
      const addr = witnessAddress(sb.arbitrator);
      try {
        if (!this.deps.openWitness) throw new Error('the daemon has no witness client');
        this.witness = await this.deps.openWitness(addr);
      } catch (e) {
        this.log('error', `arbitrator witness ${addr}: cannot open a client (${(e as Error).message}): this node never gets its lease`);
      }
    }
    if (sb.witnesses.length > 0) {
      this.witnessProbe = (this.deps.probeFor ?? realProbeFor)(sb, this.probeCtx);
      this.runWitnessProbe(sb);
    }
  }

  private runWitnessProbe(sb: SplitbrainChecker): void {
    if (this.closed || !this.witnessProbe) return;
    const started = this.deps.clock.now();
    void this.witnessProbe.run(this.witnessStop.signal).then((r) => {
      if (this.closed || this.witnessStop.signal.aborted) return;
      const prev = this.witnessResult;
      if (prev === null || prev.ok !== r.ok) {
        this.witnessResult = { ok: r.ok, detail: r.detail, since: this.deps.clock.wallNow() };
        this.log(r.ok ? 'info' : 'warn', `checker ${sb.name}: ${r.detail}`, { event: 'checker', checker: sb.name, up: r.ok });
        this.deliver({ type: 'witness', now: this.deps.clock.now(), reachable: r.ok });
      } else {
        this.witnessResult = { ...prev, detail: r.detail };
      }
      const wait = Math.max(0, started + sb.intervalMs - this.deps.clock.now());
      this.witnessTimer = this.deps.clock.setTimer(wait, () => { this.witnessTimer = null; this.runWitnessProbe(sb); });
    });
  }

  /** Executes a `lease` action: never awaited; an acquire is answered with a `lease` event. */
  private lease(op: 'acquire' | 'release'): void {
    const w = this.witness;
    if (op === 'release') {
      if (w) void w.release(this.name);
      return;
    }
    if (!w) {
      this.deliver({ type: 'lease', now: this.deps.clock.now(), granted: false, holder: null, error: 'no witness client' });
      return;
    }
    void w.acquire(this.name).then((r) => {
      const now = this.deps.clock.now();
      if ('error' in r) {
        this.lastLease = `no answer (${r.error})`;
        this.deliver({ type: 'lease', now, granted: false, holder: null, error: r.error });
      } else if (r.granted) {
        this.lastLease = `granted, ${r.leaseMs} ms`;
        this.deliver({ type: 'lease', now, granted: true, sentAtMs: r.sentAtMs, leaseMs: r.leaseMs });
      } else {
        this.lastLease = r.holder === null ? 'refused: the witness just started' : `held by ${r.holder}`;
        this.deliver({ type: 'lease', now, granted: false, holder: r.holder });
      }
    });
  }

  /** The splitbrain checker as `hakit status` shows it. */
  private splitbrainView(): Record<string, CheckerStatusView> {
    const sb = splitbrainOf(this.cfg.module);
    if (!sb) return {};
    const w = this.witnessResult;
    const parts: string[] = [];
    if (sb.witnesses.length > 0) parts.push(w ? w.detail : 'no ping result yet');
    if (sb.arbitrator !== undefined) parts.push(`arbitrator ${witnessAddress(sb.arbitrator)}: lease ${this.lastLease}`);
    const status = sb.witnesses.length > 0 ? (w ? (w.ok ? 'up' : 'down') : 'unknown') : this.lastLease.startsWith('granted') ? 'up' : 'unknown';
    return { [sb.name]: { type: 'splitbrain', action: null, status, detail: parts.join('; '), since: w?.since ?? null, disabled: false, active: true } as CheckerStatusView };
  }

  /** Publishes the view of `s` (made lazily: the core's states are never changed once made). */
  private publish(s: MirrorState): void {
    if (s === this.publishedState) return;
    this.publishedState = s;
    this.publishedView = null;
  }

  /** Sends the published view to the peer on every heartbeat network. */
  private pulse(): void {
    this.rfs?.keepalive();
    // Stamped once per pulse: the send time and the echo of the peer's newest (core/mirror peerDeaf).
    const v = stampView(this.publishedView ??= viewOf(this.publishedState), this.state, this.deps.clock.now());
    // One view object for every network: it is serialized once (codec.ts) and never changed.
    const packet = { module: this.name, view: v };
    for (const [network, address] of this.peerAddress) {
      try {
        this.deps.transport.send(network, address, packet);
      } catch (e) {
        this.log('error', `heartbeat on ${network} not sent: ${(e as Error).message}`);
      }
    }
  }

  /**
   * Self-fencing, daemon side: when this event loop was frozen longer than the rfs child's
   * fencing bound (the pulse timer ran that late), the child has fenced its rw mounts (or will on
   * its next check). The core hears of it first, before any late tick or queued heartbeat could
   * make it act on a silence it did not listen to.
   */
  private noteStall(): void {
    const now = this.deps.clock.now();
    const bound = this.params.heartbeatTimeoutMs / 2;
    const late = now - this.lastBeat;
    if (this.rfs && this.lastBeat > 0 && late > bound) {
      this.lastBeat = now;
      this.log('warn', `the daemon stalled for ${Math.round(late)} ms (more than the fencing bound ${bound} ms): the rfs holds writes`, { event: 'stall', ms: Math.round(late) });
      this.deliver({ type: 'fenced', now, detail: `the daemon stalled for ${Math.round(late)} ms` });
    }
  }

  /**
   * One timer per pulse: the heartbeats first (nothing of the core runs before they are sent),
   * then a tick of the core. Silence is caught by armSilenceTick at its exact deadline; this tick
   * only drives the slower timeouts of the core (listening for the peer at start, maxloop
   * windows). One wake-up instead of two per pulse (issue 3's idle CPU).
   */
  private schedulePulse(): void {
    const pacer = this.deps.pacer ?? new ClockPacer(this.deps.clock);
    this.stopPulse = pacer.every(this.params.pulseMs, () => {
      if (this.closed) return;
      this.noteStall();
      this.lastBeat = this.deps.clock.now();
      this.pulse();
      this.deliver({ type: 'tick', now: this.deps.clock.now() });
    });
  }

  /**
   * A tick exactly when the peer would become silent (just after the heartbeat timeout that
   * follows the last heartbeat), so that a lost peer is noticed at the timeout, not up to a tick
   * period later. Lazily re-armed: a heartbeat only moves the deadline; the one timer, when it
   * fires early, waits for the rest (a timer per heartbeat was issue 3's idle cost).
   */
  private armSilenceTick(): void {
    this.silenceDue = this.deps.clock.now() + this.params.heartbeatTimeoutMs + 1;
    if (this.silenceTimer === null) this.waitSilence(this.params.heartbeatTimeoutMs + 1);
  }

  private waitSilence(ms: number): void {
    this.silenceTimer = this.deps.clock.setTimer(ms, () => {
      this.silenceTimer = null;
      if (this.closed) return;
      const left = this.silenceDue - this.deps.clock.now();
      if (left > 0) this.waitSilence(left);
      else this.deliver({ type: 'tick', now: this.deps.clock.now() });
    });
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.deps.logbook.log(this.name, level, message, { node: this.params.node, ...fields });
  }
}

/** Records `S incomplete` in a change log file, durably (marks kept); creates the file if missing. */
async function markChangeLogIncomplete(file: string): Promise<void> {
  const log = openFileChangeLog(file);
  try {
    await log.setComplete(false);
  } finally {
    log.close();
  }
}

/**
 * After a host crash, before anything is mounted: the replays of a dir whose tree does not show
 * them all done (replaysMatchTree) become marks (ChangeLog.replaysToMarks); 0 when there is no
 * log file. `dirs`: the replicated dirs, by index.
 */
async function changeLogReplaysToMarks(file: string, dirs: readonly string[]): Promise<number> {
  if (!existsSync(file)) return 0;
  const lexists = (p: string): boolean => { try { lstatSync(p); return true; } catch { return false; } };
  const log = openFileChangeLog(file);
  try {
    return await log.replaysToMarks((dir, replays) => {
      const root = dirs[dir];
      return root !== undefined && replaysMatchTree(replays, (p) => lexists(root + p));
    });
  } finally {
    log.close();
  }
}


