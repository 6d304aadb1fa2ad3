/** CLI commands that run locally, without a daemon. Each resolves to an exit code. */
import { loadConfigDir } from '../adapters/configfs/index.js';
import { formatIssue } from '../core/config/index.js';
import { generateKey } from '../adapters/key/cluster-key.js';
import type { Io } from './main.js';

/** `hakit config check`: prints every error as `file:line: field: message`; 0 valid, 1 invalid. */
export async function commandConfigCheck(io: Io, dir: string): Promise<number> {
  const res = loadConfigDir(dir);
  if (!res.ok) {
    for (const issue of res.errors) io.out(`${formatIssue(issue)}\n`);
    io.err(`hakit: ${res.errors.length} error${res.errors.length === 1 ? '' : 's'} in ${dir} [HAKIT_E_CONFIG]\n`);
    return 1;
  }
  for (const w of res.warnings) io.err(`warning: ${formatIssue(w)}\n`);
  const c = res.config;
  const mods = c.modules.map((m) => `${m.name} (${m.kind})`).join(', ') || 'none';
  io.out(`${dir}: valid. cluster ${c.cluster.name}: ${c.cluster.nodes.length} nodes, modules: ${mods}\n`);
  return 0;
}

/** `hakit cluster keygen`: prints a new key on stdout. */
export async function commandKeygen(io: Io): Promise<number> {
  io.out(generateKey());
  return 0;
}
