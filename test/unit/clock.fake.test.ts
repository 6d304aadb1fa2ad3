// FakeClock's own promises beyond the Clock contract: synchronous advance, bounded runAll,
// runUntilSettled (what unit tests and the simulator rely on to drive time, STYLE.md 2, 5).
import test from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/adapters/clock/index.js';

test('advance fires due timers synchronously, each at its own due time, and stops at the target', () => {
  const clock = new FakeClock({ start: 1000 });
  const seen: Array<[string, number]> = [];
  clock.setTimer(5, () => seen.push(['a', clock.now()]));
  clock.setTimer(0, () => seen.push(['zero', clock.now()]));
  clock.setTimer(7, () => clock.setTimer(3, () => seen.push(['chained', clock.now()])));
  clock.setTimer(11, () => seen.push(['late', clock.now()]));
  clock.advance(10);
  assert.deepEqual(seen, [['zero', 1000], ['a', 1005], ['chained', 1010]]);
  assert.equal(clock.now(), 1010);
  assert.equal(clock.pending(), 1);
  assert.equal(clock.nextDue(), 1011);
  assert.equal(clock.wallNow() - Date.UTC(2024, 0, 1), 10);
});

test('advance rejects negative time; a throwing timer leaves time at its due time', () => {
  const clock = new FakeClock();
  assert.throws(() => clock.advance(-1), RangeError);
  clock.setTimer(4, () => { throw new Error('boom'); });
  clock.setTimer(6, () => undefined);
  assert.throws(() => clock.advance(10), /boom/);
  assert.equal(clock.now(), 4);
  assert.equal(clock.pending(), 1);
});

test('runAll fires everything including chains, and stops a timer that re-arms forever', () => {
  const clock = new FakeClock();
  let n = 0;
  clock.setTimer(100, () => { n++; clock.setTimer(100, () => { n++; }); });
  assert.equal(clock.runAll(), 2);
  assert.equal(n, 2);
  assert.equal(clock.now(), 200);
  const rearm = (): void => { clock.setTimer(1, rearm); };
  rearm();
  assert.throws(() => clock.runAll(50), /more than 50 timers/);
});

test('runUntilSettled drives a chain of awaited sleeps and reports a promise that can never settle', async () => {
  const clock = new FakeClock();
  const work = async (): Promise<number> => {
    await clock.sleep(100);
    await clock.sleep(250);
    return clock.now();
  };
  assert.equal(await clock.runUntilSettled(work()), 350);
  await assert.rejects(clock.runUntilSettled(new Promise(() => undefined)), /no timer is set/);
  const forever = (async () => { for (;;) await clock.sleep(1000); })();
  await assert.rejects(clock.runUntilSettled(forever, 5000), /still pending after 5000 ms/);
});
