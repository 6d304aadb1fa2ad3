// The fake script runner's own controls, as the daemon tests and the simulator use them
// (STYLE.md 3, 5): time from a FakeClock, scripts held "hanging" until released.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/adapters/clock/index.js';
import { FakeScriptRunner, type ScriptName, type ScriptRequest, type ScriptResult } from '../../src/adapters/scripts/index.js';

function req(script: ScriptName, over: Partial<ScriptRequest> = {}): ScriptRequest {
  return {
    module: 'web', node: 'n1', role: 'prim', script, binDir: '/etc/hakit/modules/web/bin', moduleDir: '/etc/hakit/modules/web',
    args: ['PRIM', 'STOP', 'stop'], timeoutMs: 1000, stopTimeoutMs: 500, logDir: '/var/lib/hakit/modules/web/logs', ...over,
  };
}

describe('FakeScriptRunner', () => {
  test('on a fake clock, a hanging stop script is rerun with force at stopTimeoutMs; releasing the rerun ends the request', async () => {
    const clock = new FakeClock();
    const fake = new FakeScriptRunner({ clock }).program('stop_prim', { hang: true });
    const out: { result?: ScriptResult } = {};
    void fake.run(req('stop_prim')).then((r) => { out.result = r; });
    await clock.advanceAsync(499);
    assert.equal(fake.processes.length, 1, 'no rerun before stopTimeoutMs');
    await clock.advanceAsync(1);
    assert.deepEqual(fake.hanging('stop_prim').map((p) => p.argv), [['PRIM', 'STOP', 'stop'], ['force', 'PRIM', 'STOP', 'stop']]);
    assert.equal(fake.release('stop_prim'), true, 'the first run ends by itself');
    assert.equal(out.result, undefined, 'the request waits for the force rerun');
    assert.equal(fake.release('stop_prim', { code: 0 }), true);
    await clock.advanceAsync(0);
    const r = settled(out);
    assert.deepEqual({ ok: r?.ok, forced: r?.forced, killed: r?.killed, durationMs: r?.durationMs }, { ok: true, forced: true, killed: false, durationMs: 500 });
    assert.deepEqual(fake.hanging(), []);
    assert.equal(fake.release('stop_prim'), false, 'nothing left to release');
  });

  test('unprogrammed scripts exit 0; every request is recorded in order', async () => {
    const fake = new FakeScriptRunner({ clock: new FakeClock() });
    const a = await fake.run(req('prestart', { args: ['STOP', 'PRIM', 'start'] }));
    const b = await fake.run(req('start_prim', { args: ['STOP', 'PRIM', 'start'] }));
    assert.deepEqual([a.ok, a.detail, b.ok], [true, 'exit 0', true]);
    assert.deepEqual(fake.requests.map((r) => r.script), ['prestart', 'start_prim']);
  });
});

/** Reads the result set by a callback (a function, so the compiler does not narrow it to undefined). */
function settled(out: { result?: ScriptResult }): ScriptResult | undefined {
  return out.result;
}
