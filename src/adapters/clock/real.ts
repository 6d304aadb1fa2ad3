/**
 * The real clock: `performance.now()` for monotonic time, `Date.now()` for wall time, node's
 * `setTimeout` for timers.
 *
 * Timers are NOT unref'd: a pending timer keeps the process alive. A daemon timer that is set is
 * meant to fire (a retry, a script timeout, a heartbeat), and the daemon's lifetime is decided by
 * its sockets and its shutdown path, not by whether timers happen to be pending. Whoever sets a
 * timer clears it when it is no longer needed (tests included).
 */
import { performance } from 'node:perf_hooks';
import { type Clock, type TimerHandle, sleepOn } from './clock.js';

interface RealHandle extends TimerHandle {
  timeout: NodeJS.Timeout;
}

export class RealClock implements Clock {
  private nextId = 1;

  now(): number {
    return performance.now();
  }

  wallNow(): number {
    return Date.now();
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const handle: RealHandle = { id: this.nextId++, timeout: setTimeout(fn, Math.max(0, ms)) };
    return handle;
  }

  clearTimer(handle: TimerHandle): void {
    const h = handle as Partial<RealHandle>;
    if (h.timeout !== undefined) clearTimeout(h.timeout);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

/** A real clock holds no state worth sharing; this one is a convenience for wiring code. */
export const realClock: Clock = new RealClock();
