/**
 * Runs and supervises the rfs child of one mirror module with replicated dirs (DESIGN.md 4: the
 * replicated file system lives in its own process so FUSE load never stalls heartbeats), and
 * executes the core's replication actions on it.
 *
 * - The child is spawned (after removing stale mounts a crashed one left) and configured when the
 *   runtime starts; it listens for the peer's link at once, so a peer elected primary at the same
 *   moment finds it.
 * - The child dying is a fault of this node's data path:
 *   - on a secondary or a stopped node: stale mounts are removed, a new child is started and
 *     put back in the mount mode the core asked for last (its link drop made the primary go
 *     ALONE; this node resyncs);
 *   - on a primary: the stale mount is LEFT in place (the application gets "transport endpoint
 *     is not connected" instead of writing unreplicated files into the bare directory) and
 *     `onPrimaryFault` asks the core to stop and start the module (a stopstart, counted by
 *     maxloop); its `mount none` removes the stale mount and the next mount starts a new child.
 * - Events of the child (replication lost, resync done) are handed to `onEvent`.
 * - `stats()` answers with the status the child sent last (RfsEvent `stats`: sent when it changed,
 *   checked every second): status never waits on the child, and an idle child is not asked.
 */
import type { Logbook } from './logbook.js';
import type { ModuleRfs, RfsConfig, RfsEvent, RfsStatus, VerifyReport } from '../adapters/fuse/rfs.js';
import type { RfsMode } from '../adapters/fuse/passthrough.js';

export interface RfsSupervisorDeps {
  readonly spawn: () => ModuleRfs;
  /** Removes stale rfs mounts on a dir (fusermount -uz); resolves the number removed. */
  readonly recover: (dir: string) => Promise<number>;
  readonly logbook: Logbook;
}

export class RfsSupervisor {
  private child: ModuleRfs | null = null;
  private starting: Promise<ModuleRfs> | null = null;
  private mountMode: RfsMode | 'none' = 'none';
  private cached: RfsStatus | null = null;
  private closed = false;
  /** True while the node holds (or takes) the primary role: a crash must not unmount. */
  private primary = false;

  constructor(
    private readonly config: RfsConfig,
    private readonly deps: RfsSupervisorDeps,
    private readonly onEvent: (e: Exclude<RfsEvent, { event: 'stats' }>) => void,
    private readonly onPrimaryFault: (detail: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.ensure();
  }

  /** The core's `mount` action (`blocked`: a primary holding its writes while it demotes). */
  async mount(mode: RfsMode | 'none'): Promise<void> {
    this.primary = mode === 'rw' || mode === 'blocked';
    this.mountMode = mode;
    if (mode === 'none' && this.child === null) {
      // The child died while primary: clear its stale mounts now, start a fresh one.
      await this.ensure();
      return;
    }
    const c = await this.ensure();
    await c.mountAll(mode);
  }

  async replicate(mode: 'sync' | 'alone' | 'resync', generation?: string, full?: boolean): Promise<void> {
    await (await this.ensure()).replicate(mode, generation, full);
  }

  async expectSync(ms: number, distrust = false): Promise<void> {
    await (await this.ensure()).expectSync(ms, distrust);
  }

  /** Every pulse: the child's self-fencing watches these (RfsConfig.fenceMs). */
  keepalive(): void {
    this.child?.keepalive();
  }

  async unfence(): Promise<void> {
    if (this.child !== null) await this.child.unfence();
  }

  async stopResync(): Promise<void> {
    if (this.child !== null) await this.child.stopResync();
  }

  async flush(): Promise<void> {
    await (await this.ensure()).flush();
  }

  async verify(): Promise<VerifyReport> {
    return (await this.ensure()).verify();
  }

  stats(): RfsStatus | null {
    return this.cached;
  }

  /** Unmounts and stops the child (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    const c = this.child;
    this.child = null;
    if (c !== null) await c.stop();
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.deps.logbook.log(this.config.module, level, message, { node: this.config.node, ...fields });
  }

  /** The running child, starting (and configuring) one when there is none. */
  private ensure(): Promise<ModuleRfs> {
    if (this.child !== null) return Promise.resolve(this.child);
    this.starting ??= this.spawn().finally(() => { this.starting = null; });
    return this.starting;
  }

  private async spawn(): Promise<ModuleRfs> {
    for (const d of this.config.dirs) {
      const n = await this.deps.recover(d.path);
      if (n > 0) this.log('warn', `removed ${n} stale rfs mount(s) on ${d.path} left by a crashed rfs process`, { dir: d.path });
    }
    const c = this.deps.spawn();
    c.onEvent((e) => {
      if (e.event !== 'stats') this.onEvent(e);
      else if (this.child === c || this.child === null) this.cached = e.stats;
    });
    void c.exited.then((how) => this.exited(c, how));
    try {
      await c.configure(this.config);
    } catch (e) {
      await c.stop().catch(() => undefined);
      throw e;
    }
    this.child = c;
    this.log('info', `rfs process ${c.pid ?? '?'} serves ${this.config.dirs.map((d) => d.path).join(', ')}`, { pid: c.pid });
    return c;
  }

  private exited(c: ModuleRfs, how: number | string): void {
    if (this.child !== c) return;
    this.child = null;
    this.cached = null;
    if (this.closed) return;
    this.log('error', `the rfs process ${c.pid ?? '?'} died (${how})`, { pid: c.pid, exit: how });
    if (this.primary) {
      this.onPrimaryFault(`the rfs process died (${how})`);
      return;
    }
    const mode = this.mountMode;
    void this.ensure().then(async (n) => {
      if (mode !== 'none') await n.mountAll(mode);
      this.log('info', `rfs restarted${mode !== 'none' ? `, mounted ${mode} again` : ''}`);
    }, (e: unknown) => this.log('error', `the rfs could not be restarted: ${(e as Error).message}`));
  }
}
