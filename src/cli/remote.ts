/** CLI commands served by the daemon's API (src/api). Each resolves to an exit code. */
import type { ApiClient } from './client.js';
import type { Io } from './main.js';
import type { StatusReport, ModuleStatus, LogEntry } from '../api/types.js';

export async function commandStatus(api: ApiClient, io: Io, module: string | undefined, json: boolean): Promise<number> {
  const path = module ? `/v1/status?module=${encodeURIComponent(module)}` : '/v1/status';
  const report = await api.get<StatusReport>(path);
  if (json) {
    io.out(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  io.out(renderStatus(report, colours(io)));
  return 0;
}

/** A module command; `verify` also lists the paths that differ and exits 1 when there are any. */
export async function commandModule(api: ApiClient, io: Io, module: string, cmd: string, args: Record<string, unknown>): Promise<number> {
  const res = await api.post<{ message: string; differ?: string[] }>(`/v1/modules/${encodeURIComponent(module)}/commands`, { cmd, ...args });
  io.out(`${res.message}\n`);
  for (const d of res.differ ?? []) io.out(`  ${d}\n`);
  return (res.differ?.length ?? 0) > 0 ? 1 : 0;
}

export async function commandChecker(api: ApiClient, io: Io, module: string, on: boolean, name: string | undefined): Promise<number> {
  const res = await api.post<{ message: string }>(`/v1/modules/${encodeURIComponent(module)}/checkers`, name === undefined ? { on } : { on, name });
  io.out(`${res.message}\n`);
  return 0;
}

export async function commandLog(api: ApiClient, io: Io, module: string, lines: number): Promise<number> {
  const res = await api.get<{ entries: LogEntry[] }>(`/v1/modules/${encodeURIComponent(module)}/log?lines=${lines}`);
  for (const e of res.entries) {
    io.out(`${new Date(e.time).toISOString()} ${e.level.padEnd(5)} ${e.message}\n`);
  }
  return 0;
}

type Paint = (code: number, s: string) => string;

function colours(io: Io): Paint {
  const tty = process.stdout.isTTY === true && io.env.NO_COLOR === undefined;
  return tty ? (code, s) => `\x1b[${code}m${s}\x1b[0m` : (_code, s) => s;
}

function stateColour(m: { state: string; ready: boolean }): number {
  if (m.state === 'STOP') return 31;
  if (!m.ready || m.state === 'WAIT') return 33;
  return 32;
}

/** The human view of `hakit status`: one row per module, aligned columns. */
export function renderStatus(r: StatusReport, paint: Paint): string {
  const header = ['MODULE', 'KIND', 'STATE', 'REASON', 'PEER', 'VIP', 'DATA'];
  const rows = r.modules.map((m: ModuleStatus) => [
    m.name,
    m.kind,
    `${m.state} (${m.ready ? 'ready' : 'transient'})`,
    m.reason ?? '-',
    m.peer ? `${m.peer.name} ${m.peer.state}` : '-',
    m.vip.length ? m.vip.join(',') : '-',
    dataColumn(m),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[], colourise: boolean, m?: ModuleStatus) =>
    cells
      .map((c, i) => {
        const padded = c.padEnd(widths[i] ?? 0);
        return colourise && i === 2 && m ? paint(stateColour(m), padded) : padded;
      })
      .join('  ')
      .trimEnd();
  const out = [`node ${r.node}`, line(header, false)];
  r.modules.forEach((m, i) => out.push(line(rows[i] ?? [], true, m)));
  return `${out.join('\n')}\n`;
}

function dataColumn(m: ModuleStatus): string {
  const rep = m.replication;
  if (!rep) return '-';
  const rs = rep.resync;
  if (rs?.active) {
    const pct = rs.bytesTotal > 0 ? Math.floor((100 * rs.bytesDone) / rs.bytesTotal) : 0;
    const bar = '#'.repeat(Math.floor(pct / 10)).padEnd(10, '.');
    const speed = rs.bytesPerSec !== undefined && rs.bytesPerSec > 0 ? `, ${(rs.bytesPerSec / 1e6).toFixed(1)} MB/s${typeof rs.etaSeconds === 'number' ? `, ${rs.etaSeconds} s left` : ''}` : '';
    return `${rs.incremental === true ? 'incremental ' : ''}resync [${bar}] ${pct}% ${rs.filesDone}/${rs.filesTotal} files${speed}`;
  }
  const r = rep as typeof rep & { mode?: string; heldWrites?: number; dirtyPaths?: number; unacked?: boolean; changeLogComplete?: boolean; quarantine?: { dir: string; paths: number } | null };
  const kept = r.quarantine ? `, ${r.quarantine.paths} paths kept in quarantine (${r.quarantine.dir})` : '';
  const failed = rs?.failures !== undefined && rs.failures > 0
    ? `, ${rs.failures} ${rs.failures === 1 ? 'resync' : 'resyncs'} failed (next ${rs.retryInSeconds ? `in ${rs.retryInSeconds} s` : 'now'}): ${(rs.lastError ?? '?').slice(0, 160)}`
    : '';
  const base = `${rep.upToDate ? 'up to date' : 'not up to date'}${r.unacked === true ? ', may hold unacknowledged writes (full resync next)' : ''}${kept}${failed}`;
  // With replicated dirs: how this node replicates (docs/replication.md).
  if (r.mode === 'lost') return `${base}, replication lost: ${r.heldWrites ?? 0} writes held`;
  if (r.mode === 'alone') return `${base}, alone: ${r.dirtyPaths ?? 0} paths changed${r.changeLogComplete === false ? ' (change log incomplete: the next resync is full)' : ''}`;
  if (r.mode === 'sync') return `${base}, replicating`;
  if (r.mode === 'receiving') return `${base}, receiving`;
  return base;
}
