/**
 * The timeout policy of one script request, shared by the real runner and the fake so that
 * both decide the same way (STYLE.md 4):
 *
 *   start scripts (prestart, start_*):  run --timeoutMs--> kill the group
 *   stop scripts (stop_*, poststop):    run --stopTimeoutMs--> rerun with `force` (first still running)
 *                                           --stopTimeoutMs--> kill both groups
 *                                       when the force rerun ends, the first run's group is killed
 *   abort (request signal or killAll):  kill every group of the request at once
 *
 * A script that ends by itself is never killed: what it left running in the background (the
 * application) is meant to keep running.
 */
import type { Clock } from '../clock/index.js';
import { endDetail, formatMs, isStopScript, type ScriptRequest, type ScriptResult } from './runner.js';

/** How one process (a run, or its force rerun) ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Why it could not start (spawn failed), null when it ran. */
  readonly error: string | null;
}

/** One started process and its process group. */
export interface Proc {
  /** Resolves once, when the process ended (never rejects). */
  readonly exited: Promise<Exit>;
  /** Kills the whole group; resolves after `exited`; true if there was anything to signal. */
  killGroup(): Promise<boolean>;
}

type Race = { kind: 'exit'; exit: Exit } | { kind: 'timeout' } | { kind: 'abort' };

export type Supervised = Omit<ScriptResult, 'logFile'>;

/**
 * Runs `start(false)` and, for a stop script that outlives `stopTimeoutMs`, `start(true)`,
 * applying the policy above. Durations are `clock.now() - t0`. Never rejects unless `start` does.
 */
export async function supervise(req: ScriptRequest, clock: Clock, signal: AbortSignal, t0: number, start: (force: boolean) => Promise<Proc>): Promise<Supervised> {
  const stop = isStopScript(req.script);
  const limit = stop ? req.stopTimeoutMs : req.timeoutMs;
  const base = { script: req.script, missing: false };
  const dur = (): number => clock.now() - t0;

  const first = await start(false);
  const r1 = await race(clock, first.exited, limit, signal);
  if (r1.kind === 'exit') {
    const e = r1.exit;
    return { ...base, ok: e.code === 0, code: e.code, signal: e.signal, forced: false, killed: false, durationMs: dur(), detail: e.error ?? endDetail(e.code, e.signal) };
  }
  if (r1.kind === 'abort' || !stop) {
    await first.killGroup();
    const e = await first.exited;
    const detail = r1.kind === 'abort' ? 'aborted: process group killed' : `killed after ${formatMs(limit)}`;
    return { ...base, ok: false, code: e.code, signal: e.signal, forced: false, killed: true, durationMs: dur(), detail };
  }

  const second = await start(true);
  const r2 = await race(clock, second.exited, limit, signal);
  if (r2.kind === 'exit') {
    const e = r2.exit;
    const killedFirst = await first.killGroup();
    return {
      ...base, ok: e.code === 0, code: e.code, signal: e.signal, forced: true, killed: killedFirst, durationMs: dur(),
      detail: `did not end within ${formatMs(limit)}; rerun with force: ${e.error ?? endDetail(e.code, e.signal)}`,
    };
  }
  await Promise.all([first.killGroup(), second.killGroup()]);
  const e = await second.exited;
  const detail = r2.kind === 'abort'
    ? 'aborted during the force rerun: process groups killed'
    : `did not end within ${formatMs(limit)}, nor with force: killed`;
  return { ...base, ok: false, code: e.code, signal: e.signal, forced: true, killed: true, durationMs: dur(), detail };
}

/** The first of: the process ends, `ms` pass on `clock`, `signal` aborts. Clears its timer and listener. */
function race(clock: Clock, exited: Promise<Exit>, ms: number, signal: AbortSignal): Promise<Race> {
  return new Promise<Race>((resolve) => {
    if (signal.aborted) {
      resolve({ kind: 'abort' });
      return;
    }
    let settled = false;
    const finish = (r: Race): void => {
      if (settled) return;
      settled = true;
      clock.clearTimer(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onAbort = (): void => finish({ kind: 'abort' });
    const timer = clock.setTimer(ms, () => finish({ kind: 'timeout' }));
    signal.addEventListener('abort', onAbort, { once: true });
    void exited.then((exit) => finish({ kind: 'exit', exit }));
  });
}
