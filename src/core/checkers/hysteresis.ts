/**
 * Checker hysteresis (STYLE.md 7, DESIGN.md 5; keepalived `check_api.c`, memberlist `suspicion.go`):
 * raw probe results in, state changes out. Pure: no I/O, no clock reading; times are monotonic
 * milliseconds given by the caller.
 *
 *                 rise successes in a row             fall failures in a row
 *     unknown ───────────────────────────▶ up ◀──────────────────────────────────┐
 *        │                                  │  fall failures in a row            │ rise successes
 *        └──────── fall failures in a row ──┴──────────────────────────▶ down ───┘ in a row
 *
 *     any ──admin off──▶ disabled (no runs, no reports) ──admin on──▶ unknown (counts from zero)
 *     any ──module leaves the checker's states──▶ inactive (no runs, results ignored)
 *         ──module enters them again──▶ unknown
 *
 * Only changes are reported (`change`), the first verdict out of `unknown` included: the mirror
 * core learns of every checker's first verdict and then of each flip. A result that does not
 * complete a run of `rise`/`fall` is counted and reported nothing.
 *
 * Disabling a checker that is down reports it `up` once (detail `disabled by an administrator`),
 * so a module held in WAIT by it (action `wait`) is released: an administrator who turns a
 * checker off for maintenance means "stop acting on it". Afterwards a disabled checker reports
 * nothing until it is enabled again, and then starts from `unknown`.
 */

/** What one probe run found. `detail` is one line for logs and `hakit status`. */
export interface CheckResult {
  readonly ok: boolean;
  readonly detail: string;
}

export type CheckerStatus = 'unknown' | 'up' | 'down';

/** The rise/fall counts of a checker (CheckerConfig has them; nothing else is needed here). */
export interface Hysteresis {
  /** Successes in a row that make the checker up, >= 1. */
  readonly rise: number;
  /** Failures in a row that make the checker down, >= 1. */
  readonly fall: number;
}

export interface CheckerState {
  readonly status: CheckerStatus;
  /** Turned off by an administrator (`hakit checker off`): not run, reports nothing. */
  readonly disabled: boolean;
  /** The module is in a state the checker runs in (schedule.ts `runsIn`); inactive: not run, results ignored. */
  readonly active: boolean;
  /** Successes in a row so far (0 after a failure). */
  readonly okInRow: number;
  /** Failures in a row so far (0 after a success). */
  readonly failInRow: number;
  /** Detail of the last result ('' before the first). */
  readonly detail: string;
  /** When `status` last changed (monotonic ms, the start of the run that changed it), null if never. */
  readonly since: number | null;
  /** Scheduling (schedule.ts): a run is in progress. */
  readonly running: boolean;
  /** Scheduling: start time of the run in progress or of the last one, null if none yet. */
  readonly startedAt: number | null;
  /** Scheduling: when the next run is due (monotonic ms). */
  readonly dueAt: number;
  /**
   * Bumped whenever the checker is (de)activated or turned on/off; a run records the value it
   * started under (`runEpoch`). The result of a run started before such a change is ignored: a
   * probe that saw the application down before a restart must not count after it (a stale
   * "down" restarted a freshly restarted application again, into maxloop, under CI load).
   */
  readonly epoch: number;
  readonly runEpoch: number;
}

/** A change to report to the mirror core as a `checker` event. */
export interface CheckerChange {
  readonly up: boolean;
  readonly detail: string;
}

export interface Observed {
  readonly state: CheckerState;
  readonly change?: CheckerChange;
}

/** A checker that has not run yet, first due at `dueAt` (usually now). */
export function initialState(dueAt: number, active = true): CheckerState {
  return { status: 'unknown', disabled: false, active, okInRow: 0, failInRow: 0, detail: '', since: null, running: false, startedAt: null, dueAt, epoch: 0, runEpoch: 0 };
}

/**
 * Counts one probe result. Returns the new state and, when the status flipped (or left
 * `unknown`), the change to report. A disabled checker's results are ignored (a run that was in
 * progress when it was disabled) and only end the run; so are an inactive checker's.
 */
export function observe(state: CheckerState, result: CheckResult, cfg: Hysteresis): Observed {
  if (state.disabled || !state.active || state.runEpoch !== state.epoch) return { state: { ...state, running: false } };
  const okInRow = result.ok ? state.okInRow + 1 : 0;
  const failInRow = result.ok ? 0 : state.failInRow + 1;
  const base: CheckerState = { ...state, okInRow, failInRow, detail: result.detail, running: false };
  if (result.ok && state.status !== 'up' && okInRow >= cfg.rise) {
    return { state: { ...base, status: 'up', since: state.startedAt }, change: { up: true, detail: result.detail } };
  }
  if (!result.ok && state.status !== 'down' && failInRow >= cfg.fall) {
    return { state: { ...base, status: 'down', since: state.startedAt }, change: { up: false, detail: result.detail } };
  }
  return { state: base };
}

/**
 * `hakit checker off|on`: turns a checker off or back on at `now`. Off: see the file comment (a
 * down checker reports up once). On: back to `unknown`, counts from zero, due at once. Setting
 * the current value again changes nothing and reports nothing.
 */
export function setEnabled(state: CheckerState, enabled: boolean, now: number): Observed {
  if (enabled === !state.disabled) return { state };
  if (enabled) return { state: { ...initialState(now, state.active), running: state.running, startedAt: state.startedAt, epoch: state.epoch + 1, runEpoch: state.runEpoch } };
  const off: CheckerState = { ...state, epoch: state.epoch + 1, disabled: true, okInRow: 0, failInRow: 0, status: 'unknown', since: now, detail: 'disabled by an administrator' };
  if (state.status === 'down') return { state: off, change: { up: true, detail: 'disabled by an administrator' } };
  return { state: off };
}

/**
 * The module entered (`active`) or left the states the checker runs in (schedule.ts `runsIn`).
 * Leaving: back to `unknown` so that a later start reports a fresh verdict, and the result of a
 * run still in progress is ignored. Entering: due at once. The admin switch is kept. Reports
 * nothing: the mirror core learns the fresh verdict when the checker has run again.
 */
export function setActive(state: CheckerState, active: boolean, now: number): CheckerState {
  if (active === state.active) return state;
  const fresh = initialState(now, active);
  return { ...fresh, disabled: state.disabled, detail: state.disabled ? state.detail : '', running: state.running, startedAt: state.startedAt, epoch: state.epoch + 1, runEpoch: state.runEpoch };
}

/** How `hakit status` shows a checker. */
export interface CheckerView {
  /** `idle`: the module is in a state the checker does not run in. */
  readonly status: CheckerStatus | 'disabled' | 'idle';
  readonly detail: string;
  /** Monotonic ms of the last change, null if none. */
  readonly since: number | null;
}

export function viewOf(state: CheckerState): CheckerView {
  return { status: state.disabled ? 'disabled' : !state.active ? 'idle' : state.status, detail: state.detail, since: state.since };
}
