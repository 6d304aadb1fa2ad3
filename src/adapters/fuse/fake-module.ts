/**
 * In-memory twin of a module's rfs (ModuleRfs, STYLE.md 3) for daemon tests: the same request
 * rules as the real child (configure first and once, mount modes, replicate modes), no kernel,
 * no files. Two fakes can be paired (`FakeModuleRfs.pair`): a resync served by one (`replicate
 * resync`) completes at once on the other if it expects one, as the real link would after the
 * copy. `die()` makes it exit as a crashed child would.
 *
 * Self-fencing (RfsConfig.fenceMs) as the child does it, observed at the next request: when the
 * daemon's last line is older than the bound while a mount is rw, the fake fences before handling
 * the request (mounts `blocked`, `fenced` event first). `fence()` forces it at once.
 */
import { performance } from 'node:perf_hooks';
import { HakitError } from '../../core/errors.js';
import type { RfsMode } from './passthrough.js';
import type { ModuleRfs, RfsConfig, RfsEvent, RfsStatus, VerifyReport } from './rfs.js';

export class FakeModuleRfs implements ModuleRfs {
  readonly exited: Promise<number | string>;
  /** Every request, in order, as `cmd arg` (for assertions). */
  readonly calls: string[] = [];
  private mode: RfsMode | 'none' = 'none';
  /** Every change of the mount mode with its time (performance.now()), self-fencing included. */
  readonly modes: { mode: RfsMode | 'none'; at: number }[] = [];
  get mountMode(): RfsMode | 'none' { return this.mode; }
  set mountMode(m: RfsMode | 'none') {
    const changed = m !== this.mode;
    if (changed) this.modes.push({ mode: m, at: performance.now() });
    this.mode = m;
    // As the real child sends its status when it changed (RfsEvent `stats`).
    if (changed && this.config !== null) this.emit({ event: 'stats', stats: this.snapshot() });
  }
  replicateMode: 'sync' | 'alone' | 'resync' = 'alone';
  config: RfsConfig | null = null;
  private expecting = false;
  /** Self-fenced (`fence()`), and whether the daemon was told. */
  fenced = false;
  private fenceReported = false;
  keepalives = 0;
  private lastLine = performance.now();
  private listeners: ((e: RfsEvent) => void)[] = [];
  private exit!: (how: number | string) => void;
  private dead = false;
  private peer: FakeModuleRfs | null = null;
  private static nextPid = 40_000;
  readonly pid = FakeModuleRfs.nextPid++;

  constructor() {
    this.exited = new Promise((r) => { this.exit = r; });
  }

  /** Links two fakes (one per node) so that a served resync reaches the other. */
  static pair(a: FakeModuleRfs, b: FakeModuleRfs): void {
    a.peer = b;
    b.peer = a;
  }

  /** A line from the daemon: fence first if it was silent for the bound (see the file comment). */
  private heard(): void {
    const now = performance.now();
    const bound = this.config?.fenceMs;
    if (bound !== undefined && !this.fenced && this.mountMode === 'rw' && now - this.lastLine >= bound) this.fence();
    this.lastLine = now;
    if (this.fenced && !this.fenceReported) {
      this.fenceReported = true;
      this.emit({ event: 'fenced', detail: 'fake: no word from the daemon' });
    }
  }

  private check(what: string, needsConfig = true): void {
    if (this.dead) throw new HakitError('RFS', { dir: '(fake)', detail: 'the rfs process is not running' });
    this.heard();
    if (needsConfig && this.config === null) throw new HakitError('RFS', { dir: '(fake)', detail: `${what} needs configure first` });
    this.calls.push(what);
  }

  configure(config: RfsConfig): Promise<void> {
    try {
      this.check('configure', false);
      if (this.config !== null) throw new HakitError('RFS', { dir: '(fake)', detail: 'configured already' });
    } catch (e) { return Promise.reject(e); }
    this.config = config;
    return Promise.resolve();
  }

  mountAll(mode: RfsMode | 'none'): Promise<void> {
    try { this.check(`mount ${mode}`); } catch (e) { return Promise.reject(e); }
    if (mode === 'ro' || mode === 'none') this.fenced = false;
    this.mountMode = mode === 'rw' && this.fenced ? 'blocked' : mode;
    if (mode !== 'ro') this.expecting = false;
    return Promise.resolve();
  }

  replicate(mode: 'sync' | 'alone' | 'resync', generation?: string): Promise<void> {
    try { this.check(`replicate ${mode}`); } catch (e) { return Promise.reject(e); }
    this.replicateMode = mode;
    if (mode === 'resync') {
      const p = this.peer;
      setImmediate(() => {
        if (this.replicateMode !== 'resync') return;
        this.replicateMode = 'sync';
        this.emit({ event: 'resync-served', ok: true, detail: `generation ${generation ?? '?'}` });
        if (p !== null && p.expecting && !p.dead) {
          p.expecting = false;
          p.emit({ event: 'resync-done', ok: true, detail: 'fake copy', generation: generation ?? null });
        }
      });
    }
    return Promise.resolve();
  }

  expectSync(_ms: number, _distrust?: boolean): Promise<void> {
    try { this.check('expect-sync'); } catch (e) { return Promise.reject(e); }
    this.expecting = true;
    return Promise.resolve();
  }

  stopResync(): Promise<void> {
    try { this.check('stop-resync'); } catch (e) { return Promise.reject(e); }
    this.expecting = false;
    return Promise.resolve();
  }

  /** No trees here: the call is recorded (`flush`), nothing is written. */
  flush(): Promise<void> {
    try { this.check('flush'); } catch (e) { return Promise.reject(e); }
    return Promise.resolve();
  }

  /** No trees here: nothing differs (the real comparison is tested on real mounts). */
  verify(): Promise<VerifyReport> {
    try { this.check('verify'); } catch (e) { return Promise.reject(e); }
    return Promise.resolve({ entries: 0, bytes: 0, differ: [] });
  }

  keepalive(): void {
    if (this.dead) return;
    this.keepalives++;
    this.heard();
  }

  unfence(): Promise<void> {
    try { this.check('unfence'); } catch (e) { return Promise.reject(e); }
    if (this.fenced && this.mountMode === 'blocked') this.mountMode = 'rw';
    this.fenced = false;
    return Promise.resolve();
  }

  /** As the real child does when the daemon is silent for its fencing bound (rw mounts only). */
  fence(): void {
    if (this.mountMode !== 'rw') return;
    this.fenced = true;
    this.fenceReported = false;
    this.mountMode = 'blocked';
  }

  stats(): Promise<RfsStatus> {
    if (this.dead) return Promise.reject(new HakitError('RFS', { dir: '(fake)', detail: 'the rfs process is not running' }));
    this.heard();
    return Promise.resolve(this.snapshot());
  }

  private snapshot(): RfsStatus {
    return {
      mode: this.mountMode === 'none' ? 'rw' : this.mountMode, records: 0, held: 0, ops: {}, mounted: this.mountMode !== 'none',
      dir: this.config?.dirs[0]?.path ?? null,
    };
  }

  onEvent(fn: (e: RfsEvent) => void): void {
    this.listeners.push(fn);
  }

  /** Emits an event as the child would (tests: `replication-lost`). */
  emit(e: RfsEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  /** The child crashes (SIGKILL). */
  die(): void {
    if (this.dead) return;
    this.dead = true;
    this.exit('SIGKILL');
  }

  stop(): Promise<number | string> {
    if (!this.dead) {
      this.dead = true;
      this.mountMode = 'none';
      this.exit(0);
    }
    return this.exited;
  }
}
