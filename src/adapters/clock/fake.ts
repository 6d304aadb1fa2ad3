/**
 * A deterministic clock for tests and the simulator: time moves only when told to.
 *
 * Timers fire in order of due time, ties in the order they were set; a timer set (by a firing
 * timer) to a time inside the window being advanced fires in the same advance. `now()` while a
 * timer fires equals that timer's due time. Nothing here touches real time except the
 * `*Async` helpers, which yield to the event loop (setImmediate) so that promise continuations
 * (e.g. code after `await clock.sleep()`) run and may set further timers.
 */
import { type Clock, type TimerHandle, sleepOn } from './clock.js';

interface FakeTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

export interface FakeClockOptions {
  /** Initial monotonic time in ms (default 0). */
  start?: number;
  /** Wall time in ms since the epoch at the initial monotonic time (default 2024-01-01T00:00:00Z). */
  wallStart?: number;
}

export class FakeClock implements Clock {
  private current: number;
  private readonly origin: number;
  private readonly wallOrigin: number;
  private nextId = 1;
  private readonly timers = new Map<number, FakeTimer>();

  constructor(options: FakeClockOptions = {}) {
    this.current = options.start ?? 0;
    this.origin = this.current;
    this.wallOrigin = options.wallStart ?? Date.UTC(2024, 0, 1);
  }

  now(): number {
    return this.current;
  }

  wallNow(): number {
    return this.wallOrigin + (this.current - this.origin);
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { id, due: this.current + Math.max(0, ms), fn });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle.id);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of timers set and not yet fired or cleared. */
  pending(): number {
    return this.timers.size;
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextDue(): number | undefined {
    return this.earliest()?.due;
  }

  /**
   * Moves time forward by `ms` (>= 0), firing every timer due up to the new time, synchronously.
   * If a timer's `fn` throws, time stays at that timer's due time and the error propagates.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be >= 0, got ${ms}`);
    const target = this.current + ms;
    for (let t = this.earliestDueBy(target); t !== undefined; t = this.earliestDueBy(target)) this.fire(t);
    this.current = target;
  }

  /**
   * Like `advance`, but yields to the event loop after each timer, so that awaiting code resumes
   * and may set timers that are then fired in order within the same window.
   */
  async advanceAsync(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advanceAsync: ms must be >= 0, got ${ms}`);
    const target = this.current + ms;
    await flush();
    for (let t = this.earliestDueBy(target); t !== undefined; t = this.earliestDueBy(target)) {
      this.fire(t);
      await flush();
    }
    this.current = target;
  }

  /**
   * Fires pending timers in order, including timers they set, until none is left.
   * Throws after `limit` timers (a timer that always re-arms itself would run forever).
   * Returns how many timers fired.
   */
  runAll(limit = 10_000): number {
    let fired = 0;
    for (let t = this.earliest(); t !== undefined; t = this.earliest()) {
      if (fired >= limit) throw new Error(`FakeClock.runAll: more than ${limit} timers fired; a timer probably re-arms itself`);
      this.fire(t);
      fired++;
    }
    return fired;
  }

  /**
   * Advances time from timer to timer (yielding to the event loop in between) until `promise`
   * settles, and returns its outcome. Throws if it is still pending when no timer is left, or
   * after `limitMs` of fake time.
   */
  async runUntilSettled<T>(promise: Promise<T>, limitMs = 24 * 3_600_000): Promise<T> {
    let settled = false;
    const watched = promise.then(
      (v) => { settled = true; return v; },
      (e: unknown) => { settled = true; throw e; },
    );
    watched.catch(() => undefined);
    const deadline = this.current + limitMs;
    await flush();
    while (!settled) {
      const due = this.nextDue();
      if (due === undefined) throw new Error('FakeClock.runUntilSettled: the promise is pending and no timer is set');
      if (due > deadline) throw new Error(`FakeClock.runUntilSettled: still pending after ${limitMs} ms of fake time`);
      await this.advanceAsync(due - this.current);
    }
    return watched;
  }

  private fire(t: FakeTimer): void {
    this.timers.delete(t.id);
    this.current = Math.max(this.current, t.due);
    t.fn();
  }

  private earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    // Map iteration is in insertion order, i.e. by id: strict < keeps set-order among equal dues.
    for (const t of this.timers.values()) if (best === undefined || t.due < best.due) best = t;
    return best;
  }

  private earliestDueBy(target: number): FakeTimer | undefined {
    const t = this.earliest();
    return t !== undefined && t.due <= target ? t : undefined;
  }
}

/** Lets pending promise continuations and I/O callbacks run (one turn of the event loop). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
