/**
 * `custom` checker: runs an administrator's command, out of process and bounded (STYLE.md 8):
 * - the command is `command` if absolute, else `<module>/bin/<command>`, run with `args`, no shell;
 * - the same rules as the module's scripts (src/adapters/scripts): refused unless executable,
 *   and, as root, unless it and its directories are owned by root and not writable by others;
 *   a minimal environment (PATH, LANG, HAKIT_MODULE, HAKIT_NODE, HAKIT_MODULE_DIR, and
 *   HAKIT_CHECKER = the checker's name); the module directory as working directory;
 * - it runs in its own process group. When the run ends (the command exited, the timeout passed,
 *   or the daemon aborts) the whole group is killed with SIGKILL: a checker leaves nothing behind.
 * Verdict: when the first word of stdout is UP or DOWN (any case) it decides; otherwise exit 0 is
 * up and anything else down. The detail is the first line of output (stdout, else stderr).
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { CustomChecker } from '../../core/config/types.js';
import { inspectExecutable, signalGroup } from '../scripts/process.js';
import { SCRIPT_PATH } from '../scripts/runner.js';
import { type Check, type CheckResult, oneLine } from './probe.js';

/** Output kept per stream (the rest is read and dropped). */
const OUTPUT_LIMIT = 4096;

export interface CustomContext {
  readonly moduleDir: string;
  readonly binDir: string;
  readonly node: string;
  readonly module: string;
  readonly checkOwnership: boolean;
}

export function customCheck(cfg: CustomChecker, ctx: CustomContext): Check {
  const file = isAbsolute(cfg.command) ? cfg.command : join(ctx.binDir, cfg.command);
  const env = {
    PATH: SCRIPT_PATH, LANG: 'C.UTF-8',
    HAKIT_MODULE: ctx.module, HAKIT_NODE: ctx.node, HAKIT_ROLE: 'none', HAKIT_MODULE_DIR: ctx.moduleDir, HAKIT_CHECKER: cfg.name,
  };
  return async (signal): Promise<CheckResult> => {
    const verdict = await inspectExecutable(file, ctx.binDir, ctx.checkOwnership);
    if (verdict === 'missing') return { ok: false, detail: `no such command ${file}` };
    if (verdict !== 'ok') return { ok: false, detail: `${file}: ${verdict}` };
    if (signal.aborted) return { ok: false, detail: 'aborted' };
    const cwd = await isDir(ctx.moduleDir) ? ctx.moduleDir : '/';
    return new Promise<CheckResult>((resolve) => {
      const child = spawn(file, [...cfg.args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
      const out = { stdout: '', stderr: '' };
      const keep = (k: 'stdout' | 'stderr') => (c: Buffer): void => {
        if (out[k].length < OUTPUT_LIMIT) out[k] += c.toString('utf8').slice(0, OUTPUT_LIMIT - out[k].length);
      };
      child.stdout.on('data', keep('stdout'));
      child.stderr.on('data', keep('stderr'));
      const pid = child.pid;
      const killAll = (): void => {
        if (pid !== undefined) signalGroup(pid, 'SIGKILL');
      };
      let settled = false;
      const finish = (r: CheckResult): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const onAbort = (): void => {
        killAll();
        finish({ ok: false, detail: 'aborted' });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (e: NodeJS.ErrnoException) => finish({ ok: false, detail: `cannot run ${file}: ${e.code ?? e.message}` }));
      // 'exit' comes when the command ended: kill what it left in its group so that the pipes
      // close, then judge on 'close' (all output read). The kernel does not reuse a pid while
      // it is a live group's id, so the group signalled is the command's.
      child.once('exit', killAll);
      child.once('close', (code, sig) => finish(judge({ code, signal: sig }, out)));
    });
  };
}

function judge(exit: { code: number | null; signal: string | null }, out: { stdout: string; stderr: string }): CheckResult {
  const first = (s: string): string => oneLine(s.split('\n').find((l) => l.trim() !== '') ?? '');
  const line = first(out.stdout) || first(out.stderr);
  const word = /^\s*(UP|DOWN)\b/i.exec(out.stdout)?.[1]?.toUpperCase();
  if (word !== undefined) return { ok: word === 'UP', detail: line };
  if (exit.code === 0) return { ok: true, detail: line || 'exit 0' };
  const how = exit.code === null ? `killed by ${exit.signal ?? 'a signal'}` : `exit ${exit.code}`;
  return { ok: false, detail: line ? `${how}: ${line}` : how };
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
