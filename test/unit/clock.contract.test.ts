// Contract of the clock seam (STYLE.md 2, 4): the same checks against RealClock and FakeClock,
// so the fake that drives every unit test and the simulator cannot drift from real timers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Clock, FakeClock, RealClock } from '../../src/adapters/clock/index.js';

interface Harness {
  clock: Clock;
  /** Lets `ms` of the clock's time go by (really, or by advancing the fake). */
  pass(ms: number): Promise<void>;
}

const harnesses: Record<string, () => Harness> = {
  real: () => ({ clock: new RealClock(), pass: (ms) => new Promise((r) => setTimeout(r, ms + 15)) }),
  fake: () => {
    const clock = new FakeClock();
    return { clock, pass: (ms) => clock.advanceAsync(ms) };
  },
};

for (const [name, make] of Object.entries(harnesses)) {
  describe(`Clock contract: ${name}`, () => {
    test('timers fire in order of due time, ties in the order they were set, chained timers too', async () => {
      const { clock, pass } = make();
      const fired: string[] = [];
      clock.setTimer(250, () => fired.push('250'));
      clock.setTimer(10, () => {
        fired.push('10');
        clock.setTimer(100, () => fired.push('10+100'));
      });
      clock.setTimer(200, () => fired.push('200a'));
      clock.setTimer(200, () => fired.push('200b'));
      await pass(50);
      assert.deepEqual(fired, ['10']);
      await pass(250);
      assert.deepEqual(fired, ['10', '10+100', '200a', '200b', '250']);
    });

    test('a cleared timer never fires; clearing twice or after firing is harmless', async () => {
      const { clock, pass } = make();
      const fired: string[] = [];
      const a = clock.setTimer(10, () => fired.push('a'));
      const b = clock.setTimer(5, () => fired.push('b'));
      clock.clearTimer(a);
      clock.clearTimer(a);
      await pass(30);
      clock.clearTimer(b);
      assert.deepEqual(fired, ['b']);
    });

    test('now() is monotonic and sleep(ms) resolves no earlier than ms later', async () => {
      const { clock, pass } = make();
      const t0 = clock.now();
      let done = false;
      const slept = clock.sleep(100).then(() => { done = true; });
      await pass(40);
      assert.equal(done, false, 'sleep(100) resolved after 40 ms');
      await pass(70);
      await slept;
      assert.ok(done);
      assert.ok(clock.now() - t0 >= 99, `only ${clock.now() - t0} ms went by`);
      assert.ok(Math.abs(clock.wallNow() - Date.UTC(2024, 0, 1)) < 100 * 365 * 86_400_000, 'wallNow is ms since the epoch');
    });

    test('an aborted sleep rejects with the abort reason and never resolves later', async () => {
      const { clock, pass } = make();
      const ac = new AbortController();
      let resolved = false;
      const p = clock.sleep(30, ac.signal).then(() => { resolved = true; });
      ac.abort();
      await assert.rejects(p, { name: 'AbortError' });
      await pass(50);
      assert.equal(resolved, false);
      const why = new Error('shutting down');
      await assert.rejects(clock.sleep(10, AbortSignal.abort(why)), (e) => e === why);
    });
  });
}
