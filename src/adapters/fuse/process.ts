/**
 * The daemon's handle on one rfs child process (`rfs-main.js`): requests as JSON lines on its
 * stdin, replies on its stdout. A reply that is an error rejects with a HakitError carrying the
 * child's code; the child exiting rejects every pending request with HAKIT_E_RFS.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { HakitError } from '../../core/errors.js';
import type { RfsMode } from './passthrough.js';
import { STAMP_BYTES, type Rfs, type RfsConfig, type RfsEvent, type RfsReply, type RfsRequest, type RfsStatus, type VerifyReport } from './rfs.js';

/** Path of the compiled child entry point, next to this file. */
export const RFS_MAIN = fileURLToPath(new URL('./rfs-main.js', import.meta.url));

type Req = RfsRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export interface RfsProcessOptions {
  /** `local` (default) acknowledges records at once; `recording` keeps them for `records()`. */
  readonly replicator?: 'local' | 'recording';
  /** Where the child's stderr goes (default: inherited). */
  readonly stderr?: 'inherit' | 'ignore' | 'pipe';
}


/**
 * The keepalive stamp shared with the child (see `keepalive`): a file on /dev/shm (memory; a
 * write never waits for a disk), unlinked at once: the two processes hold it by descriptor only
 * (the child as its fd 3). Null when /dev/shm cannot be used: keepalives go down the pipe then.
 */
function openStamp(): number | null {
  const path = `/dev/shm/hakit-rfs-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    const c = fs.constants;
    const fd = fs.openSync(path, c.O_RDWR | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
    fs.unlinkSync(path);
    return fd;
  } catch {
    return null;
  }
}

export class RfsProcess implements Rfs {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the child is gone. */
  readonly exited: Promise<number | string>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private dir = '(none)';
  private readonly eventListeners: ((e: RfsEvent) => void)[] = [];
  private stampFd: number | null;
  private readonly stamp = Buffer.alloc(STAMP_BYTES);

  constructor(opts: RfsProcessOptions = {}) {
    const args = [RFS_MAIN, '--replicator', opts.replicator ?? 'local'];
    this.stampFd = openStamp();
    const stamp = this.stampFd === null ? [] : [this.stampFd];
    this.child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', opts.stderr ?? 'inherit', ...stamp] });
    const rl = createInterface({ input: this.child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      let rep: RfsReply | RfsEvent;
      try {
        rep = JSON.parse(line) as RfsReply | RfsEvent;
      } catch {
        return;
      }
      if ('event' in rep) {
        for (const fn of this.eventListeners) fn(rep);
        return;
      }
      const p = this.pending.get(rep.id);
      if (p === undefined) return;
      this.pending.delete(rep.id);
      if (rep.ok) p.resolve(rep.result);
      else p.reject(new HakitError('RFS', { dir: this.dir, detail: rep.error.message, childCode: rep.error.code }));
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.closeStamp();
        for (const p of this.pending.values()) p.reject(new HakitError('RFS', { dir: this.dir, detail: `the rfs process exited (${signal ?? code})` }));
        this.pending.clear();
        resolve(signal ?? code ?? -1);
      });
    });
    this.child.stdin?.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private request(req: Req): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        reject(new HakitError('RFS', { dir: this.dir, detail: 'the rfs process is not running' }));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.child.stdin?.write(JSON.stringify({ ...req, id }) + '\n');
    });
  }

  /**
   * Writes out the file systems below the child's mounts: `sync -f` of the paths it answers
   * (RfsRequest `flush-paths`), run from this process: the child never forks.
   */
  async flush(): Promise<void> {
    const paths = (await this.request({ cmd: 'flush-paths' })) as string[];
    for (const p of paths) {
      await new Promise<void>((resolve, reject) => {
        execFile('sync', ['-f', p], { timeout: 120_000 }, (err, _o, stderr) =>
          (err ? reject(new HakitError('RFS', { dir: this.dir, detail: `flush: ${String(stderr).trim() || err.message}` })) : resolve()));
      });
    }
  }

  async mount(dir: string, mode: RfsMode): Promise<void> {
    this.dir = dir;
    await this.request({ cmd: 'mount', dir, mode });
  }

  /** Unsolicited events of the child (replication lost, resync ended). */
  onEvent(fn: (e: RfsEvent) => void): void {
    this.eventListeners.push(fn);
  }

  /** Makes this child a module's rfs (see rfs-main.ts). */
  async configure(config: RfsConfig): Promise<void> {
    this.dir = config.dirs.map((d) => d.path).join(', ');
    await this.request({ cmd: 'configure', config });
  }

  /** Every replicated dir of the module in `mode`, or unmounted (`none`). */
  async mountAll(mode: RfsMode | 'none'): Promise<void> {
    await this.request({ cmd: 'mount-all', mode });
  }

  async replicate(mode: 'sync' | 'alone' | 'resync', generation?: string, full?: boolean): Promise<void> {
    await this.request({ cmd: 'replicate', mode, ...(generation !== undefined ? { generation } : {}), ...(full !== undefined ? { full } : {}) });
  }

  async expectSync(ms: number, distrust = false): Promise<void> {
    await this.request({ cmd: 'expect-sync', ms, ...(distrust ? { distrust: true } : {}) });
  }

  async stopResync(): Promise<void> {
    await this.request({ cmd: 'stop-resync' });
  }

  async verify(): Promise<VerifyReport> {
    return (await this.request({ cmd: 'verify' })) as VerifyReport;
  }

  /**
   * The daemon is alive: the time now written over the stamp the child reads when its fence
   * deadline comes (RfsConfig.fenceMs). Nothing wakes the child: a pipe write did, every pulse,
   * and woke it costs (issue 3's idle CPU). Without a stamp: an empty line, which the child
   * counts like any line it reads and does not answer.
   */
  keepalive(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.stampFd !== null) {
      this.stamp.writeBigInt64LE(process.hrtime.bigint());
      try {
        fs.writeSync(this.stampFd, this.stamp, 0, STAMP_BYTES, 0);
        return;
      } catch {
        this.closeStamp();
      }
    }
    this.child.stdin?.write('\n');
  }

  private closeStamp(): void {
    if (this.stampFd === null) return;
    try {
      fs.closeSync(this.stampFd);
    } catch {
      // closed already
    }
    this.stampFd = null;
  }

  async unfence(): Promise<void> {
    await this.request({ cmd: 'unfence' });
  }

  async setMode(mode: RfsMode): Promise<void> {
    await this.request({ cmd: 'set-mode', mode });
  }

  async unmount(): Promise<{ lazy: boolean }> {
    return (await this.request({ cmd: 'unmount' })) as { lazy: boolean };
  }

  async stats(): Promise<RfsStatus> {
    return (await this.request({ cmd: 'stats' })) as RfsStatus;
  }

  /** Records kept by a `recording` child (write data and xattr values as base64). */
  async records(): Promise<{ [k: string]: unknown; seq: number; op: string }[]> {
    return (await this.request({ cmd: 'records' })) as { seq: number; op: string }[];
  }

  /** Asks the child to unmount and exit (SIGTERM); resolves when it is gone. */
  async stop(): Promise<number | string> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
