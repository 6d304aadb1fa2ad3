/**
 * The statistics of `npm run bench` (pure: no I/O, no clock). A figure produces metrics, each a
 * list of samples in one unit; the report shows each metric's median, min, max and run count and
 * the ratio of its median to the median of its peer measured in the same session.
 */

/**
 * What a figure measured. Units: 'ms' (durations), '%' (of one CPU core), 'MiB' (memory), 'MB'
 * (10^6 bytes, e.g. on the wire): smaller
 * is better; 'MB/s' (10^6 bytes a second) and 'files/s' (rates): larger is better.
 */
export interface Metric {
  /** Stable id, e.g. 'failover', 'failover-keepalived', 'swap.gap', 'cost.cpu.n1'. */
  id: string;
  /** The figure (`--only NAME`) that produced it. */
  figure: string;
  /** One line for a human, e.g. 'hakit failover: SIGKILL of the primary -> first success'. */
  title: string;
  unit: Unit;
  /** One value per completed run, in run order. */
  samples: number[];
  /** Runs that were attempted but produced no sample (e.g. no takeover within the bound). */
  failures?: number;
  /** Id of the metric this one is compared with: ratio = median(this) / median(peer). */
  peer?: string;
  /** The goal the figure is judged against (from the issues). */
  goal?: Goal;
}

export type Unit = 'ms' | '%' | 'KiB' | 'MiB' | 'MB' | 'MB/s' | 'files/s' | 'writes/s';

/** True for the rate units (MB/s, files/s, writes/s), where a larger value (and ratio) is better. */
export function higherIsBetter(unit: Unit): boolean {
  return unit === 'MB/s' || unit === 'files/s' || unit === 'writes/s';
}

export interface Goal {
  /** The median must be at most this, in the metric's unit. */
  max?: number;
  /** The median must be at least this, in the metric's unit. */
  min?: number;
  /** The ratio to the peer must be below this (e.g. 1: faster than the peer). */
  ratioBelow?: number;
  /** The ratio to the peer must be at least this (e.g. 0.5: half the local throughput or more). */
  ratioAtLeast?: number;
  /** The goal as the report states it, e.g. 'median <= 2.5 s and below keepalived'. */
  text: string;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** One line of the result table. `ratio` is null without a peer or when a side has no sample. */
export interface Row extends Summary {
  id: string;
  figure: string;
  title: string;
  unit: Metric['unit'];
  failures: number;
  peer: string | null;
  ratio: number | null;
  goal: string | null;
  /** null when there is no goal, or no sample to judge. */
  goalMet: boolean | null;
}

/** Median (mean of the two middle values for an even count); NaN for no sample. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The p-th percentile (0 < p <= 100) by the nearest-rank rule: the smallest sample with at least
 * p % of the samples at or below it (p99 of 500 samples is the 495th smallest). NaN for no sample.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

/** Median, min, max and count of the samples; NaN fields when there is none. */
export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 };
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

/**
 * The table rows, in metric order: each metric summarized, its ratio to its peer (null when the
 * peer was not measured in this session or has no sample) and whether its goal is met.
 */
export function rows(metrics: readonly Metric[]): Row[] {
  const byId = new Map(metrics.map((m) => [m.id, m]));
  return metrics.map((m) => {
    const s = summarize(m.samples);
    const p = m.peer ? byId.get(m.peer) : undefined;
    const pm = p ? median(p.samples) : NaN;
    const ratio = Number.isFinite(s.median) && Number.isFinite(pm) && pm !== 0 ? s.median / pm : null;
    return {
      id: m.id, figure: m.figure, title: m.title, unit: m.unit, ...s, failures: m.failures ?? 0,
      peer: m.peer ?? null, ratio, goal: m.goal?.text ?? null, goalMet: judge(m.goal, s, ratio, m.failures ?? 0),
    };
  });
}

/**
 * Whether a goal is met: every attempted run produced a sample, the median is at most `max` and at
 * least `min`, and the ratio is below `ratioBelow` and at least `ratioAtLeast` (a goal on the
 * ratio is not met when the peer is missing). null when there is no goal or no sample.
 */
export function judge(goal: Goal | undefined, s: Summary, ratio: number | null, failures: number): boolean | null {
  if (!goal || s.runs === 0) return null;
  if (failures > 0) return false;
  if (goal.max !== undefined && !(s.median <= goal.max)) return false;
  if (goal.min !== undefined && !(s.median >= goal.min)) return false;
  if (goal.ratioBelow !== undefined && (ratio === null || !(ratio < goal.ratioBelow))) return false;
  if (goal.ratioAtLeast !== undefined && (ratio === null || !(ratio >= goal.ratioAtLeast))) return false;
  return true;
}
