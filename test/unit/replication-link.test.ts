// The primary's LinkReplicator and the secondary's ReplicaReceiver over the in-memory twin of
// the replication link (the same frames and engine as TCP): synchronous acks, held writes after a
// lost link (RPO = 0), release and failure of held writes, exclusions, resync hand-off.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryReplicationNetwork } from '../../src/adapters/tcp/index.js';
import { excludeMatcher } from '../../src/core/replication/exclude.js';
import type { Change } from '../../src/core/replication/changes.js';
import { type Record, type RecordBody, RecordNumberer } from '../../src/core/replication/records.js';
import { LinkReplicator, WRITE_PIECE, type SyncWalker, type WalkerOptions } from '../../src/adapters/fuse/link-replicator.js';
import { ReplicaReceiver } from '../../src/adapters/fuse/replica-receiver.js';
import { LOG_MISMATCH } from '../../src/adapters/fuse/applier.js';
import { ChangeLog, MemoryLogMedium } from '../../src/adapters/store/index.js';

const KEY = Buffer.alloc(32, 7);

/** An applier that records what it applied and can be made to wait. */
class ListApplier {
  readonly applied: Record[] = [];
  hold: Promise<void> | null = null;
  /** Set: every record fails with it (a full file system). */
  fail: Error | null = null;
  /** Records applied before the secondary stops applying (a hang in the middle of a call). */
  stopAfter = Infinity;
  async apply(rec: Record): Promise<void> {
    if (this.hold) await this.hold;
    if (this.applied.length >= this.stopAfter) await new Promise(() => undefined);
    if (this.fail) throw this.fail;
    this.applied.push(rec);
  }
}

class FakeWalker implements SyncWalker {
  readonly live: RecordBody[] = [];
  constructor(readonly o: WalkerOptions, private readonly bodies: RecordBody[]) {}
  async run(): Promise<{ files: number; dirs: number; bytes: number }> {
    for (const b of this.bodies) await this.o.submit(b);
    return { files: this.bodies.length, dirs: 0, bytes: 0 };
  }
  noteLive(b: RecordBody): void { this.live.push(b); }
  progress() { return { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 }; }
}

interface Rig {
  link: LinkReplicator;
  replica: ReplicaReceiver;
  applier: ListApplier;
  net: MemoryReplicationNetwork;
  lost: string[];
  unacked: string[];
  served: boolean[];
  resyncs: { ok: boolean; generation: string | null }[];
  applyFailed: string[];
  walkers: FakeWalker[];
  numberer: RecordNumberer;
  root: string;
  close(): Promise<void>;
}

async function rig(opts: { exclude?: string[]; walk?: RecordBody[]; log?: ChangeLog; maxLogPaths?: number } = {}): Promise<Rig> {
  const net = new MemoryReplicationNetwork({});
  const receiver = net.listenReceiver({ address: 'mem', port: 0, key: KEY, cluster: 'c', node: 'n2', module: 'web' });
  const applier = new ListApplier();
  const root = mkdtempSync(join(tmpdir(), 'hakit-link-'));
  const r: Partial<Rig> = { lost: [], unacked: [], served: [], resyncs: [], applyFailed: [], walkers: [], applier, net, root };
  r.replica = new ReplicaReceiver({
    receiver, appliers: [applier],
    onResyncDone: (ok, _d, generation) => r.resyncs!.push({ ok, generation }),
    onApplyFailed: (d) => r.applyFailed!.push(d),
  });
  const numberer = new RecordNumberer();
  r.numberer = numberer;
  r.link = new LinkReplicator({
    roots: [root],
    excluded: [excludeMatcher(opts.exclude ?? [])],
    numberer,
    connect: () => net.connectSender({ host: 'mem', port: receiver.port, key: KEY, cluster: 'c', node: 'n1', peer: 'n2', module: 'web', timeoutMs: 300 }),
    makeWalker: (o) => { const w = new FakeWalker(o, opts.walk ?? []); r.walkers!.push(w); return w; },
    onLost: (d) => r.lost!.push(d),
    onUnacked: (d) => r.unacked!.push(d),
    onResyncServed: (ok) => r.served!.push(ok),
    ...(opts.log ? { changeLog: opts.log } : {}),
    ...(opts.maxLogPaths !== undefined ? { maxLogPaths: opts.maxLogPaths } : {}),
  });
  r.close = async () => { await r.link!.close(); await r.replica!.close(); rmSync(root, { recursive: true, force: true }); };
  return r as Rig;
}

function write(n: RecordNumberer, path: string, text: string): Record {
  return n.number({ op: 'write', path, offset: 0, data: Buffer.from(text) });
}

/** The secondary accepts records and the primary replicates synchronously. */
async function syncMode(r: Rig): Promise<void> {
  r.replica.accept(true);
  await r.link.setSync();
}

/** Sync mode, then the link paused: one write submitted that no ack will answer (until resume). */
async function pausedWrite(r: Rig): Promise<{ b: Promise<void> }> {
  await syncMode(r);
  r.net.faults.pause();
  return { b: r.link.forDir(0).submit(write(r.numberer, '/b', '2')) };
}

const settled = async <T>(p: Promise<T>, ms = 50): Promise<'pending' | 'resolved' | 'rejected'> =>
  Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

describe('LinkReplicator + ReplicaReceiver (memory link)', () => {
  test('sync: a call completes only once the secondary applied its record, in order', async () => {
    const r = await rig();
    try {
      await syncMode(r);
      let release!: () => void;
      r.applier.hold = new Promise((res) => { release = res; });
      const rep = r.link.forDir(0);
      const a = rep.submit(write(r.numberer, '/a', 'one'));
      const b = rep.submit(write(r.numberer, '/b', 'two'));
      assert.equal(await settled(a), 'pending', 'acknowledged before the secondary applied it');
      release();
      r.applier.hold = null;
      await Promise.all([a, b]);
      assert.deepEqual(r.applier.applied.map((x) => x.path), ['/a', '/b']);
      assert.equal(r.link.stats().recordsSent, 2);
    } finally { await r.close(); }
  });

  test('status: the ack latency percentiles follow the acks (kept between stats calls while no ack comes)', async () => {
    const r = await rig();
    try {
      await syncMode(r);
      const rep = r.link.forDir(0);
      const held = async (path: string, ms: number): Promise<void> => {
        r.applier.hold = new Promise((res) => setTimeout(res, ms));
        await rep.submit(write(r.numberer, path, 'x'));
        r.applier.hold = null;
      };
      assert.deepEqual([r.link.stats().ackLatencyMsP50, r.link.stats().ackLatencyMsP99], [0, 0], 'no ack yet');
      for (const p of ['/a', '/b', '/c']) await held(p, 40);
      const first = r.link.stats();
      assert.ok(first.ackLatencyMsP50 >= 35 && first.ackLatencyMsP99 >= 35, `p50 ${first.ackLatencyMsP50}, p99 ${first.ackLatencyMsP99}: each ack waited 40 ms`);
      assert.deepEqual([r.link.stats().ackLatencyMsP50, r.link.stats().ackLatencyMsP99], [first.ackLatencyMsP50, first.ackLatencyMsP99]);
      await held('/d', 200);
      const after = r.link.stats();
      assert.ok(after.ackLatencyMsP99 >= 195, `p99 ${after.ackLatencyMsP99}: the new 200 ms ack is the slowest of four`);
      assert.ok(after.ackLatencyMsP50 < after.ackLatencyMsP99);
    } finally { await r.close(); }
  });

  test('a large write goes as pieces of WRITE_PIECE bytes in order; the call completes once the last is applied', async () => {
    const r = await rig();
    try {
      await syncMode(r);
      const data = Buffer.alloc(2 * WRITE_PIECE + 7);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
      let release!: () => void;
      r.applier.hold = new Promise((res) => { release = res; });
      const call = r.link.forDir(0).submit(r.numberer.number({ op: 'write', path: '/big', offset: 5, data }));
      assert.equal(await settled(call), 'pending');
      r.applier.hold = null;
      release();
      await call;
      const got = r.applier.applied;
      assert.deepEqual(got.map((x) => x.op === 'write' && [x.path, x.offset, x.data.length]), [['/big', 5, WRITE_PIECE], ['/big', 5 + WRITE_PIECE, WRITE_PIECE], ['/big', 5 + 2 * WRITE_PIECE, 7]]);
      assert.deepEqual(Buffer.concat(got.map((x) => (x.op === 'write' ? x.data : new Uint8Array(0)))), data, 'the pieces together are the data');
      // A write of one piece or less is one record.
      await r.link.forDir(0).submit(r.numberer.number({ op: 'write', path: '/one', offset: 0, data: data.subarray(0, WRITE_PIECE) }));
      assert.equal(r.applier.applied.length, 4);
    } finally { await r.close(); }
  });

  test('a secondary that is not SECOND yet makes the record wait, then applies it', async () => {
    const r = await rig();
    try {
      await r.link.setSync();
      const a = r.link.forDir(0).submit(write(r.numberer, '/early', 'x'));
      assert.equal(await settled(a, 80), 'pending');
      r.replica.accept(true);
      await a;
      assert.deepEqual(r.applier.applied.map((x) => x.path), ['/early']);
    } finally { await r.close(); }
  });

  test('lost link: calls are held (not acknowledged), onLost fires once; alone releases them', async () => {
    const r = await rig();
    try {
      await syncMode(r);
      await r.link.forDir(0).submit(write(r.numberer, '/a', '1'));
      r.net.faults.pause();
      const b = r.link.forDir(0).submit(write(r.numberer, '/b', '2'));
      const c = r.link.forDir(0).submit(write(r.numberer, '/c', '3'));
      await new Promise((res) => setTimeout(res, 700));
      assert.equal(await settled(b), 'pending', 'a write was acknowledged without the peer and without the core releasing it');
      assert.equal(await settled(c), 'pending');
      assert.equal(r.lost.length, 1);
      assert.equal(r.link.mode, 'lost');
      const d = r.link.forDir(0).submit(write(r.numberer, '/d', '4'));
      assert.equal(await settled(d), 'pending', 'a call after the loss must wait too');
      assert.equal(r.link.stats().held, 3);
      await r.link.setAlone();
      assert.deepEqual(await Promise.all([settled(b), settled(c), settled(d)]), ['resolved', 'resolved', 'resolved']);
      assert.equal(r.link.mode, 'alone');
      assert.ok(r.link.stats().dirtyPaths >= 3, 'the paths written alone are recorded for the resync');
    } finally { r.net.faults.resume(); await r.close(); }
  });

  test('held calls fail when the node leaves the primary role (never a success the peer lacks)', async () => {
    const r = await rig();
    try {
      const { b } = await pausedWrite(r);
      await new Promise((res) => setTimeout(res, 700));
      r.link.failHeld('demoted');
      assert.equal(await settled(b), 'rejected');
    } finally { r.net.faults.resume(); await r.close(); }
  });

  test('a sync record in flight when the node lets go fails later: EIO, and onUnacked says this copy has a change the peer may lack', async () => {
    const r = await rig();
    try {
      const { b } = await pausedWrite(r);
      r.link.failHeld('released');
      assert.deepEqual(r.unacked, [], 'not yet: the record may still be acknowledged');
      assert.equal(await settled(b, 1000), 'rejected');
      assert.equal(r.unacked.length, 1);
      assert.match(r.unacked[0] ?? '', /^write \/b: /);
      assert.deepEqual(r.lost, [], 'not a lost link of a primary: the node had let go');
    } finally { r.net.faults.resume(); await r.close(); }
  });

  test('a live record of a resync in flight when the node lets go fails later too: EIO and onUnacked (simulator finding 15)', async () => {
    const r = await rig();
    try {
      r.replica.accept(true);
      r.replica.expectSync(5000);
      r.link.startResync('gen.9');
      assert.equal(r.link.mode, 'resync');
      r.net.faults.pause();
      const b = r.link.forDir(0).submit(write(r.numberer, '/b', '2'));
      r.link.failHeld('released');
      assert.equal(await settled(b, 1000), 'rejected', 'acknowledged to the application although the peer never applied it');
      assert.equal(r.unacked.length, 1);
      assert.match(r.unacked[0] ?? '', /^write \/b: /);
    } finally { r.net.faults.resume(); await r.close(); }
  });

  test('alone: nothing is sent, calls complete at once', async () => {
    const log = new ChangeLog(new MemoryLogMedium());
    await log.reset(true);
    const r = await rig({ log });
    try {
      r.replica.accept(true);
      await r.link.forDir(0).submit(write(r.numberer, '/x', 'x'));
      assert.equal(r.applier.applied.length, 0);
      assert.equal(r.link.stats().recordsSent, 0);
      assert.equal(r.link.stats().dirtyPaths, 1);
    } finally { await r.close(); }
  });

  test('excluded paths stay local; a rename from an excluded name sends a copy of the file', async () => {
    const r = await rig({ exclude: ['*.tmp'] });
    try {
      r.replica.accept(true);
      await r.link.setSync();
      const rep = r.link.forDir(0);
      await rep.submit(write(r.numberer, '/save.tmp', 'new content'));
      assert.equal(r.applier.applied.length, 0, 'an excluded write was replicated');
      writeFileSync(join(r.root, 'save'), 'new content'); // the local rename already happened
      await rep.submit(r.numberer.number({ op: 'rename', from: '/save.tmp', path: '/save' }));
      const ops = r.applier.applied.map((x) => `${x.op} ${x.path}`);
      assert.deepEqual(ops, ['sync-file /save', 'write /save', 'utimens /save']);
      const w = r.applier.applied[1] as Extract<Record, { op: 'write' }>;
      assert.equal(Buffer.from(w.data).toString(), 'new content');
      await rep.submit(r.numberer.number({ op: 'rename', from: '/save', path: '/old.tmp' }));
      assert.deepEqual(r.applier.applied.slice(3).map((x) => `${x.op} ${x.path}`), ['unlink /save']);
    } finally { await r.close(); }
  });

  test('resync: sync-start, the walk, live records, sync-complete; then sync mode and the secondary reports done for that generation', async () => {
    const walk: RecordBody[] = [{ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0 }];
    const r = await rig({ walk });
    try {
      r.replica.accept(true);
      r.replica.expectSync(5000);
      r.link.startResync('gen.7');
      assert.equal(r.link.mode, 'resync');
      const live = r.link.forDir(0).submit(write(r.numberer, '/live', 'x'));
      await live;
      for (let i = 0; i < 300 && r.served.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.link.mode, 'sync');
    } finally { await r.close(); }
    assert.deepEqual(r.served, [true]);
    assert.deepEqual(r.resyncs, [{ ok: true, generation: 'gen.7' }]);
    assert.equal(r.applier.applied[0]?.op, 'sync-begin', 'the secondary is tolerant before the first live record');
    assert.deepEqual(r.applier.applied.slice(1).map((x) => x.path).sort(), ['/d', '/live']);
    assert.equal(r.walkers[0]?.live.length, 1, 'the walker was not told of the live write');
  });

  test('a record the secondary cannot apply (its file system full) closes the link: the primary holds the call and hears of the loss, the secondary reports the error once; in a resync it ends the resync instead', async () => {
    const r = await rig();
    try {
      await syncMode(r);
      r.applier.fail = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      const a = r.link.forDir(0).submit(write(r.numberer, '/big', 'x'));
      for (let i = 0; i < 300 && r.lost.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.lost.length, 1, 'the primary did not hear of the lost link');
      assert.match(r.lost[0] ?? '', /ENOSPC/, 'the primary is not told why');
      assert.equal(await settled(a), 'pending', 'a write the secondary could not apply was acknowledged');
      assert.deepEqual(r.applyFailed.map((d) => /ENOSPC/.test(d)), [true]);
      await r.link.setAlone();
      await a;
      // A resync that meets the same error ends as a failed resync on both sides (not as an
      // apply failure); the primary holds its calls again until the core says alone.
      r.replica.expectSync(5000);
      r.link.startResync('gen.2');
      const again = r.link.forDir(0).submit(write(r.numberer, '/again', 'y'));
      for (let i = 0; i < 300 && (r.resyncs.length === 0 || r.lost.length < 2); i++) await new Promise((res) => setTimeout(res, 10));
      assert.deepEqual(r.resyncs.map((x) => x.ok), [false]);
      assert.deepEqual(r.served, [false]);
      assert.equal(r.lost.length, 2, 'the failed resync did not make the primary hold');
      assert.equal(r.link.mode, 'lost');
      assert.equal(await settled(again), 'pending');
      assert.equal(r.applyFailed.length, 1);
      await r.link.setAlone();
      await again;
    } finally { await r.close(); }
  });

  test('a resync that fails (no ack in time) holds the calls and reports the loss, since its stream may yet complete on the peer (simulator finding 11); a call sent in sync mode that fails once a resync began is held the same way (finding 16)', async () => {
    const r = await rig({ walk: [{ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0 }] });
    try {
      r.replica.accept(true);
      r.replica.expectSync(5000);
      let release = (): void => undefined;
      r.applier.hold = new Promise((res) => { release = res; });
      r.link.startResync('g.1', true);
      await servedOnce(r);
      assert.deepEqual(r.served, [false]);
      assert.equal(r.link.mode, 'lost', 'a failed resync went on alone: the peer may complete it without what comes next');
      assert.equal(r.lost.length, 1);
      const w = r.link.forDir(0).submit(write(r.numberer, '/after', 'x'));
      assert.equal(await settled(w), 'pending', 'a write after the failed resync was acknowledged locally');
      r.applier.hold = null;
      release();
      await r.link.setAlone();
      await w;

      // Finding 16: a write sent in sync mode, unacknowledged when a resync replaces the link.
      r.replica.expectSync(5000);
      await r.link.setSync();
      r.net.faults.pause();
      const inFlight = r.link.forDir(0).submit(write(r.numberer, '/inflight', 'y'));
      r.link.startResync('g.2', true);
      r.net.faults.resume();
      for (let i = 0; i < 300 && r.lost.length < 2; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.lost.length, 2, 'the failed sync-mode call was held with nothing to answer it');
      assert.equal(r.link.mode, 'lost');
      await r.link.setAlone();
      assert.equal(await settled(inFlight), 'resolved');
    } finally { await r.close(); }
  });

  /** A rig with a complete, empty change log in memory, the secondary accepting. */
  async function logRig(): Promise<{ medium: MemoryLogMedium; log: ChangeLog; r: Rig; rep: ReturnType<LinkReplicator['forDir']> }> {
    const medium = new MemoryLogMedium();
    const log = new ChangeLog(medium);
    await log.reset(true);
    const r = await rig({ log });
    r.replica.accept(true);
    return { medium, log, r, rep: r.link.forDir(0) };
  }

  async function servedOnce(r: Rig, n = 1): Promise<void> {
    for (let i = 0; i < 300 && r.served.length < n; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(r.served.length, n, 'the resync ended');
  }

  test('change log: alone, a new mark is durable before the change (prepare), a repeated one costs nothing; the resync is incremental with the plan, then the log is emptied and incomplete (sync)', async () => {
    const { medium, r, rep } = await logRig();
    try {
      const first = rep.prepare?.({ op: 'write', path: '/db', offset: 0, length: 10 });
      assert.ok(first instanceof Promise);
      await first;
      assert.match(medium.durable, /0 Z 0 "\/db"/);
      assert.equal(rep.prepare?.({ op: 'write', path: '/db', offset: 100, length: 10 }), null);
      await rep.submit(write(r.numberer, '/db', 'x'));
      r.replica.expectSync(5000);
      r.link.startResync('g.2', false);
      await servedOnce(r);
      assert.deepEqual(r.served, [true]);
      const w = r.walkers[0];
      assert.deepEqual(w?.o.plan?.map((e) => e.path), ['/db']);
      assert.equal(r.link.mode, 'sync');
      assert.equal(r.link.stats().dirtyPaths, 0);
      assert.equal(new ChangeLog(medium).complete, false, 'a crash in sync mode finds it incomplete');
      // In sync mode nothing waits for the log.
      assert.equal(rep.prepare?.({ op: 'write', path: '/other', offset: 0, length: 1 }), null);
    } finally { await r.close(); }
  });

  test('change log: a change made while a completed resync empties the log waits for that, unmarked (no stale mark or replay outlives the resync)', async () => {
    /** A medium whose emptying writes (truncate) wait for `open()`. */
    class GatedMedium extends MemoryLogMedium {
      gate: Promise<void> | null = null;
      waiting = 0;
      private release: (() => void) | null = null;
      hold(): void { this.gate = new Promise((res) => { this.release = res; }); }
      open(): void { this.gate = null; this.release?.(); }
      override async persist(text: string, truncate: boolean): Promise<void> {
        if (truncate && this.gate) { this.waiting++; await this.gate; }
        return super.persist(text, truncate);
      }
    }
    const medium = new GatedMedium();
    const log = new ChangeLog(medium);
    await log.reset(true);
    const r = await rig({ log });
    r.replica.accept(true);
    const rep = r.link.forDir(0);
    try {
      await rep.prepare?.({ op: 'write', path: '/db', offset: 0, length: 10 });
      await rep.submit(write(r.numberer, '/db', 'x'));
      medium.hold();
      r.replica.expectSync(5000);
      r.link.startResync('g.2', false);
      for (let i = 0; i < 300 && medium.waiting === 0; i++) await new Promise((res) => setTimeout(res, 5));
      assert.equal(medium.waiting, 1, 'the resync completed and empties the log');
      assert.equal(r.link.mode, 'resync');
      const during = rep.prepare?.({ op: 'rename', path: '/b', from: '/a' });
      assert.ok(during instanceof Promise, 'the change waits for the emptied log');
      assert.equal(await settled(during), 'pending');
      medium.open();
      await during;
      await servedOnce(r);
      assert.equal(r.link.mode, 'sync');
      assert.equal(r.link.stats().dirtyPaths, 0, 'nothing was marked for the change made meanwhile');
      assert.deepEqual(log.set.replays(0), [], 'no rename to replay outlives the resync');
    } finally { await r.close(); }
  });

  test('change log: a lost link marks the unacknowledged records; back alone the log is complete again; a clean release from sync empties it', async () => {
    const medium = new MemoryLogMedium();
    const log = new ChangeLog(medium);
    const r = await rig({ log });
    try {
      r.replica.accept(true);
      await r.link.setSync();
      const rep = r.link.forDir(0);
      await rep.submit(write(r.numberer, '/acked', 'x'));
      r.applier.hold = new Promise(() => undefined); // the secondary stops applying
      const call = rep.submit(write(r.numberer, '/unacked', 'y'));
      for (let i = 0; i < 100 && r.lost.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.lost.length, 1);
      await r.link.setAlone();
      await call;
      const after = new ChangeLog(medium);
      assert.equal(after.complete, true);
      assert.deepEqual(after.set.plan(0).map((e) => e.path), ['/unacked'], 'the acknowledged write is not marked, the other is');
    } finally { await r.close(); }
    const r2 = await rig({ log: new ChangeLog(medium) });
    try {
      r2.replica.accept(true);
      await r2.link.setSync();
      r2.link.failHeld('released'); // nothing held, nothing in flight
      await log.flush();
      for (let i = 0; i < 50 && !new ChangeLog(medium).complete; i++) await new Promise((res) => setTimeout(res, 5));
      const again = new ChangeLog(medium);
      assert.equal(again.complete, true, 'the peer acknowledged everything: complete');
      assert.equal(again.set.paths, 0);
    } finally { await r2.close(); }
  });

  test('change log: a large write whose first piece was acknowledged and the rest not is marked whole (every zone it wrote)', async () => {
    const medium = new MemoryLogMedium();
    const r = await rig({ log: new ChangeLog(medium) });
    try {
      r.replica.accept(true);
      await r.link.setSync();
      r.applier.stopAfter = 1;
      const zone = 1024 * 1024;
      // Piece 1 is all of zone 0's end, pieces 2 and 3 are in zone 1.
      const call = r.link.forDir(0).submit(r.numberer.number({ op: 'write', path: '/db', offset: zone - WRITE_PIECE, data: Buffer.alloc(WRITE_PIECE + 300_000, 1) }));
      for (let i = 0; i < 100 && r.lost.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.lost.length, 1, 'the unacknowledged pieces are a lost link');
      assert.equal(r.applier.applied.length, 1, 'the secondary applied the first piece only');
      assert.equal(await settled(call), 'pending', 'the call is held, not acknowledged');
      await r.link.setAlone();
      await call;
      const plan = new ChangeLog(medium).set.plan(0);
      assert.deepEqual(plan.map((e) => [e.path, [...e.changes.zones].sort()]), [['/db', [0, 1]]]);
    } finally { await r.close(); }
  });

  test('change log: an incomplete log, a full request or a peer whose copy does not match the log make the resync full (a mere link failure does not); a full one marks the log incomplete first', async () => {
    const medium = new MemoryLogMedium();
    const log = new ChangeLog(medium); // new: incomplete
    const r = await rig({ log, walk: [{ op: 'write', path: '/db', offset: 0, data: Buffer.from('x') }] });
    try {
      r.replica.accept(true);
      r.replica.expectSync(5000);
      r.link.startResync('g.1', false);
      await servedOnce(r);
      assert.equal(r.walkers[0]?.o.plan, undefined, 'incomplete log: full');
      await r.link.setAlone();
      assert.equal(log.complete, true);
      r.replica.expectSync(5000);
      r.link.startResync('g.2', true);
      await new Promise((res) => setTimeout(res, 0));
      assert.equal(new ChangeLog(medium).complete, false, 'a full resync under way: incomplete');
      await servedOnce(r, 2);
      assert.equal(r.walkers[1]?.o.plan, undefined, 'asked full: full');
      // An incremental resync that fails (the secondary stops applying: no ack within 300 ms).
      await r.link.setAlone();
      await log.mark([{ dir: 0, kind: 'zones', path: '/db', zone: 0 }]);
      r.replica.expectSync(5000);
      let release = (): void => undefined;
      r.applier.hold = new Promise((res) => { release = res; });
      r.link.startResync('g.3', false);
      await servedOnce(r, 3);
      assert.deepEqual(r.served, [true, true, false]);
      assert.deepEqual(r.walkers[2]?.o.plan?.map((e) => e.path), ['/db']);
      // The failed resync holds calls until the core knows the peer is behind (finding 11).
      assert.equal(r.link.mode, 'lost');
      r.applier.hold = null;
      release();
      await r.link.setAlone();
      r.replica.expectSync(5000);
      r.link.startResync('g.3', false);
      assert.deepEqual(r.walkers[3]?.o.plan?.map((e) => e.path), ['/db'], 'after a link failure: incremental again (the log still names everything)');
      await servedOnce(r, 4);
      // The peer says its copy does not match the log: the next one is full.
      await r.link.setAlone();
      await log.mark([{ dir: 0, kind: 'zones', path: '/db', zone: 1 }]);
      const apply = r.applier.apply.bind(r.applier);
      r.applier.apply = async (rec) => {
        if (rec.op === 'write') throw new Error(`incremental resync: /db is missing here, so ${LOG_MISMATCH}`);
        return apply(rec);
      };
      r.replica.expectSync(5000);
      r.link.startResync('g.4', false);
      await servedOnce(r, 5);
      assert.equal(r.served[4], false);
      r.applier.apply = apply;
      await r.link.setAlone();
      r.link.startResync('g.4', false);
      assert.equal(r.walkers[5]?.o.plan, undefined, 'after a mismatch: full');
    } finally { await r.close(); }
  });

  test('change log: renames are replayed first; with renames to replay the log is incomplete (durably) before they are sent, so an interrupted resync is followed by a full one', async () => {
    const { medium, log, r, rep } = await logRig();
    try {
      const rename: Change = { op: 'rename', from: '/a', path: '/b' };
      await rep.prepare?.(rename);
      await rep.submit(r.numberer.number({ op: 'rename', from: '/a', path: '/b' }), rename);
      assert.deepEqual(log.set.replays(0), [{ op: 'rename', from: '/a', to: '/b' }], 'recorded once');
      r.replica.expectSync(5000);
      let completeWhenApplied: boolean | null = null;
      const apply = r.applier.apply.bind(r.applier);
      r.applier.apply = async (rec) => {
        if (rec.op === 'rename') completeWhenApplied = new ChangeLog(medium).complete;
        return apply(rec);
      };
      r.link.startResync('g.5', false);
      await servedOnce(r);
      assert.deepEqual(r.served, [true]);
      assert.equal(completeWhenApplied, false);
      assert.deepEqual(r.applier.applied.map((x) => `${x.op} ${x.path}`), ['sync-begin /', 'rename /b']);
    } finally { await r.close(); }
  });

  test('change log: a rename sent in a resync that fails is recorded once: replayed twice it would be another rename, of a source gone, and take the marks of the destination away (simulator seed 46323)', async () => {
    const { log, r, rep } = await logRig();
    try {
      const w: Change = { op: 'write', path: '/t', offset: 0, length: 1 };
      await rep.prepare?.(w);
      await rep.submit(write(r.numberer, '/t', 'x'), w);
      r.replica.expectSync(5000);
      let release = (): void => undefined;
      r.applier.hold = new Promise((res) => { release = res; });
      r.link.startResync('g.2', false);
      assert.equal(r.link.mode, 'resync');
      const mv: Change = { op: 'rename', from: '/t', path: '/b' };
      await rep.prepare?.(mv);
      const call = rep.submit(r.numberer.number({ op: 'rename', from: '/t', path: '/b' }), mv);
      await servedOnce(r);
      assert.deepEqual(r.served, [false]);
      assert.equal(r.link.mode, 'lost');
      r.applier.hold = null;
      release();
      await r.link.setAlone();
      await call;
      assert.deepEqual(log.set.replays(0), [{ op: 'rename', from: '/t', to: '/b' }], 'the rename is replayed once');
      assert.deepEqual(log.set.plan(0).filter((e) => e.path === '/b').map((e) => [...e.changes.zones]), [[0]], 'the write moved with the rename is still marked');
    } finally { await r.close(); }
  });

  test('change log: memory is bounded: past maxLogPaths paths the log turns incomplete and empty (the next resync is full), and stops marking', async () => {
    const medium = new MemoryLogMedium();
    const log = new ChangeLog(medium);
    await log.reset(true);
    const r = await rig({ log, maxLogPaths: 10 });
    try {
      const rep = r.link.forDir(0);
      for (let i = 0; i < 10; i++) await rep.prepare?.({ op: 'write', path: `/f${i}`, offset: 0, length: 1 });
      assert.equal(log.complete, true);
      await rep.prepare?.({ op: 'write', path: '/f10', offset: 0, length: 1 });
      await log.flush();
      assert.equal(log.complete, false);
      assert.equal(log.set.paths, 0);
      assert.equal(rep.prepare?.({ op: 'write', path: '/f11', offset: 0, length: 1 }), null, 'nothing to wait for any more');
      assert.equal(log.set.paths, 1, 'still kept in memory (for a later quarantine), bounded again at maxLogPaths');
      const again = new ChangeLog(medium);
      assert.equal(again.complete, false);
    } finally { await r.close(); }
  });
});
