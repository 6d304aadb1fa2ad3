/**
 * The contract of one bench figure. A figure builds its own testbed, measures, and removes what it
 * built (also when it fails); it returns its metrics, or records them in `ctx.emit` as they are
 * known, so that a figure failing half-way still reports what it measured.
 */
import type { Metric } from '../stats.js';

export interface FigureContext {
  /** Runs asked for with --runs, else the figure's default (or its quick default with --quick). */
  runs: number;
  quick: boolean;
  /** --scale: the long variants too (the scale figure's 1 M-file tree). */
  scale: boolean;
  /** Progress line for the terminal. */
  log(msg: string): void;
  /** Directory for this figure's logs (daemon logs, probe stderr, keepalived output). */
  logDir: string;
}

export interface Figure {
  /** The name for `--only`. */
  name: string;
  /** Default run count, and with --quick. */
  runs: { full: number; quick: number };
  /**
   * Measures. `metrics` is owned by the caller: push each metric once and fill its samples as
   * runs complete; throw on failure (the samples so far are kept in the report).
   */
  run(ctx: FigureContext, metrics: Metric[]): Promise<void>;
}
