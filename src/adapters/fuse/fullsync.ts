/**
 * Full sync (DESIGN.md 5, issue 4 part 5): the initial copy of a replicated directory from the
 * primary to the secondary, made while the application keeps writing. With a change log plan
 * (FullSyncOptions.plan, issue 5) the same machinery sends only the changed paths and zones: the
 * incremental resync.
 *
 * How it stays correct with live writes: the copy goes through the same numbered record stream
 * as the live records (`submit` numbers a body and hands it to the replicator in the same
 * synchronous call). The primary's tree only changes inside synchronous steps of this process
 * (PassthroughFs applies each call with *Sync calls), and every read the walk makes of the tree
 * (lstat + readdir of a directory, open + fstat of a file, each chunk read) is made with *Sync
 * calls and submitted in the same synchronous step. So the stream order is the order in which
 * the primary saw reads and changes, and the secondary (RecordApplier, tolerant between
 * `sync-begin` and `sync-end`) replays live changes on whatever it has at that moment, which the
 * copy then overwrites with the primary's state at a later stream position:
 * - a directory: `sync-dir` (mode, owner, the names it held) — the secondary removes every entry
 *   not named, so an entry created later is made by its own live records on a clean slot;
 * - a regular file: `sync-file` (mode, owner, size at open; the secondary resets it to zeros of
 *   that size), then its non-zero chunks as `write` records read from the open descriptor (holes
 *   stay holes), then `utimens` with the primary's times (rounded to milliseconds). Growth after
 *   the open comes with the live writes. When the path stops naming the opened file (renamed,
 *   replaced, unlinked) the copy of that file is abandoned: its new name is on the re-copy queue
 *   (below) or its content came with live records;
 * - a symlink: a `symlink` record; a FIFO: `mknod`; each followed by its `utimens`. Sockets and device files are skipped
 *   (counted in `skipped`): the secondary's applier cannot make them.
 * - a live `rename` or `link` seen by `noteLive` puts its destination on a re-copy queue (a dir is
 *   walked again, a file copied again), processed before `sync-end` — unless the source is a
 *   non-directory already copied (or made entirely by live records in an already listed
 *   directory): then the secondary's own rename/link gives the same result.
 * - an entry that vanished before the walk reached it is skipped (no error).
 *
 * Comparing (FullSyncOptions.ask, a full resync towards a node that may hold most of the tree):
 * a regular file with one link is not copied at once. In the walk's step that lstat'ed it, a
 * `sync-probe` asks what the peer has there at that point of the stream; the rest runs when the
 * answer is back, in probe order, while the walk goes on (at most PROBE_WINDOW files pending):
 * nothing or another kind of entry there (or a file with other links): copied as above; same
 * size and mtime, and no live write reached the file since sync-begin (`touched`): equal;
 * otherwise compared by blocks (compareBlocks: the peer's size is set to this one's, then each
 * 4 MiB range is hashed here and asked of the peer in one step, and only blocks whose hashes
 * differ are sent). Every decision is made on the inode probed: a path that names another file
 * by then was replaced by live records, which brought the new one or queued it for re-copy.
 *
 * Hard links: the first name of a file with several is copied, the others are sent as `link`
 * records to it (so the secondary has one file with several names, as the primary).
 * Limits: excluded paths are not copied, and are named in their directory's `sync-dir` so that the
 * secondary keeps its own local copy of them. Extended attributes are not copied (the primary
 * does not replicate them yet either).
 *
 * Progress: `filesTotal` and `bytesTotal` grow as the walk discovers entries (no first pass, which
 * would cost one more lstat per entry): "files" are entries of any type below the root, counted
 * in `filesTotal` when their directory is listed (or when re-queued), in `filesDone` when the
 * walk reached them; file sizes count in `bytesTotal` once the file is opened.
 */
import * as fs from 'node:fs';
import { DEFAULT_ZONE_BYTES, type PathChanges } from '../../core/replication/changes.js';
import { type RecordBody, copyBytes, packXattrs } from '../../core/replication/records.js';
import { fuse3 } from './fuse3.js';
import type { Clock } from '../clock/clock.js';
import { realClock } from '../clock/real.js';
import { PROBE_BLOCK, PROBE_RANGE, type ProbeAnswer, blockHashes } from './probe.js';

const C = fs.constants;
const MiB = 1024 * 1024;
/** Weight of one record in the outstanding bound, beside its data (headers, path, bookkeeping). */
const RECORD_COST = 256;
/** Files probed and not finished (answer awaited, or being compared) beyond which the walk waits. */
const PROBE_WINDOW = 128;

export interface FullSyncOptions {
  /** Underlying tree of the primary (e.g. /proc/self/fd/N). */
  readonly root: string;
  /** Numbers the body and hands it to the replicator IN THE SAME SYNCHRONOUS CALL (the caller
   *  guarantees that), resolving when the peer applied it. */
  readonly submit: (body: RecordBody) => Promise<void>;
  /** Paths (relative, leading '/') that are written locally only (optional). */
  readonly excluded?: (path: string) => boolean;
  /** Bytes of file data per write record, and of names per sync-dir record (default 1 MiB,
   *  keep under the link's MAX_PAYLOAD). */
  readonly chunkBytes?: number;
  /** Bytes submitted and not yet acknowledged beyond which the walk waits (default 16 MiB). */
  readonly maxOutstandingBytes?: number;
  /**
   * Incremental resync: the change log's plan (parents first, nothing below a `whole` path).
   * Only these paths are sent: `whole` ones copied as by the full walk, `listing` ones as their
   * names (the secondary removes the others), files with zones as `sync-zones` + the blocks of
   * those zones that differ from the peer's (compared: needs `ask`) + their times, `meta` ones as
   * chmod/chown/utimens. Absent: the whole tree.
   */
  readonly plan?: readonly { readonly path: string; readonly changes: PathChanges }[];
  /** Zone size of the plan's zone indexes (default 1 MiB). */
  readonly zoneBytes?: number;
  /**
   * Compare instead of copy (a full resync towards a node that may hold most of the tree): sends
   * an asking record (`sync-probe`) IN THE SAME SYNCHRONOUS CALL and resolves with the peer's
   * answer (probe.ts). Absent: every regular file is copied.
   */
  readonly ask?: (body: RecordBody) => Promise<unknown>;
  /**
   * Cap of what the copy sends, bytes a second (replication.resync_bandwidth; absent: none).
   * Counted: the records of the copy (file data, listings, metadata; RECORD_COST each), not the
   * live records that go along (the application's writes are never slowed by it). Bursts of at
   * most a tenth of a second's worth (one chunk at least).
   */
  readonly maxBytesPerSec?: number;
  /** Time for the cap (default: the real clock). */
  readonly clock?: Pick<Clock, 'now' | 'sleep'>;
}

export interface FullSyncResult {
  /** Regular files copied to the end (not counting abandoned copies). */
  readonly files: number;
  /** Directories listed. */
  readonly dirs: number;
  /** File bytes read and sent (holes not counted). */
  readonly bytes: number;
  /** Files the peer had already: equal by size and mtime (`same`), or compared by blocks (`compared`). */
  readonly same: number;
  readonly compared: number;
}

export interface FullSyncProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly filesDone: number;
  readonly filesTotal: number;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function childOf(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function isBelow(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : dir + '/');
}

function allZero(b: Buffer, n: number): boolean {
  // Compare against a zero buffer 64 KiB at a time (memcmp speed).
  for (let at = 0; at < n; at += ZERO.length) {
    const len = Math.min(ZERO.length, n - at);
    if (!b.subarray(at, at + len).equals(ZERO.subarray(0, len))) return false;
  }
  return true;
}
const ZERO = Buffer.alloc(64 * 1024);

export class FullSync {
  private readonly root: string;
  private readonly chunk: number;
  private readonly maxOutstanding: number;
  private readonly excluded: (path: string) => boolean;
  private running = false;
  /** Paths to copy again before sync-end (destinations of live renames and links). */
  private readonly recopy = new Set<string>();
  /** Non-directories whose copy on the secondary equals the primary's (copied, or made by live
   *  records inside a listed directory). */
  private readonly done = new Set<string>();
  /** Directories whose sync-dir was sent (the secondary has them, cleaned). */
  private readonly listed = new Set<string>();
  private outstanding = 0;
  private wakers: (() => void)[] = [];
  private failure: unknown = null;
  private readonly pending = new Set<Promise<void>>();
  private counts = { files: 0, dirs: 0, bytes: 0, skipped: 0, same: 0, compared: 0 };
  private readonly ask: FullSyncOptions['ask'];
  /** Files probed and not finished; `chain` runs their continuations in probe order. */
  private probing = 0;
  private chain: Promise<void> = Promise.resolve();
  /**
   * Inodes a live write, truncate or utimens reached since sync-begin (comparing mode): it set
   * the mtime on both nodes within the same millisecond or so, so their mtimes no longer tell
   * whether the rest of the file is the same: such a file is compared by blocks.
   */
  private readonly touched = new Set<number>();
  private prog = { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 };
  private readonly buf: Buffer;
  /** Hard links: inode of a file with several names -> the name copied first. */
  private readonly inodes = new Map<number, string>();

  private readonly plan: FullSyncOptions['plan'];
  private readonly rate: number | undefined;
  private readonly clock: Pick<Clock, 'now' | 'sleep'>;
  /** Bytes the copy sent (as the cap counts them) and when it started (clock ms). */
  private paced = 0;
  private pacedFrom = 0;
  private readonly zoneBytes: number;

  constructor(opts: FullSyncOptions) {
    this.plan = opts.plan;
    this.ask = opts.ask;
    if (opts.plan !== undefined && opts.ask === undefined) throw new RangeError('an incremental plan needs `ask`: its zones are compared with the peer\'s');
    if (opts.maxBytesPerSec !== undefined && !(opts.maxBytesPerSec > 0)) throw new RangeError(`maxBytesPerSec must be above 0, got ${opts.maxBytesPerSec}`);
    this.rate = opts.maxBytesPerSec;
    this.clock = opts.clock ?? realClock;
    this.zoneBytes = opts.zoneBytes ?? DEFAULT_ZONE_BYTES;
    this.root = opts.root.replace(/\/+$/, '');
    this.submitFn = opts.submit;
    this.chunk = Math.max(4096, opts.chunkBytes ?? MiB);
    this.maxOutstanding = Math.max(this.chunk, opts.maxOutstandingBytes ?? 16 * MiB);
    this.excluded = opts.excluded ?? (() => false);
    this.buf = Buffer.alloc(this.chunk);
  }

  private readonly submitFn: (body: RecordBody) => Promise<void>;

  progress(): FullSyncProgress {
    return { ...this.prog };
  }

  /** Entries skipped because the secondary cannot make them (sockets, devices). */
  get skipped(): number {
    return this.counts.skipped;
  }

  /**
   * Walks the tree and sends sync-begin, everything, sync-end; resolves when sync-end was acked.
   * Rejects when a submit rejects (the link failed) or `signal` aborts; the secondary then stays
   * in tolerant mode and is not up to date (the caller restarts the sync later).
   */
  async run(signal?: AbortSignal): Promise<FullSyncResult> {
    if (this.running) throw new Error('FullSync.run is already running');
    this.running = true;
    this.pacedFrom = this.clock.now();
    try {
      this.send({ op: 'sync-begin', path: '/' });
      if (this.plan === undefined) await this.walk('/', signal);
      else await this.followPlan(this.plan, signal);
      await this.chain;
      while (this.recopy.size > 0) {
        const next = this.recopy.values().next().value as string;
        this.recopy.delete(next);
        this.prog.filesTotal++;
        await this.walk(next, signal);
        await this.chain;
      }
      await this.step(signal);
      const end = this.send({ op: 'sync-end', path: '/' });
      await Promise.all([...this.pending]);
      await end;
      this.throwIfFailed();
      const c = this.counts;
      return { files: c.files, dirs: c.dirs, bytes: c.bytes, same: c.same, compared: c.compared };
    } finally {
      this.running = false;
    }
  }

  /**
   * Called (synchronously, in the step that submits it) for every LIVE record of this directory
   * submitted after sync-begin: keeps the re-copy queue and the "already equal" sets right.
   */
  noteLive(body: RecordBody): void {
    // From sync-begin on (the walker is made then; run() may start later): see `touched`.
    if (this.ask !== undefined && (body.op === 'write' || body.op === 'truncate' || body.op === 'utimens')) {
      try {
        this.touched.add(fs.lstatSync(this.abs(body.path)).ino);
      } catch {
        // gone already: a later probe finds another file, or none
      }
    }
    if (!this.running) return;
    switch (body.op) {
      case 'create':
      case 'mknod':
      case 'symlink':
        if (this.listed.has(parentOf(body.path))) this.done.add(body.path);
        else this.done.delete(body.path);
        return;
      case 'mkdir':
        if (this.listed.has(parentOf(body.path))) this.listed.add(body.path);
        return;
      case 'unlink':
        this.done.delete(body.path);
        return;
      case 'rmdir':
        this.listed.delete(body.path);
        return;
      case 'link':
        if (this.done.has(body.from) && this.listed.has(parentOf(body.path))) this.done.add(body.path);
        else {
          this.done.delete(body.path);
          this.recopy.add(body.path);
        }
        return;
      case 'rename': {
        const fileDone = this.done.has(body.from);
        if (fileDone && this.listed.has(parentOf(body.path))) {
          this.done.delete(body.from);
          this.done.add(body.path);
          return;
        }
        // A directory (or a file not known equal): everything below both names is unknown now.
        this.forgetBelow(body.from);
        this.forgetBelow(body.path);
        this.recopy.add(body.path);
        return;
      }
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------

  private abs(path: string): string {
    return this.root + path;
  }

  private forgetBelow(path: string): void {
    for (const p of this.done) if (isBelow(p, path)) this.done.delete(p);
    for (const p of this.listed) if (isBelow(p, path)) this.listed.delete(p);
  }

  /**
   * Submits one body now (same synchronous step as the read it reflects); tracks its ack. Every
   * record weighs `bytes` + RECORD_COST in the outstanding bound (many small records bound too).
   */
  private send(body: RecordBody, data = 0): Promise<void> {
    return this.track(this.submitFn(body), data);
  }

  /** Sends an asking record (same synchronous step as what it compares); resolves its answer. */
  private probeOf(body: RecordBody & { op: 'sync-probe' }): Promise<ProbeAnswer> {
    return this.track((this.ask as NonNullable<FullSyncOptions['ask']>)(body) as Promise<ProbeAnswer>, 0);
  }

  private track<T>(p: Promise<T>, data: number): Promise<T> {
    const bytes = data + RECORD_COST;
    this.outstanding += bytes;
    this.paced += bytes;
    const tracked = p.then(() => {
      this.outstanding -= bytes;
    }, (e: unknown) => {
      this.outstanding -= bytes;
      this.failure ??= e;
    }).finally(() => {
      this.pending.delete(tracked);
      this.wakeAll();
    });
    this.pending.add(tracked);
    return p;
  }

  private wakeAll(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  private sleep(): Promise<void> {
    return new Promise<void>((resolve) => { this.wakers.push(resolve); });
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  /** Between two synchronous steps: lets live calls run, waits for acks beyond the bound and for the cap. */
  private async step(signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.rate !== undefined) {
      // Ahead of the cap by more than the burst allowance: wait until the rate allows what was sent.
      const burst = Math.max(this.chunk + RECORD_COST, this.rate / 10);
      const aheadMs = ((this.paced - burst) / this.rate) * 1000 - (this.clock.now() - this.pacedFrom);
      if (aheadMs > 0) await this.clock.sleep(aheadMs, signal).catch(() => undefined);
    }
    while (this.outstanding > this.maxOutstanding && this.failure === null && !signal?.aborted) await this.sleep();
    if (signal?.aborted) throw signal.reason ?? new Error('full sync aborted');
    this.throwIfFailed();
  }

  /** Copies `start` (whatever it is now) and, for a directory, everything below it. */
  private async walk(start: string, signal?: AbortSignal): Promise<void> {
    const stack = [start];
    while (stack.length > 0) {
      const path = stack.pop() as string;
      while (this.probing >= PROBE_WINDOW && this.failure === null && !signal?.aborted) await this.sleep();
      await this.step(signal);
      // --- one synchronous step: look at the entry and send what it is ---
      if (path !== '/') this.prog.filesDone++;
      if (path !== '/' && this.excluded(path)) continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(this.abs(path));
      } catch {
        continue; // vanished (or its parent did): its removal is in the stream already
      }
      if (st.isDirectory()) {
        const names = this.listAndSend(path, st);
        if (names === null) continue;
        this.counts.dirs++;
        const children = names.map((n) => childOf(path, n)).filter((c) => !this.excluded(c));
        this.prog.filesTotal += children.length;
        for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as string);
        continue;
      }
      if (st.isFile()) {
        // A further name of a file already copied: a hard link on the secondary too, so that a
        // later write through either name is seen under both there as well.
        const first = st.nlink > 1 ? this.inodes.get(st.ino) : undefined;
        if (first !== undefined && first !== path && this.done.has(first) && this.stillNames(this.abs(first), st.ino)) {
          this.send({ op: 'link', from: first, path });
          this.done.add(path);
          continue;
        }
        if (this.ask !== undefined && st.nlink === 1) this.probeFile(path, st, signal);
        else if ((await this.copyFile(path, signal)) && st.nlink > 1) this.inodes.set(st.ino, path);
      } else if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = fs.readlinkSync(this.abs(path));
        } catch {
          continue;
        }
        this.send({ op: 'symlink', path, target, uid: st.uid, gid: st.gid });
        this.send({ op: 'utimens', path, atimeMs: Math.round(st.atimeMs), mtimeMs: Math.round(st.mtimeMs) });
        this.sendXattrs(path, false);
        this.done.add(path);
      } else if (st.isFIFO()) {
        this.send({ op: 'mknod', path, mode: st.mode, rdev: 0, uid: st.uid, gid: st.gid });
        this.send({ op: 'utimens', path, atimeMs: Math.round(st.atimeMs), mtimeMs: Math.round(st.mtimeMs) });
        this.sendXattrs(path, false);
        this.done.add(path);
      } else {
        this.counts.skipped++;
      }
    }
  }

  /** Incremental resync: sends what the change log names (see FullSyncOptions.plan). */
  private async followPlan(plan: NonNullable<FullSyncOptions['plan']>, signal?: AbortSignal): Promise<void> {
    this.prog.filesTotal += plan.length;
    for (const { path, changes } of plan) {
      if (path !== '/' && this.excluded(path)) {
        this.prog.filesDone++;
        continue;
      }
      if (changes.whole) {
        // walk() counts the entry itself as done.
        await this.walk(path, signal);
        continue;
      }
      await this.step(signal);
      // --- one synchronous step: look at the entry, send its listing or metadata ---
      this.prog.filesDone++;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(this.abs(path));
      } catch {
        continue; // gone: the listing of its parent (marked too) removes it on the peer
      }
      const zoned = changes.zones.size > 0 || changes.tail !== Infinity;
      if (st.isDirectory()) {
        if (changes.listing || changes.meta) this.listAndSend(path, st);
        continue;
      }
      if (zoned && st.isFile()) {
        await this.copyZones(path, changes, signal);
        continue;
      }
      if (zoned) {
        // Zones of a path that is no longer a regular file: copy whatever it is now.
        this.prog.filesTotal++;
        await this.walk(path, signal);
        continue;
      }
      if (changes.meta) {
        if (!st.isSymbolicLink()) this.send({ op: 'chmod', path, mode: st.mode & 0o7777 });
        this.send({ op: 'chown', path, uid: st.uid, gid: st.gid });
        this.send({ op: 'utimens', path, atimeMs: Math.round(st.atimeMs), mtimeMs: Math.round(st.mtimeMs) });
        this.sendXattrs(path, true);
      }
    }
  }

  /**
   * Sends the changed zones of a file the peer has too (same identity): its size, mode and
   * owner, the zones' current content (zeros included: the peer's bytes there are old), its
   * times. Reads are made in synchronous steps with their submission, as in copyFile.
   */
  private copyZones(path: string, changes: PathChanges, signal?: AbortSignal): Promise<void> {
    return this.onFile(path, undefined, async (fd, st) => {
      const z = this.zoneBytes;
      const last = Math.ceil(st.size / z); // zones 0 .. last-1 hold data
      const zones = [...changes.zones].filter((i) => i < last && i < changes.tail);
      for (let i = Math.min(changes.tail, last); i < last; i++) zones.push(i);
      zones.sort((a, b) => a - b);
      // Compared, not sent blind: a zone the peer has already (an earlier attempt of this resync
      // sent it) does not travel again.
      await this.levelByBlocks(path, fd, st, zones.map((zi) => [zi * z, Math.min((zi + 1) * z, st.size)] as const), signal);
    });
  }

  /**
   * Full resync by comparison, first step (in the walk's synchronous step that lstat'ed the
   * file): asks the peer what it has at `path` at this point of the stream. The rest runs when
   * the answer is here, in probe order (`chain`), while the walk goes on.
   */
  private probeFile(path: string, st: fs.Stats, signal?: AbortSignal): void {
    const mine = { ino: st.ino, size: st.size, mtimeMs: Math.round(st.mtimeMs), touched: this.touched.has(st.ino) };
    const answer = this.probeOf({ op: 'sync-probe', path, offset: 0, length: 0, block: PROBE_BLOCK });
    answer.catch(() => undefined); // handled in the chain (or run() fails from `failure`)
    this.probing++;
    this.chain = this.chain.then(async () => {
      try {
        await this.afterProbe(path, mine, await answer, signal);
      } catch (e) {
        this.failure ??= e;
      } finally {
        this.probing--;
        this.wakeAll();
      }
    });
  }

  /**
   * The peer's answer to the quick check, compared with this node's file at the same point of
   * the stream: no regular file there (or one with other links): copy; same size and mtime, and
   * no live write reached it since sync-begin (`touched`): equal (permissions and owner sent if
   * they differ); else compare by blocks. The file is the
   * one probed or nothing is done: a path that names another file now was renamed or replaced
   * by live records, which brought it or put it on the re-copy queue.
   */
  private async afterProbe(path: string, mine: { ino: number; size: number; mtimeMs: number; touched: boolean }, a: ProbeAnswer, signal?: AbortSignal): Promise<void> {
    await this.step(signal);
    // --- one synchronous step: still the file probed? then decide ---
    const p = this.abs(path);
    let now: fs.Stats;
    try {
      now = fs.lstatSync(p);
    } catch {
      return;
    }
    if (now.ino !== mine.ino || !now.isFile()) return;
    if (a.type !== 'file' || (a.nlink ?? 1) > 1) {
      await this.copyFile(path, signal);
      return;
    }
    if (!mine.touched && a.size === mine.size && a.mtimeMs === mine.mtimeMs) {
      if (a.mode !== (now.mode & 0o7777)) this.send({ op: 'chmod', path, mode: now.mode & 0o7777 });
      if (a.uid !== now.uid || a.gid !== now.gid) this.send({ op: 'chown', path, uid: now.uid, gid: now.gid });
      this.sendXattrs(path, false);
      this.done.add(path);
      this.counts.same++;
      this.counts.files++;
      this.prog.bytesTotal += mine.size;
      this.prog.bytesDone += mine.size;
      return;
    }
    await this.compareBlocks(path, mine.ino, signal);
  }

  /**
   * Brings the peer's copy of a file level by blocks (called in the synchronous step that checked
   * the file): `sync-zones` makes its size, mode and owner this file's (from here on the two
   * sizes stay equal: every later change of either goes to both); then each PROBE_RANGE is hashed
   * here and asked of the peer in one synchronous step, so both hashes describe the same point of
   * the stream; a block whose hashes differ is sent with its content when the answer is here
   * (a block equal then stays equal: the same live records apply to both). Then the times.
   */
  private compareBlocks(path: string, ino: number, signal?: AbortSignal): Promise<void> {
    return this.onFile(path, undefined, async (fd, st) => {
      if (st.ino !== ino) return;
      if (await this.levelByBlocks(path, fd, st, [[0, st.size]], signal)) this.counts.compared++;
    });
  }

  /**
   * `fn` on the regular file at `path`, opened (no symlink followed) and fstat'ed in the caller's
   * synchronous step, closed when `fn` settles; `none` when there is no regular file there.
   */
  private async onFile<T>(path: string, none: T, fn: (fd: number, st: fs.Stats) => Promise<T>): Promise<T> {
    let fd: number;
    try {
      fd = fs.openSync(this.abs(path), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch {
      return none;
    }
    try {
      const st = fs.fstatSync(fd);
      return st.isFile() ? await fn(fd, st) : none;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Makes the peer's copy of open file `fd` (`st`, fstat'ed in this synchronous step) equal to it
   * in the byte ranges `ranges` (see compareBlocks), then sends its times. True when done to the
   * end (false: the path stopped naming the file, which live records handle).
   */
  private async levelByBlocks(path: string, fd: number, st: fs.Stats, ranges: readonly (readonly [number, number])[], signal?: AbortSignal): Promise<boolean> {
    const p = this.abs(path);
    const ino = st.ino;
    this.send({ op: 'sync-zones', path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size });
    this.done.delete(path);
    for (const [a, b] of ranges) this.prog.bytesTotal += Math.max(0, b - a);
    const answered: Promise<void>[] = [];
    let abandoned = false;
    for (const [from, to] of ranges) {
      for (let off = from; off < to; off += PROBE_RANGE) {
        const len = Math.min(PROBE_RANGE, to - off);
        await this.step(signal);
        // --- one synchronous step: hash a range here, ask the peer for the same range ---
        if (!this.stillNames(p, ino)) { abandoned = true; break; }
        const size = fs.fstatSync(fd).size;
        if (off >= size) break; // shrunk: the rest is gone on both sides
        const mineH = blockHashes(fd, off, len, PROBE_BLOCK, size);
        const answer = this.probeOf({ op: 'sync-probe', path, offset: off, length: len, block: PROBE_BLOCK });
        answered.push(answer.then(async (theirs) => {
          await this.step(signal);
          // --- one synchronous step: still the same file? send the blocks that differ ---
          if (!this.stillNames(p, ino)) { abandoned = true; return; }
          const hs = theirs.hashes ?? [];
          for (const [j, h] of mineH.entries()) {
            if (hs[j] === h) continue;
            const start = off + j * PROBE_BLOCK;
            const end = Math.min(start + PROBE_BLOCK, off + len);
            for (let at = start; at < end;) {
              const n = fs.readSync(fd, this.buf, 0, Math.min(this.buf.length, end - at), at);
              if (n === 0) break;
              this.send({ op: 'write', path, offset: at, data: copyBytes(this.buf, n) }, n);
              this.counts.bytes += n;
              at += n;
            }
          }
          this.prog.bytesDone += len;
        }));
      }
      if (abandoned) break;
    }
    // Every range settled before the caller closes the descriptor (a failed one fails the sync).
    const settled = await Promise.allSettled(answered);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    if (abandoned) return false;
    return this.finishFile(path, fd, ino, signal);
  }

  /**
   * The end of a file's copy or comparison: in the next synchronous step, if `path` still names
   * the file (`ino`, open as `fd`), its times and extended attributes go to the peer and it is done.
   */
  private async finishFile(path: string, fd: number, ino: number, signal?: AbortSignal): Promise<boolean> {
    await this.step(signal);
    if (!this.stillNames(this.abs(path), ino)) return false;
    const now = fs.fstatSync(fd);
    this.send({ op: 'utimens', path, atimeMs: Math.round(now.atimeMs), mtimeMs: Math.round(now.mtimeMs) });
    this.sendXattrs(path, true);
    this.done.add(path);
    this.counts.files++;
    return true;
  }

  /**
   * Sends the entry's extended attributes (`sync-xattrs`: the peer sets exactly these), read in
   * the caller's synchronous step, so a live setxattr after it comes after it on the peer too.
   * Unless `force` (the entry's content was copied, or the change log names it), an entry
   * without any sends nothing: the peer's copy of an entry equal by the quick check keeps
   * whatever it has (docs/replication.md).
   */
  private sendXattrs(path: string, force: boolean): void {
    const p = this.abs(path);
    const list = fuse3().llistxattr(p);
    if (typeof list === 'number') return; // gone (its listing removes it) or no xattrs here
    const names = list.toString('utf8').split('\0').filter((n) => n !== '');
    if (names.length === 0 && !force) return;
    const attrs: [string, Uint8Array][] = [];
    for (const name of names) {
      const v = fuse3().lgetxattr(p, name);
      if (typeof v !== 'number') attrs.push([name, v]);
    }
    this.send({ op: 'sync-xattrs', path, xattrs: packXattrs(attrs) });
  }

  /** Reads a directory and sends its listing (same synchronous step); its names, or null if it vanished. */
  private listAndSend(path: string, st: fs.Stats): string[] | null {
    let names: string[];
    try {
      names = fs.readdirSync(this.abs(path));
    } catch {
      return null;
    }
    this.sendListing(path, st, names);
    this.sendXattrs(path, this.plan !== undefined);
    this.listed.add(path);
    return names;
  }

  private sendListing(path: string, st: fs.Stats, names: readonly string[]): void {
    const base = { op: 'sync-dir' as const, path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    let part: string[] = [];
    let size = 0;
    for (const n of names) {
      const b = Buffer.byteLength(n) + 1;
      if (part.length > 0 && size + b > this.chunk) {
        this.send({ ...base, names: part, more: true }, size);
        part = [];
        size = 0;
      }
      part.push(n);
      size += b;
    }
    this.send({ ...base, names: part, more: false }, size);
  }

  /** Copies one regular file (see the header); abandons it when its path stops naming it. True when copied to the end. */
  private copyFile(path: string, signal?: AbortSignal): Promise<boolean> {
    // Same synchronous step as the lstat in walk(): the entry is still this regular file.
    const p = this.abs(path);
    return this.onFile(path, false, async (fd, st) => {
      this.send({ op: 'sync-file', path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size });
      this.done.delete(path);
      this.prog.bytesTotal += st.size;
      for (let off = 0; off < st.size; off += this.chunk) {
        await this.step(signal);
        // --- one synchronous step: still the same file? read a chunk, send it ---
        if (!this.stillNames(p, st.ino)) return false;
        const n = fs.readSync(fd, this.buf, 0, this.chunk, off);
        if (n === 0) break;
        if (!allZero(this.buf, n)) this.send({ op: 'write', path, offset: off, data: copyBytes(this.buf, n) }, n);
        this.prog.bytesDone += n;
        this.counts.bytes += n;
      }
      return this.finishFile(path, fd, st.ino, signal);
    });
  }

  private stillNames(p: string, ino: number): boolean {
    try {
      return fs.lstatSync(p).ino === ino;
    } catch {
      return false;
    }
  }
}
