/**
 * The primary's side of synchronous replication (DESIGN.md 3.2, 5): the Replicator behind every
 * PassthroughFs of a module, sending records over the authenticated replication link (tcp/).
 *
 * Modes (set by the daemon from the mirror core's `replicate` actions, except `lost`):
 *
 *     alone --sync--> sync --send failed--> lost --alone--> alone
 *       |              ^                      (calls held: nothing acknowledged)
 *       +---resync---> resync --sync-complete acked--> sync
 *                        |--send failed / walk failed--> alone
 *
 * - `alone`: records are not sent; a call completes when its local apply is done. The changed
 *   paths are recorded (`dirty`, the hook for the incremental resync of a later issue).
 * - `sync`: a call completes when the secondary acknowledged its record (applied). A failed send
 *   (no ack within replication.timeout, peer closed) enters `lost`: that call and every later
 *   one is HELD, and `onLost` tells the daemon, whose core answers `alone` only once the peer is
 *   known to be behind. `failHeld()` (the node leaves the primary role) fails held calls: the
 *   application gets EIO, never a success the peer does not have.
 * - `resync`: a full copy of every replicated dir is walked to the peer (FullSync) while live
 *   records go along in the same numbered stream; the peer is not up to date meanwhile, so a
 *   failure simply returns to `alone`. When the peer acknowledged `sync-complete`, `sync`.
 *
 * Excluded paths (replication.dirs[].exclude) are never sent. A rename from an excluded name
 * to a replicated one (the usual "write a .tmp, rename over" pattern) is sent as a copy of the
 * destination; a rename the other way as an unlink.
 *
 * Payloads on the link: u8 kind, then kind 1 = u16 dir index + encoded record, kind 2 = a JSON
 * control message (`sync-start`, `sync-complete`, both with the generation being synced).
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { HakitError } from '../../core/errors.js';
import { type Change, DEFAULT_ZONE_BYTES, type PathChanges, changeOfRecord, marksOf } from '../../core/replication/changes.js';
import { type ExcludeMatcher, NOTHING_EXCLUDED } from '../../core/replication/exclude.js';
import { type Record, type RecordBody, RecordNumberer, decodeRecord, encodeRecordParts } from '../../core/replication/records.js';
import { ChangeLog, MemoryLogMedium } from '../store/changelog.js';
import type { ReplicationSender, SenderStats } from '../tcp/link.js';
import { LOG_MISMATCH } from './applier.js';
import { type Fingerprint, type VerifyDifference, verifyTree } from './verify.js';
import type { Replicator } from './replicator.js';
import { extend } from '../../core/objects.js';

export type LinkMode = 'alone' | 'sync' | 'resync' | 'lost';

export const PAYLOAD_RECORD = 1;
export const PAYLOAD_CONTROL = 2;

export type ControlMessage =
  | { readonly t: 'sync-start'; readonly generation: string; readonly full: boolean }
  | { readonly t: 'sync-complete'; readonly generation: string };

/**
 * A larger write goes as writes of this size, one after the other in the stream (the call still
 * completes when the last is acknowledged): the secondary checks and applies the first while the
 * next are on the way. 256 KiB measured best here (dd of 1 MiB blocks, no fsync, runs 3-5 of 5:
 * unsplit 223-342 MB/s, 128 KiB 302-389, 256 KiB 322-406, 512 KiB 281-365).
 */
export const WRITE_PIECE = 256 * 1024;

/** Write data from this size on is sent from the caller's buffer (lent), below it copied. */
const LEND_AT_LEAST = 64 * 1024;

export function encodeRecordPayload(dir: number, rec: Record): Buffer {
  return encodeRecordPayloadParts(dir, rec, Infinity)[0] as Buffer;
}

/**
 * The payload of a record in parts (see encodeRecordParts): the head, then a large write's data
 * itself, which the caller lends until the send settles (the Replicator contract).
 */
function encodeRecordPayloadParts(dir: number, rec: Record, lendAtLeast: number): Buffer[] {
  // The record is encoded after 3 bytes of headroom: its data is copied once at most.
  const parts = encodeRecordParts(3, rec, lendAtLeast).map((u) => Buffer.from(u.buffer, u.byteOffset, u.length));
  const head = parts[0] as Buffer;
  head[0] = PAYLOAD_RECORD;
  head.writeUInt16BE(dir, 1);
  return parts;
}

export function encodeControlPayload(m: ControlMessage): Buffer {
  return Buffer.concat([Buffer.from([PAYLOAD_CONTROL]), Buffer.from(JSON.stringify(m), 'utf8')]);
}

export type DecodedPayload =
  | { readonly kind: 'record'; readonly dir: number; readonly record: Record }
  | { readonly kind: 'control'; readonly message: ControlMessage }
  | { readonly kind: 'bad'; readonly error: string };

/** The secondary's answer to a `verify` or `sync-probe` record (a REPLY frame): `{t: 'reply', seq, a}` as JSON. */
export function encodeReply(seq: number, answer: unknown): Buffer {
  return Buffer.from(JSON.stringify({ t: 'reply', seq, a: answer }), 'utf8');
}

export function decodeReply(b: Buffer): { seq: number; answer: object } | null {
  try {
    const m = JSON.parse(b.toString('utf8')) as { t?: unknown; seq?: unknown; a?: unknown };
    if (m.t !== 'reply' || typeof m.seq !== 'number' || typeof m.a !== 'object' || m.a === null) return null;
    return { seq: m.seq, answer: m.a };
  } catch {
    return null;
  }
}

/**
 * The answers (REPLY frames) to the asking records sent on one link connection, by seq. An
 * answer may come before its waiter asks (it is kept); a link that drops, `close`, or no answer
 * within `timeoutMs` of asking rejects the waiters (PEER_GONE, naming `what`).
 */
export class Answers {
  private readonly waiting = new Map<number, { resolve: (a: object) => void; reject: (e: Error) => void }>();
  private readonly early = new Map<number, object>();
  private down: Error | null = null;
  private readonly offs: (() => void)[];

  constructor(sender: ReplicationSender, private readonly what: string, private readonly timeoutMs = 30_000) {
    this.offs = [
      sender.onReply((payload) => {
        const r = decodeReply(payload);
        if (r === null) return;
        const w = this.waiting.get(r.seq);
        if (w) {
          this.waiting.delete(r.seq);
          w.resolve(r.answer);
        } else this.early.set(r.seq, r.answer);
      }),
      sender.onState((st, why) => { if (st === 'down') this.fail(`the link dropped during the ${what}: ${why}`); }),
    ];
  }

  /** The answer to record `seq`. */
  wait(seq: number): Promise<object> {
    const got = this.early.get(seq);
    if (got !== undefined) {
      this.early.delete(seq);
      return Promise.resolve(got);
    }
    if (this.down !== null) return Promise.reject(this.down);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(seq);
        reject(gone(`no ${this.what} answer for record ${seq} within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      this.waiting.set(seq, { resolve: (a) => { clearTimeout(t); resolve(a); }, reject: (e) => { clearTimeout(t); reject(e); } });
    });
  }

  close(): void {
    for (const off of this.offs) off();
    this.fail(`the ${this.what} ended`);
    this.early.clear();
  }

  private fail(detail: string): void {
    this.down ??= gone(detail);
    for (const w of this.waiting.values()) w.reject(this.down);
    this.waiting.clear();
  }
}

function gone(detail: string): HakitError {
  return new HakitError('PEER_GONE', { module: '(rfs)', peer: '(peer)', detail });
}

export function decodePayload(p: Buffer): DecodedPayload {
  if (p.length >= 3 && p[0] === PAYLOAD_RECORD) {
    const r = decodeRecord(p.subarray(3));
    return r.ok ? { kind: 'record', dir: p.readUInt16BE(1), record: r.record } : { kind: 'bad', error: r.error };
  }
  if (p.length >= 1 && p[0] === PAYLOAD_CONTROL) {
    try {
      const m = JSON.parse(p.subarray(1).toString('utf8')) as { t?: unknown; generation?: unknown; full?: unknown };
      if ((m.t === 'sync-start' || m.t === 'sync-complete') && typeof m.generation === 'string') {
        return { kind: 'control', message: m.t === 'sync-start' ? { t: m.t, generation: m.generation, full: m.full === true } : { t: m.t, generation: m.generation } };
      }
    } catch {
      // fall through
    }
    return { kind: 'bad', error: 'malformed control message' };
  }
  return { kind: 'bad', error: `unknown payload kind ${p[0] ?? '(empty)'}` };
}

/** What a full-sync walker offers (FullSync in fullsync.ts; a fake in unit tests). */
export interface SyncWalker {
  run(signal?: AbortSignal): Promise<{ files: number; dirs: number; bytes: number; same?: number; compared?: number }>;
  noteLive(body: RecordBody): void;
  progress(): { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number };
}

export interface WalkerOptions {
  readonly root: string;
  readonly submit: (body: RecordBody) => Promise<void>;
  readonly excluded: ExcludeMatcher;
  /** Incremental resync: the change log's plan for this dir (absent: a full copy). */
  readonly plan?: readonly { readonly path: string; readonly changes: PathChanges }[];
  readonly zoneBytes?: number;
  /** Numbers and sends an asking record (`sync-probe`) in the same synchronous call, resolving
   *  with the peer's answer (probe.ts): what the peer has already is compared, not sent. */
  readonly ask?: (body: RecordBody) => Promise<unknown>;
}

export interface LinkReplicatorOptions {
  /** Underlying tree of each replicated dir (`/proc/self/fd/<fd>`), by dir index. */
  readonly roots: readonly string[];
  readonly excluded?: readonly ExcludeMatcher[];
  /** Opens a new link to the peer (connecting at once). */
  readonly connect: () => ReplicationSender;
  readonly makeWalker: (o: WalkerOptions) => SyncWalker;
  /** Called once per entry into `lost`. */
  readonly onLost: (detail: string) => void;
  /** A resync this node served ended (ok) or was abandoned. */
  readonly onResyncServed: (ok: boolean, detail: string) => void;
  /** A sync record failed after failHeld (the node let go): its change is here, maybe not on the peer. */
  readonly onUnacked?: (detail: string) => void;
  readonly numberer?: RecordNumberer;
  /** The module's change log (absent: one in memory, incomplete: every resync is full). */
  readonly changeLog?: ChangeLog;
  /** Zone size of the change log's marks (default 1 MiB). */
  readonly zoneBytes?: number;
  /** Paths the change log keeps at most (default MAX_LOG_PATHS); beyond, it turns incomplete. */
  readonly maxLogPaths?: number;
}

/** About 300 bytes of memory each in the rfs: 200 000 paths stay under 64 MiB. */
export const MAX_LOG_PATHS = 200_000;

export interface LinkReplicatorStats {
  readonly mode: LinkMode;
  readonly link: 'up' | 'connecting' | 'down' | 'none';
  readonly recordsSent: number;
  readonly bytesSent: number;
  readonly held: number;
  /** Paths in the change log (changed while the peer did not get the records), not yet resynced. */
  readonly dirtyPaths: number;
  /** The change log names every difference with the peer's copy (an incremental resync is possible). */
  readonly logComplete: boolean;
  readonly ackLatencyMsP50: number;
  readonly ackLatencyMsP99: number;
  readonly resync: {
    readonly active: boolean; readonly incremental: boolean; readonly bytesDone: number; readonly bytesTotal: number; readonly filesDone: number; readonly filesTotal: number;
    /** While active: bytes a second since the resync started, and the seconds left at that rate (null: unknown yet). */
    readonly bytesPerSec?: number; readonly etaSeconds?: number | null;
  };
}

const ZERO_PROGRESS = { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 };

export class LinkReplicator {
  readonly numberer: RecordNumberer;
  private modeNow: LinkMode = 'alone';
  private sender: ReplicationSender | null = null;
  private held: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly log: ChangeLog;
  private readonly zoneBytes: number;
  private readonly excluded: readonly ExcludeMatcher[];
  private walkers: (SyncWalker | null)[] = [];
  private resyncAbort: AbortController | null = null;
  private incremental = false;
  /** An incremental resync failed: the next one is full (the peer's copy may not match the log). */
  private forceFull = false;
  /**
   * The log is incomplete only because this process runs synchronous replication (its in-flight
   * records are tracked in `inflight`): once they settled and are marked, the log is complete.
   * False when the log was incomplete already (found so at start, or this node was resynced).
   */
  private incompleteBySync = false;
  /** Sync-mode sends not settled yet (their failure marks their paths). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** failHeld ran: sync records that fail now were never acknowledged: EIO, not a local success. */
  private leaving = false;
  private verifying = false;
  private resyncStarted = 0;
  /** An incremental resync waits for its log state before it sends (startResync): keep marking. */
  private preparingResync = false;
  /** A resync completed: the log is being emptied for sync mode (changes wait for it, unmarked). */
  private emptyingLog: Promise<void> | null = null;
  /** The renames and links prepare() recorded (so that submit does not record them again). */
  private readonly recorded = new WeakSet<Change>();
  private readonly maxLogPaths: number;
  /** Bumped by every mode change: an async setSync that was overtaken does nothing. */
  private epoch = 0;
  private lastProgress = ZERO_PROGRESS;
  private recordsSent = 0;
  private bytesSent = 0;
  private lastSenderStats: SenderStats | null = null;

  constructor(private readonly opts: LinkReplicatorOptions) {
    this.numberer = opts.numberer ?? new RecordNumberer();
    this.log = opts.changeLog ?? new ChangeLog(new MemoryLogMedium());
    this.zoneBytes = opts.zoneBytes ?? DEFAULT_ZONE_BYTES;
    this.maxLogPaths = opts.maxLogPaths ?? MAX_LOG_PATHS;
    this.excluded = opts.roots.map((_r, i) => opts.excluded?.[i] ?? NOTHING_EXCLUDED);
  }

  get mode(): LinkMode {
    return this.modeNow;
  }

  /** The Replicator a PassthroughFs of dir `index` submits to. */
  forDir(index: number): Replicator {
    return { submit: (rec, prepared) => this.submit(index, rec, prepared), prepare: (c) => this.prepare(index, c) };
  }

  /**
   * `replicate sync`: synchronous replication on a fresh link. The log turns incomplete (durably)
   * before the first record is sent: a crash in sync mode leaves unacknowledged writes unlogged.
   */
  async setSync(): Promise<void> {
    // Calls held from an earlier loss were never acknowledged: they fail rather than vanish.
    if (this.held.length > 0) this.failHeld('replication restarted');
    this.stopResync();
    const epoch = ++this.epoch;
    await this.enterSyncLog();
    if (epoch !== this.epoch) return;
    this.leaving = false;
    this.openLink();
    this.modeNow = 'sync';
  }

  /** `replicate alone`: held calls complete locally (once marked durably); nothing is sent any more. */
  async setAlone(): Promise<void> {
    this.epoch++;
    this.stopResync();
    this.closeLink();
    this.modeNow = 'alone';
    this.leaving = false;
    await this.settleSyncLog();
    const held = this.held;
    this.held = [];
    for (const h of held) h.resolve();
  }

  /** The node leaves the primary role: held calls fail (EIO), the link closes. */
  failHeld(detail: string): void {
    const wasSync = this.modeNow === 'sync' && this.held.length === 0 && this.inflight.size === 0;
    this.epoch++;
    this.stopResync();
    this.closeLink();
    this.modeNow = 'alone';
    this.leaving = true;
    const held = this.held;
    this.held = [];
    for (const h of held) h.reject(new HakitError('RFS', { dir: '(replication)', detail }));
    if (wasSync && this.incompleteBySync) {
      // Every record was acknowledged: the peer's copy is this one.
      this.incompleteBySync = false;
      void this.log.reset(true).catch(() => undefined);
    } else void this.settleSyncLog().catch(() => undefined);
  }

  /**
   * `replicate resync`: the peer's copy is brought level, then `sync`. Incremental (only what the
   * change log names) unless `full`, the log is incomplete, or the last incremental one failed.
   * Replaces a resync that runs.
   */
  startResync(generation: string, full = true): void {
    if (this.modeNow === 'lost') return;
    this.epoch++;
    this.stopResync();
    this.leaving = false;
    const ac = new AbortController();
    this.resyncAbort = ac;
    this.resyncStarted = performance.now();
    const incremental = !full && this.log.complete && !this.forceFull;
    this.incremental = incremental;
    const replays = incremental && this.opts.roots.some((_r, i) => this.log.set.replays(i).length > 0);
    let sender: ReplicationSender | null = null;
    let answers: Answers | null = null;
    const totals = { files: 0, bytes: 0, same: 0, compared: 0 };
    let emptying: Promise<void> | null = null;
    /** When each phase ended (performance.now()), for the served line: the phases' times. */
    const at = { started: 0, copied: 0, completed: 0 };
    const stopEmptying = (): void => { if (this.emptyingLog === emptying) this.emptyingLog = null; };
    /**
     * Resync mode and the first records, in one synchronous step, before any live record: the
     * sync-start, every dir's applier tolerant (a live record may name a path the peer gets only
     * later, e.g. a file made while it was away), the renames to replay; the plan snapshot.
     */
    const begin = (): Promise<unknown>[] => {
      const link = this.openLink();
      sender = link;
      const asked = new Answers(link, 'resync');
      answers = asked;
      this.modeNow = 'resync';
      this.walkers = this.opts.roots.map((root, i) => this.opts.makeWalker({
        root, excluded: this.excluded[i] ?? NOTHING_EXCLUDED, submit: (body) => this.send(i, this.numberer.number(body)),
        // Both kinds compare what the peer has before sending (a second attempt resumes).
        ask: (body) => { const rec = this.numberer.number(body); return this.send(i, rec).then(() => asked.wait(rec.seq)); },
        ...(incremental ? { plan: snapshotPlan(this.log.set.plan(i)), zoneBytes: this.zoneBytes } : {}),
      }));
      const started: Promise<unknown>[] = [link.send(encodeControlPayload({ t: 'sync-start', generation, full: !incremental }), { signal: ac.signal })];
      for (const [i] of this.opts.roots.entries()) started.push(this.send(i, this.numberer.number({ op: 'sync-begin', path: '/' })));
      if (incremental) {
        for (const [i] of this.opts.roots.entries()) {
          for (const r of this.log.set.replays(i)) started.push(this.send(i, this.numberer.number({ op: r.op, from: r.from, path: r.to })));
        }
      }
      for (const p of started) p.catch(() => undefined);
      return started;
    };
    let started: Promise<unknown>[] = [];
    if (replays) {
      // Until the log is marked incomplete (below), changes are marked, not sent.
      this.closeLink();
      this.modeNow = 'alone';
      this.preparingResync = true;
    } else started = begin();
    void (async () => {
      if (replays) {
        // A replayed rename cannot be replayed twice (its source may name another entry by
        // then): once the peer may have applied them, only a full resync is safe after an
        // interruption, even after a restart of this node. Durable before they are sent.
        try {
          await this.log.setComplete(false);
        } finally {
          this.preparingResync = false;
        }
        if (ac.signal.aborted) throw new Error('resync stopped');
        started = begin();
      } else if (!incremental) {
        // A full copy rewrites the peer's tree anywhere: until it completes, only another full
        // one is safe, even after a restart of this node. Durable before the copy's records.
        this.incompleteBySync = false;
        await this.log.setComplete(false);
      }
      await Promise.all(started);
      at.started = performance.now();
      for (const w of this.walkers) {
        if (ac.signal.aborted) throw new Error('resync stopped');
        const r = await w?.run(ac.signal);
        if (r) for (const k of ['files', 'bytes', 'same', 'compared'] as const) totals[k] += r[k] ?? 0;
      }
      const link = sender as ReplicationSender | null;
      if (link === null) throw new Error('resync stopped');
      at.copied = performance.now();
      await link.send(encodeControlPayload({ t: 'sync-complete', generation }), { signal: ac.signal });
      at.completed = performance.now();
      if (this.resyncAbort === ac) {
        // The peer has everything sent so far: the log is emptied (and incomplete) before sync
        // mode. A change made meanwhile waits for that rather than being marked: a mark made
        // after the reset would outlive this resync (a stale replay could later be replayed twice).
        const reset = this.enterSyncLog();
        this.emptyingLog = reset;
        emptying = reset;
        await reset;
      }
    })().finally(() => answers?.close()).then(() => {
      stopEmptying(); // in the step that leaves resync mode (no mark in between)
      if (this.resyncAbort !== ac) return;
      this.lastProgress = this.progress();
      this.resyncAbort = null;
      this.walkers = [];
      this.modeNow = 'sync';
      this.forceFull = false;
      const t = totals;
      const what = incremental
        ? `${t.files} files, ${t.bytes} bytes of file data sent`
        : `${t.files} files: ${t.same} equal by size and mtime, ${t.compared} compared by blocks, ${t.files - t.same - t.compared} copied; ${t.bytes} bytes of file data sent`;
      const ms = (a: number, b: number): number => Math.round(b - a);
      const took = `${ms(this.resyncStarted, performance.now())} ms: start ${ms(this.resyncStarted, at.started)} (log state, sync-start acked), ` +
        `copy ${ms(at.started, at.copied)}, sync-complete ${ms(at.copied, at.completed)}, log emptied ${ms(at.completed, performance.now())}`;
      this.opts.onResyncServed(true, `${incremental ? 'incremental' : 'full'}, generation ${generation}; ${what}; ${took}`);
    }, (e: unknown) => {
      stopEmptying();
      if (this.resyncAbort !== ac) return;
      this.resyncLost(e);
    });
  }

  stats(): LinkReplicatorStats {
    const s = this.sender?.stats() ?? this.lastSenderStats;
    const active = this.resyncAbort !== null;
    return {
      mode: this.modeNow,
      link: this.sender === null ? 'none' : this.sender.state === 'up' ? 'up' : this.sender.state,
      recordsSent: this.recordsSent,
      bytesSent: this.bytesSent,
      held: this.held.length,
      dirtyPaths: this.log.set.paths,
      logComplete: this.log.complete,
      ackLatencyMsP50: s?.ackLatencyMsP50 ?? 0,
      ackLatencyMsP99: s?.ackLatencyMsP99 ?? 0,
      resync: { active, incremental: this.incremental, ...(active ? this.rate(this.progress()) : this.lastProgress) },
    };
  }

  async close(): Promise<void> {
    this.failHeld('the rfs is closing');
  }

  /**
   * `hakit verify`: compares every replicated dir with the peer's copy, online (verify.ts).
   * Needs synchronous replication (PRIM with an up-to-date SECOND).
   */
  async verify(signal?: AbortSignal): Promise<{ entries: number; bytes: number; differ: VerifyDifference[] }> {
    const sender = this.sender;
    if (this.modeNow !== 'sync' || sender === null) {
      throw new HakitError('BAD_REQUEST', { detail: `verify compares the primary with an up-to-date secondary; replication here is ${this.modeNow === 'sync' ? 'not connected' : this.modeNow} (run it on the PRIM node while its peer is SECOND)` });
    }
    if (this.verifying) throw new HakitError('BAD_REQUEST', { detail: 'a verify of this module runs already' });
    this.verifying = true;
    const answers = new Answers(sender, 'verify');
    const answer = (seq: number): Promise<Fingerprint> => answers.wait(seq) as Promise<Fingerprint>;
    try {
      const total = { entries: 0, bytes: 0, differ: [] as VerifyDifference[] };
      for (const [i, root] of this.opts.roots.entries()) {
        const r = await verifyTree({
          root, excluded: this.excluded[i] ?? NOTHING_EXCLUDED, answer,
          submit: (body) => {
            if (this.sender !== sender) throw gone('replication left sync mode during the verify');
            const rec = this.numberer.number(body);
            return { seq: rec.seq, acked: this.send(i, rec) };
          },
        }, i, signal);
        total.entries += r.entries;
        total.bytes += r.bytes;
        total.differ.push(...r.differ);
      }
      return total;
    } finally {
      answers.close();
      this.verifying = false;
    }
  }

  // ---------------------------------------------------------------------------------------------

  /**
   * A resync ended early. The next one is incremental again (the log still names everything;
   * resending a path is harmless) unless the peer said its copy does not match the log.
   */
  private failedResync(incremental: boolean, e: unknown): void {
    const detail = (e as Error).message ?? String(e);
    const mismatch = incremental && detail.includes(LOG_MISMATCH);
    if (mismatch) this.forceFull = true;
    this.opts.onResyncServed(false, `${incremental ? 'incremental' : 'full'}${mismatch ? ' (the next one is full)' : ''}: ${detail}`);
  }

  /** The log before synchronous replication: emptied (the peer has everything) and incomplete. */
  private async enterSyncLog(): Promise<void> {
    this.incompleteBySync = true;
    await this.log.reset(false);
  }

  /**
   * Out of synchronous replication: once every sync record settled (a failed one is marked), the
   * log names every difference again — unless it was incomplete for another reason.
   */
  private async settleSyncLog(): Promise<void> {
    if (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    if (this.incompleteBySync && this.modeNow !== 'sync') {
      this.incompleteBySync = false;
      await this.log.setComplete(true);
    } else await this.log.flush();
  }

  /**
   * Records a change of dir `dir` in the change log (not those of excluded paths; a rename
   * across the exclusion boundary is a copy or a removal, never replayed). The promise (null:
   * nothing to wait for) resolves once it is durable; with an incomplete log nothing waits (the
   * marks are kept in memory for the resync being prepared, written in the background).
   */
  private recordChange(dir: number, c: Change): Promise<void> | null {
    // With an incomplete log nothing waits for the marks (the next resync is full), but they are
    // kept: the incremental resync being prepared takes its plan from them, and a full resync
    // towards this node later quarantines what they name.
    const wait = this.log.complete || this.incompleteBySync;
    const ex = this.excluded[dir] ?? NOTHING_EXCLUDED;
    let p: Promise<void> | null;
    if (ex !== NOTHING_EXCLUDED && ex(c.path) && (c.from === undefined || ex(c.from))) return null;
    if (ex !== NOTHING_EXCLUDED && (ex(c.path) || (c.from !== undefined && ex(c.from)))) p = this.log.mark(marksOf(dir, c, this.zoneBytes), wait);
    else p = this.log.record(dir, c, this.zoneBytes, wait);
    if (this.log.set.paths > this.maxLogPaths && !this.preparingResync) {
      // Bounded memory: past this many paths the log gives up (incomplete, emptied); the next
      // resync is full.
      this.incompleteBySync = false;
      void this.log.reset(false).catch(() => undefined);
    }
    return p;
  }

  /** Before a change: while the peer does not get records, it is recorded durably first. */
  private prepare(dir: number, c: Change): Promise<void> | null {
    if (this.modeNow !== 'alone' && this.modeNow !== 'resync') return null;
    if (this.modeNow === 'resync' && this.emptyingLog !== null) return this.emptyingLog;
    // Only renames and links matter to submit (marks are idempotent): no set traffic per write.
    if (c.op === 'rename' || c.op === 'link') this.recorded.add(c);
    return this.recordChange(dir, c);
  }

  /**
   * Marks what the records of one call changed, once it is known the peer may lack them: not
   * again a rename or link that prepare() recorded already (`prepared`), since a replay made
   * twice is another rename (the second, of a source gone, took the destination's marks away:
   * simulator seed 46323, a rename sent in resync mode that failed).
   */
  private markBodies(dir: number, bodies: readonly RecordBody[], prepared: Change | undefined): Promise<void>[] {
    const replayed = prepared !== undefined && this.recorded.has(prepared);
    return bodies.filter((b) => !(replayed && (b.op === 'rename' || b.op === 'link')))
      .map((b) => this.markRecord(dir, b)).filter((p): p is Promise<void> => p !== null);
  }

  /** Records a record's change (durable later, or at the promise returned). */
  private markRecord(dir: number, rec: RecordBody): Promise<void> | null {
    return this.recordChange(dir, changeOfRecord(rec));
  }

  /** Rate and ETA of the running resync (ETA from the bytes known so far: the walk finds more as it goes). */
  private rate(p: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }): typeof p & { bytesPerSec: number; etaSeconds: number | null } {
    const secs = (performance.now() - this.resyncStarted) / 1000;
    const bytesPerSec = secs > 0 ? Math.round(p.bytesDone / secs) : 0;
    const etaSeconds = bytesPerSec > 0 && p.bytesTotal >= p.bytesDone ? Math.round((p.bytesTotal - p.bytesDone) / bytesPerSec) : null;
    return { ...p, bytesPerSec, etaSeconds };
  }

  private progress(): { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number } {
    const p = { ...ZERO_PROGRESS };
    for (const w of this.walkers) {
      if (!w) continue;
      const q = w.progress();
      p.bytesDone += q.bytesDone; p.bytesTotal += q.bytesTotal; p.filesDone += q.filesDone; p.filesTotal += q.filesTotal;
    }
    return p;
  }

  private stopResync(): void {
    const ac = this.resyncAbort;
    if (ac === null) return;
    this.resyncAbort = null;
    this.lastProgress = this.progress();
    this.walkers = [];
    ac.abort(new Error('resync stopped'));
  }

  private openLink(): ReplicationSender {
    this.closeLink();
    this.sender = this.opts.connect();
    return this.sender;
  }

  private closeLink(): void {
    const s = this.sender;
    if (s === null) return;
    this.lastSenderStats = s.stats();
    this.sender = null;
    void s.close();
  }

  /**
   * A record (or the resync's own traffic) got no acknowledgement: calls are held and the core
   * told (`onLost`), which starts a new generation and answers `replicate alone` once the peer
   * cannot take over on its copy. From sync mode; from resync mode too: the stream already sent
   * may still be delivered, up to the resync's sync-complete, and the peer would then be "up to
   * date" without what this node writes next (simulator finding 11; and a call sent in sync mode
   * that fails after a resync began, finding 16, is answered like any held call).
   */
  private enterLost(detail: string): void {
    if (this.modeNow === 'resync' && this.resyncAbort !== null) { this.resyncLost(new Error(detail)); return; }
    if (this.modeNow !== 'sync') return;
    this.modeNow = 'lost';
    this.closeLink();
    this.opts.onLost(detail);
  }

  /** The resync running failed (see enterLost): it is reported as served-failed, then lost. */
  private resyncLost(e: unknown): void {
    const incremental = this.incremental;
    this.stopResync();
    this.closeLink();
    this.modeNow = 'lost';
    this.failedResync(incremental, e);
    this.opts.onLost(`the resync failed: ${(e as Error)?.message ?? String(e)}`);
  }

  /** Sends one record now (the caller numbered it in the same synchronous step). */
  private send(dir: number, rec: Record): Promise<void> {
    if (rec.op === 'write' && rec.data.length > WRITE_PIECE) {
      const sends: Promise<void>[] = [];
      for (let off = 0; off < rec.data.length; off += WRITE_PIECE) {
        sends.push(this.sendOne(dir, extend(rec, { offset: rec.offset + off, data: rec.data.subarray(off, off + WRITE_PIECE) })));
      }
      return Promise.all(sends).then(() => undefined);
    }
    return this.sendOne(dir, rec);
  }

  private sendOne(dir: number, rec: Record): Promise<void> {
    const s = this.sender;
    if (s === null) return Promise.reject(gone('no replication link'));
    const p = encodeRecordPayloadParts(dir, rec, LEND_AT_LEAST);
    this.recordsSent++;
    for (const b of p) this.bytesSent += b.length;
    return s.send(p);
  }

  private hold(): Promise<void> {
    return new Promise((resolve, reject) => this.held.push({ resolve, reject }));
  }

  private submit(dir: number, rec: Record, prepared?: Change): Promise<void> {
    const ex = this.excluded[dir] ?? NOTHING_EXCLUDED;
    const bodies = this.translate(dir, rec, ex);
    if (this.modeNow === 'alone') {
      // prepare() recorded the change durably already (unless the mode changed while it waited);
      // the marks of what translate() made of it cost nothing more.
      const marked = this.markBodies(dir, bodies, prepared);
      return marked.length === 0 ? Promise.resolve() : Promise.all(marked).then(() => undefined);
    }
    if (this.modeNow === 'lost') {
      for (const p of this.markBodies(dir, bodies, prepared)) void p.catch(() => undefined);
      return this.hold();
    }
    if (bodies.length === 0) return Promise.resolve();
    const walker = this.walkers[dir] ?? null;
    const sends = bodies.map((b) => {
      if (walker !== null) walker.noteLive(b);
      return this.send(dir, b === rec ? rec : extend(b, { seq: rec.seq }) as Record);
    });
    const mode = this.modeNow;
    const all = Promise.all(sends);
    if (mode === 'sync') {
      this.inflight.add(all);
      const forget = (): void => { this.inflight.delete(all); };
      all.then(forget, forget);
    }
    return all.then(() => undefined, async (e: unknown) => {
      // Not acknowledged: the peer may lack it; the log names it before anything else happens.
      await Promise.all(this.markBodies(dir, bodies, prepared));
      // The node let go first (failHeld): whatever mode the record was sent in, the peer may lack
      // it and the peer may be up to date already (a resync's sync-complete went before it):
      // EIO, and the core marks this copy (simulator finding 15; the sync-mode case was e94331d).
      if (this.leaving) {
        this.opts.onUnacked?.(`${rec.op} ${rec.path}: ${(e as Error).message ?? String(e)}`);
        throw new HakitError('RFS', { dir: '(replication)', detail: 'this node left the primary role before the peer acknowledged the write' });
      }
      if (this.modeNow === 'alone') return undefined; // released meanwhile (setAlone waits for this mark)
      // Sent in sync or resync mode: the peer may have it or not, and may yet become up to date
      // (a sync-complete before it in the stream): held until the core knows the peer is behind.
      this.enterLost((e as Error).message ?? String(e));
      return this.hold();
    });
  }

  /**
   * The records to send for a local record: itself, nothing (an excluded path), or (a rename
   * crossing the exclusion boundary) an unlink or a copy of the destination.
   */
  private translate(dir: number, rec: Record, ex: ExcludeMatcher): (Record | RecordBody)[] {
    if (ex === NOTHING_EXCLUDED) return [rec];
    const to = ex(rec.path);
    if (rec.op === 'rename' || rec.op === 'link') {
      const from = ex(rec.from);
      if (from && to) return [];
      if (!from && !to) return [rec];
      if (!from && to) return rec.op === 'rename' ? [{ op: 'unlink', path: rec.from }] : [];
      return this.copyOf(dir, rec.path);
    }
    return to ? [] : [rec];
  }

  /** Records that recreate `path` (a file or symlink of the primary's tree) on the peer. */
  private copyOf(dir: number, path: string): RecordBody[] {
    const root = this.opts.roots[dir] ?? '';
    const st = fs.lstatSync(root + path);
    if (st.isSymbolicLink()) {
      return [{ op: 'unlink', path }, { op: 'symlink', path, target: fs.readlinkSync(root + path), uid: st.uid, gid: st.gid }];
    }
    if (!st.isFile()) {
      throw new HakitError('RFS', { dir: root, detail: `renaming the excluded ${path} (not a file) into the replicated tree is not supported` });
    }
    const data = fs.readFileSync(root + path);
    const out: RecordBody[] = [{ op: 'sync-file', path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size }];
    const chunk = 1024 * 1024;
    for (let off = 0; off < data.length; off += chunk) out.push({ op: 'write', path, offset: off, data: data.subarray(off, off + chunk) });
    out.push({ op: 'utimens', path, atimeMs: Math.floor(st.atimeMs), mtimeMs: Math.floor(st.mtimeMs) });
    return out;
  }
}

/** A copy of a plan that later marks do not change. */
function snapshotPlan(plan: readonly { readonly path: string; readonly changes: PathChanges }[]): { path: string; changes: PathChanges }[] {
  return plan.map(({ path, changes }) => ({ path, changes: { ...changes, zones: new Set(changes.zones) } }));
}

/** For tests and tools: a payload back to what it carries (throws on a bad one). */
export function payloadOrThrow(p: Buffer): Exclude<DecodedPayload, { kind: 'bad' }> {
  const d = decodePayload(p);
  if (d.kind === 'bad') throw new Error(d.error);
  return d;
}
