/**
 * Rendering of a bench session (pure: no I/O): the terminal table, the Markdown report and the
 * hand-written SVG chart of failover outage per run.
 */
import { median, rows, type Metric, type Row } from './stats.js';

/** Everything a session writes to bench/results/<stamp>.json. */
export interface SessionResult {
  /** File name stem, e.g. '2025-01-31-1012' (UTC). */
  stamp: string;
  /** ISO time the session started. */
  started: string;
  durationMs: number;
  machine: { cpus: number; cpuModel: string; kernel: string; node: string; keepalived: string | null };
  options: { quick: boolean; runs: number | null; only: string[]; scale?: boolean };
  /** One entry per figure run, in order; `error` when it failed (its metrics may be partial). */
  figures: { name: string; durationMs: number; error?: string }[];
  metrics: Metric[];
}

/** The file name stem of a session started at `d`: UTC 'YYYY-MM-DD-HHMM'. */
export function stampOf(d: Date): string {
  return d.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
}

/**
 * A value in its unit for a table: ms as seconds with 3 decimals (below 100 ms: as ms with 3
 * decimals, for latencies), % with 2, MiB, MB/s and files/s with 1.
 */
export function formatValue(unit: Metric['unit'], v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (unit === 'ms') return Math.abs(v) < 100 ? `${v.toFixed(3)} ms` : `${(v / 1000).toFixed(3)} s`;
  if (unit === '%') return `${v.toFixed(2)} %`;
  return `${v.toFixed(1)} ${unit}`;
}

export function formatRatio(r: number | null): string {
  return r === null ? '-' : `${r.toFixed(2)}x`;
}

function goalCell(r: Row): string {
  if (r.goal === null) return '';
  return `${r.goalMet === null ? '?' : r.goalMet ? 'met' : 'NOT met'} (${r.goal})`;
}

const HEAD = ['figure', 'median', 'min', 'max', 'runs', 'ratio', 'peer', 'goal'];

function cells(r: Row): string[] {
  return [r.id, formatValue(r.unit, r.median), formatValue(r.unit, r.min), formatValue(r.unit, r.max),
    r.failures > 0 ? `${r.runs} (+${r.failures} failed)` : String(r.runs), formatRatio(r.ratio), r.peer ?? '', goalCell(r)];
}

/** The result table as aligned plain text (one line per metric, a header and a rule). */
export function textTable(metrics: readonly Metric[]): string {
  const body = rows(metrics).map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 || i >= 6 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') + '\n';
}

/** The result table as a Markdown table. */
export function markdownTable(metrics: readonly Metric[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const body = rows(metrics).map((r) => cells(r).map(esc));
  return [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i >= 1 && i <= 5 ? '---:' : '---')).join('|')}|`,
    ...body.map((c) => `| ${c.join(' | ')} |`)].join('\n') + '\n';
}

/** The Markdown report of a session; `chartFile` (relative to the report) is embedded when given. */
export function markdownReport(s: SessionResult, chartFile: string | null): string {
  const m = s.machine;
  const out = [
    `# hakit bench ${s.stamp}`,
    '',
    `Started ${s.started}, took ${(s.durationMs / 1000).toFixed(0)} s. ${s.options.quick ? '**--quick** (smoke run: too few runs to compare). ' : ''}` +
      `${s.options.only.length > 0 ? `Only: ${s.options.only.join(', ')}. ` : ''}${s.options.runs !== null ? `--runs ${s.options.runs}. ` : ''}${s.options.scale === true ? '--scale. ' : ''}`,
    '',
    `Machine: ${m.cpus} x ${m.cpuModel}, Linux ${m.kernel}, Node ${m.node}, keepalived ${m.keepalived ?? 'not installed'}.`,
    '',
    'How to read this: see docs/bench.md. Ratio = median / median of the peer measured in the same session: for durations, CPU and memory below 1 means hakit is better; for rates (MB/s, files/s) above 1.',
    '',
    markdownTable(s.metrics),
  ];
  for (const met of s.metrics) {
    out.push(`- \`${met.id}\`: ${met.title}. Samples: ${met.samples.length > 0 ? met.samples.map((v) => formatValue(met.unit, v)).join(', ') : 'none'}.`);
  }
  out.push('');
  if (chartFile !== null) out.push('## Failover outage per run', '', `![failover outage per run, hakit vs keepalived](${chartFile})`, '');
  const failed = s.figures.filter((f) => f.error !== undefined);
  out.push('## Figures', '');
  for (const f of s.figures) out.push(`- ${f.name}: ${(f.durationMs / 1000).toFixed(1)} s${f.error !== undefined ? ` — **failed**: ${f.error}` : ''}`);
  if (failed.length === 0) out.push('', 'Every figure completed.');
  return out.join('\n') + '\n';
}

export interface Series {
  label: string;
  /** CSS colour, e.g. '#1f77b4'. */
  color: string;
  values: readonly number[];
}

/** A "nice" tick step (1, 2 or 5 times a power of ten) giving about `count` ticks up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * A line chart as a standalone SVG document: x = run number (1..n), y = value in seconds (values
 * are ms), one polyline with dots per series, the y axis from 0 with nice ticks, a legend above
 * the plot with each series' median, and `goalMs` as a dashed line when given. Empty series are
 * listed in the legend as 'no sample'.
 */
export function svgChart(title: string, series: readonly Series[], goalMs?: number): string {
  const W = 640, H = 380, L = 60, R = 20, T = 60, B = 50;
  const n = Math.max(1, ...series.map((s) => s.values.length));
  const maxV = Math.max(0, goalMs ?? 0, ...series.flatMap((s) => s.values)) / 1000;
  const step = niceStep(maxV || 1);
  const top = Math.max(step, Math.ceil(maxV / step) * step);
  const x = (i: number) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v: number) => T + (H - T - B) * (1 - v / 1000 / top);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${xmlEscape(title)}</text>`,
  ];
  for (let t = 0; t <= top + step / 1e6; t += step) {
    const yy = T + (H - T - B) * (1 - t / top);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${Number(t.toPrecision(6))}</text>`);
  }
  for (let i = 0; i < n; i++) parts.push(`<text x="${x(i).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${i + 1}</text>`);
  parts.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">run</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">outage (s)</text>`);
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${s.color}"/>`);
    }
    const med = s.values.length === 0 ? null : median(s.values);
    const lx = L + k * 200;
    parts.push(`<rect x="${lx}" y="32" width="12" height="12" fill="${s.color}"/>`,
      `<text x="${lx + 18}" y="42">${xmlEscape(s.label)}: ${med === null ? 'no sample' : `median ${(med / 1000).toFixed(3)} s`}</text>`);
  });
  if (goalMs !== undefined) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(goalMs).toFixed(1)}" y2="${y(goalMs).toFixed(1)}" stroke="#2ca02c" stroke-dasharray="6 4"/>`,
      `<text x="${W - R - 4}" y="${(y(goalMs) - 4).toFixed(1)}" text-anchor="end" fill="#2ca02c">goal ${goalMs / 1000} s</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
