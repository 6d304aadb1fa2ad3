/**
 * When checkers run (STYLE.md 7, 9). Pure: `now` is monotonic milliseconds given by the caller.
 *
 * The daemon keeps one CheckerStates per module and drives it like this (probes run out of the
 * timing path; the state machine never waits for one):
 *
 *   states = initStates(cfgs, roleOf(state, ready), now)
 *   on every module transition:  states = withRole(states, cfgs, roleOf(to, ready), now)
 *   loop: const { due, wakeAt } = schedule(states, now)
 *         for each name in due: states[name] = started(states[name], now, cfg.intervalMs)
 *                               run its probe (bounded by cfg.timeoutMs); when it resolves:
 *                               { state, change } = observe(states[name], result, cfg)
 *                               change → mirror event { type: 'checker', now, name, up, action }
 *         sleep until wakeAt (or until a result, a transition or `hakit checker on` arrives)
 *
 * Runs are fixed-rate: a checker is due `intervalMs` after its previous run started, never while
 * its previous run is still in progress (a run that outlives its interval delays the next).
 */
import type { CheckerConfig, ProcessClass } from '../config/types.js';
import { type CheckerState, initialState, setActive } from './hysteresis.js';

/**
 * Where a module is, as far as checkers care: `prim` (PRIM, ALONE, a farm's UP), `second`
 * (SECOND), `wait` (WAIT), `stop` (STOP), and `transient` while a transition runs its scripts
 * (no checker runs then; every checker starts from `unknown` once the module has settled, so a
 * verdict the core could not act on during the transition is reported again).
 */
export type CheckerRole = 'prim' | 'second' | 'wait' | 'stop' | 'transient';

/** The role of a module in state `name` (MirrorStatus.state, or a farm's UP) with its `ready` flag. */
export function roleOf(name: string, ready: boolean): CheckerRole {
  if (!ready) return 'transient';
  switch (name) {
    case 'PRIM': case 'ALONE': case 'UP': return 'prim';
    case 'SECOND': return 'second';
    case 'WAIT': return 'wait';
    default: return 'stop';
  }
}

/**
 * On which role a checker runs: a process checker's `class`; `vip` on the primary (only the
 * primary holds the VIP); `tcp`, `http` and `custom` watch the application, which runs on the
 * primary, unless their action is `wait` (then they watch something the module depends on, on
 * both); `ping`, `interface`, `module` and `splitbrain` on both.
 */
export function classOf(cfg: CheckerConfig): ProcessClass {
  switch (cfg.type) {
    case 'process': return cfg.class;
    case 'vip': return 'prim';
    case 'tcp': case 'http': case 'custom': return cfg.action === 'wait' ? 'both' : 'prim';
    default: return 'both';
  }
}

/**
 * Whether `cfg` runs while the module has `role`. In WAIT, checkers of class `both` run, and
 * every checker with action `wait` (it must run to release the module it holds there).
 */
export function runsIn(cfg: CheckerConfig, role: CheckerRole): boolean {
  const cls = classOf(cfg);
  switch (role) {
    case 'prim': return cls !== 'second';
    case 'second': return cls !== 'prim';
    case 'wait': return cls === 'both' || (cfg.type !== 'splitbrain' && cfg.action === 'wait');
    default: return false;
  }
}

/** A run of the checker starts at `now`: next due `intervalMs` later. */
export function started(state: CheckerState, now: number, intervalMs: number): CheckerState {
  return { ...state, running: true, startedAt: now, dueAt: now + intervalMs, runEpoch: state.epoch };
}

/** Checker states of a module by checker name. */
export type CheckerStates = Readonly<Record<string, CheckerState>>;

/** Fresh states for a module's checkers, the active ones due at `now`. */
export function initStates(cfgs: readonly CheckerConfig[], role: CheckerRole, now: number): CheckerStates {
  const out: Record<string, CheckerState> = {};
  for (const c of cfgs) out[c.name] = initialState(now, runsIn(c, role));
  return out;
}

/** The module's role changed: (de)activates each checker (hysteresis.ts `setActive`). */
export function withRole(states: CheckerStates, cfgs: readonly CheckerConfig[], role: CheckerRole, now: number): CheckerStates {
  const out: Record<string, CheckerState> = {};
  for (const c of cfgs) {
    const s = states[c.name] ?? initialState(now, false);
    out[c.name] = setActive(s, runsIn(c, role), now);
  }
  return out;
}

export interface Schedule {
  /** Checkers to start now, in the order of `states`. */
  readonly due: string[];
  /** The earliest later time a checker becomes due (monotonic ms), null if none will without a change. */
  readonly wakeAt: number | null;
}

/** Which checkers are due at `now` (active, enabled, not running, dueAt <= now) and when to look again. */
export function schedule(states: CheckerStates, now: number): Schedule {
  const due: string[] = [];
  let wakeAt: number | null = null;
  for (const [name, s] of Object.entries(states)) {
    if (!s.active || s.disabled || s.running) continue;
    if (s.dueAt <= now) due.push(name);
    else if (wakeAt === null || s.dueAt < wakeAt) wakeAt = s.dueAt;
  }
  return { due, wakeAt };
}
