/**
 * Runs the checkers of one module (issue 6 items 1-2): schedules each probe by its interval while
 * the module is in a state the checker runs in, applies rise/fall (src/core/checkers) and reports
 * each change to the module's runtime, which feeds it to the state machine as a `checker` event.
 *
 * Out of the timing path (DESIGN.md 3 promise 8): a probe run is asynchronous I/O bounded by the
 * checker's timeout; nothing here blocks the event loop or waits in the heartbeat path.
 * The `splitbrain` checker has no action and is not run here: the module runtime pings its
 * witnesses and talks to its arbitrator, and shows it in status (mirror-runtime.ts).
 */
import type { Clock, TimerHandle } from '../adapters/clock/index.js';
import type { Probe, ProbeContext, ProbeFactory } from '../adapters/probes/index.js';
import {
  initStates, observe, roleOf, schedule, setEnabled, started, viewOf, withRole, type CheckerStates, type CheckerView,
} from '../core/checkers/index.js';
import type { CheckerAction, CheckerConfig } from '../core/config/index.js';
import { HakitError } from '../core/errors.js';

type Acting = Exclude<CheckerConfig, { type: 'splitbrain' }>;

export interface CheckerChangeEvent {
  readonly name: string;
  readonly up: boolean;
  readonly action: CheckerAction;
  readonly detail: string;
}

/** A checker as `hakit status` shows it. */
export interface CheckerStatusView extends Omit<CheckerView, 'status'> {
  readonly type: string;
  readonly action: CheckerAction | null;
  readonly status: CheckerView['status'] | 'not-implemented';
}

export class CheckerRunner {
  private readonly acting: Acting[];
  private readonly ignored: CheckerConfig[];
  private readonly probes = new Map<string, Probe>();
  private states: CheckerStates;
  private timer: TimerHandle | null = null;
  private readonly stopping = new AbortController();

  constructor(
    cfgs: readonly CheckerConfig[],
    probeFor: ProbeFactory,
    ctx: ProbeContext,
    private readonly clock: Clock,
    private readonly onChange: (c: CheckerChangeEvent) => void,
  ) {
    this.acting = cfgs.filter((c): c is Acting => c.type !== 'splitbrain');
    this.ignored = cfgs.filter((c) => c.type === 'splitbrain');
    for (const c of this.acting) this.probes.set(c.name, probeFor(c, ctx));
    this.states = initStates(this.acting, 'stop', clock.now());
  }

  /** The module's visible state changed: (de)activates checkers by their class, then runs what is due. */
  setRole(state: string, ready: boolean): void {
    this.states = withRole(this.states, this.acting, roleOf(state, ready), this.clock.now());
    this.wake();
  }

  /**
   * `hakit checker on|off MODULE [NAME]`: every checker of the module, or the one named.
   * Returns the names changed; throws HakitError NO_CHECKER for an unknown name.
   */
  setEnabled(on: boolean, name?: string): string[] {
    const names = name === undefined ? this.acting.map((c) => c.name) : [name];
    for (const n of names) {
      if (!this.states[n]) {
        const known = [...this.acting, ...this.ignored].map((c) => c.name);
        throw new HakitError('NO_CHECKER', { checker: n, known: known.join(', ') || 'none' });
      }
    }
    const changed: string[] = [];
    const now = this.clock.now();
    for (const n of names) {
      const before = this.states[n]!;
      const o = setEnabled(before, on, now);
      if (o.state !== before) changed.push(n);
      this.states = { ...this.states, [n]: o.state };
      if (o.change) this.report(n, o.change.up, o.change.detail);
    }
    this.wake();
    return changed;
  }

  views(): Record<string, CheckerStatusView> {
    const out: Record<string, CheckerStatusView> = {};
    for (const c of this.acting) out[c.name] = { type: c.type, action: c.action, ...viewOf(this.states[c.name]!) };
    for (const c of this.ignored) out[c.name] = { type: c.type, action: null, status: 'unknown', detail: 'run by the module runtime', since: null };
    return out;
  }

  /** Stops scheduling and aborts the runs in progress. */
  stop(): void {
    this.stopping.abort();
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = null;
  }

  /** Starts every due checker and sets the timer for the next one. */
  private wake(): void {
    if (this.stopping.signal.aborted) return;
    const now = this.clock.now();
    const { due, wakeAt } = schedule(this.states, now);
    for (const name of due) this.runOne(name, now);
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = wakeAt === null ? null : this.clock.setTimer(wakeAt - now, () => { this.timer = null; this.wake(); });
  }

  private runOne(name: string, now: number): void {
    const cfg = this.acting.find((c) => c.name === name)!;
    this.states = { ...this.states, [name]: started(this.states[name]!, now, cfg.intervalMs) };
    void this.probes.get(name)!.run(this.stopping.signal).then((result) => {
      if (this.stopping.signal.aborted) return;
      const o = observe(this.states[name]!, result, cfg);
      this.states = { ...this.states, [name]: o.state };
      if (o.change) this.report(name, o.change.up, o.change.detail);
      this.wake();
    });
  }

  private report(name: string, up: boolean, detail: string): void {
    const cfg = this.acting.find((c) => c.name === name)!;
    this.onChange({ name, up, action: cfg.action, detail });
  }
}
