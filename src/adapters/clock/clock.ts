/**
 * The clock seam (STYLE.md 2): every timer and every reading of time in the daemon goes through
 * a `Clock`, so that tests and the simulator can drive time with `FakeClock`.
 *
 * Units: milliseconds everywhere. `now()` is monotonic (never goes back, unaffected by changes
 * of the wall clock) and is the only reading to use for durations and timeouts; `wallNow()` is
 * for timestamps shown to people (log names, status) and may jump.
 */

/** An opaque handle returned by `setTimer`; pass it to `clearTimer`. */
export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Monotonic milliseconds (may be fractional) from an arbitrary origin. */
  now(): number;
  /** Milliseconds since the Unix epoch (wall clock, may jump). */
  wallNow(): number;
  /**
   * Calls `fn` once, no earlier than `ms` (clamped to >= 0) after now. Timers due at the same
   * time fire in the order they were set. `fn` must not throw.
   */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** Cancels a timer; a no-op for a timer that already fired or was cleared. */
  clearTimer(handle: TimerHandle): void;
  /**
   * Resolves after `ms`. If `signal` is or becomes aborted first, rejects with
   * `signal.reason` (an `AbortError` DOMException by default) and clears its timer.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Shared `sleep` on top of `setTimer`/`clearTimer`, so both clocks have the same abort semantics. */
export function sleepOn(clock: Pick<Clock, 'setTimer' | 'clearTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clock.clearTimer(handle);
      reject(abortReason(signal!));
    };
    const handle = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}
