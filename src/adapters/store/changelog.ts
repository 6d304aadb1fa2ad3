/**
 * The change log's file (issue 5): the marks of core/replication/changes.ts, appended to
 * `<state-dir>/modules/<module>/changes.log` and synced before the change they cover is made.
 *
 * States (the last `S` line of the file):
 * - complete: every path where this node's tree may differ from the peer's copy (as it was when
 *   the two were last equal) is marked. Only then may a resync be incremental.
 * - incomplete: changes may have been made without a mark (synchronous replication runs: a crash
 *   then leaves writes applied here that the peer may lack and nothing logged; this node is
 *   receiving a resync; or the file was missing). The next resync this node serves is full.
 * A file without a state line (new, emptied by a crash in the middle of `reset`) is incomplete.
 *
 * Promises of every implementation (contract test: test/unit/changelog.contract.test.ts):
 * - `mark` returns null when the marks add nothing (no write, no sync: "a zone already marked
 *   costs nothing"); otherwise a promise that resolves once they are durable. Concurrent marks
 *   share one write and one fdatasync (group commit).
 * - `reset` and `setComplete` resolve once the new state (and, for reset, the emptied log) is
 *   durable; they apply after every mark made before them.
 * - a log reopened after a crash holds every mark whose promise had resolved and the last state
 *   whose promise had resolved (or a later one); a torn last line is ignored.
 */
import * as fs from 'node:fs';
import { type Change, type Mark, type Replay, ChangeSet, formatMark, parseLine } from '../../core/replication/changes.js';

/** Where the lines go: appended and synced, or emptied. */
export interface LogMedium {
  /** The text stored now (on open). */
  load(): string;
  /** Appends `text` (after truncating to empty when `truncate`), durably. */
  persist(text: string, truncate: boolean): Promise<void>;
  close(): void;
}

export class ChangeLog {
  readonly set = new ChangeSet();
  private completeNow = false;
  /** Lines not yet handed to the medium, and whether the medium must be emptied first. */
  private buf = '';
  private truncate = false;
  /** The flush that will carry `buf` (created when buf gets its first line). */
  private next: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;
  private writing = false;

  constructor(private readonly medium: LogMedium) {
    for (const line of medium.load().split('\n')) {
      const l = parseLine(line);
      if (l === null) continue;
      if (l.t === 'state') this.completeNow = l.complete;
      else if (l.t === 'replay') this.set.replay(l.dir, l.replay);
      else this.set.add(l.mark);
    }
  }

  /** See the file comment: may an incremental resync rely on the marks? */
  get complete(): boolean {
    return this.completeNow;
  }

  /** Adds marks; null when nothing was new (or `wait` is false), else resolves once the new ones are durable. */
  mark(marks: readonly Mark[], wait = true): Promise<void> | null {
    let text = '';
    for (const mk of marks) if (this.set.add(mk)) text += formatMark(mk);
    return this.append(text, wait);
  }

  /**
   * Records a change of dir `dir` (ChangeSet.record): null when it tells nothing new or `wait`
   * is false (written in the background), else resolves once it is durable.
   */
  record(dir: number, c: Change, zoneBytes: number, wait = true): Promise<void> | null {
    return this.append(this.set.record(dir, c, zoneBytes), wait);
  }

  private append(text: string, wait: boolean): Promise<void> | null {
    if (text === '') return null;
    const p = this.enqueue(text, false);
    if (wait) return p;
    p.catch(() => undefined);
    return null;
  }

  /** Forgets every mark and records `complete`, durably. */
  reset(complete: boolean): Promise<void> {
    this.set.clear();
    this.completeNow = complete;
    this.buf = '';
    return this.enqueue(complete ? 'S complete\n' : 'S incomplete\n', true);
  }

  /** Records `complete` (marks kept), durably. */
  setComplete(complete: boolean): Promise<void> {
    this.completeNow = complete;
    return this.enqueue(complete ? 'S complete\n' : 'S incomplete\n', false);
  }

  /** Resolves once everything marked so far is durable. */
  flush(): Promise<void> {
    return this.next?.promise ?? Promise.resolve();
  }

  /**
   * After a host crash: the replays become marks (ChangeSet.replaysToMarks; those of a dir that
   * `keep` spares stay) and the log is rewritten with them, its state kept; resolves with the number of replays turned, once durable.
   * A crash during the rewrite leaves a log without a state line: incomplete (a full resync).
   */
  async replaysToMarks(keep?: (dir: number, replays: readonly Replay[]) => boolean): Promise<number> {
    const n = this.set.replaysToMarks(keep);
    if (n === 0) return 0;
    await this.enqueue(`${this.set.text()}${this.completeNow ? 'S complete\n' : 'S incomplete\n'}`, true);
    return n;
  }

  close(): void {
    this.medium.close();
  }

  private enqueue(text: string, truncate: boolean): Promise<void> {
    if (truncate) this.truncate = true;
    this.buf += text;
    if (this.next === null) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
      if (!this.writing) void this.drain();
      return promise;
    }
    return this.next.promise;
  }

  /** One write at a time; what accumulates meanwhile goes in the next one. */
  private async drain(): Promise<void> {
    this.writing = true;
    while (this.next !== null) {
      const batch = this.next;
      const text = this.buf;
      const truncate = this.truncate;
      this.next = null;
      this.buf = '';
      this.truncate = false;
      try {
        await this.medium.persist(text, truncate);
        batch.resolve();
      } catch (e) {
        batch.reject(e);
      }
    }
    this.writing = false;
  }
}

/** The log in a file (append + fdatasync; reset = ftruncate + append + fdatasync). */
export class FileLogMedium implements LogMedium {
  private readonly fd: number;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
  }

  load(): string {
    return fs.readFileSync(this.file, 'utf8');
  }

  async persist(text: string, truncate: boolean): Promise<void> {
    if (truncate) await fs.promises.truncate(this.file, 0);
    const b = Buffer.from(text, 'utf8');
    for (let at = 0; at < b.length;) {
      at += await new Promise<number>((res, rej) => fs.write(this.fd, b, at, b.length - at, null, (e, n) => (e ? rej(e) : res(n))));
    }
    await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * The fake medium (unit tests): `durable` is what a crash keeps (a new ChangeLog on the same
 * medium is the log after a restart); a persist still in flight is not in it yet.
 */
export class MemoryLogMedium implements LogMedium {
  durable = '';
  persists = 0;

  load(): string {
    return this.durable;
  }

  async persist(text: string, truncate: boolean): Promise<void> {
    await Promise.resolve();
    if (truncate) this.durable = '';
    this.durable += text;
    this.persists++;
  }

  close(): void {
    // nothing to release
  }
}

export function openFileChangeLog(file: string): ChangeLog {
  return new ChangeLog(new FileLogMedium(file));
}
