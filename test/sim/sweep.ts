/**
 * Runs a range of seeds for a test file: fails with the seed and its trace on the first failure
 * that is not a known core finding; known findings are returned (the caller reports them).
 */
import assert from 'node:assert/strict';
import { knownFinding, report, runSeed, type RunResult } from './run.js';

export interface SweepResult {
  readonly runs: number;
  readonly known: ReadonlyArray<{ seed: number; finding: string }>;
  readonly totals: Readonly<Record<string, number>>;
}

export function sweep(from: number, count: number): SweepResult {
  const known: Array<{ seed: number; finding: string }> = [];
  const totals: Record<string, number> = {};
  for (let seed = from; seed < from + count; seed++) {
    const r: RunResult = runSeed(seed);
    for (const [k, v] of Object.entries(r.stats)) if (typeof v === 'number') totals[k] = (totals[k] ?? 0) + v;
    if (r.ok) continue;
    const finding = knownFinding(r);
    if (finding === null) assert.fail(`a promise is broken (DESIGN.md 3):\n${report(r)}`);
    known.push({ seed, finding });
  }
  return { runs: count, known, totals };
}

/** The runs exercised what they must, or passing proves nothing. */
export function assertCoverage(s: SweepResult): void {
  const t = s.totals;
  const need = (k: string, min: number): void => assert.ok((t[k] ?? 0) >= min, `only ${t[k] ?? 0} ${k} in ${s.runs} runs (want >= ${min}): the sweep no longer exercises this`);
  need('takeovers', s.runs / 10);
  need('swaps', s.runs / 10);
  need('crashes', s.runs / 2);
  need('shutdowns', s.runs / 4);
  need('episodes', s.runs / 20);
  need('staleChecks', s.runs / 20);
  need('refused', s.runs);
  need('hangs', s.runs / 20);
  // The data model (runs with replication, test/sim/data.ts).
  need('ackedChecks', s.runs);
  need('resyncsCompleted', s.runs / 10);
  need('resyncsIncremental', s.runs / 50);
  need('resyncsInterrupted', s.runs / 100);
  need('quarantines', s.runs / 500);
  need('replicationLost', s.runs / 200);
}
