// Heartbeats lost in ONE direction (DESIGN.md 3.1 "never two writers", 5 "Split brain";
// machine.ts `peerDeaf`). Found by the chaos suite's flapping-links fault: after a cable came
// back, the primary's outgoing frames were lost for a while (its neighbour entries had failed)
// while the secondary's still reached it. The secondary heard nothing, got the arbitrator's lease
// (the primary held none: the witness had not answered it either) and took over, while the
// primary, still hearing its secondary, kept its rw mount for 110 ms more.
//
// Two REAL cores, a tiny driver (heartbeats every pulse stamped with `stampView` as the daemon
// does, ticks every pulse and at each silence deadline, scripts and VIPs answered at once, the
// REAL LeaseTable as the witness), then a one-way cut n1 -> n2 with n1 cut from the witness.
// Asserted: n1 holds its writes (`mount blocked`) strictly before n2 mounts rw, for a grid of
// pulses, timeouts and cut phases; and a peer of an older version (no echo) changes nothing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  initialState, stampView, step, viewOf, type MirrorAction, type MirrorEvent, type MirrorParams, type MirrorState, type PeerView,
} from '../../src/core/mirror/index.js';
import { LeaseTable } from '../../src/core/witness/lease.js';
import { defaultParams } from './mirror/transcript.js';

interface Ev { at: number; seq: number; run: () => void }

class Driver {
  now = 0;
  private seq = 0;
  private readonly q: Ev[] = [];
  readonly nodes: Record<string, { params: MirrorParams; state: MirrorState; mount: string; log: { at: number; a: MirrorAction }[] }> = {};
  /** Directions cut: "n1>n2" drops n1's heartbeats to n2. */
  readonly cut = new Set<string>();
  /** Nodes cut from the witness: their lease requests time out. */
  readonly noWitness = new Set<string>();
  readonly witness: LeaseTable;
  /** Stamp heartbeats (false: a peer of an older version, no send time, no echo). */
  stamp = true;
  /** First time each node mounted rw after `since`, and first `mount blocked`. */
  readonly firstRw: Record<string, number> = {};
  readonly firstBlocked: Record<string, number> = {};
  since = Infinity;

  constructor(readonly pulse: number, readonly timeout: number, readonly leaseMs: number) {
    this.witness = new LeaseTable({ leaseMs, startMs: -leaseMs });
    for (const [node, peer] of [['n1', 'n2'], ['n2', 'n1']] as const) {
      const params = defaultParams({ node, peer, pulseMs: pulse, heartbeatTimeoutMs: timeout, defaultPrimary: 'n1', splitBrain: { witnesses: false, arbitrator: true, graceMs: 0 } });
      this.nodes[node] = { params, state: initialState(params), mount: 'none', log: [] };
    }
  }

  at(t: number, run: () => void): void {
    this.q.push({ at: t, seq: this.seq++, run });
    this.q.sort((a, b) => a.at - b.at || a.seq - b.seq);
  }

  deliver(name: string, e: MirrorEvent): void {
    const n = this.nodes[name]!;
    const r = step(n.state, e, n.params);
    n.state = r.state;
    for (const a of r.actions) {
      n.log.push({ at: this.now, a });
      this.execute(name, a);
    }
    if (n.state.peer.lastHeard !== null && e.type === 'heartbeat') {
      const deadline = n.state.peer.lastHeard + n.params.heartbeatTimeoutMs;
      this.at(deadline, () => this.deliver(name, { type: 'tick', now: this.now }));
    }
  }

  private execute(name: string, a: MirrorAction): void {
    const n = this.nodes[name]!;
    const later = (ms: number, e: () => MirrorEvent): void => this.at(this.now + ms, () => this.deliver(name, e()));
    switch (a.type) {
      case 'run-script': later(5, () => ({ type: 'script-done', now: this.now, script: a.script, ok: true, detail: '' })); break;
      case 'vip': if (a.op === 'add') later(5, () => ({ type: 'vip-added', now: this.now })); break;
      case 'mount':
        n.mount = a.mode;
        if (this.now >= this.since && a.mode === 'rw' && this.firstRw[name] === undefined) this.firstRw[name] = this.now;
        if (this.now >= this.since && a.mode === 'blocked' && this.firstBlocked[name] === undefined) this.firstBlocked[name] = this.now;
        break;
      case 'lease': {
        if (a.op === 'release') { this.witness.release('c', 'app', name, this.now); break; }
        const sentAt = this.now;
        if (this.noWitness.has(name)) { later(1000, () => ({ type: 'lease', now: this.now, granted: false, holder: null, error: 'timeout' })); break; }
        const r = this.witness.acquire('c', 'app', name, this.now + 2);
        later(4, () => (r.granted ? { type: 'lease', now: this.now, granted: true, sentAtMs: sentAt, leaseMs: r.leaseMs } : { type: 'lease', now: this.now, granted: false, holder: r.holder }));
        break;
      }
      default: break;
    }
  }

  /** Every pulse: a heartbeat to the peer on each network (1 ms transit), then a tick. */
  heartbeats(name: string, phase: number, until: number): void {
    const n = this.nodes[name]!;
    for (let t = phase; t <= until; t += this.pulse) {
      this.at(t, () => {
        const peer = n.params.peer;
        const v: PeerView = this.stamp ? stampView(viewOf(n.state), n.state, this.now) : viewOf(n.state);
        if (!this.cut.has(`${name}>${peer}`)) {
          for (const network of n.params.networks) this.at(this.now + 1, () => this.deliver(peer, { type: 'heartbeat', now: this.now, network, view: v }));
        }
        this.deliver(name, { type: 'tick', now: this.now });
      });
    }
  }

  run(until: number): void {
    while (this.q.length > 0 && (this.q[0] as Ev).at <= until) {
      const e = this.q.shift() as Ev;
      this.now = e.at;
      e.run();
    }
  }

  start(): void {
    for (const [name, seed] of [['n1', 'a'], ['n2', 'b']] as const) {
      this.at(0, () => this.deliver(name, { type: 'init', now: 0, persisted: null, idSeed: seed }));
      this.at(1, () => this.deliver(name, { type: 'command', now: 1, command: { cmd: 'start' } }));
    }
  }
}

function scenario(pulse: number, timeout: number, phase2: number, cutAt: number, stamp = true): Driver {
  const d = new Driver(pulse, timeout, 2000);
  d.stamp = stamp;
  d.start();
  const until = cutAt + 4 * timeout + 4000;
  d.heartbeats('n1', 3, until);
  d.heartbeats('n2', 3 + phase2, until);
  d.run(cutAt - 2000);
  assert.equal(d.nodes.n1!.state.name, 'PRIM', 'n1 is not primary before the fault');
  assert.equal(d.nodes.n2!.state.name, 'SECOND', 'n2 is not secondary before the fault');
  // The witness stops answering n1: its lease runs out while it still hears n2 (no second
  // primary is possible while the peer hears it, so it goes on without one).
  d.noWitness.add('n1');
  d.run(cutAt);
  d.since = cutAt;
  d.cut.add('n1>n2');
  d.run(until);
  return d;
}

describe('heartbeats lost one way: a primary that its peer no longer hears holds its writes before the peer takes over', () => {
  test('a grid of pulses, timeouts and phases: n1 blocked strictly before n2 mounted rw', () => {
    let cases = 0;
    for (const [pulse, timeout] of [[100, 1000], [250, 1000], [250, 2000], [500, 3000]] as const) {
      for (const phase2 of [0, Math.floor(pulse / 3), pulse - 1]) {
        for (const off of [0, 1, Math.floor(pulse / 2), pulse - 1]) {
          const cutAt = 10_000 + off;
          const d = scenario(pulse, timeout, phase2, cutAt);
          const what = `pulse ${pulse}, timeout ${timeout}, phase ${phase2}, cut at ${cutAt}`;
          const rw2 = d.firstRw.n2;
          assert.ok(rw2 !== undefined, `n2 never took over (${what}): the test would prove nothing`);
          const blocked1 = d.firstBlocked.n1;
          assert.ok(blocked1 !== undefined && blocked1 < rw2, `${what}: n1 blocked at ${blocked1}, n2 rw at ${rw2}`);
          assert.notEqual(d.nodes.n1!.state.name, 'PRIM', `${what}: n1 is still PRIM`);
          cases++;
        }
      }
    }
    assert.equal(cases, 48);
  });

  test('a peer of an older version (no echo in its heartbeats) leaves the old rule: no demotion while it is heard', () => {
    const d = scenario(250, 2000, 50, 10_000, false);
    assert.equal(d.firstBlocked.n1, undefined, 'n1 demoted on a missing echo');
  });

  test('both directions working with the witness gone: nobody moves (the lease is not needed while the peers hear each other)', () => {
    const d = new Driver(250, 2000, 2000);
    d.start();
    d.heartbeats('n1', 3, 30_000);
    d.heartbeats('n2', 120, 30_000);
    d.run(8000);
    d.noWitness.add('n1');
    d.noWitness.add('n2');
    d.since = 8000;
    d.run(30_000);
    assert.equal(d.nodes.n1!.state.name, 'PRIM');
    assert.equal(d.nodes.n2!.state.name, 'SECOND');
    assert.equal(d.firstBlocked.n1, undefined, 'n1 held its writes although n2 hears it');
  });
});
