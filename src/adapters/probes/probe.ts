/**
 * The checker probe seam (STYLE.md 3, 7, 9; issue 6 items 1-2): one probe per checker, one file
 * per type, all behind this interface so the daemon schedules them alike and tests use FakeProbe.
 *
 * A probe does the I/O of one checker run and nothing else: rise/fall, scheduling, the admin
 * switch and actions are decided in src/core/checkers and the mirror core. Every run is bounded
 * by the checker's `timeout`: `bounded` resolves `{ ok: false, detail: 'timed out after 2s' }`
 * when it passes and aborts the run's own signal, which kills what the run started (sockets,
 * child processes and their process groups). A probe never rejects and never hangs.
 */
import type { Clock } from '../clock/index.js';
import type { CheckResult } from '../../core/checkers/index.js';
import type { CheckerConfig, VipConfig } from '../../core/config/types.js';
import { formatMs } from '../scripts/runner.js';
import type { Exec } from '../vip/index.js';

export type { CheckResult } from '../../core/checkers/index.js';

export interface Probe {
  /**
   * Runs the check once. Resolves within the checker's timeout with `ok` and a one-line
   * `detail`; resolves at once with `{ ok: false, detail: 'aborted' }` when `signal` aborts (the
   * daemon's shutdown). Never rejects. Runs of one probe may overlap only if the caller starts
   * them so (the schedule never does).
   */
  run(signal: AbortSignal): Promise<CheckResult>;
}

/** What a probe may need besides its checker's config. */
export interface ProbeContext {
  /** `<config-dir>/modules/<m>`: the working directory of custom commands. */
  readonly moduleDir: string;
  /** `<config-dir>/modules/<m>/bin`: relative custom commands are found here. */
  readonly binDir: string;
  /** This node's name (HAKIT_NODE of custom commands). */
  readonly node: string;
  /** The module's name (HAKIT_MODULE of custom commands). */
  readonly module: string;
  /** The module's VIPs (the `vip` checker checks all of them). */
  readonly vip: readonly VipConfig[];
  /** The state of another module on this node (`PRIM`, `WAIT`, ...), undefined if there is none. */
  readonly moduleState: (name: string) => string | undefined;
  /** How `ip`, `ping` and `arping` run (default: execFileBounded; tests: `nsenter --net=...`). */
  readonly exec?: Exec;
  /** Owns the timeout timer (default: the real clock). */
  readonly clock?: Clock;
  /** custom: refuse commands others than root could change (default: when running as root). */
  readonly checkOwnership?: boolean;
}

/** Makes the probe of a checker (probeFor, or FakeProbes.probeFor in tests). */
export type ProbeFactory = (cfg: CheckerConfig, ctx: ProbeContext) => Probe;

/**
 * One unbounded check, as each type file writes it: it should stop its I/O when `signal` aborts
 * (bounded() no longer waits for it then) and may reject (the rejection becomes a failure).
 */
export type Check = (signal: AbortSignal) => Promise<CheckResult>;

/** The detail of a run cut by the timeout. */
export function timedOut(timeoutMs: number): string {
  return `timed out after ${formatMs(timeoutMs)}`;
}

/**
 * Wraps `check` into a Probe bounded by `timeoutMs` on `clock`. Each run gets its own
 * AbortController, aborted when the run resolves for any reason (result, timeout, caller's
 * abort), so what a check started never outlives its run.
 */
export function bounded(check: Check, timeoutMs: number, clock: Clock): Probe {
  return {
    run(outer: AbortSignal): Promise<CheckResult> {
      return new Promise<CheckResult>((resolve) => {
        const ctl = new AbortController();
        let settled = false;
        const finish = (r: CheckResult): void => {
          if (settled) return;
          settled = true;
          clock.clearTimer(timer);
          outer.removeEventListener('abort', onAbort);
          ctl.abort();
          resolve(r);
        };
        const onAbort = (): void => finish({ ok: false, detail: 'aborted' });
        const timer = clock.setTimer(timeoutMs, () => finish({ ok: false, detail: timedOut(timeoutMs) }));
        if (outer.aborted) {
          onAbort();
          return;
        }
        outer.addEventListener('abort', onAbort, { once: true });
        Promise.resolve()
          .then(() => check(ctl.signal))
          .then(
            (r) => finish({ ok: r.ok, detail: oneLine(r.detail) }),
            (e: unknown) => finish({ ok: false, detail: `probe error: ${oneLine(e instanceof Error ? e.message : String(e))}` }),
          );
      });
    },
  };
}

/** A detail as one line of at most 300 characters. */
export function oneLine(text: string): string {
  const t = text.replace(/\s*\n\s*/g, ' / ').trim();
  return t.length > 300 ? `${t.slice(0, 297)}...` : t;
}

/** Seconds with millisecond precision, as `ping -W` and `arping -w` take them. */
export function seconds(ms: number): string {
  return (Math.max(ms, 1) / 1000).toFixed(3);
}
