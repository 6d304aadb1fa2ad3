/**
 * One simulated run from one seed (STYLE.md 5): draw a configuration and fault intensities,
 * start both nodes, inject faults and admin commands for `faultMs`, then heal everything and
 * check that the nodes converge to one PRIM + one SECOND within `healMs`. The promises are
 * checked throughout (invariants.ts). Same seed, same run, same trace.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  step, validateCommand, type MirrorAction, type MirrorCommand, type MirrorParams,
} from '../../src/core/mirror/index.js';
import type { CheckerAction } from '../../src/core/config/types.js';
import { DataWorld } from './data.js';
import { Invariants, findingTags } from './invariants.js';
import { Random, rng } from './prng.js';
import { Trace, label } from './trace.js';
import { CALM, CLEAN_LINK, Violation, World, type Behaviour, type SimNode, type SimSplitBrain } from './world.js';

export interface RunOptions {
  /** Simulated duration of the fault phase (ms). */
  readonly faultMs?: number;
  /** Bound on the time to converge after healing (ms). */
  readonly healMs?: number;
  /** Trace entries kept for a failure report (Infinity: the full trace). */
  readonly traceSize?: number;
  /**
   * Work around the old core findings 3, 4 and 8 (docs/simulator.md) as the first sweeps did:
   * the admin never gives `prim` beside a live SECOND nor a command during a shutdown, and the
   * heal-time admin unsticks a `checker:` reason. Default false: those are fixed, and 20 000
   * seeds fail the same way with or without these workarounds (2026-12-05).
   */
  readonly workAroundKnownBugs?: boolean;
}

export interface RunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure: { readonly kind: string; readonly message: string; readonly at: number } | null;
  /** What the run drew (for the report header). */
  readonly setup: string;
  readonly stats: World['stats'] & Invariants['counts'] & Partial<DataWorld['stats']> & {
    steps: number; simMs: number; convergedAfterMs: number | null; adminAtHeal: number; knownRemedies: number; primaryPulses: number;
  };
  readonly trace: Trace;
  /** The world at the end of the run (for debugging a failure). */
  readonly world: World;
}

export const DEFAULT_FAULT_MS = 8_000;
export const DEFAULT_HEAL_MS = 40_000;

const COMMANDS: readonly MirrorCommand[] = [
  { cmd: 'start' }, { cmd: 'stop' }, { cmd: 'restart' }, { cmd: 'stopstart' }, { cmd: 'swap' }, { cmd: 'swap' }, { cmd: 'prim' },
  { cmd: 'second' }, { cmd: 'second', fullsync: true }, { cmd: 'failover', on: true }, { cmd: 'failover', on: false },
];
const CHECKER_ACTIONS: readonly CheckerAction[] = ['wait', 'restart', 'stopstart', 'stop', 'none'];

function params(r: Random): [MirrorParams, MirrorParams] {
  const networks = r.chance(0.25) ? ['lan'] : ['lan', 'hb2'];
  const pulseMs = r.pick([250, 250, 100]);
  const heartbeatTimeoutMs = r.pick([2000, 2000, 1000]);
  const common = {
    module: 'app', defaultPrimary: r.pick(['n1', 'n2', 'last', undefined]), failover: r.chance(0.9), pulseMs, heartbeatTimeoutMs,
    networks, maxloop: { count: r.int(2, 6), windowMs: 20_000 }, hasReplication: r.chance(0.5),
  };
  return [{ ...common, node: 'n1', peer: 'n2' }, { ...common, node: 'n2', peer: 'n1' }];
}

/**
 * The splitbrain checker of a run (drawn after everything else from the config stream, so runs
 * without one keep the configuration their seed always had): none in 60 % of the runs, else ping
 * witnesses, the arbitrator, or both.
 */
function splitBrain(r: Random): SimSplitBrain | null {
  if (!r.chance(0.4)) return null;
  const mode = r.pick(['ping', 'arbitrator', 'both'] as const);
  const intervalMs = r.pick([500, 1000, 2000]);
  return {
    witnesses: mode !== 'arbitrator', arbitrator: mode !== 'ping', intervalMs,
    timeoutMs: Math.min(intervalMs, r.pick([200, 500, 1000])), leaseMs: r.pick([2000, 4000]),
  };
}

/** The core's params with the checker, as mirrorParams (src/daemon/mirror-runtime.ts) computes them. */
function withSplitBrain(p: MirrorParams, sb: SimSplitBrain): MirrorParams {
  return { ...p, splitBrain: { witnesses: sb.witnesses, arbitrator: sb.arbitrator, graceMs: (sb.witnesses ? sb.intervalMs + sb.timeoutMs : p.pulseMs) + p.pulseMs } };
}

function behaviour(r: Random): Behaviour {
  return {
    scriptFail: r.pick([0, 0.02, 0.1]), startPrimFail: r.pick([0, 0.05, 0.2]), scriptHang: r.pick([0, 0, 0.02, 0.08]),
    forceHang: r.pick([0, 0.3]), scriptMaxMs: r.pick([50, 300, 1500]), vipFail: r.pick([0, 0, 0.05]), diskMaxMs: r.pick([5, 30, 300]),
    resyncFail: r.pick([0, 0.1]), resyncMaxMs: r.pick([200, 2000]),
  };
}

/**
 * `step` on a refused command must do exactly what a tick at the same time does (the command is
 * ignored; `evaluate` may still act on the passage of time), apart from the refusal's log line.
 */
function checkRefusal(w: World, n: SimNode, command: MirrorCommand, message: string): void {
  const noLog = (xs: readonly MirrorAction[]): MirrorAction[] => xs.filter((a) => a.type !== 'log');
  const c = step(n.state, { type: 'command', now: w.now, command }, n.params);
  const t = step(n.state, { type: 'tick', now: w.now }, n.params);
  // A tick also watches the heartbeat networks (peer tracking and log lines only); a command
  // must not touch the peer tracking at all.
  const { peer: cPeer, ...cRest } = c.state;
  const { peer: _tPeer, ...tRest } = t.state;
  const changed = Object.keys(cRest).filter((k) => !isDeepStrictEqual((cRest as Record<string, unknown>)[k], (tRest as Record<string, unknown>)[k]));
  if (!isDeepStrictEqual(cPeer, n.state.peer)) changed.push('peer');
  if (changed.length > 0 || !isDeepStrictEqual(noLog(c.actions), noLog(t.actions))) {
    throw new Violation('refused-command-acted', `${n.name}: refused ${command.cmd} (${message}) changed the state (${changed.join(', ') || 'no field'}) or the actions (${JSON.stringify(noLog(c.actions))} instead of ${JSON.stringify(noLog(t.actions))})`, w.now);
  }
  if (!c.actions.some((a) => a.type === 'log' && a.message.includes('refused'))) {
    throw new Violation('refused-command-acted', `${n.name}: refused ${command.cmd} was not logged as refused`, w.now);
  }
}

/** Draws the fault intensities of this run and schedules the fault process. */
function scheduleFaults(w: World, r: Random, faultEnd: number, opts: RunOptions): void {
  const weights = {
    crash: r.pick([0, 0.5, 1, 2]), shutdown: r.pick([0, 0.5, 1]), net: r.pick([0, 2, 4]), command: r.pick([1, 3, 6]),
    checker: r.pick([0, 0.5, 1.5]),
  };
  // A checker's action is part of the module's config: fixed for the run, the same on both nodes.
  const checkers = new Map([['app', r.pick(CHECKER_ACTIONS)], ['db', r.pick(CHECKER_ACTIONS)]] as const);
  // Witness faults only in runs with a splitbrain checker (drawn last: other runs keep their faults).
  const witnessWeight = w.sb ? r.pick([0.5, 1, 2]) : 0;
  const total = weights.crash + weights.shutdown + weights.net + weights.command + weights.checker + witnessWeight;
  const gap = r.pick([150, 400, 1000]);
  const next = (): void => {
    if (w.now >= faultEnd) return;
    let x = r.next() * total;
    const n = r.pick(w.nodes);
    if ((x -= weights.crash) < 0) {
      if (n.up || n.writer()) {
        w.crash(n);
        const down = r.int(50, 6000);
        w.later(null, down, () => { if (!n.up) w.boot(n); });
      }
    } else if ((x -= weights.shutdown) < 0) {
      if (n.up && !n.closing) {
        w.shutdown(n);
        const down = r.int(100, 8000);
        const again = (): void => { if (n.up || n.closing) w.later(null, 100, again); else w.boot(n); };
        w.later(null, down, again);
      }
    } else if ((x -= weights.net) < 0) {
      netFault(w, r, n);
    } else if ((x -= witnessWeight) < 0) {
      witnessFault(w, r, n);
    } else if (x - weights.command < 0) {
      // The daemon refuses commands once it shuts down (finding 8 fixed in NodeAgent).
      if (n.up && !n.closing) adminCommand(w, r, n, opts);
    } else if (n.up && !n.closing) {
      const name = r.pick(['app', 'db'] as const);
      w.checker(n, name, n.checkersDown.has(name), checkers.get(name) ?? 'none');
    }
    w.later(null, r.int(1, 2 * gap), next);
  };
  w.later(null, r.int(0, 2 * gap), next);
}

function netFault(w: World, r: Random, n: SimNode): void {
  w.stats.netFaults++;
  const net = r.pick(w.networks);
  const dirs = r.chance(0.5) ? [n, n.peer] : [n];
  const kind = r.pick(['cut', 'cut', 'heal', 'heal', 'loss', 'slow', 'reorder', 'dup'] as const);
  for (const d of dirs) {
    const l = w.link(net, d);
    switch (kind) {
      case 'cut': l.cut = true; break;
      case 'heal': Object.assign(l, CLEAN_LINK); break;
      case 'loss': l.loss = r.pick([0.1, 0.3, 0.6, 0.9]); break;
      case 'slow': l.delayMin = r.int(1, 300); l.delayMax = l.delayMin + r.int(0, 1200); break;
      case 'reorder': l.delayMin = 1; l.delayMax = r.int(100, 900); break;
      case 'dup': l.dup = r.pick([0.1, 0.5]); break;
    }
  }
  w.isolationChanged();
  w.trace.note(w.now, n.name, `NET ${net} ${kind} ${dirs.length === 2 ? 'both ways' : `from ${n.name} to ${n.peer.name}`}`);
}

function witnessFault(w: World, r: Random, n: SimNode): void {
  w.stats.witnessFaults++;
  const kind = r.pick(['cut', 'cut', 'heal', 'heal', 'down', 'up', 'restart'] as const);
  if (kind === 'cut') w.witness.cut.add(n.name);
  else if (kind === 'heal') w.witness.cut.delete(n.name);
  else if (kind === 'down') w.witness.down = true;
  else if (kind === 'up') w.witness.down = false;
  else w.restartWitness();
  w.isolationChanged();
  w.trace.note(w.now, n.name, `WITNESS ${kind}${kind === 'cut' || kind === 'heal' ? ` path of ${n.name}` : ''}`);
}

function adminCommand(w: World, r: Random, n: SimNode, opts: RunOptions): void {
  const command = r.pick(COMMANDS);
  // Finding 4: `prim` is accepted while the peer is a live SECOND, which may be taking over at
  // the same moment. Unless exposing known findings, the admin does not do that.
  if (opts.workAroundKnownBugs === true && command.cmd === 'prim' && n.peer.up && n.peer.state.name === 'SECOND') return;
  const refusal = validateCommand(n.state, command, n.params);
  if (refusal) {
    w.stats.refused++;
    // Before `init` (start-up cleanup) the daemon refuses with "not initialised" and never steps.
    if (!n.starting) checkRefusal(w, n, command, refusal.message);
    return;
  }
  w.command(n, command);
}

/** A node is settled: running, ready, nothing queued or executing, no script or resync running. */
function settled(n: SimNode): boolean {
  return n.up && !n.closing && n.state.ready && n.queue.length === 0 && !n.busy && n.scripts === 0;
}

/** One PRIM and one SECOND, settled; the PRIM holds VIP, application and rw mount, the SECOND nothing. */
function converged(w: World): boolean {
  const [a, b] = w.nodes;
  if (!settled(a) || !settled(b)) return false;
  const p = a.state.name === 'PRIM' ? a : b.state.name === 'PRIM' ? b : null;
  if (!p) return false;
  const s = p.peer;
  if (s.state.name !== 'SECOND') return false;
  return p.vip === 'held' && p.app && p.mount === 'rw' && !s.writer() && s.state.persisted.upToDate &&
    s.state.persisted.generation.current === p.state.persisted.generation.current;
}

/**
 * The documented remedies an admin applies to a cluster that stays stuck after healing
 * (docs/states.md): `start` a stopped node; `prim` on one node when both wait `diverged`; for a
 * node held in WAIT (`start_prim-failed`, `vip-conflict`) while its peer is not primary,
 * `stopstart`. Returns a description of what was done, or null.
 */
function adminRemedy(w: World, r: Random, opts: RunOptions): string | null {
  const tryCmd = (n: SimNode, c: MirrorCommand): string | null => {
    if (validateCommand(n.state, c, n.params) !== null) return null;
    w.command(n, c);
    return `${c.cmd} on ${n.name}`;
  };
  for (const n of w.nodes) if (settled(n) && n.state.name === 'STOP') { const d = tryCmd(n, { cmd: 'start' }); if (d) return d; }
  const [a, b] = w.nodes;
  if (settled(a) && settled(b) && a.state.reason === 'diverged' && b.state.reason === 'diverged') {
    const d = tryCmd(r.pick(w.nodes), { cmd: 'prim' });
    if (d) return d;
  }
  for (const n of w.nodes) {
    // Diverged while the peer is primary: `prim` is refused; this node becomes its SECOND (full resync).
    const primaryPeer = ['PRIM', 'ALONE'].includes(n.peer.state.name);
    if (settled(n) && n.state.reason === 'diverged' && primaryPeer) { const d = tryCmd(n, { cmd: 'second' }); if (d) return d; }
  }
  // Told `second` while the peer cannot become primary (finding 2, fixed): the node waits with
  // reason second-no-primary, and docs/states.md tells the admin to run `prim` on it.
  for (const n of w.nodes) {
    if (settled(n) && n.state.name === 'WAIT' && n.state.reason === 'second-no-primary') { const d = tryCmd(n, { cmd: 'prim' }); if (d) return d; }
  }
  if (opts.workAroundKnownBugs === true) {
    // Finding 3: a `wait` checker that comes back up during the release stays in the reason forever.
    for (const n of w.nodes) {
      if (settled(n) && n.state.name === 'WAIT' && n.state.reason?.startsWith('checker:') && n.checkersDown.size === 0) {
        const d = tryCmd(n, { cmd: 'stopstart' });
        if (d) return `${d} (known finding 3: WAIT checker reason stuck)`;
      }
    }
  }
  for (const n of w.nodes) {
    const held = n.state.name === 'WAIT' && (n.state.reason === 'start_prim-failed' || n.state.reason === 'vip-conflict');
    if (settled(n) && held && !['PRIM', 'ALONE'].includes(n.peer.state.name)) { const d = tryCmd(n, { cmd: 'stopstart' }); if (d) return d; }
  }
  return null;
}

function describe(p: MirrorParams, b: Behaviour, sb: SimSplitBrain | null): string {
  const split = sb ? ` | splitbrain${sb.witnesses ? ` ping every ${sb.intervalMs}/${sb.timeoutMs}ms` : ''}${sb.arbitrator ? ` arbitrator lease=${sb.leaseMs}ms` : ''}` : '';
  return `nets=${p.networks.join(',')} pulse=${p.pulseMs} timeout=${p.heartbeatTimeoutMs} repl=${+p.hasReplication} default=${p.defaultPrimary ?? '-'} ` +
    `failover=${+p.failover} maxloop=${p.maxloop.count}/${p.maxloop.windowMs} | scripts fail=${b.scriptFail} start_prim fail=${b.startPrimFail} ` +
    `hang=${b.scriptHang} max=${b.scriptMaxMs}ms vipFail=${b.vipFail} disk<=${b.diskMaxMs}ms resync fail=${b.resyncFail}${split}`;
}

/** Runs one seed. Never throws for a broken promise: the result says what broke, and when. */
export function runSeed(seed: number, opts: RunOptions = {}): RunResult {
  const faultMs = opts.faultMs ?? DEFAULT_FAULT_MS;
  const healMs = opts.healMs ?? DEFAULT_HEAL_MS;
  const root = new Random(rng(seed));
  // Independent streams: the configuration, the fault process, the world's own draws.
  const cfg = root.fork();
  const faults = root.fork();
  const beh0 = params(cfg);
  const beh = behaviour(cfg);
  const sb = splitBrain(cfg);
  const ps: [MirrorParams, MirrorParams] = sb ? [withSplitBrain(beh0[0], sb), withSplitBrain(beh0[1], sb)] : beh0;
  const trace = new Trace(opts.traceSize ?? 200);
  const w = new World(root.fork(), ps, beh, trace);
  w.sb = sb;
  // The data model (runs with replication), on a stream of its own drawn after the others.
  const dataRand = root.fork();
  if (ps[0].hasReplication) {
    w.data = new DataWorld(w, dataRand, dataRand.pick([1000, 3000]), dataRand.pick([30, 80, 200]), dataRand.pick([0.02, 0.1, 0.3]));
  }
  w.restartWitness(false);
  if (sb) w.stats.splitBrainRuns = 1;
  // The daemon keeps the newest view (finding 1 fixed in MirrorRuntime), in every mode.
  w.dropStaleViews = true;
  const inv = new Invariants(w);
  let failure: RunResult['failure'] = null;
  let convergedAt: number | null = null;
  let adminAtHeal = 0;
  let knownRemedies = 0;
  let primaryPulses = 0;
  const healAt = faultMs;
  let dataSetup = '';
  try {
    if (w.data) { w.data.start(); dataSetup = ` | data: repl timeout=${w.data.repTimeoutMs}ms`; }
    for (const n of w.nodes) w.boot(n);
    // First start: the admin starts both nodes (an empty store means a stopped module).
    for (const n of w.nodes) {
      // The daemon refuses commands once it shuts down (finding 8 fixed in NodeAgent): a start
      // given then does nothing (seed 33411 modelled it as obeyed: the closing daemon ran the
      // module until its shutdown limit).
      w.later(null, faults.int(0, 3000), () => {
        if (!n.up || n.closing) return;
        if (validateCommand(n.state, { cmd: 'start' }, n.params) === null) w.command(n, { cmd: 'start' });
      });
    }
    scheduleFaults(w, faults, healAt, opts);
    // Coverage: sample whether a ready primary exists (every 250 ms).
    const sample = (): void => {
      if (w.nodes.some((n) => n.up && (n.state.name === 'PRIM' || n.state.name === 'ALONE') && n.state.ready)) primaryPulses++;
      if (w.now < healAt) w.later(null, 250, sample);
    };
    w.later(null, 250, sample);
    w.runUntil(healAt);

    // Heal: clean links, calm behaviour, every node running, every checker up.
    trace.note(w.now, '--', 'HEAL: links clean, scripts calm, nodes restarted, checkers up');
    for (const l of w.links.values()) Object.assign(l, CLEAN_LINK);
    w.witness.down = false;
    w.witness.cut.clear();
    w.isolationChanged();
    w.behaviour = { ...CALM };
    const revive = (): void => {
      for (const n of w.nodes) {
        if (!n.up && !n.closing) w.boot(n);
        if (n.up && !n.closing) for (const [name, action] of [...n.checkersDown]) w.checker(n, name, true, action);
      }
    };
    revive();
    // Both nodes started: the admin starts a stopped module at once.
    for (const n of w.nodes) if (n.up && !n.closing && validateCommand(n.state, { cmd: 'start' }, n.params) === null) { w.command(n, { cmd: 'start' }); adminAtHeal++; }
    let lastChange = w.now;
    let lastLabels = '';
    const watch = (): void => {
      revive();
      const labels = w.nodes.map((n) => `${label(n.state)}/${n.resources()}`).join(' ');
      if (labels !== lastLabels) { lastLabels = labels; lastChange = w.now; }
      if (converged(w)) { convergedAt = w.now; return; }
      // Stuck for a while: the admin applies a documented remedy.
      if (w.now - lastChange >= 3 * ps[0].heartbeatTimeoutMs) {
        const done = adminRemedy(w, faults, opts);
        if (done) { adminAtHeal++; if (done.includes('known finding')) knownRemedies++; trace.note(w.now, '--', `ADMIN at heal: ${done}`); lastChange = w.now; }
      }
      w.later(null, 100, watch);
    };
    w.later(null, 0, watch);
    w.runUntil(healAt + healMs, () => convergedAt !== null);
    if (convergedAt === null) {
      throw new Violation('no-convergence', `no PRIM + SECOND within ${healMs} ms after healing: ${w.nodes.map((n) => `${n.name} ${label(n.state)} holds ${n.resources()}${n.up ? '' : ' (down)'}`).join(', ')}`, w.now);
    }
    const data = w.data;
    if (data) {
      // The application stops calling; the stream drains (bounded); then the copies are compared.
      data.frozen = true;
      const until = w.now + 5_000;
      w.runUntil(until, () => data.quiet());
      const prim = w.nodes.find((n) => n.state.name === 'PRIM');
      trace.note(w.now, '--', `END: data check (${data.quiet() ? 'stream drained' : 'NOT drained'}), PRIM ${prim?.name ?? 'none'}`);
      if (prim && prim.peer.state.name === 'SECOND') inv.checkFinalData(data, prim);
      // The application's last call must have returned (or failed): a call held forever hangs it.
      const stuck = data.pendingCalls();
      if (stuck.length > 0) throw new Violation('call-never-returns', `${findingTags(data)} after convergence and 5 s without new calls, still waiting: ${stuck.join('; ')}`, w.now);
    }
  } catch (e) {
    if (!(e instanceof Violation)) throw e;
    failure = { kind: e.kind, message: e.message, at: e.at };
    trace.note(e.at, '!!', `VIOLATION ${e.kind}: ${e.message}`);
  }
  return {
    seed, ok: failure === null, failure, setup: describe(ps[0], beh, sb) + dataSetup, trace, world: w,
    stats: {
      ...w.stats, ...inv.counts, ...(w.data?.stats ?? {}), steps: w.nodes[0].steps + w.nodes[1].steps, simMs: w.now,
      convergedAfterMs: convergedAt === null ? null : convergedAt - healAt, adminAtHeal, knownRemedies, primaryPulses,
    },
  };
}

/**
 * Which known core finding (docs/simulator.md) a failure is, or null for a new one. Only findings 5,
 * 6 and 9 are classified this way (see also workAroundKnownBugs).
 */
export function knownFinding(r: RunResult): string | null {
  const f = r.failure;
  if (f && f.kind === 'two-writers' && f.message.includes('decided on a stale echo')) {
    return 'finding 6: the `sees` echo of a change counter that restarts at 0 matches a view made for the previous life of a restarted node';
  }
  // Tagged data-model findings (none open now).
  const data: Record<string, string> = {
  };
  for (const [tag, text] of Object.entries(data)) if (f && (f.kind === 'acked-write-lost' || f.kind === 'replicas-differ' || f.kind === 'call-never-returns') && f.message.includes(tag)) return text;
  if (f && f.kind === 'acked-write-lost' && f.message.includes('[finding 9:')) {
    return 'finding 9: a copy that lost acknowledged writes in a power loss of its host (page cache) takes the primary role while its peer still holds them';
  }
  if (f && f.kind === 'stale-primary' && / \(SECOND\) becomes ALONE .* that it last heard/.test(f.message)) {
    return 'finding 5: a SECOND believes it is in sync after seeing a transient ALONE view, then takes over on older data';
  }
  return null;
}

/** A failed run as text: seed, setup, failure, the trace. */
export function report(r: RunResult): string {
  const head = `seed ${r.seed}: ${r.failure ? `${r.failure.kind} at t=${r.failure.at} ms: ${r.failure.message}` : 'ok'}`;
  return [head, `setup: ${r.setup}`, `replay: npm run sim -- --seed ${r.seed}`, 'trace (time ms, node, event [state before -> after] | actions):',
    ...r.trace.lines()].join('\n');
}
