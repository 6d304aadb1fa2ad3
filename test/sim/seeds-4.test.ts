// The simulator sweep, seeds 7501..10000 (docs/simulator.md; DESIGN.md 3 promises 1, 3, 7; STYLE.md 5).
// Four files of 2500 seeds each run side by side under `npm test` (test.sh --test-concurrency=2).
import { test } from 'node:test';
import { assertCoverage, sweep } from './sweep.js';

test('seeds 7501..10000: one writer, no stale primary, refusals change nothing, convergence after heal', (t) => {
  const s = sweep(7501, 2500);
  for (const k of s.known) t.diagnostic(`seed ${k.seed}: known ${k.finding}`);
  assertCoverage(s);
});
