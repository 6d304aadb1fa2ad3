/**
 * The command seam of the VIP adapter: every `ip`, `sysctl`, `arping` and `ping` it runs goes
 * through an `Exec`, so tests can run the same manager inside a network namespace (an Exec that
 * prefixes `nsenter --net=/run/netns/NAME`) or against a scripted fake.
 */
import { execFile } from 'node:child_process';

export interface ExecResult {
  /** Exit status; 128 + signal number when killed by a signal (124 when killed on timeout). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `argv` (no shell) and resolves once it ended or was killed after `timeoutMs`. Resolves
 * for every exit status; rejects only when the command cannot be started (e.g. not installed).
 */
export type Exec = (argv: readonly string[], opts: { readonly timeoutMs: number }) => Promise<ExecResult>;

/** Exit status reported for a command killed because it outlived its timeout (as timeout(1)). */
export const EXIT_TIMEOUT = 124;

/** Shows an argv the way a shell user would type it (for error details). */
export function showArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The default Exec: `execFile`, SIGKILLed after the timeout, output capped at 1 MiB. */
export const execFileBounded: Exec = (argv, { timeoutMs }) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new Error('empty command'));
      return;
    }
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ code: 0, stdout, stderr });
        return;
      }
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null };
      if (typeof e.code === 'string') {
        // Not started at all (ENOENT, EACCES) or output over maxBuffer.
        reject(err);
        return;
      }
      if (e.killed && e.signal === 'SIGKILL') resolve({ code: EXIT_TIMEOUT, stdout, stderr: `${stderr}killed after ${timeoutMs} ms` });
      else resolve({ code: typeof e.code === 'number' ? e.code : 128 + signalNumber(e.signal), stdout, stderr });
    });
  });

function signalNumber(s: NodeJS.Signals | null | undefined): number {
  return s === 'SIGTERM' ? 15 : s === 'SIGKILL' ? 9 : s === 'SIGINT' ? 2 : 0;
}
