// The split-brain bound with ping witnesses (DESIGN.md 3.1 "a primary that is cut off stops
// acknowledging writes before its peer may start accepting them", 5 "Split brain"; machine.ts
// "Split brain"), asserted on the REAL core for a grid of timings, each in its worst case:
// - the primary P heard its peer S up to the cut X and learns that no witness answers only at
//   X + interval + timeout (a probe that started just before X succeeded);
// - S heard P's last heartbeat at X - pulse (P sends every pulse) and reaches the witness.
// P must emit `mount blocked` by X + max(T, interval + timeout), strictly before S decides to
// take over (its first step towards ALONE).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  initialState, step, type MirrorAction, type MirrorEvent, type MirrorParams, type MirrorState, type PeerView,
} from '../../src/core/mirror/index.js';
import { defaultParams } from './mirror/transcript.js';

function view(s: MirrorState, state: string, reason: string | null = null): PeerView {
  return {
    state, ready: true, reason, generation: s.persisted.generation, upToDate: true, stopping: false,
    msg: { lastPrimary: 'n1', n: 1, sees: s.changes, seesLife: s.idSeed },
  };
}

class Node {
  state: MirrorState;
  readonly log: Array<{ at: number; a: MirrorAction }> = [];
  constructor(readonly params: MirrorParams) { this.state = initialState(params); }
  on(e: MirrorEvent): MirrorAction[] {
    const r = step(this.state, e, this.params);
    this.state = r.state;
    for (const a of r.actions) this.log.push({ at: e.now, a });
    return r.actions;
  }
  /** A heartbeat of the peer in `state` on every network. */
  hb(now: number, state: string, reason: string | null = null): void {
    for (const network of this.params.networks) this.on({ type: 'heartbeat', now, network, view: view(this.state, state, reason) });
  }
}

const persisted = { generation: { current: 'g.1', history: ['g.0'] }, upToDate: true, enabled: true, failover: true, lastPrimary: 'n1', idCounter: 1 };

/** n1 PRIM with n2 SECOND heard, witness reachable, all before `t0`. */
function primary(params: MirrorParams): Node {
  const p = new Node(params);
  p.on({ type: 'init', now: 0, persisted, idSeed: 'a' });
  p.on({ type: 'script-done', now: 1, script: 'prestart', ok: true, detail: '' });
  p.on({ type: 'witness', now: 2, reachable: true });
  p.hb(3, 'WAIT', 'peer-not-seen');
  p.on({ type: 'script-done', now: 4, script: 'start_both', ok: true, detail: '' });
  p.on({ type: 'vip-added', now: 5 });
  p.on({ type: 'script-done', now: 6, script: 'start_prim', ok: true, detail: '' });
  p.hb(7, 'SECOND');
  assert.equal(p.state.name, 'PRIM');
  return p;
}

/** n2 SECOND of n1, witness reachable. */
function secondary(params: MirrorParams): Node {
  const s = new Node({ ...params, node: 'n2', peer: 'n1' });
  s.on({ type: 'init', now: 0, persisted, idSeed: 'b' });
  s.on({ type: 'script-done', now: 1, script: 'prestart', ok: true, detail: '' });
  s.on({ type: 'witness', now: 2, reachable: true });
  s.hb(3, 'PRIM');
  s.on({ type: 'script-done', now: 4, script: 'start_both', ok: true, detail: '' });
  s.on({ type: 'script-done', now: 5, script: 'start_second', ok: true, detail: '' });
  assert.equal(s.state.name, 'SECOND');
  return s;
}

/** Runs `n` from `from` to `until`: heartbeats of the peer every pulse up to `lastHeard`, ticks every pulse (phase `phase`), the silence tick, and `extra` events; returns the first time `pred` held for an action. */
function run(n: Node, o: { from: number; until: number; lastHeard: number; peer: string; phase: number; extra: MirrorEvent[]; pred: (a: MirrorAction) => boolean }): number | null {
  const p = n.params;
  const events: MirrorEvent[] = [...o.extra];
  for (let t = o.from + o.phase; t <= o.until; t += p.pulseMs) events.push({ type: 'tick', now: t });
  events.push({ type: 'tick', now: o.lastHeard + p.heartbeatTimeoutMs + 1 });
  const hbs: number[] = [];
  for (let t = o.lastHeard; t > o.from; t -= p.pulseMs) hbs.push(t);
  const all = [...events.map((e) => ({ at: e.now, e: e as MirrorEvent | null })), ...hbs.map((at) => ({ at, e: null }))].sort((a, b) => a.at - b.at);
  for (const { at, e } of all) {
    const mark = n.log.length;
    if (e === null) n.hb(at, o.peer); else n.on(e);
    if (n.log.slice(mark).some((x) => pred(x.a))) return at;
  }
  return null;
  function pred(a: MirrorAction): boolean { return o.pred(a); }
}

describe('split-brain bound (ping witnesses): the cut-off primary holds writes strictly before the secondary may take over', () => {
  const cases: Array<{ T: number; pulse: number; I: number; TO: number }> = [];
  for (const T of [1000, 2000, 5000]) for (const pulse of [100, 250]) for (const I of [500, 1000, 2000, 5000]) for (const TO of [I / 4, I / 2, I]) cases.push({ T, pulse, I, TO });
  test(`${cases.length} timings, worst case each`, () => {
    for (const { T, pulse, I, TO } of cases) {
      const params = defaultParams({ hasReplication: true, pulseMs: pulse, heartbeatTimeoutMs: T, splitBrain: { witnesses: true, arbitrator: false, graceMs: I + TO + pulse } });
      const X = 10_000;
      const what = `T=${T} pulse=${pulse} interval=${I} timeout=${TO}`;
      for (const phase of [0, Math.floor(pulse / 2), pulse - 1]) {
        const p = primary(params);
        const blockedAt = run(p, {
          from: 10, until: X + 3 * (T + I + TO), lastHeard: X, peer: 'SECOND', phase,
          extra: [{ type: 'witness', now: X + I + TO, reachable: false }],
          pred: (a) => a.type === 'mount' && a.mode === 'blocked',
        });
        const s = secondary(params);
        const takeoverAt = run(s, {
          from: 10, until: X + 3 * (T + I + TO), lastHeard: X - pulse, peer: 'PRIM', phase, extra: [],
          pred: (a) => a.type === 'transition' && a.to === 'ALONE',
        });
        assert.ok(blockedAt !== null, `${what}: the primary never held its writes`);
        assert.ok(takeoverAt !== null, `${what}: the secondary never took over`);
        assert.ok(blockedAt <= X + Math.max(T + 1, I + TO), `${what}: blocked at X+${blockedAt - X}, later than X + max(T, interval + timeout)`);
        assert.ok(takeoverAt >= X - pulse + T + I + TO + pulse, `${what}: took over at X+${takeoverAt - X}, before X + T + interval + timeout`);
        assert.ok(blockedAt < takeoverAt, `${what}: blocked at X+${blockedAt - X}, takeover at X+${takeoverAt - X}`);
      }
    }
  });

  test('without a witness check the secondary takes over at T: the grace is what the bound rests on', () => {
    const params = defaultParams({ hasReplication: true });
    const s = secondary(params);
    const at = run(s, { from: 10, until: 20_000, lastHeard: 9_750, peer: 'PRIM', phase: 0, extra: [], pred: (a) => a.type === 'transition' && a.to === 'ALONE' });
    assert.equal(at, 9_750 + 2000 + 1);
  });
});
