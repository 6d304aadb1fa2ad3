// The rendering of npm run bench (issue 7): the table a user reads, the Markdown report and the
// failover chart must show the figures measured, with their units and ratios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue, markdownReport, markdownTable, niceStep, stampOf, svgChart, textTable, type SessionResult } from '../../bench/report.js';
import type { Metric } from '../../bench/stats.js';

const metrics: Metric[] = [
  { id: 'failover', figure: 'failover', title: 'hakit failover', unit: 'ms', samples: [2300, 2100, 2500], peer: 'failover-keepalived',
    goal: { max: 2500, ratioBelow: 1, text: 'median <= 2.5 s and below keepalived' } },
  { id: 'failover-keepalived', figure: 'failover-keepalived', title: 'keepalived failover', unit: 'ms', samples: [3600, 3700, 3500] },
  { id: 'cost.cpu.n1', figure: 'cost', title: 'cpu', unit: '%', samples: [1.5], goal: { max: 1, text: '< 1 % of a core' } },
  { id: 'cost.rss.n1', figure: 'cost', title: 'rss', unit: 'MiB', samples: [81.84], goal: { max: 150, text: '< 150 MB' } },
];

test('values are shown in their unit: ms as seconds, % and MiB; no value as -', () => {
  assert.equal(formatValue('ms', 2290), '2.290 s');
  assert.equal(formatValue('%', 0.456), '0.46 %');
  assert.equal(formatValue('MiB', 81.84), '81.8 MiB');
  assert.equal(formatValue('ms', NaN), '-');
  assert.equal(formatValue('ms', 0.4123), '0.412 ms', 'latencies below 100 ms are shown in ms');
  assert.equal(formatValue('MB/s', 412.34), '412.3 MB/s');
  assert.equal(formatValue('files/s', 1234.56), '1234.6 files/s');
});

test('the text table has one line per metric with median, min, max, runs, ratio and the goal verdict', () => {
  const lines = textTable(metrics).trimEnd().split('\n');
  assert.equal(lines.length, 2 + metrics.length);
  const fo = lines.find((l) => l.startsWith('failover '))!;
  assert.match(fo, /2\.300 s\s+2\.100 s\s+2\.500 s\s+3\s+0\.64x\s+failover-keepalived\s+met \(median <= 2\.5 s/);
  assert.match(lines.find((l) => l.startsWith('cost.cpu.n1'))!, /1\.50 %.*NOT met \(< 1 % of a core\)/);
});

test('failed runs are shown next to the run count', () => {
  const t = textTable([{ ...metrics[1]!, failures: 2 }]);
  assert.match(t, /3 \(\+2 failed\)/);
});

test('the Markdown table has a header, an alignment row and one row per metric', () => {
  const lines = markdownTable(metrics).trimEnd().split('\n');
  assert.equal(lines.length, 2 + metrics.length);
  assert.equal(lines[0], '| figure | median | min | max | runs | ratio | peer | goal |');
  assert.match(lines[2]!, /^\| failover \| 2\.300 s \| 2\.100 s \| 2\.500 s \| 3 \| 0\.64x \|/);
});

const session = (figures: SessionResult['figures']): SessionResult => ({
  stamp: '2025-01-31-1012', started: '2025-01-31T10:12:00.000Z', durationMs: 300_000,
  machine: { cpus: 2, cpuModel: 'X', kernel: '6.1', node: 'v20', keepalived: '2.2.7' },
  options: { quick: false, runs: null, only: [] }, figures, metrics,
});

test('the Markdown report embeds the chart, lists every sample and names a failed figure with its error', () => {
  const md = markdownReport(session([{ name: 'failover', durationMs: 60_000 }, { name: 'swap', durationMs: 1000, error: 'boom' }]), '2025-01-31-1012-failover.svg');
  assert.match(md, /!\[failover outage per run, hakit vs keepalived\]\(2025-01-31-1012-failover\.svg\)/);
  assert.match(md, /`failover`: hakit failover\. Samples: 2\.300 s, 2\.100 s, 2\.500 s\./);
  assert.match(md, /swap: 1\.0 s — \*\*failed\*\*: boom/);
  assert.doesNotMatch(md, /Every figure completed/);
  assert.match(md, /keepalived 2\.2\.7/);
});

test('the session stamp is the UTC minute, usable as a file name', () => {
  assert.equal(stampOf(new Date('2025-01-31T10:12:59.999Z')), '2025-01-31-1012');
});

test('nice tick steps are 1, 2 or 5 times a power of ten', () => {
  assert.equal(niceStep(4), 1);
  assert.equal(niceStep(3.62), 1);
  assert.equal(niceStep(9), 2);
  assert.equal(niceStep(0.4), 0.1);
  assert.equal(niceStep(0), 1);
});

test('the SVG chart is one document with a dot per run per series and a legend with the medians', () => {
  const svg = svgChart('Failover & more', [
    { label: 'hakit', color: '#1f77b4', values: [2300, 2100, 2500] },
    { label: 'keepalived', color: '#d62728', values: [3600, 3700] },
    { label: 'empty', color: '#000', values: [] },
  ], 2500);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.equal((svg.match(/<circle /g) ?? []).length, 5);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
  assert.match(svg, /hakit: median 2\.300 s/);
  assert.match(svg, /keepalived: median 3\.650 s/);
  assert.match(svg, /empty: no sample/);
  assert.match(svg, /Failover &amp; more/, 'text is XML-escaped');
  assert.match(svg, /goal 2\.5 s/);
  // The y axis reaches at least the largest value: no dot is drawn above the plot area (y >= 60),
  // where the legend is.
  for (const m of svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)) assert.ok(Number(m[1]) >= 60);
});
