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
import type { Clock, TimerHandle } from '../adapters/clock/index.js';
import type { ModuleRfs, RfsConfig } from '../adapters/fuse/rfs.js';
import { probeFor as realProbeFor, type ProbeFactory } from '../adapters/probes/index.js';
import type { ScriptRequest, ScriptRunner } from '../adapters/scripts/index.js';
import type { StateStore } from '../adapters/store/index.js';
import type { HeartbeatTransport } from '../adapters/udp/transport.js';
import type { VipManager } from '../adapters/vip/index.js';
import type { ClusterConfig, MirrorModuleConfig } from '../core/config/index.js';
import { HakitError } from '../core/errors.js';
import {
  initialState, statusOf, step, validateCommand, viewOf,
  type MirrorAction, type MirrorCommand, type MirrorEvent, type MirrorParams, type MirrorState, type Persisted, type PeerView,
  type Role, type ScriptName,
} from '../core/mirror/index.js';
import type { ModuleStatus } from '../core/status.js';
import { CheckerRunner } from './checker-runner.js';
import type { Logbook } from './logbook.js';
import { RfsSupervisor } from './rfs-supervisor.js';

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
  readonly logbook: Logbook;
  /** A fresh random seed for generation ids (hex). */
  readonly idSeed: () => string;
  /** Makes the checkers' probes (default: the real ones). */
  readonly probeFor?: ProbeFactory;
  /** The state of another module on this node (for `module` checkers). */
  readonly moduleState?: (name: string) => string | undefined;
  /** Starts a module's rfs child (modules with replicated dirs only). */
  readonly spawnRfs?: () => ModuleRfs;
  /** Removes stale rfs mounts on a dir. */
  readonly recoverMount?: (dir: string) => Promise<number>;
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
  readonly view: PeerView;
}

/** Params of the core from the module's config. */
export function mirrorParams(m: MirrorModuleConfig, node: string): MirrorParams {
  const peer = m.nodes.find((n) => n !== node);
  if (peer === undefined) throw new HakitError('CONFIG', { detail: `module ${m.name} needs two nodes` });
  return {
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

export class MirrorRuntime {
  readonly name: string;
  readonly params: MirrorParams;
  private state: MirrorState;
  private published: PeerView;
  private readonly queue: Batch[] = [];
  private draining: Promise<void> | null = null;
  private timers: TimerHandle[] = [];
  private silenceTimer: TimerHandle | null = null;
  /** The newest heartbeat of the peer (its epoch = daemon life, and sequence number). */
  private newest: { epoch: string; seq: bigint; view: PeerView } = { epoch: '', seq: -1n, view: undefined as unknown as PeerView };
  private running = 0;
  private closed = false;
  private unsubscribe: (() => void) | null = null;
  private readonly peerAddress: ReadonlyMap<string, string>;
  private readonly checkers: CheckerRunner | null = null;
  private readonly rfs: RfsSupervisor | null = null;

  constructor(private readonly cfg: MirrorRuntimeConfig, private readonly deps: MirrorRuntimeDeps) {
    this.name = cfg.module.name;
    this.params = mirrorParams(cfg.module, cfg.node);
    this.state = initialState(this.params);
    this.published = viewOf(this.state);
    const m = cfg.module;
    if (m.checkers.length > 0) {
      const moduleDir = `${cfg.configDir}/modules/${m.name}`;
      this.checkers = new CheckerRunner(m.checkers, deps.probeFor ?? realProbeFor, {
        moduleDir, binDir: `${moduleDir}/bin`, node: cfg.node, module: m.name, vip: m.vip,
        moduleState: deps.moduleState ?? (() => undefined), clock: deps.clock,
      }, deps.clock, (c) => {
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
        else if (e.event === 'resync-done') this.deliver({ type: 'resync-done', now, ok: e.ok, detail: e.detail, ...(e.generation !== null ? { generation: e.generation } : {}) });
        else this.log(e.ok ? 'info' : 'warn', `resync served to ${this.params.peer}: ${e.ok ? 'done' : 'abandoned'} (${e.detail})`);
      }, (detail) => this.deliver({ type: 'rfs-failed', now: this.deps.clock.now(), detail }));
    }
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
    this.schedulePulse();
    this.scheduleTick();
  }

  /** Steps the core with one event and queues its actions; never blocks, never throws. */
  deliver(event: MirrorEvent): void {
    if (this.closed) return;
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
    this.queue.push({ actions: r.actions, view: viewOf(r.state) });
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

  status(): ModuleStatus {
    const s = statusOf(this.state, this.params, this.deps.clock.now());
    const rs = this.rfs?.stats()?.replication;
    const primary = rs && (s.state === 'PRIM' || s.state === 'ALONE') ? rs.primary : null;
    const secondary = rs && s.state === 'SECOND' ? rs.secondary : null;
    const idle = { active: false, bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 };
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
        resync: primary ? primary.resync : secondary?.syncing ? { ...idle, active: true } : idle,
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
          recordsApplied: secondary?.applied ?? 0,
        } : {}),
      },
      failover: s.failover,
      heartbeat: { networks: s.peer.networks },
      generation: s.generation,
      checkers: this.checkers?.views() ?? {},
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
    await this.rfs?.close();
    for (const t of this.timers) this.deps.clock.clearTimer(t);
    this.timers = [];
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
      this.published = batch.view;
      if (sendNow) this.pulse();
    }
  }

  private async execute(a: MirrorAction): Promise<void> {
    try {
      switch (a.type) {
        case 'persist':
          await this.deps.store.write(MIRROR_STATE_NAME, a.persisted);
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
          await this.rfs?.mount(a.mode);
          return;
        case 'replicate':
          await this.rfs?.replicate(a.mode, a.mode === 'resync' ? a.generation : undefined);
          return;
        case 'start-resync':
          // The primary serves the request within a few pulses; the deadline only ends a
          // request nobody answered (the core then asks again).
          await this.rfs?.expectSync(this.cfg.module.replication.timeoutMs + 10_000);
          return;
        case 'stop-resync':
          await this.rfs?.stopResync();
          return;
        case 'send-heartbeat':
        case 'transition':
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

  /** Sends the published view to the peer on every heartbeat network. */
  private pulse(): void {
    for (const [network, address] of this.peerAddress) {
      try {
        const v = this.published;
        this.deps.transport.send(network, address, { module: this.name, view: { ...v, generation: { current: v.generation.current, history: [...v.generation.history] } } });
      } catch (e) {
        this.log('error', `heartbeat on ${network} not sent: ${(e as Error).message}`);
      }
    }
  }

  private schedulePulse(): void {
    const t = this.deps.clock.setTimer(this.params.pulseMs, () => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.closed) return;
      this.pulse();
      this.schedulePulse();
    });
    this.timers.push(t);
  }

  /**
   * A tick exactly when the peer would become silent (just after the heartbeat timeout), so that
   * a lost peer is noticed at the timeout, not up to a tick period later.
   */
  private armSilenceTick(): void {
    if (this.silenceTimer) this.deps.clock.clearTimer(this.silenceTimer);
    this.silenceTimer = this.deps.clock.setTimer(this.params.heartbeatTimeoutMs + 1, () => {
      this.silenceTimer = null;
      if (!this.closed) this.deliver({ type: 'tick', now: this.deps.clock.now() });
    });
  }

  private scheduleTick(): void {
    // Silence is caught by armSilenceTick at its exact deadline; this tick only drives the slower
    // timeouts of the core (listening for the peer at start, maxloop windows), one per pulse.
    const t = this.deps.clock.setTimer(this.params.pulseMs, () => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.closed) return;
      this.deliver({ type: 'tick', now: this.deps.clock.now() });
      this.scheduleTick();
    });
    this.timers.push(t);
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.deps.logbook.log(this.name, level, message, { node: this.params.node, ...fields });
  }
}
