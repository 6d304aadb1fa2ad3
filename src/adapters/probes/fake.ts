/**
 * The in-memory twin of the probes (STYLE.md 3): no sockets, no processes. Each FakeProbe is
 * programmed with what its runs find: a result, or `hang` (the run never ends by itself). It is
 * bounded by the same `bounded()` as the real probes, on the given clock (a FakeClock in the
 * simulator), so a hanging fake times out with the same detail as a hanging real probe.
 *
 * FakeProbes is a ProbeFactory for the daemon's tests: one FakeProbe per `module/checker`,
 * created on first use (outcome: up), reachable with `probe(module, name)`.
 */
import type { CheckerConfig } from '../../core/config/types.js';
import { type Clock, realClock } from '../clock/index.js';
import { type CheckResult, type Probe, type ProbeContext, type ProbeFactory, bounded } from './probe.js';

export type FakeOutcome = CheckResult | 'hang';

export class FakeProbe implements Probe {
  private outcome: FakeOutcome;
  private readonly clock: Clock;
  /** Runs started so far. */
  runs = 0;
  /** Runs whose signal was aborted while in progress (timeout or caller's abort). */
  aborted = 0;

  /** The bound of each run, ms (FakeProbes sets it from the checker's config). */
  timeoutMs: number;

  constructor(timeoutMs: number, opts: { clock?: Clock; outcome?: FakeOutcome } = {}) {
    this.timeoutMs = timeoutMs;
    this.outcome = opts.outcome ?? { ok: true, detail: 'fake: up' };
    this.clock = opts.clock ?? realClock;
  }

  /** What the next runs find (runs in progress keep theirs). */
  set(outcome: FakeOutcome): void {
    this.outcome = outcome;
  }

  run(signal: AbortSignal): Promise<CheckResult> {
    return bounded((s) => this.check(s), this.timeoutMs, this.clock).run(signal);
  }

  private check(signal: AbortSignal): Promise<CheckResult> {
    this.runs++;
    const o = this.outcome;
    if (o !== 'hang') return Promise.resolve(o);
    return new Promise((resolve) => {
      signal.addEventListener('abort', () => {
        this.aborted++;
        resolve({ ok: false, detail: 'aborted' });
      }, { once: true });
    });
  }
}

export class FakeProbes {
  private readonly probes = new Map<string, FakeProbe>();
  constructor(private readonly opts: { clock?: Clock } = {}) {}

  /** The ProbeFactory to hand to the daemon. */
  readonly probeFor: ProbeFactory = (cfg: CheckerConfig, ctx: ProbeContext) => {
    const p = this.probe(ctx.module, cfg.name);
    p.timeoutMs = cfg.timeoutMs;
    return p;
  };

  /** The probe of checker `name` of `module` (created with outcome up and a 2 s bound until the daemon asks for it). */
  probe(module: string, name: string): FakeProbe {
    const key = `${module}/${name}`;
    let p = this.probes.get(key);
    if (p === undefined) {
      p = new FakeProbe(2000, this.opts.clock ? { clock: this.opts.clock } : {});
      this.probes.set(key, p);
    }
    return p;
  }
}
