/**
 * Bounded command execution for the testbed: every command has a timeout, and a failure becomes a
 * HakitError('TESTBED') whose detail names the command and carries its stderr.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { HakitError } from '../../src/core/errors.js';

export interface ExecResult {
  /** Exit code; 128 + signal number when the process was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string;
  /** Kill the command (its whole process group) after this many ms. Default 10000. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Called with the child as soon as it is spawned (for tracking). */
  onSpawn?: (child: ChildProcess) => void;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Shows an argv the way a shell user would type it (for error messages). */
export function showCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Runs argv in its own process group and resolves with its exit code and output (never rejects on
 * a non-zero exit). Rejects with HakitError('TESTBED') when it cannot start or exceeds the timeout;
 * on timeout the whole process group is SIGKILLed first.
 */
export function execCommand(action: string, argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new HakitError('TESTBED', { action, detail: 'empty command' }));
      return;
    }
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      detached: true,
    });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new HakitError('TESTBED', { action, detail: `\`${showCommand(argv)}\` could not start: ${e.message}` }, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new HakitError('TESTBED', { action, detail: `\`${showCommand(argv)}\` did not end within ${timeoutMs} ms; stderr: ${stderr.trim() || '(empty)'}` }));
        return;
      }
      resolve({ code: code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0), stdout, stderr });
    });
  });
}

/** Like execCommand, but a non-zero exit rejects with HakitError('TESTBED') carrying stderr. */
export async function runCommand(action: string, argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await execCommand(action, argv, opts);
  if (r.code !== 0) {
    throw new HakitError('TESTBED', { action, detail: `\`${showCommand(argv)}\` exited with code ${r.code}: ${r.stderr.trim() || r.stdout.trim() || '(no output)'}` });
  }
  return r.stdout;
}

/** True when the process leads its own process group. */
export function leadsGroup(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state ppid pgrp ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[2]) === pid;
  } catch {
    return false;
  }
}

/** Sends a signal to a process, and to its group when it leads one. Ignores processes already gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    if (leadsGroup(pid)) process.kill(-pid, signal);
    else process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** Sends a signal to a child and its group (when it leads one), if it is still running. */
export function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  signalProcess(child.pid, signal);
}

/** The start time of a process (clock ticks since boot), or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

export type { StdioOptions };
