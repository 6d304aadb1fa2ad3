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
import { open, read, close } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { ProcessChecker } from '../../core/config/types.js';
import type { Check, CheckResult } from './probe.js';

/** The kernel's TASK_COMM_LEN minus the NUL. */
const COMM_LEN = 15;
/** Reads of /proc in flight during a scan. */
const SCAN_PARALLEL = 16;

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
    const pids = (await readdir(procDir)).filter((n) => /^\d+$/.test(n));
    let count = 0;
    let next = 0;
    // Several reads in flight: each read of /proc is a few trips through libuv's thread pool, and
    // one after the other they took 0.2 ms a process here (a check of 300 processes on a loaded
    // host ran past a 200 ms timeout). Not synchronous reads: reading the cmdline of a process
    // blocked with its memory map locked (on a hung mount) can block, and must not block the
    // daemon's event loop.
    const worker = async (): Promise<void> => {
      const buf = Buffer.allocUnsafe(PROC_READ); // one per worker: its reads are one at a time
      while (next < pids.length && !signal.aborted) {
        const pid = pids[next++] as string;
        let matches = false;
        try {
          if (re === undefined) matches = (await readSmall(`${procDir}/${pid}/comm`, buf)).replace(/\n$/, '') === name;
          else if (pid !== self) matches = re.test((await readSmall(`${procDir}/${pid}/cmdline`, buf)).replace(/\0+$/, '').replace(/\0/g, ' '));
        } catch {
          continue; // ended meanwhile
        }
        if (matches && await alive(procDir, pid, buf)) count++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(SCAN_PARALLEL, pids.length) }, worker));
    return judge(count, m.by === 'name' ? `named ${m.name}` : `matching /${m.pattern}/`);
  };
}

/** Bytes read of a /proc file in one read (a cmdline is cut there; Linux's ARG_MAX is larger, a checker pattern is not). */
const PROC_READ = 64 * 1024;

/**
 * A small /proc file in one read: open, read, close (three trips through libuv's thread pool;
 * readFile takes five: it also asks the size, which /proc files give as 0, and reads to EOF).
 */
function readSmall(path: string, buf: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err) { reject(err); return; }
      read(fd, buf, 0, buf.length, 0, (rerr, n) => {
        close(fd, () => undefined);
        if (rerr) reject(rerr);
        else resolve(buf.toString('utf8', 0, n));
      });
    });
  });
}

/** The process exists and is not a zombie. */
async function alive(procDir: string, pid: string, buf: Buffer = Buffer.allocUnsafe(4096)): Promise<boolean> {
  try {
    const stat = await readSmall(`${procDir}/${pid}/stat`, buf);
    // pid (comm) state ...: comm may hold spaces and parentheses, so read after the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
