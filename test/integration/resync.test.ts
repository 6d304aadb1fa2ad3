// Incremental resync through the real pipeline minus TCP (issue 5 parts 1-3): a PassthroughFs
// mounted in place over A (real FUSE) submits to the module's LinkReplicator with a change log in
// a file; the replication link is the in-memory twin of TCP (same frames and engine); the
// secondary side is a ReplicaReceiver with a RecordApplier on B. B starts equal to A; A changes
// while the peer is away (the link ALONE: marks only); the resync then sends what the log names.
// Checked: B equals A afterwards (content, size, mode, owner, links, symlink targets, file
// mtimes), the bytes on the link stay within 1.1 x the changed bytes + metadata, the marks were
// durable before the writes returned (a log reopened from the file has them all), a log left
// incomplete by synchronous replication makes the next resync full, and a writer that keeps
// writing during the resync leaves B equal to A.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pseudoRandomBytes } from '../helpers/data.js';
import { needs } from '../helpers/prereq.js';
import { shIn as sh } from '../helpers/proc.js';
import { assertTreesEqual, xattrsOf } from '../helpers/tree.js';
import { fuse3 } from '../../src/adapters/fuse/fuse3.js';
import { type InPlaceMount, mountInPlace } from '../../src/adapters/fuse/mount.js';
import { PassthroughFs } from '../../src/adapters/fuse/passthrough.js';
import { FullSync } from '../../src/adapters/fuse/fullsync.js';
import { LinkReplicator } from '../../src/adapters/fuse/link-replicator.js';
import { ReplicaReceiver } from '../../src/adapters/fuse/replica-receiver.js';
import { RecordApplier } from '../../src/adapters/fuse/applier.js';
import { recoverStaleMount } from '../../src/adapters/fuse/recover.js';
import { MemoryReplicationNetwork } from '../../src/adapters/tcp/index.js';
import { ChangeLog, FileLogMedium } from '../../src/adapters/store/index.js';

const MiB = 1024 * 1024;
const KEY = Buffer.alloc(32, 9);

interface Rig {
  base: string;
  a: string;
  b: string;
  logFile: string;
  log: ChangeLog;
  link: LinkReplicator;
  replica: ReplicaReceiver;
  applier: RecordApplier;
  mount: InPlaceMount;
  under: string;
  served: { ok: boolean; detail: string }[];
  done: { ok: boolean; detail: string }[];
  /** When set: the secondary fails the stream (as a node that goes away) once this many more write bytes were applied. */
  breakAfter: { bytes: number } | null;
}

async function rig(prefix: string): Promise<Rig> {
  const base = fs.mkdtempSync(`/tmp/${prefix}`);
  fs.chmodSync(base, 0o755);
  const a = join(base, 'a');
  const b = join(base, 'b');
  fs.mkdirSync(a, { mode: 0o755 });
  fs.chmodSync(a, 0o755);
  // A: 5 dirs of 8 files of 1 MiB, a 16 MiB file, a symlink; B: an exact copy.
  for (let d = 0; d < 5; d++) {
    fs.mkdirSync(join(a, `d${d}`));
    for (let f = 0; f < 8; f++) fs.writeFileSync(join(a, `d${d}/f${f}`), pseudoRandomBytes(MiB, d * 8 + f + 1));
  }
  fs.writeFileSync(join(a, 'big'), pseudoRandomBytes(16 * MiB, 99));
  fs.symlinkSync('d0/f0', join(a, 'link'));
  await sh(`cp -a '${a}' '${b}'`, base);
  const logFile = join(base, 'changes.log');
  const log = new ChangeLog(new FileLogMedium(logFile));
  // The peer's copy equals this tree now: the log is complete and empty.
  await log.reset(true);
  const net = new MemoryReplicationNetwork({});
  const receiver = net.listenReceiver({ address: 'mem', port: 0, key: KEY, cluster: 'c', node: 'n2', module: 'web' });
  const bRoot = fs.openSync(b, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const applier = new RecordApplier({ root: `/proc/self/fd/${bRoot}` });
  const r: Partial<Rig> = { base, a, b, logFile, log, applier, served: [], done: [], breakAfter: null };
  const breaking = {
    apply: (rec: Parameters<RecordApplier['apply']>[0]) => {
      const brk = r.breakAfter ?? null;
      if (brk !== null && rec.op === 'write' && (brk.bytes -= rec.data.length) < 0) {
        r.breakAfter = null;
        return Promise.reject(new Error('the secondary went away (test)'));
      }
      return applier.apply(rec);
    },
  };
  r.replica = new ReplicaReceiver({ receiver, appliers: [breaking], onResyncDone: (ok, detail) => r.done!.push({ ok, detail }) });
  r.replica.accept(true);
  const mountRoot: { fd: number } = { fd: -1 };
  r.link = new LinkReplicator({
    roots: [''], // set below, once the mount's root descriptor is known
    connect: () => net.connectSender({ host: 'mem', port: receiver.port, key: KEY, cluster: 'c', node: 'n1', peer: 'n2', module: 'web', timeoutMs: 5000 }),
    makeWalker: (o) => new FullSync({ ...o, root: `/proc/self/fd/${mountRoot.fd}`, chunkBytes: 256 * 1024 }),
    onLost: () => undefined,
    onResyncServed: (ok, detail) => r.served!.push({ ok, detail }),
    changeLog: log,
  });
  await r.link.setAlone();
  const link = r.link;
  r.mount = await mountInPlace(a, (rootFd) => {
    mountRoot.fd = rootFd;
    return new PassthroughFs({ rootFd, replicator: link.forDir(0), numberer: link.numberer });
  });
  r.under = `/proc/self/fd/${r.mount.rootFd}`;
  return r as Rig;
}

async function tearDown(r: Rig | undefined): Promise<void> {
  if (r === undefined) return;
  try {
    await r.link.close();
    await r.replica.close();
    r.applier.close();
    await r.mount.unmount();
  } finally {
    await recoverStaleMount(r.a).catch(() => undefined);
    r.log.close();
    fs.rmSync(r.base, { recursive: true, force: true });
  }
}

/**
 * A writer through A's mount until `stop()` (at most 400 loops): 4 bytes in place in big, a line
 * appended to `append`, a temp file renamed over `over`. `stop()` resolves the loops made.
 */
function startWriter(r: Rig, append: string, over: string): { stop: () => Promise<number> } {
  const flag = join(r.base, 'stop');
  const done = sh(`i=0; while [ ! -e '${flag}' ] && [ $i -lt 400 ]; do
      printf "L$i" | dd of=big bs=4 seek=$((i * 4099)) conv=notrunc status=none
      printf "$i\\n" >> ${append}
      printf "v$i" > d3/.tmp && mv d3/.tmp ${over}
      i=$((i+1)); done; echo $i`, r.a);
  return {
    stop: async () => {
      fs.writeFileSync(flag, '');
      const loops = Number((await done).trim());
      fs.rmSync(flag);
      return loops;
    },
  };
}

/** Bytes of the regular files below `dir` (synchronous: not for a mount this process serves). */
function fileBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += fileBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

/** Resyncs B from A (incremental unless `full`); resolves the link's bytes sent for it. */
async function resync(r: Rig, generation: string, full: boolean, expectOk = true): Promise<number> {
  const before = r.link.stats().bytesSent;
  const served = r.served.length;
  // After a failed resync the link holds calls (lost) until the core says alone, as the core
  // does once the peer knows it is behind.
  if (r.link.mode === 'lost') await r.link.setAlone();
  r.replica.expectSync(30_000);
  r.link.startResync(generation, full);
  for (let i = 0; i < 6000 && r.served.length === served; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(r.served.length, served + 1, 'the resync ended');
  if (!expectOk) {
    assert.equal(r.served[served]?.ok, false, `the resync was to fail: ${r.served[served]?.detail}`);
    return r.link.stats().bytesSent - before;
  }
  assert.ok(r.served[served]?.ok, `resync served: ${r.served[served]?.detail}`);
  for (let i = 0; i < 500 && r.done.length <= served; i++) await new Promise((res) => setTimeout(res, 10));
  assert.ok(r.done[served]?.ok, `resync on the secondary: ${r.done[served]?.detail}`);
  return r.link.stats().bytesSent - before;
}

/** About 1 % of the tree (56 MiB): in place, append, delete, renames, new files and dir, truncate, chmod, symlink. */
const CHANGES = [
  'printf "%1048576s" | tr " " "M" | dd of=big bs=1M seek=5 conv=notrunc status=none', // 1 MiB in place
  'head -c 1048576 /dev/urandom >> d0/f0', // append 1 MiB
  'rm d1/f1',
  'mv d2/f2 d2/f2.renamed && mv d4 d4-renamed && mv d4-renamed d4', // renames are replayed: nothing travels
  'head -c 1048576 /dev/urandom > d3/new1', // 1 MiB new
  'mkdir newdir && head -c 524288 /dev/urandom > newdir/x', // 0.5 MiB new, in a new dir
  'truncate -s 102400 d4/f3', // the tail from zone 0: 100 KiB
  'chmod 600 d4/f4 && chown 1234:1234 d4/f5',
  'ln -s ../big d0/sl',
  'printf tiny > d0/small && ln d0/small d0/hard', // a hard link: both names copied, linked on B too
  'mkdir gone && rmdir gone',
  // Extended attributes: a metadata-only change (one set, one set then removed), a new file's.
  'setfattr -n user.meta -v m d4/f6 && setfattr -n user.gone -v g d4/f6 && setfattr -x user.gone d4/f6',
  'setfattr -n user.new -v n d3/new1',
].join(' && ');
const CHANGED_BYTES = (1 + 1 + 1 + 0.5) * MiB + 102400 + 4;

describe('incremental resync from the change log (real FUSE, in-memory link)', needs('root', 'fuse'), () => {
  let r: Rig | undefined;
  before(async () => { r = await rig('hakit-resync-'); });
  after(() => tearDown(r));

  test('only the changed paths and zones travel; B equals A; the marks were durable before the writes returned', async (t) => {
    const s = r as Rig;
    assertTreesEqual(s.under, s.b, { what: 'before' });
    await sh(CHANGES, s.a);
    const plan = s.log.set.plan(0).map((e) => e.path);
    t.diagnostic(`change log: ${s.log.set.paths} paths (${plan.join(' ')})`);
    // A restart after SIGKILL would see exactly this: every mark is in the file already.
    const reopened = new ChangeLog(new FileLogMedium(s.logFile));
    assert.equal(reopened.complete, true);
    assert.deepEqual(reopened.set.plan(0).map((e) => [e.path, e.changes]), s.log.set.plan(0).map((e) => [e.path, e.changes]));
    reopened.close();
    // An attribute B has and A never had, on a path the log names: the resync removes it.
    assert.equal(fuse3().lsetxattr(join(s.b, 'd4/f6'), 'user.stale', Buffer.from('s'), 0), 0);
    const bytes = await resync(s, 'g2', false);
    assert.equal(s.link.stats().resync.incremental, true);
    assert.equal(xattrsOf(join(s.b, 'd4/f6')), `user.meta=${Buffer.from('m').toString('hex')}`, 'B has exactly A\'s attributes of d4/f6');
    assertTreesEqual(s.under, s.b, { what: 'after the incremental resync' });
    t.diagnostic(`incremental resync: ${bytes} bytes on the link for ${CHANGED_BYTES} changed bytes (${(bytes / CHANGED_BYTES).toFixed(3)} x), tree 56 MiB`);
    // The truncated file's first 100 KiB are the same on the peer: compared, not sent.
    assert.ok(bytes >= CHANGED_BYTES - 102400, `the changed bytes travel (${bytes})`);
    assert.ok(bytes <= 1.1 * CHANGED_BYTES + 64 * 1024, `at most 1.1 x the changed bytes + 64 KiB of metadata, got ${bytes}`);
    assert.equal(s.link.mode, 'sync');
    assert.equal(s.link.stats().logComplete, false, 'synchronous replication: the log is incomplete (a crash would leave unlogged writes)');
    assert.equal(s.link.stats().dirtyPaths, 0);
  });

  test('a writer keeps writing during the resync: B equals A at the end', async () => {
    const s = r as Rig;
    await s.link.setAlone();
    assert.equal(s.link.stats().logComplete, true, 'back alone with every sync record settled: complete again');
    await sh(CHANGES.replace('mv d2/f2 d2/f2.renamed', 'mv d2/f3 d2/f3.renamed').replace('mv d4 d4-renamed && mv d4-renamed d4', 'mv d1 d1-renamed').replace('d0/small d0/hard', 'd0/small d0/hard2').replace('rm d1/f1', 'rm d1/f2').replace('d3/new1', 'd3/new2').replace('mkdir newdir && ', 'mkdir newdir2 && ').replace('newdir/x', 'newdir2/x').replace('ln -s ../big d0/sl', 'ln -s ../big d0/sl2').replace('mkdir gone', 'mkdir gone2').replace('rmdir gone', 'rmdir gone2'), s.a);
    const writer = startWriter(s, 'd0/f0', 'd3/new2');
    await new Promise((res) => setTimeout(res, 100));
    await resync(s, 'g3', false);
    const loops = await writer.stop();
    assert.ok(loops > 0);
    await new Promise((res) => setTimeout(res, 50));
    // Live writes set each node's own clock (as live replication always does): the mtimes of the
    // files the writer wrote last are not compared; everything else is.
    const written = new Set(['/big', '/d0/f0', '/d3/new2', '/d3']);
    assertTreesEqual(s.under, s.b, { what: `after a resync with a writer (${loops} loops)`, ignoreMtimeOf: (p) => written.has(p) });
  });

  test('a log left incomplete by synchronous replication (a crash in sync mode) makes the resync full: by comparison, only what differs travels; B equals A', async (t) => {
    const s = r as Rig;
    assert.equal(s.link.mode, 'sync');
    // What a restarted rfs would find: the log says incomplete.
    const reopened = new ChangeLog(new FileLogMedium(s.logFile));
    assert.equal(reopened.complete, false);
    reopened.close();
    // Differences no log names: a file rewritten on B behind hakit's back, one byte flipped in
    // place with B's mtime put back (the quick check cannot see it: as rsync, it trusts size and
    // mtime), a file B has and A has not.
    fs.writeFileSync(join(s.b, 'd0/f7'), 'behind hakit\'s back on B');
    const f6 = join(s.b, 'd0/f6');
    const st6 = fs.statSync(f6);
    await sh(`printf X | dd of='${f6}' bs=1 seek=300000 conv=notrunc status=none`, s.base);
    fs.utimesSync(f6, st6.atime, st6.mtime);
    fs.writeFileSync(join(s.b, 'd2/only-on-b'), 'stale');
    // Attributes: one B has on a file that gets copied (goes), one A has on a file equal by the
    // quick check (comes).
    assert.equal(fuse3().lsetxattr(join(s.b, 'd0/f7'), 'user.b-only', Buffer.from('b'), 0), 0);
    assert.equal(fuse3().lsetxattr(join(s.under, 'd0/f5'), 'user.a-only', Buffer.from('a'), 0), 0);
    const bytes = await resync(s, 'g4', false);
    assert.equal(s.link.stats().resync.incremental, false, 'incomplete log: full');
    t.diagnostic(`full resync by comparison: ${bytes} bytes on the link (tree 56 MiB, d0/f7 1 MiB rewritten on B)`);
    assert.ok(bytes >= MiB, `d0/f7 travelled (${bytes})`);
    assert.ok(bytes < MiB + 512 * 1024, `only what differs travels: at most 1.5 MiB, got ${bytes}`);
    assert.equal(fs.readFileSync(f6)[300000], 'X'.charCodeAt(0), 'same size and mtime: taken as equal (the quick check), as documented');
    fs.copyFileSync(join(s.under, 'd0/f6'), f6); // B's own fault, put right by hand (hakit verify finds it)
    fs.utimesSync(f6, st6.atime, st6.mtime);
    assertTreesEqual(s.under, s.b, { what: 'after the full resync' });
  });

  test('a full resync cut midway resumes: the second attempt sends what the first did not', async (t) => {
    const s = r as Rig;
    await s.link.setAlone();
    // B lost most of its tree (behind hakit's back): every directory, about 40 MiB to copy.
    let missing = 0;
    for (const e of fs.readdirSync(s.b, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      missing += fileBytes(join(s.under, e.name));
      fs.rmSync(join(s.b, e.name), { recursive: true, force: true });
    }
    assert.ok(missing > 30 * MiB, `${missing} bytes to copy`);
    s.breakAfter = { bytes: Math.floor(missing / 2) };
    const first = await resync(s, 'g5', true, false);
    t.diagnostic(`first attempt: ${first} bytes on the link before the secondary went away (${s.served.at(-1)?.detail})`);
    assert.ok(first >= missing / 2, `the first attempt got half way (${first})`);
    const second = await resync(s, 'g6', true);
    t.diagnostic(`second attempt: ${second} bytes; both: ${first + second} bytes for ${missing} missing (${((first + second) / missing).toFixed(3)} x)`);
    assertTreesEqual(s.under, s.b, { what: 'after the resumed full resync' });
    assert.ok(second < 0.6 * missing, `the second attempt does not start over (${second} bytes for the ${missing} missing)`);
    assert.ok(first + second < 1.15 * missing, `both attempts together about one copy of the ${missing} bytes missing (${first + second})`);
  });

  test('a writer keeps writing during a full resync by comparison: B equals A at the end', async (t) => {
    const s = r as Rig;
    await s.link.setAlone();
    // B differs inside files it has: bytes flipped in place (compared by blocks), a file cut short.
    await sh(`for off in 100 3000000 9000000 15000000; do printf Z | dd of=big bs=1 seek=$off conv=notrunc status=none; done
      truncate -s 1000 d0/f1`, s.b);
    const writer = startWriter(s, 'd0/f1', 'd3/f0');
    await new Promise((res) => setTimeout(res, 50));
    const bytes = await resync(s, 'g7', true);
    const loops = await writer.stop();
    t.diagnostic(`full resync by comparison with a writer (${loops} loops): ${bytes} bytes on the link`);
    assert.ok(loops > 0);
    const written = new Set(['/big', '/d0/f1', '/d3/f0', '/d3']);
    assertTreesEqual(s.under, s.b, { what: `after a full resync by comparison with a writer (${loops} loops)`, ignoreMtimeOf: (p) => written.has(p) });
  });

  test('an incremental resync cut midway resumes: the second attempt sends what the first did not', async (t) => {
    const s = r as Rig;
    await s.link.setAlone();
    assert.equal(s.link.stats().logComplete, true);
    // 12 MiB of zones rewritten in place in big, 8 new files of 1 MiB.
    await sh(`for z in 0 1 2 3 4 5 6 7 8 9 10 11; do head -c 1048576 /dev/urandom | dd of=big bs=1M seek=$z conv=notrunc status=none; done
      mkdir -p fresh && for i in 0 1 2 3 4 5 6 7; do head -c 1048576 /dev/urandom > fresh/n$i; done`, s.a);
    const changed = 20 * MiB;
    s.breakAfter = { bytes: changed / 2 };
    const first = await resync(s, 'g8', false, false);
    t.diagnostic(`first attempt: ${first} bytes before the secondary went away`);
    assert.ok(first >= changed / 2, `the first attempt got half way (${first})`);
    const complete = s.link.stats().logComplete;
    const second = await resync(s, 'g9', false);
    assert.equal(s.link.stats().resync.incremental, true, `still incremental: the log names every change (complete: ${complete}; first: ${s.served.at(-2)?.detail})`);
    t.diagnostic(`second attempt: ${second} bytes; both: ${first + second} for ${changed} changed (${((first + second) / changed).toFixed(3)} x)`);
    // The previous test's live writes set each node's own clock on the files it wrote.
    const writtenBefore = new Set(['/d0/f1', '/d3/f0', '/d3']);
    assertTreesEqual(s.under, s.b, { what: 'after the resumed incremental resync', ignoreMtimeOf: (p) => writtenBefore.has(p) });
    assert.ok(second < 0.6 * changed, `the second attempt does not start over (${second} bytes for ${changed} changed)`);
    assert.ok(first + second < 1.15 * changed, `both attempts together about one copy of the change (${first + second})`);
  });
});
