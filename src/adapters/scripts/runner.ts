/**
 * The restart-script seam (DESIGN.md 6 "Scripts", STYLE.md 8, issue 3 item 5).
 *
 * A module's scripts (`<config-dir>/modules/<m>/bin/<script>`) run out of process and bounded:
 * the runner never throws for a fault of the script; every outcome (exit code, missing file,
 * refused file, timeout, kill) comes back as a `ScriptResult`. What is shared by the real runner
 * and the fake (environment, which scripts are stop scripts, log names, log text, pruning) lives
 * here so the two cannot drift.
 */
import type { ScriptName } from '../../core/mirror/types.js';

export type { ScriptName } from '../../core/mirror/types.js';

export const SCRIPT_NAMES: readonly ScriptName[] = ['prestart', 'start_prim', 'stop_prim', 'start_second', 'stop_second', 'start_both', 'stop_both', 'poststop'];

export interface ScriptRequest {
  readonly module: string;
  readonly node: string;
  readonly role: 'prim' | 'second' | 'none';
  readonly script: ScriptName;
  /** `<config-dir>/modules/<m>/bin`; the script is `binDir/<script>`. */
  readonly binDir: string;
  /** `<config-dir>/modules/<m>` (HAKIT_MODULE_DIR, and the script's working directory). */
  readonly moduleDir: string;
  /** `current-state next-state action`. */
  readonly args: readonly [string, string, string];
  /** Start scripts (prestart, start_*): the process group is killed after this many ms. */
  readonly timeoutMs: number;
  /** Stop scripts (stop_*, poststop): after this many ms, run again with `force` first; after as long again, killed. */
  readonly stopTimeoutMs: number;
  /** Per-run logs go here: `<logDir>/<iso-time>-<script>.log`; the last LOGS_KEPT per script are kept. */
  readonly logDir: string;
  /** Extra environment (added after, so it may override, the runner's own variables). */
  readonly env?: Readonly<Record<string, string>>;
  /** Aborting kills the run's process groups; the result then says `aborted`. */
  readonly signal?: AbortSignal;
}

export interface ScriptResult {
  readonly script: ScriptName;
  /** Exit 0 (of the force rerun, for a stop script that was rerun), or a missing script. */
  readonly ok: boolean;
  /** There is no such file: ok (scripts are optional); nothing ran and no log was written. */
  readonly missing: boolean;
  /** Exit code of the last run (the force rerun if there was one); null if killed by a signal or never started. */
  readonly code: number | null;
  /** Signal that ended the last run (e.g. `SIGTERM` after a timeout), null otherwise. */
  readonly signal: string | null;
  /** A stop script did not end within stopTimeoutMs and was run again with `force`. */
  readonly forced: boolean;
  /** A process group of this request was killed because of a timeout (or an abort / killAll). */
  readonly killed: boolean;
  /** From the request to the result, in ms. */
  readonly durationMs: number;
  /** The run's log, null when nothing ran (missing, refused) or the log could not be created. */
  readonly logFile: string | null;
  /** One line for logs and status: `exit 0`, `exit 3`, `killed after 60s`, `not executable`, ... */
  readonly detail: string;
}

export interface ScriptRunner {
  /** Runs one script; resolves when it (and any force rerun) ended or was killed. Never rejects. */
  run(req: ScriptRequest): Promise<ScriptResult>;
  /** Kills every running script's process group and resolves when their runs have resolved. */
  killAll(): Promise<void>;
}

/** Log files kept per script name and log directory. */
export const LOGS_KEPT = 20;

/**
 * The runs in progress of a runner, each with its own AbortController, so that `killAll` can
 * abort every one and wait for their results. Shared by the real runner and the fake.
 */
export class LiveRuns<T> {
  private readonly live = new Map<AbortController, Promise<T>>();

  /** Starts `run` with a signal that aborts on `killAll` (and on `outer`, if given). */
  track(run: (signal: AbortSignal) => Promise<T>, outer?: AbortSignal): Promise<T> {
    const ctl = new AbortController();
    const done = run(outer ? AbortSignal.any([outer, ctl.signal]) : ctl.signal).finally(() => this.live.delete(ctl));
    this.live.set(ctl, done);
    return done;
  }

  /** Aborts every run in progress and resolves when they all ended. */
  async killAll(): Promise<void> {
    const runs = [...this.live];
    for (const [ctl] of runs) ctl.abort();
    await Promise.all(runs.map(([, p]) => p));
  }
}

/** The PATH every script gets. */
export const SCRIPT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Stop scripts get `stopTimeoutMs`, then a rerun with `force`; the others get `timeoutMs`, then are killed. */
export function isStopScript(script: ScriptName): boolean {
  return script.startsWith('stop_') || script === 'poststop';
}

/** The whole environment of a script: a minimal clean one, hakit's variables, then `req.env`. */
export function scriptEnv(req: ScriptRequest): Record<string, string> {
  return {
    PATH: SCRIPT_PATH,
    LANG: 'C.UTF-8',
    HAKIT_MODULE: req.module,
    HAKIT_NODE: req.node,
    HAKIT_ROLE: req.role,
    HAKIT_MODULE_DIR: req.moduleDir,
    ...(req.env ?? {}),
  };
}

/** The argument vector of a run: the request's args, preceded by `force` for a forced rerun. */
export function scriptArgv(req: ScriptRequest, force: boolean): string[] {
  return force ? ['force', ...req.args] : [...req.args];
}

/**
 * ISO 8601 basic format of a wall-clock time in UTC, e.g. `20240102T030405.678Z`: sorts by
 * time as text and has no `:` (which scp and some tools read as a host separator).
 */
export function isoStamp(wallMs: number): string {
  return new Date(wallMs).toISOString().replace(/[-:]/g, '');
}

/** `<iso-time>-<script>.log`. */
export function logName(wallMs: number, script: ScriptName): string {
  return `${isoStamp(wallMs)}-${script}.log`;
}

const LOG_RE = /^\d{8}T\d{6}\.\d{3}Z-([a-z_]+)\.log$/;

/**
 * Of the file names in a log directory, those to delete so that only the newest `keep` logs of
 * `script` remain (other scripts' logs and foreign files are never chosen).
 */
export function logsToPrune(names: readonly string[], script: ScriptName, keep = LOGS_KEPT): string[] {
  const mine = names.filter((n) => LOG_RE.exec(n)?.[1] === script).sort();
  return mine.slice(0, Math.max(0, mine.length - keep));
}

/** First lines of a run's log: what ran, with which arguments, when. */
export function logHeader(req: ScriptRequest, force: boolean, wallMs: number): string {
  return `# hakit: ${force ? 'rerun with force: ' : ''}${req.script} ${scriptArgv(req, force).join(' ')}\n` +
    `# module=${req.module} node=${req.node} role=${req.role} started=${new Date(wallMs).toISOString()}\n`;
}

/** Last line of a run's log. */
export function logFooter(detail: string, durationMs: number): string {
  return `# hakit: ${detail} (${Math.round(durationMs)} ms)\n`;
}

/** `60s`, `1.5s`, `200ms`: how the detail lines show a timeout. */
export function formatMs(ms: number): string {
  if (ms >= 1000 && ms % 100 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Detail line of a run that ended by itself. */
export function endDetail(code: number | null, signal: string | null): string {
  if (code !== null) return `exit ${code}`;
  return `killed by ${signal ?? 'an unknown signal'}`;
}
