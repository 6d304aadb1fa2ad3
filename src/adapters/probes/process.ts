/**
 * `process` checker: counts live processes (zombies do not count) and is up when the count is
 * within [min, max]. Matching:
 * - `name`: /proc/PID/comm equals the name (the kernel keeps 15 characters of it, so a longer
 *   name is compared on its first 15);
 * - `cmdline`: the regular expression matches /proc/PID/cmdline with its NULs as spaces
 *   (hakit's own process never counts);
 * - `pidfile`: the process whose pid the file holds (count 0 or 1).
 * Only /proc is read (asynchronously), nothing is run. `procDir` is for tests.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { ProcessChecker } from '../../core/config/types.js';
import type { Check, CheckResult } from './probe.js';

/** The kernel's TASK_COMM_LEN minus the NUL. */
const COMM_LEN = 15;

export function processCheck(cfg: ProcessChecker, procDir = '/proc'): Check {
  const m = cfg.match;
  const want = cfg.max === undefined ? `at least ${cfg.min}` : cfg.min === cfg.max ? `exactly ${cfg.min}` : `${cfg.min} to ${cfg.max}`;
  const judge = (count: number, what: string): CheckResult => {
    const ok = count >= cfg.min && (cfg.max === undefined || count <= cfg.max);
    return { ok, detail: `${count} ${count === 1 ? 'process' : 'processes'} ${what} (want ${want})` };
  };
  return async (signal): Promise<CheckResult> => {
    if (m.by === 'pidfile') {
      let text: string;
      try {
        text = await readFile(m.path, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        return { ...judge(0, `from ${m.path}`), detail: `cannot read ${m.path}: ${code} (want ${want})` };
      }
      const pid = /^\s*(\d+)\s*$/.exec(text)?.[1];
      if (pid === undefined) return { ...judge(0, `from ${m.path}`), detail: `${m.path} does not hold a pid (want ${want})` };
      return judge(await alive(procDir, pid) ? 1 : 0, `with pid ${pid} from ${m.path}`);
    }
    const self = String(process.pid);
    const re = m.by === 'cmdline' ? new RegExp(m.pattern) : undefined;
    const name = m.by === 'name' ? m.name.slice(0, COMM_LEN) : '';
    let count = 0;
    for (const pid of (await readdir(procDir)).filter((n) => /^\d+$/.test(n))) {
      if (signal.aborted) break;
      let matches = false;
      try {
        if (re === undefined) matches = (await readFile(`${procDir}/${pid}/comm`, 'utf8')).replace(/\n$/, '') === name;
        else if (pid !== self) matches = re.test((await readFile(`${procDir}/${pid}/cmdline`, 'utf8')).replace(/\0+$/, '').replace(/\0/g, ' '));
      } catch {
        continue; // ended meanwhile
      }
      if (matches && await alive(procDir, pid)) count++;
    }
    return judge(count, m.by === 'name' ? `named ${m.name}` : `matching /${m.pattern}/`);
  };
}

/** The process exists and is not a zombie. */
async function alive(procDir: string, pid: string): Promise<boolean> {
  try {
    const stat = await readFile(`${procDir}/${pid}/stat`, 'utf8');
    // pid (comm) state ...: comm may hold spaces and parentheses, so read after the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
