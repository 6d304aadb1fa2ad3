/**
 * The real script runner: each script runs as a child process in its own process group
 * (keepalived `notify.c`, STYLE.md 8), bounded by a timeout after which the whole group is
 * killed (SIGTERM, then SIGKILL after `killGraceMs`).
 *
 * - stdin is /dev/null; stdout and stderr go straight to the run's log file (the child gets the
 *   file descriptor, not a pipe), so a grandchild that keeps stdout open (an application started
 *   in the background by start_prim) never keeps a run from ending: a run ends when the script's
 *   own process exits.
 * - A script that ends by itself is never killed: what it started in the background (the
 *   application) keeps running. Only a script still running at its timeout, an abort, or
 *   `killAll()` get their group killed.
 * - When `checkOwnership` is on (default: when running as root) a script is refused unless it
 *   and every directory above it (after resolving symbolic links) are owned by root and not
 *   writable by group or others; a directory with the sticky bit (/tmp) may be writable.
 * - Everything is asynchronous: nothing here blocks the event loop while a script runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, lstat, mkdir, open, readdir, readFile, realpath, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatMessage, ERRORS } from '../../core/errors.js';
import { realClock } from '../clock/index.js';
import {
  LiveRuns,
  logFooter, logHeader, logName, logsToPrune, scriptArgv, scriptEnv,
  type ScriptRequest, type ScriptResult, type ScriptRunner,
} from './runner.js';
import { type Exit, type Proc, supervise } from './supervise.js';

export interface ProcessScriptRunnerOptions {
  /** Wall clock in ms since the epoch, for log names and headers (default `Date.now`). */
  now?: () => number;
  /** Refuse scripts that others than root could change (default: true when running as root). */
  checkOwnership?: boolean;
  /** Time between SIGTERM and SIGKILL when a group is killed, in ms (default 2000). */
  killGraceMs?: number;
}

const POLL_MS = 25;
/** How long a killed run waits for its processes to be gone after SIGKILL. */
const KILL_WAIT_MS = 5_000;

export class ProcessScriptRunner implements ScriptRunner {
  private readonly now: () => number;
  private readonly checkOwnership: boolean;
  private readonly killGraceMs: number;
  /** Runs in progress: their abort handles and completion. */
  private readonly live = new LiveRuns<ScriptResult>();
  private lastStamp = 0;

  constructor(opts: ProcessScriptRunnerOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.checkOwnership = opts.checkOwnership ?? process.getuid?.() === 0;
    this.killGraceMs = opts.killGraceMs ?? 2000;
  }

  run(req: ScriptRequest): Promise<ScriptResult> {
    const t0 = realClock.now();
    return this.live.track((signal) => this.runGuarded(req, signal, t0));
  }

  killAll(): Promise<void> {
    return this.live.killAll();
  }

  /** Never rejects: an unexpected failure of the runner itself becomes a failed result. */
  private async runGuarded(req: ScriptRequest, internal: AbortSignal, t0: number): Promise<ScriptResult> {
    const signal = req.signal ? AbortSignal.any([req.signal, internal]) : internal;
    try {
      return await this.runChecked(req, signal, t0);
    } catch (e) {
      return failed(req, t0, null, `runner error: ${(e as Error).message}`);
    }
  }

  private async runChecked(req: ScriptRequest, signal: AbortSignal, t0: number): Promise<ScriptResult> {
    if (signal.aborted) return failed(req, t0, null, 'aborted before it started');
    const file = join(req.binDir, req.script);
    const verdict = await this.inspect(file, req.binDir);
    if (verdict === 'missing') {
      return { script: req.script, ok: true, missing: true, code: null, signal: null, forced: false, killed: false, durationMs: realClock.now() - t0, logFile: null, detail: 'no such script' };
    }
    if (verdict !== 'ok') return failed(req, t0, null, verdict);

    const log = await this.openLog(req);
    try {
      const cwd = await isDir(req.moduleDir) ? req.moduleDir : '/';
      const r = await supervise(req, realClock, signal, t0, (force) => this.start(req, file, force, log.handle, cwd));
      const result = { ...r, logFile: log.path };
      if (log.handle) await log.handle.write(logFooter(result.detail, result.durationMs)).catch(() => undefined);
      return log.path === null ? { ...result, detail: `${result.detail} (no log: ${log.error})` } : result;
    } finally {
      await log.handle?.close().catch(() => undefined);
    }
  }

  private inspect(file: string, binDir: string): Promise<string> {
    return inspectExecutable(file, binDir, this.checkOwnership);
  }

  /** Creates the run's log (header written by `execute`) and prunes old ones; never throws. */
  private async openLog(req: ScriptRequest): Promise<{ handle: FileHandle | null; path: string | null; error: string }> {
    try {
      await mkdir(req.logDir, { recursive: true, mode: 0o750 });
      for (let attempt = 0; ; attempt++) {
        const stamp = Math.max(Math.floor(this.now()), this.lastStamp + 1);
        this.lastStamp = stamp;
        const path = join(req.logDir, logName(stamp, req.script));
        try {
          const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND, 0o640);
          await this.prune(req);
          return { handle, path, error: '' };
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 1000) throw e;
        }
      }
    } catch (e) {
      return { handle: null, path: null, error: (e as Error).message };
    }
  }

  private async prune(req: ScriptRequest): Promise<void> {
    const names = await readdir(req.logDir);
    for (const n of logsToPrune(names, req.script)) await unlink(join(req.logDir, n)).catch(() => undefined);
  }

  /** Spawns one process in its own group, output to the log (or nowhere). */
  private async start(req: ScriptRequest, file: string, force: boolean, log: FileHandle | null, cwd: string): Promise<Proc> {
    if (log) await log.write(logHeader(req, force, this.now()));
    const out = log ? log.fd : 'ignore';
    let child: ChildProcess;
    try {
      child = spawn(file, scriptArgv(req, force), { detached: true, stdio: ['ignore', out, out], env: scriptEnv(req), cwd });
    } catch (e) {
      const exit: Exit = { code: null, signal: null, error: `cannot run: ${(e as Error).message}` };
      return { exited: Promise.resolve(exit), killGroup: () => Promise.resolve(false) };
    }
    const exited = new Promise<Exit>((resolve) => {
      child.once('error', (e) => resolve({ code: null, signal: null, error: `cannot run: ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
      child.once('exit', (code, sig) => resolve({ code, signal: sig, error: null }));
    });
    const pid = child.pid;
    let exitedNow = false;
    void exited.then(() => { exitedNow = true; });
    const killGroup = async (): Promise<boolean> => {
      if (pid === undefined) return false;
      if (!signalGroup(pid, 'SIGTERM')) {
        await exited;
        return false;
      }
      // Wait for the group to go away (the script's process reaped, its children gone) up to the grace.
      const until = realClock.now() + this.killGraceMs;
      while (realClock.now() < until && (!exitedNow || await groupAlive(pid))) await delay(POLL_MS);
      if (await groupAlive(pid)) {
        signalGroup(pid, 'SIGKILL');
        // SIGKILL is delivered asynchronously: a killed run ends only once its processes are gone
        // (bounded: a process stuck in the kernel must not hold the runner forever).
        const killedBy = realClock.now() + KILL_WAIT_MS;
        while (realClock.now() < killedBy && await groupAlive(pid)) await delay(POLL_MS);
      }
      await exited;
      return true;
    };
    return { exited, killGroup };
  }
}

/**
 * 'ok', 'missing', or why the executable `file` (found in `binDir`) is refused (one line); also
 * used by the custom checker probe. With `checkOwnership`, the ownership rule of the file
 * comment applies. The X bit is checked on the mode as well as with access(): root passes
 * access(X_OK) whenever any X bit is set.
 */
export async function inspectExecutable(file: string, binDir: string, checkOwnership: boolean): Promise<string> {
  let l;
  try {
    l = await lstat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return 'missing';
    return `cannot inspect ${file}: ${(e as Error).message}`;
  }
  let s;
  try {
    s = l.isSymbolicLink() ? await stat(file) : l;
  } catch (e) {
    return `broken symbolic link ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  if (!s.isFile()) return 'not a regular file';
  if ((s.mode & 0o111) === 0) return 'not executable';
  try {
    await access(file, constants.X_OK);
  } catch {
    return 'not executable';
  }
  if (!checkOwnership) return 'ok';
  const paths = new Set<string>([...chain(await realpath(file)), ...chain(await realpath(binDir))]);
  for (const p of paths) {
    const st = await stat(p);
    let why: string | null = null;
    if (st.uid !== 0) why = `${p} is owned by uid ${st.uid}, not root`;
    else if ((st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0)) why = `${p} is writable by group or others`;
    if (why !== null) return formatMessage(ERRORS.SCRIPT_UNSAFE.message, { file, detail: why });
  }
  return 'ok';
}

/** `p` and every directory above it, up to `/`. */
function chain(p: string): string[] {
  const out = [p];
  for (let d = dirname(p); ; d = dirname(d)) {
    out.push(d);
    if (d === dirname(d)) break;
  }
  return out;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Sends `sig` to process group `pgid`; false when no such group exists. */
export function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True while a process of group `pgid` runs. Zombies do not count: a killed grandchild that
 * was reparented to a PID 1 which reaps late (containers) is dead for our purpose, although
 * kill(-pgid, 0) still succeeds on it. Falls back to kill(-pgid, 0) without /proc.
 */
export async function groupAlive(pgid: number): Promise<boolean> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  for (const pid of pids) {
    let text: string;
    try {
      text = await readFile(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function failed(req: ScriptRequest, t0: number, logFile: string | null, detail: string): ScriptResult {
  return { script: req.script, ok: false, missing: false, code: null, signal: null, forced: false, killed: false, durationMs: realClock.now() - t0, logFile, detail };
}
