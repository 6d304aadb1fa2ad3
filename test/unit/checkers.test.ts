// The checker framework's decisions (STYLE.md 7; issue 6 item 1; DESIGN.md 5): rise/fall
// hysteresis reporting only changes, the admin switch, roles and the schedule. Table-driven.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CheckerState, type CheckerRole, initialState, observe, setEnabled, setActive, viewOf,
  roleOf, runsIn, started, initStates, withRole, schedule,
} from '../../src/core/checkers/index.js';
import type { CheckerConfig } from '../../src/core/config/types.js';

/** Feeds `results` ('+' success, '-' failure) from a fresh state; returns the reported changes as '^' (up) / 'v' (down) / '.' (nothing). */
function run(results: string, rise: number, fall: number, from: CheckerState = initialState(0)): { trace: string; state: CheckerState } {
  let s = from;
  let trace = '';
  for (const ch of results) {
    // Each result comes from a run started now (under the current epoch).
    const o = observe({ ...s, runEpoch: s.epoch }, { ok: ch === '+', detail: ch === '+' ? 'fine' : 'broken' }, { rise, fall });
    s = o.state;
    trace += o.change === undefined ? '.' : o.change.up ? '^' : 'v';
  }
  return { trace, state: s };
}

describe('hysteresis: rise/fall, only changes reported', () => {
  const table: { name: string; rise: number; fall: number; results: string; trace: string; status: string }[] = [
    { name: 'first success with rise 1 is reported up', rise: 1, fall: 2, results: '+', trace: '^', status: 'up' },
    { name: 'unknown needs rise successes before up', rise: 3, fall: 2, results: '+++', trace: '..^', status: 'up' },
    { name: 'unknown needs fall failures before down', rise: 1, fall: 2, results: '--', trace: '.v', status: 'down' },
    { name: 'a single failure below fall reports nothing', rise: 1, fall: 2, results: '+-+-+', trace: '^....', status: 'up' },
    { name: 'fall failures in a row make it down, once', rise: 1, fall: 2, results: '+----', trace: '^.v..', status: 'down' },
    { name: 'an interrupted run of failures starts over', rise: 1, fall: 3, results: '+--+---', trace: '^.....v', status: 'down' },
    { name: 'rise successes in a row bring it back up', rise: 2, fall: 1, results: '++-+-++', trace: '.^v...^', status: 'up' },
    { name: 'fall 1 and rise 1 report every flip', rise: 1, fall: 1, results: '+-+-', trace: '^v^v', status: 'down' },
    { name: 'steady results report nothing after the first verdict', rise: 1, fall: 1, results: '++++', trace: '^...', status: 'up' },
    { name: 'mixed results from unknown: neither count completes', rise: 2, fall: 2, results: '+-+-+-', trace: '......', status: 'unknown' },
  ];
  for (const t of table) {
    test(t.name, () => {
      const r = run(t.results, t.rise, t.fall);
      assert.equal(r.trace, t.trace);
      assert.equal(r.state.status, t.status);
    });
  }

  test('the change carries the detail of the result that caused it; since is the start of that run', () => {
    let s = started(initialState(0), 1000, 2000);
    let o = observe(s, { ok: false, detail: 'connection refused' }, { rise: 1, fall: 1 });
    assert.deepEqual(o.change, { up: false, detail: 'connection refused' });
    assert.equal(o.state.since, 1000);
    assert.equal(o.state.running, false);
    s = started(o.state, 3000, 2000);
    o = observe(s, { ok: false, detail: 'timed out after 2s' }, { rise: 1, fall: 1 });
    assert.equal(o.change, undefined);
    assert.equal(o.state.detail, 'timed out after 2s', 'status shows the last detail even without a change');
    assert.equal(o.state.since, 1000, 'since stays at the last change');
  });
});

describe('admin switch (hakit checker off|on)', () => {
  test('a disabled checker reports nothing, whatever its results, and shows as disabled', () => {
    const off = setEnabled(run('+', 1, 1).state, false, 50);
    assert.equal(off.change, undefined, 'disabling an up checker reports nothing');
    const r = run('----', 1, 1, off.state);
    assert.equal(r.trace, '....');
    assert.equal(viewOf(r.state).status, 'disabled');
  });

  test('disabling a down checker reports it up once, so a module held in WAIT is released', () => {
    const down = run('--', 1, 2).state;
    const off = setEnabled(down, false, 70);
    assert.deepEqual(off.change, { up: true, detail: 'disabled by an administrator' });
    assert.equal(setEnabled(off.state, false, 80).change, undefined, 'disabling twice reports nothing');
  });

  test('enabling starts from unknown, due at once, and reports the fresh verdict', () => {
    const off = setEnabled(run('+', 1, 2).state, false, 10).state;
    const on = setEnabled(off, true, 500);
    assert.equal(on.change, undefined);
    assert.equal(on.state.status, 'unknown');
    assert.deepEqual(schedule({ a: on.state }, 500).due, ['a']);
    assert.equal(run('--', 1, 2, on.state).trace, '.v', 'fall counts from zero after enabling');
  });

  test('a disabled checker is never due', () => {
    const off = setEnabled(initialState(0), false, 0).state;
    assert.deepEqual(schedule({ a: off }, 10_000), { due: [], wakeAt: null });
  });
});

const cfg = (c: Partial<CheckerConfig> & Pick<CheckerConfig, 'type'>): CheckerConfig =>
  ({ name: c.type, intervalMs: 2000, timeoutMs: 2000, rise: 1, fall: 2, action: 'restart', ...c }) as CheckerConfig;

describe('roles: which checkers run in which module state', () => {
  test('roleOf maps states; any transition in progress is transient', () => {
    const table: [string, boolean, CheckerRole][] = [
      ['PRIM', true, 'prim'], ['ALONE', true, 'prim'], ['UP', true, 'prim'], ['SECOND', true, 'second'],
      ['WAIT', true, 'wait'], ['STOP', true, 'stop'], ['ALONE', false, 'transient'], ['STOP', false, 'transient'],
    ];
    for (const [name, ready, role] of table) assert.equal(roleOf(name, ready), role, `${name} ready=${ready}`);
  });

  const checkers: [string, CheckerConfig, string][] = [
    // name, config, roles it runs in among prim/second/wait/stop/transient as p s w . .
    ['tcp restart: the application on the primary', cfg({ type: 'tcp', action: 'restart' }), 'p....'],
    ['tcp wait: a dependency, everywhere started', cfg({ type: 'tcp', action: 'wait' }), 'psw..'],
    ['http stopstart', cfg({ type: 'http', action: 'stopstart' }), 'p....'],
    ['custom restart', cfg({ type: 'custom', action: 'restart' }), 'p....'],
    ['process class prim', cfg({ type: 'process', class: 'prim', action: 'stopstart' } as Partial<CheckerConfig> & { type: 'process' }), 'p....'],
    ['process class second', cfg({ type: 'process', class: 'second', action: 'stopstart' } as Partial<CheckerConfig> & { type: 'process' }), '.s...'],
    ['process class both', cfg({ type: 'process', class: 'both', action: 'stopstart' } as Partial<CheckerConfig> & { type: 'process' }), 'psw..'],
    ['process class prim, action wait: runs in WAIT to release it', cfg({ type: 'process', class: 'prim', action: 'wait' } as Partial<CheckerConfig> & { type: 'process' }), 'p.w..'],
    ['vip: only the primary holds it', cfg({ type: 'vip', action: 'stopstart' }), 'p....'],
    ['interface', cfg({ type: 'interface', action: 'wait' }), 'psw..'],
    ['ping', cfg({ type: 'ping', action: 'wait' }), 'psw..'],
    ['module', cfg({ type: 'module', action: 'wait' }), 'psw..'],
    ['splitbrain', cfg({ type: 'splitbrain' }), 'psw..'],
  ];
  for (const [name, c, expect] of checkers) {
    test(name, () => {
      const roles: CheckerRole[] = ['prim', 'second', 'wait', 'stop', 'transient'];
      assert.equal(roles.map((r) => (runsIn(c, r) ? r[0] : '.')).join(''), expect);
    });
  }

  test('leaving the role resets to unknown and ignores the result of the run in progress', () => {
    const cfgs = [cfg({ type: 'tcp', name: 'app', action: 'restart' }), cfg({ type: 'interface', name: 'nic', action: 'wait' })];
    let st = initStates(cfgs, 'prim', 0);
    st = { ...st, app: started(st.app!, 0, 2000), nic: started(st.nic!, 0, 2000) };
    st = { ...st, app: observe(st.app!, { ok: true, detail: 'ok' }, { rise: 1, fall: 2 }).state };
    assert.equal(st.app!.status, 'up');
    st = { ...st, app: started(st.app!, 2000, 2000) };
    st = withRole(st, cfgs, 'transient', 2100);
    assert.equal(viewOf(st.app!).status, 'idle');
    assert.equal(viewOf(st.nic!).status, 'idle');
    const late = observe(st.app!, { ok: false, detail: 'refused' }, { rise: 1, fall: 1 });
    assert.equal(late.change, undefined, 'a result of a run from before the transition is ignored');
    st = { ...st, app: late.state };
    st = withRole(st, cfgs, 'wait', 5000);
    assert.deepEqual(schedule(st, 5000).due, [], 'the run of nic from before is still in progress: no second run');
    // Its result arrives once active again: it was started before the role changed, so it does
    // not count (a probe that saw the application down before a restart must not count after
    // it: checkers.test.ts on the testbed restarted a fresh application into maxloop); a new run
    // follows at once.
    const stale = observe(st.nic!, { ok: false, detail: 'down' }, { rise: 1, fall: 1 });
    assert.equal(stale.change, undefined, 'a result of a run started before the role changed counted');
    st = { ...st, nic: stale.state };
    assert.equal(st.nic!.status, 'unknown');
    assert.deepEqual(schedule(st, 5000).due, ['nic'], 'in WAIT only the wait checker runs');
    st = { ...st, nic: observe(started(st.nic!, 5000, 2000), { ok: true, detail: 'up' }, { rise: 1, fall: 1 }).state };
    assert.equal(st.nic!.status, 'up', 'a run started once active counts');
    st = withRole(st, cfgs, 'prim', 6000);
    assert.equal(st.app!.status, 'unknown');
    assert.deepEqual(schedule(st, 6000).due, ['app'], 'app (reset by the role change) at once; nic (active in both roles) at 7000');
    assert.deepEqual(schedule(st, 7000).due, ['app', 'nic']);
    const r = run('-', 1, 1, started(st.app!, 6000, 2000));
    assert.equal(r.trace, 'v', 'the fresh verdict is reported again after the transition');
  });

  test('setActive to the same value changes nothing', () => {
    const s = initialState(0);
    assert.equal(setActive(s, true, 99), s);
  });
});

describe('schedule', () => {
  test('fixed rate from each start; never two runs of one checker at once', () => {
    const interval = 1000;
    let s = initialState(0);
    // t=0 due; start; result at 300 ms; next due at 1000.
    assert.deepEqual(schedule({ a: s }, 0), { due: ['a'], wakeAt: null });
    s = started(s, 0, interval);
    assert.deepEqual(schedule({ a: s }, 500), { due: [], wakeAt: null }, 'running: not due, nothing to wake for');
    s = observe(s, { ok: true, detail: '' }, { rise: 1, fall: 1 }).state;
    assert.deepEqual(schedule({ a: s }, 300), { due: [], wakeAt: 1000 });
    assert.deepEqual(schedule({ a: s }, 1000), { due: ['a'], wakeAt: null });
    // a run that outlives its interval delays the next: due as soon as it ended.
    s = started(s, 1000, interval);
    assert.deepEqual(schedule({ a: s }, 2500).due, []);
    s = observe(s, { ok: true, detail: '' }, { rise: 1, fall: 1 }).state;
    assert.deepEqual(schedule({ a: s }, 2500).due, ['a']);
  });

  test('several checkers: due ones listed, wake at the earliest other', () => {
    const a = started(initialState(0), 0, 500);
    const b = started(initialState(0), 0, 2000);
    const c = initialState(700);
    const done = (s: CheckerState): CheckerState => observe(s, { ok: true, detail: '' }, { rise: 1, fall: 1 }).state;
    assert.deepEqual(schedule({ a: done(a), b: done(b), c }, 100), { due: [], wakeAt: 500 });
    assert.deepEqual(schedule({ a: done(a), b: done(b), c }, 600), { due: ['a'], wakeAt: 700 });
    assert.deepEqual(schedule({ a: done(a), b: done(b), c }, 2000), { due: ['a', 'b', 'c'], wakeAt: null });
  });
});
