/**
 * The in-memory twin of ProcessScriptRunner (STYLE.md 3): no processes, no files.
 *
 * Each script name is programmed with a `FakeOutcome` (default: a script that exits 0). Every
 * request and every started process (a run, or a stop script's force rerun) is recorded with
 * the argv and environment a real script would get. A `hang` outcome keeps the process running
 * until `release()` ends it, or the shared timeout policy (supervise.ts) kills it at its timeout
 * on the given clock (a FakeClock in the simulator, real time by default). Logs are kept in
 * memory under the same names, with the same header, footer and pruning as the real runner.
 */
import { type Clock, realClock } from '../clock/index.js';
import {
  LiveRuns,
  logFooter, logHeader, logName, logsToPrune, scriptArgv, scriptEnv,
  type ScriptName, type ScriptRequest, type ScriptResult, type ScriptRunner,
} from './runner.js';
import { type Exit, type Proc, supervise } from './supervise.js';

/** What a programmed script does. */
export interface FakeOutcome {
  /** There is no such script (ok, nothing runs). */
  readonly missing?: boolean;
  /** The file is refused before running (e.g. `not executable`): the result's detail. */
  readonly refused?: string;
  /** Does not end by itself: until `release()`, or killed (SIGTERM) at its timeout. */
  readonly hang?: boolean;
  /** Exit code when it ends (default 0). */
  readonly code?: number;
  /** Ends by this signal instead of an exit code (e.g. `SIGSEGV`). */
  readonly signal?: string;
  /** What it writes to stdout/stderr (ends up in the log). */
  readonly output?: string;
  /** Behaviour of the `force` rerun of a stop script (default: the same as the first run). */
  readonly force?: FakeOutcome;
}

/** One started process, as a real script would have seen it. */
export interface FakeProcess {
  readonly script: ScriptName;
  readonly module: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly force: boolean;
  /** How it ended; undefined while it runs. */
  exit?: Exit;
}

interface Running {
  readonly proc: FakeProcess;
  readonly end: (exit: Exit) => void;
}

export interface FakeScriptRunnerOptions {
  /** Drives timeouts, durations and log names (default: the real clock). */
  clock?: Clock;
  /** Outcome of scripts not programmed (default `{ code: 0 }`). */
  defaultOutcome?: FakeOutcome;
}

export class FakeScriptRunner implements ScriptRunner {
  /** Every request, in call order. */
  readonly requests: ScriptRequest[] = [];
  /** Every started process (runs and force reruns), in start order. */
  readonly processes: FakeProcess[] = [];
  /** In-memory log files: path -> content. */
  readonly files = new Map<string, string>();
  private readonly clock: Clock;
  private readonly defaultOutcome: FakeOutcome;
  private readonly programmed = new Map<ScriptName, FakeOutcome>();
  private readonly running: Running[] = [];
  private readonly live = new LiveRuns<ScriptResult>();
  private lastStamp = 0;

  constructor(opts: FakeScriptRunnerOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.defaultOutcome = opts.defaultOutcome ?? { code: 0 };
  }

  /** Sets what `script` does from now on (for every module). */
  program(script: ScriptName, outcome: FakeOutcome): this {
    this.programmed.set(script, outcome);
    return this;
  }

  /** Processes still running (hanging), oldest first. */
  hanging(script?: ScriptName): FakeProcess[] {
    return this.running.filter((r) => script === undefined || r.proc.script === script).map((r) => r.proc);
  }

  /**
   * Ends the oldest hanging process of `script` (a force rerun included) with `exit`
   * (default exit 0). False when none hangs.
   */
  release(script: ScriptName, exit: { code?: number; signal?: string } = {}): boolean {
    const r = this.running.find((x) => x.proc.script === script);
    if (!r) return false;
    r.end(exitOf(exit));
    return true;
  }

  /** Names of the logs kept in `logDir`, oldest first. */
  logNames(logDir: string): string[] {
    const prefix = `${logDir}/`;
    return [...this.files.keys()].filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length)).sort();
  }

  run(req: ScriptRequest): Promise<ScriptResult> {
    return this.live.track((signal) => this.runInner(req, signal), req.signal);
  }

  killAll(): Promise<void> {
    return this.live.killAll();
  }

  private async runInner(req: ScriptRequest, signal: AbortSignal): Promise<ScriptResult> {
    const t0 = this.clock.now();
    this.requests.push(req);
    const none = { script: req.script, code: null, signal: null, forced: false, killed: false, logFile: null };
    if (signal.aborted) return { ...none, ok: false, missing: false, durationMs: 0, detail: 'aborted before it started' };
    const outcome = this.programmed.get(req.script) ?? this.defaultOutcome;
    if (outcome.missing) return { ...none, ok: true, missing: true, durationMs: this.clock.now() - t0, detail: 'no such script' };
    if (outcome.refused !== undefined) return { ...none, ok: false, missing: false, durationMs: this.clock.now() - t0, detail: outcome.refused };

    const stamp = Math.max(Math.floor(this.clock.wallNow()), this.lastStamp + 1);
    this.lastStamp = stamp;
    const logFile = `${req.logDir}/${logName(stamp, req.script)}`;
    this.files.set(logFile, '');
    for (const n of logsToPrune(this.logNames(req.logDir), req.script)) this.files.delete(`${req.logDir}/${n}`);
    const write = (text: string): void => {
      if (this.files.has(logFile)) this.files.set(logFile, this.files.get(logFile) + text);
    };

    const r = await supervise(req, this.clock, signal, t0, (force) => Promise.resolve(this.start(req, force ? outcome.force ?? outcome : outcome, force, write)));
    write(logFooter(r.detail, r.durationMs));
    return { ...r, logFile };
  }

  private start(req: ScriptRequest, outcome: FakeOutcome, force: boolean, write: (text: string) => void): Proc {
    write(logHeader(req, force, this.clock.wallNow()));
    const proc: FakeProcess = { script: req.script, module: req.module, argv: scriptArgv(req, force), env: scriptEnv(req), force };
    this.processes.push(proc);
    if (outcome.output !== undefined) write(outcome.output);
    if (!outcome.hang) {
      proc.exit = exitOf(outcome);
      return { exited: Promise.resolve(proc.exit), killGroup: () => Promise.resolve(false) };
    }
    let resolveExit!: (e: Exit) => void;
    const exited = new Promise<Exit>((r) => { resolveExit = r; });
    const entry: Running = {
      proc,
      end: (exit) => {
        const i = this.running.indexOf(entry);
        if (i < 0) return;
        this.running.splice(i, 1);
        proc.exit = exit;
        resolveExit(exit);
      },
    };
    this.running.push(entry);
    return {
      exited,
      killGroup: async () => {
        const alive = this.running.includes(entry);
        entry.end({ code: null, signal: 'SIGTERM', error: null });
        await exited;
        return alive;
      },
    };
  }
}

function exitOf(o: { code?: number; signal?: string }): Exit {
  return o.signal !== undefined ? { code: null, signal: o.signal, error: null } : { code: o.code ?? 0, signal: null, error: null };
}
