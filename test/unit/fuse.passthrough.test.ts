// The rfs file operations without a kernel mount (DESIGN.md 5 "Replicated directories", promise
// 1 and 2): PassthroughFs works on a directory through /proc/self/fd/<fd>, so its ordering, modes
// and replicator waiting are testable without root. The same operations through a real FUSE
// mount: test/integration/fuse.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassthroughFs, RecordingReplicator, FakeRfs, rfsMountPoints } from '../../src/adapters/fuse/index.js';

const C = fs.constants;

describe('PassthroughFs', () => {
  let dir: string;
  let rootFd: number;
  before(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'hakit-pfs-'));
    rootFd = fs.openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  });
  after(() => {
    fs.closeSync(rootFd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('mutations are applied, numbered in order and handed to the replicator', async () => {
    const rep = new RecordingReplicator();
    const pfs = new PassthroughFs({ rootFd, replicator: rep });
    assert.equal(await pfs.mkdir('/d', 0o750), 0);
    const fd = await pfs.create('/d/f', C.S_IFREG | 0o640);
    assert.ok(fd > 0);
    assert.equal(await pfs.write('/d/f', fd, Buffer.from('hello'), 5, 0), 5);
    assert.equal(await pfs.ftruncate('/d/f', fd, 3), 0);
    assert.equal(await pfs.release(fd), 0);
    assert.equal(await pfs.rename('/d/f', '/d/g'), 0);
    assert.equal(await pfs.chmod('/d/g', 0o600), 0);
    assert.equal(await pfs.symlink('g', '/d/s'), 0);
    assert.equal(await pfs.unlink('/d/s'), 0);
    assert.equal(fs.readFileSync(join(dir, 'd/g'), 'utf8'), 'hel');
    assert.equal(fs.statSync(join(dir, 'd/g')).mode & 0o7777, 0o600);
    assert.deepEqual(rep.records.map((r) => [r.seq, r.op, r.path]), [
      [1, 'mkdir', '/d'], [2, 'create', '/d/f'], [3, 'write', '/d/f'], [4, 'truncate', '/d/f'],
      [5, 'rename', '/d/g'], [6, 'chmod', '/d/g'], [7, 'symlink', '/d/s'], [8, 'unlink', '/d/s'],
    ]);
    const w = rep.records[2];
    assert.ok(w !== undefined && w.op === 'write');
    assert.equal(Buffer.from(w.data).toString(), 'hello');
  });

  test('a failed local call returns its errno and is not replicated', async () => {
    const rep = new RecordingReplicator();
    const pfs = new PassthroughFs({ rootFd, replicator: rep });
    assert.equal(await pfs.unlink('/does-not-exist'), -2);
    assert.equal(await pfs.rmdir('/nope'), -2);
    assert.equal(await pfs.mkdir('/', 0o755), -17 /* EEXIST */);
    assert.equal(rep.records.length, 0);
    assert.equal(pfs.stats().ops.unlink?.errors, 1);
  });

  test('a call does not return before the replicator acknowledged it', async () => {
    const rep = new RecordingReplicator();
    rep.hold = true;
    const pfs = new PassthroughFs({ rootFd, replicator: rep });
    let done = false;
    const p = pfs.mkdir('/held', 0o755).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(rep.pending, 1);
    assert.equal(done, false);
    assert.ok(fs.existsSync(join(dir, 'held')), 'applied locally while waiting for the ack');
    assert.equal(rep.release(), 1);
    assert.equal(await p, 0);
  });

  test('ro refuses mutations and writable opens with EROFS, reads go on', async () => {
    fs.writeFileSync(join(dir, 'r'), 'data');
    const rep = new RecordingReplicator();
    const pfs = new PassthroughFs({ rootFd, replicator: rep, mode: 'ro' });
    assert.equal(await pfs.mkdir('/x', 0o755), -30);
    assert.equal(await pfs.create('/y', C.S_IFREG | 0o644), -30);
    assert.equal(await pfs.open('/r', C.O_WRONLY), -30);
    assert.equal(await pfs.open('/r', C.O_RDONLY | C.O_TRUNC), -30);
    const fd = await pfs.open('/r', C.O_RDONLY);
    const buf = Buffer.alloc(10);
    assert.equal(await pfs.read(fd, buf, 10, 0), 4);
    await pfs.release(fd);
    assert.equal(rep.records.length, 0);
    assert.equal(fs.readFileSync(join(dir, 'r'), 'utf8'), 'data');
  });

  test('blocked holds mutations until rw (then applied in arrival order) or ro (EROFS)', async () => {
    const rep = new RecordingReplicator();
    const pfs = new PassthroughFs({ rootFd, replicator: rep, mode: 'blocked' });
    const a = pfs.mkdir('/b1', 0o755);
    const b = pfs.mkdir('/b2', 0o755);
    await new Promise((r) => setImmediate(r));
    assert.equal(pfs.stats().held, 2);
    assert.ok(!fs.existsSync(join(dir, 'b1')), 'nothing applied while blocked');
    pfs.setMode('rw');
    assert.deepEqual(await Promise.all([a, b]), [0, 0]);
    assert.deepEqual(rep.records.map((r) => r.path), ['/b1', '/b2']);
    pfs.setMode('blocked');
    const c = pfs.rmdir('/b1');
    await new Promise((r) => setImmediate(r));
    pfs.setMode('ro');
    assert.equal(await c, -30);
    assert.ok(fs.existsSync(join(dir, 'b1')));
  });

  test('fsync waits for the local fsync and the replicator barrier', async () => {
    const rep = new RecordingReplicator();
    const pfs = new PassthroughFs({ rootFd, replicator: rep });
    const fd = await pfs.create('/sync', C.S_IFREG | 0o644);
    rep.hold = true;
    let done = false;
    const p = pfs.fsync('/sync', fd, false).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(done, false);
    rep.release();
    assert.equal(await p, 0);
    assert.deepEqual(rep.records.map((r) => r.op), ['create', 'fsync']);
    await pfs.release(fd);
  });
});

describe('rfsMountPoints', () => {
  test('finds fuse.hakit mounts and decodes escaped names', () => {
    const info = [
      '22 1 0:21 / /proc rw,nosuid - proc proc rw',
      '90 22 0:50 / /srv/app\\040data rw,nosuid,nodev - fuse.hakit hakit-rfs rw,user_id=0',
      '91 22 0:51 / /srv/other rw - fuse.sshfs host: rw',
      '92 22 0:52 / /srv/caf\\303\\251 rw - fuse.hakit hakit-rfs rw',
    ].join('\n');
    assert.deepEqual(rfsMountPoints(info), ['/srv/app data', '/srv/café']);
  });
});

describe('FakeRfs', () => {
  test('records modes and refuses a second mount or set-mode when unmounted', async () => {
    const f = new FakeRfs();
    await assert.rejects(f.setMode('ro'), /HAKIT_E_RFS|nothing is mounted/);
    await f.mount('/srv/a', 'ro');
    await assert.rejects(f.mount('/srv/a', 'rw'), /already mounted/);
    await f.setMode('rw');
    assert.equal((await f.stats()).mode, 'rw');
    assert.deepEqual(await f.unmount(), { lazy: false });
    assert.equal((await f.stats()).mounted, false);
    assert.deepEqual(f.modes, ['ro', 'rw']);
  });
});
