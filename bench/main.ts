/**
 * `npm run bench [-- --only NAME[,NAME]] [--quick] [--runs N] [--scale] [--out DIR]`: runs the figures of
 * bench/figures in order, prints the table, and writes <out>/<stamp>.json, <stamp>.md and (when a
 * failover figure ran) <stamp>-failover.svg. <out> is bench/results for a full run (all figures,
 * not --quick: meant to be committed) and bench/results/tmp otherwise (git-ignored).
 * Exit code 0 when every figure completed, 1 when one failed, 2 on bad arguments. Speed goals are
 * reported, never enforced by the exit code. See docs/bench.md.
 */
import { spawnSync } from 'node:child_process';
import { cpus, release } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from '../test/testbed/cluster.js';
import { sweep } from '../test/testbed/index.js';
import { FAILOVER_GOAL } from './figures/failover.js';
import { FIGURES } from './figures/index.js';
import { assertKeepalivedConfined, monoMs } from './harness.js';
import { markdownReport, stampOf, svgChart, textTable, type SessionResult } from './report.js';
import type { Metric } from './stats.js';

const USAGE = 'usage: npm run bench [-- --only NAME[,NAME...]] [--quick] [--runs N] [--scale] [--out DIR]\n' +
  `figures: ${FIGURES.map((f) => f.name).join(', ')}\n` +
  '--scale: the scale figure also measures a tree of 1 000 000 files (one run, about 15 minutes more)\n';

/** The installed keepalived's version (it prints `Keepalived vX.Y.Z` on stderr), or null. */
function keepalivedVersion(): string | null {
  const r = spawnSync('keepalived', ['--version'], { encoding: 'utf8' });
  return /Keepalived v(\S+)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? null;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { only: { type: 'string', multiple: true }, quick: { type: 'boolean', default: false }, runs: { type: 'string' }, scale: { type: 'boolean', default: false }, out: { type: 'string' }, help: { type: 'boolean', default: false } } }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const only = (args.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((n) => !FIGURES.some((f) => f.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown figure ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const runs = args.runs === undefined ? null : Number(args.runs);
  if (runs !== null && !(Number.isInteger(runs) && runs >= 1)) {
    process.stderr.write(`--runs takes a whole number >= 1, not ${args.runs}\n`);
    return 2;
  }
  const quick = args.quick ?? false;
  const scaleRun = args.scale ?? false;
  const selected = only.length === 0 ? FIGURES : FIGURES.filter((f) => only.includes(f.name));
  const full = !quick && only.length === 0;
  const outDir = args.out ?? join(REPO, full ? 'bench/results' : 'bench/results/tmp');
  const started = new Date();
  const stamp = stampOf(started);
  const logDir = join(REPO, 'bench/results/tmp', `${stamp}-logs`);
  mkdirSync(outDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });

  await sweep();
  assertKeepalivedConfined();
  const t0 = monoMs();
  const metrics: Metric[] = [];
  const figures: SessionResult['figures'] = [];
  for (const f of selected) {
    const n = runs ?? (quick ? f.runs.quick : f.runs.full);
    process.stdout.write(`== ${f.name} (${n} run${n === 1 ? '' : 's'}${quick ? ', quick' : ''})\n`);
    const ft = monoMs();
    try {
      await f.run({ runs: n, quick, scale: scaleRun, logDir, log: (m) => process.stdout.write(`   ${m}\n`) }, metrics);
      figures.push({ name: f.name, durationMs: monoMs() - ft });
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      process.stdout.write(`   FAILED: ${msg}\n`);
      figures.push({ name: f.name, durationMs: monoMs() - ft, error: msg });
    }
  }
  const cpu = cpus();
  const result: SessionResult = {
    stamp, started: started.toISOString(), durationMs: monoMs() - t0,
    machine: { cpus: cpu.length, cpuModel: cpu[0]?.model.trim() ?? '?', kernel: release(), node: process.version, keepalived: keepalivedVersion() },
    options: { quick, runs, only, scale: scaleRun }, figures, metrics,
  };
  const failover = metrics.filter((m) => m.id === 'failover' || m.id === 'failover-keepalived');
  let chart: string | null = null;
  if (failover.length > 0) {
    chart = `${stamp}-failover.svg`;
    writeFileSync(join(outDir, chart), svgChart('Failover outage per run (SIGKILL of the primary host)',
      failover.map((m) => ({ label: m.id === 'failover' ? 'hakit' : 'keepalived', color: m.id === 'failover' ? '#1f77b4' : '#d62728', values: m.samples })), FAILOVER_GOAL.max));
  }
  writeFileSync(join(outDir, `${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(outDir, `${stamp}.md`), markdownReport(result, chart));
  process.stdout.write(`\n${textTable(metrics)}\n`);
  process.stdout.write(`took ${(result.durationMs / 1000).toFixed(0)} s; wrote ${join(outDir, `${stamp}.json`)} and .md${chart ? ` and ${chart}` : ''}; logs in ${logDir}\n`);
  return figures.some((f) => f.error !== undefined) ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
