/**
 * The deterministic simulator from the command line (docs/simulator.md):
 *   npm run sim -- --seed S            replay one seed, print its full trace (exit 1 if it fails)
 *   npm run sim -- --seeds N [--from F] run seeds F..F+N-1 (default 1000 from 1), print failures
 *                                      (exit 1 only for a failure that is not a known finding)
 *   options: --fault-ms MS, --heal-ms MS (simulated durations), --quiet,
 *            --work-around-known-bugs (the old workarounds for core findings 3, 4, 8; docs/simulator.md)
 *            --expose-known-bugs (accepted: no workaround is the default now)
 */
import { parseArgs } from 'node:util';
import { knownFinding, report, runSeed, type RunResult } from '../test/sim/run.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' }, seeds: { type: 'string' }, from: { type: 'string' },
    'fault-ms': { type: 'string' }, 'heal-ms': { type: 'string' }, quiet: { type: 'boolean' }, 'expose-known-bugs': { type: 'boolean' }, 'work-around-known-bugs': { type: 'boolean' },
  },
});

function int(name: string, v: string | undefined, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) { process.stderr.write(`--${name} wants a non-negative integer, got ${v}\n`); process.exit(2); }
  return n;
}

const opts = { faultMs: int('fault-ms', values['fault-ms'], undefined), healMs: int('heal-ms', values['heal-ms'], undefined) };
const clean = { ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)), workAroundKnownBugs: values['work-around-known-bugs'] === true };

if (values.seed !== undefined) {
  const seed = int('seed', values.seed, 0) ?? 0;
  const r = runSeed(seed, { ...clean, traceSize: Infinity });
  process.stdout.write(`${report(r)}\n`);
  process.stdout.write(`stats: ${JSON.stringify(r.stats)}\n`);
  process.exit(r.ok ? 0 : 1);
}

const n = int('seeds', values.seeds, 1000) ?? 1000;
const from = int('from', values.from, 1) ?? 1;
const t0 = performance.now();
const failed: RunResult[] = [];
const totals: Record<string, number> = {};
for (let s = from; s < from + n; s++) {
  const r = runSeed(s, clean);
  for (const [k, v] of Object.entries(r.stats)) if (typeof v === 'number') totals[k] = (totals[k] ?? 0) + v;
  if (!r.ok) {
    failed.push(r);
    const known = knownFinding(r);
    if (!values.quiet) process.stdout.write(`${report(r).split('\n')[0] ?? ''}${known ? `\n  (known ${known})` : ''}\n`);
  }
}
const secs = (performance.now() - t0) / 1000;
const known = failed.filter((r) => knownFinding(r) !== null).length;
process.stdout.write(`${n} seeds (${from}..${from + n - 1}) in ${secs.toFixed(1)} s: ${n - failed.length} ok, ${failed.length} failed (${known} of them known findings)\n`);
process.stdout.write(`totals: ${JSON.stringify(totals)}\n`);
// Known findings are diagnostics (as in the sweep tests): only a new failure fails the run.
const fresh = failed.filter((r) => knownFinding(r) === null);
if (failed.length > 0) {
  const first = fresh[0] ?? failed[0]!;
  process.stdout.write(`\nfirst ${fresh.length > 0 ? 'new ' : 'known '}failure, last trace entries:\n${report(first)}\n`);
  if (fresh.length > 0) process.exit(1);
}
