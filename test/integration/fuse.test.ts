// The rfs through a real FUSE mount in place (DESIGN.md 5 "Replicated directories", 7 "FUSE";
// promises 1, 2, 4): POSIX behaviour applications rely on, the underlying directory holding the
// same bytes after unmount, records matching the calls in order, ro/blocked modes, and recovery
// of the stale mount a SIGKILLed rfs process leaves.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { RfsProcess, recoverStaleMount, rfsMountPoints } from '../../src/adapters/fuse/index.js';

const GiB = 1024 ** 3;

function sh(script: string, opts: { uid?: number } = {}): string {
  const argv = opts.uid === undefined ? ['sh', '-c', script] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', 'sh', '-c', script];
  return execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What a user can see of a tree: type, size, mode, owner, link count, content hash, link target. */
function manifest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = join(rel, name);
      const st = fs.lstatSync(join(root, r));
      let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} ${st.size}`;
      if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(join(root, r))}`;
      else if (st.isFile()) what += ` ${hashFile(join(root, r))}`;
      out.set(r, what);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

function hashFile(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    // Sparse holes read as zeros; hash data regions and the size (fine for our file sizes).
    let pos = 0;
    const size = fs.fstatSync(fd).size;
    if (size > 64 * 1024 * 1024) {
      // Large sparse test files: hash the first and last MiB only.
      for (const at of [0, Math.max(0, size - buf.length)]) {
        const n = fs.readSync(fd, buf, 0, buf.length, at);
        h.update(buf.subarray(0, n));
      }
      return h.digest('hex').slice(0, 16);
    }
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex').slice(0, 16);
}

function errCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

/** Waits until `cond()` is true, polling; fails after `ms` (a bound, not a sleep). */
async function until(cond: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('rfs: POSIX behaviour through the mount', needs('root', 'fuse'), () => {
  let base: string;
  let dir: string;
  let rfs: RfsProcess;
  let seen: Map<string, string> | undefined;

  before(async () => {
    base = fs.mkdtempSync('/tmp/hakit-fuse-');
    fs.chmodSync(base, 0o755);
    dir = join(base, 'data');
    fs.mkdirSync(dir);
    fs.writeFileSync(join(dir, 'before-mount'), 'was here before\n');
    rfs = new RfsProcess();
    await rfs.mount(dir, 'rw');
  });

  after(async () => {
    try {
      if (rfs.child.exitCode === null) await rfs.unmount();
      await rfs.stop();
    } finally {
      await recoverStaleMount(dir).catch(() => undefined);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  test('the mount is in place and shows the files that were there before', () => {
    assert.ok(rfsMountPoints().includes(dir));
    assert.equal(fs.readFileSync(join(dir, 'before-mount'), 'utf8'), 'was here before\n');
  });

  test('create, write, read back; append; truncate and ftruncate', () => {
    const f = join(dir, 'a.txt');
    fs.writeFileSync(f, 'hello world\n');
    assert.equal(fs.readFileSync(f, 'utf8'), 'hello world\n');
    fs.appendFileSync(f, 'line 2\n');
    const fd = fs.openSync(f, 'a');
    fs.writeSync(fd, 'line 3\n', 0);
    fs.closeSync(fd);
    assert.equal(fs.readFileSync(f, 'utf8'), 'hello world\nline 2\nline 3\n');
    fs.truncateSync(f, 5);
    assert.equal(fs.readFileSync(f, 'utf8'), 'hello');
    const fd2 = fs.openSync(f, 'r+');
    fs.ftruncateSync(fd2, 2);
    fs.closeSync(fd2);
    assert.equal(fs.readFileSync(f, 'utf8'), 'he');
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    fs.writeFileSync(join(dir, 'big.bin'), big);
    assert.ok(fs.readFileSync(join(dir, 'big.bin')).equals(big));
  });

  test('sparse files: a hole reads as zeros; a write at 5 GiB stays sparse', () => {
    const f = join(dir, 'sparse');
    const fd = fs.openSync(f, 'w+');
    fs.writeSync(fd, Buffer.from('end'), 0, 3, 1024 * 1024);
    fs.writeSync(fd, Buffer.from('far'), 0, 3, 5 * GiB);
    const hole = Buffer.alloc(4096, 1);
    fs.readSync(fd, hole, 0, 4096, 4096);
    assert.ok(hole.equals(Buffer.alloc(4096)), 'the hole reads as zeros');
    const back = Buffer.alloc(3);
    fs.readSync(fd, back, 0, 3, 5 * GiB);
    assert.equal(back.toString(), 'far');
    fs.closeSync(fd);
    const st = fs.statSync(f);
    assert.equal(st.size, 5 * GiB + 3);
    assert.ok(st.blocks * 512 < 1024 * 1024, `allocated ${st.blocks * 512} bytes: not sparse`);
  });

  test('rename, also over an existing file', () => {
    fs.writeFileSync(join(dir, 'r1'), 'one');
    fs.writeFileSync(join(dir, 'r2'), 'two');
    fs.renameSync(join(dir, 'r1'), join(dir, 'r3'));
    assert.ok(!fs.existsSync(join(dir, 'r1')));
    fs.renameSync(join(dir, 'r3'), join(dir, 'r2'));
    assert.equal(fs.readFileSync(join(dir, 'r2'), 'utf8'), 'one');
  });

  test('hard links share content and count', () => {
    fs.writeFileSync(join(dir, 'h1'), 'shared');
    fs.linkSync(join(dir, 'h1'), join(dir, 'h2'));
    assert.equal(fs.statSync(join(dir, 'h2')).nlink, 2);
    fs.appendFileSync(join(dir, 'h2'), '!');
    assert.equal(fs.readFileSync(join(dir, 'h1'), 'utf8'), 'shared!');
  });

  test('symlink and readlink', () => {
    fs.symlinkSync('h1', join(dir, 'sl'));
    assert.equal(fs.readlinkSync(join(dir, 'sl')), 'h1');
    assert.equal(fs.readFileSync(join(dir, 'sl'), 'utf8'), 'shared!');
    assert.ok(fs.lstatSync(join(dir, 'sl')).isSymbolicLink());
  });

  test('chmod and chown; utimens (touch -d)', () => {
    const f = join(dir, 'perm');
    fs.writeFileSync(f, 'x');
    fs.chmodSync(f, 0o640);
    fs.chownSync(f, 65534, 65534);
    const st = fs.statSync(f);
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(st.uid, 65534);
    assert.equal(st.gid, 65534);
    sh(`touch -d '2001-02-03 04:05:06 UTC' '${f}'`);
    assert.equal(fs.statSync(f).mtime.toISOString(), '2001-02-03T04:05:06.000Z');
  });

  test('permissions are checked for other users (default_permissions)', () => {
    fs.mkdirSync(join(dir, 'private'), { mode: 0o700 });
    assert.throws(() => sh(`ls '${join(dir, 'private')}'`, { uid: 65534 }), /Permission denied/);
  });

  test('files created by a non-root user are owned by that user', () => {
    fs.mkdirSync(join(dir, 'shared'), { mode: 0o1777 });
    fs.chmodSync(join(dir, 'shared'), 0o1777);
    sh(`umask 022; echo mine > '${join(dir, 'shared', 'nobody-file')}'; mkdir '${join(dir, 'shared', 'nobody-dir')}'; ln -s nobody-file '${join(dir, 'shared', 'nobody-link')}'`, { uid: 65534 });
    for (const name of ['nobody-file', 'nobody-dir', 'nobody-link']) {
      const st = fs.lstatSync(join(dir, 'shared', name));
      assert.equal(st.uid, 65534, `${name} uid`);
      assert.equal(st.gid, 65534, `${name} gid`);
    }
    assert.equal(fs.statSync(join(dir, 'shared', 'nobody-file')).mode & 0o777, 0o644, 'the umask applies');
    // Another user cannot remove it from the sticky directory.
    assert.throws(() => sh(`rm -f '${join(dir, 'shared', 'nobody-file')}'`, { uid: 65533 }), /Operation not permitted/);
  });

  test('a set-group-ID directory gives new entries its group', () => {
    fs.mkdirSync(join(dir, 'sgid'));
    fs.chownSync(join(dir, 'sgid'), 0, 4242);
    fs.chmodSync(join(dir, 'sgid'), 0o2777);
    sh(`echo x > '${join(dir, 'sgid', 'f')}'; mkdir '${join(dir, 'sgid', 'd')}'`, { uid: 65534 });
    assert.equal(fs.statSync(join(dir, 'sgid', 'f')).gid, 4242);
    assert.equal(fs.statSync(join(dir, 'sgid', 'f')).uid, 65534);
    assert.equal(fs.statSync(join(dir, 'sgid', 'd')).gid, 4242);
    assert.ok((fs.statSync(join(dir, 'sgid', 'd')).mode & 0o2000) !== 0, 'the subdirectory inherits set-group-ID');
  });

  test('extended attributes: set, get, list, remove, replace/create flags, on the entry not the symlink target', () => {
    const f = join(dir, 'x');
    fs.writeFileSync(f, 'x');
    fs.symlinkSync('x', join(dir, 'x-link'));
    const py = (code: string) => sh(`python3 -c '${code}'`).trim();
    py(`import os; os.setxattr("${f}", "user.k", bytes([118, 0, 98]))`);
    assert.equal(py(`import os; print(list(os.getxattr("${f}", "user.k")))`), '[118, 0, 98]');
    py(`import os; os.setxattr("${f}", "user.other", b"")`);
    assert.equal(py(`import os; print(sorted(os.listxattr("${f}")))`), "['user.k', 'user.other']");
    assert.match(py(`import os\ntry:\n os.setxattr("${f}", "user.k", b"w", os.XATTR_CREATE)\nexcept OSError as e: print(e.errno)`), /^17$/);
    assert.match(py(`import os\ntry:\n os.setxattr("${f}", "user.none", b"w", os.XATTR_REPLACE)\nexcept OSError as e: print(e.errno)`), /^61$/);
    py(`import os; os.removexattr("${f}", "user.other")`);
    assert.equal(py(`import os; print(os.listxattr("${f}"))`), "['user.k']");
    assert.match(py(`import os\ntry:\n os.getxattr("${f}", "user.other")\nexcept OSError as e: print(e.errno)`), /^61$/);
    assert.equal(py(`import os; print(os.listxattr("${join(dir, 'x-link')}", follow_symlinks=False))`), '[]');
  });

  test('rename with RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE is refused with EINVAL', () => {
    fs.writeFileSync(join(dir, 'nr-a'), 'a');
    fs.writeFileSync(join(dir, 'nr-b'), 'b');
    const mv = (flags: string) => sh(`python3 -c 'import ctypes,os\nlibc=ctypes.CDLL(None,use_errno=True)\nr=libc.renameat2(-100,b"${join(dir, 'nr-a')}",-100,b"${join(dir, 'nr-b')}",${flags})\nprint(0 if r==0 else ctypes.get_errno())'`).trim();
    assert.equal(mv('1'), '17', 'EEXIST');
    assert.equal(fs.readFileSync(join(dir, 'nr-b'), 'utf8'), 'b');
    assert.equal(mv('2'), '22', 'EINVAL');
    fs.unlinkSync(join(dir, 'nr-b'));
    assert.equal(mv('1'), '0');
    assert.equal(fs.readFileSync(join(dir, 'nr-b'), 'utf8'), 'a');
    assert.ok(!fs.existsSync(join(dir, 'nr-a')));
  });

  test('fallocate allocates and grows a file; punching a hole is refused with EOPNOTSUPP', () => {
    const f = join(dir, 'falloc');
    fs.writeFileSync(f, 'abc');
    sh(`fallocate -l 1048576 '${f}'`);
    assert.equal(fs.statSync(f).size, 1048576);
    assert.equal(fs.readFileSync(f).subarray(0, 4).toString('latin1'), 'abc\0');
    sh(`fallocate -n -o 0 -l 4194304 '${f}'`);
    assert.equal(fs.statSync(f).size, 1048576, 'KEEP_SIZE keeps the size');
    assert.throws(() => sh(`fallocate -p -o 0 -l 4096 '${f}'`), /unsupported|not supported/);
  });

  test('times keep sub-millisecond precision; touch -a / -m change one time only', () => {
    const f = join(dir, 'times');
    fs.writeFileSync(f, 't');
    sh(`touch -d '2001-02-03 04:05:06.123456789 UTC' '${f}'`);
    const st = fs.statSync(f, { bigint: true });
    assert.equal(st.mtimeNs / 1000n, 981173106123456n, 'microseconds kept');
    sh(`touch -a -d '2010-01-01 00:00:00 UTC' '${f}'`);
    const after = fs.statSync(f);
    assert.equal(after.atime.toISOString(), '2010-01-01T00:00:00.000Z');
    assert.equal(after.mtime.toISOString(), '2001-02-03T04:05:06.123Z', 'mtime left as it was (UTIME_OMIT)');
  });

  test('names with spaces, UTF-8 and a newline', () => {
    for (const name of ['with space', 'ünïcødé ✓', 'new\nline']) {
      fs.writeFileSync(join(dir, name), name);
      assert.equal(fs.readFileSync(join(dir, name), 'utf8'), name);
      assert.ok(fs.readdirSync(dir).includes(name), `${JSON.stringify(name)} is listed`);
    }
  });

  test('mkdir and rmdir; rmdir of a non-empty directory fails with ENOTEMPTY', () => {
    fs.mkdirSync(join(dir, 'd1/d2'), { recursive: true });
    fs.writeFileSync(join(dir, 'd1/d2/f'), 'f');
    assert.equal(errCode(() => fs.rmdirSync(join(dir, 'd1'))), 'ENOTEMPTY');
    fs.mkdirSync(join(dir, 'empty'));
    fs.rmdirSync(join(dir, 'empty'));
    assert.ok(!fs.existsSync(join(dir, 'empty')));
  });

  test('an unlinked file stays readable through its open descriptor', () => {
    const f = join(dir, 'doomed');
    fs.writeFileSync(f, 'still here');
    const fd = fs.openSync(f, 'r');
    fs.unlinkSync(f);
    assert.ok(!fs.existsSync(f));
    const buf = Buffer.alloc(10);
    assert.equal(fs.readSync(fd, buf, 0, 10, 0), 10);
    assert.equal(buf.toString(), 'still here');
    fs.closeSync(fd);
  });

  test('concurrent writers to different files', async () => {
    fs.mkdirSync(join(dir, 'conc'));
    const n = 6;
    const data = (i: number) => Buffer.alloc(2 * 1024 * 1024, i + 1);
    await Promise.all(Array.from({ length: n }, (_, i) => fs.promises.writeFile(join(dir, 'conc', `f${i}`), data(i))));
    for (let i = 0; i < n; i++) assert.ok(fs.readFileSync(join(dir, 'conc', `f${i}`)).equals(data(i)), `f${i}`);
  });

  test('statfs (df) reports the underlying file system', () => {
    const through = fs.statfsSync(dir);
    const under = fs.statfsSync(base);
    const size = (s: fs.StatsFs) => s.blocks * s.bsize;
    assert.ok(Math.abs(size(through) - size(under)) / size(under) < 0.01, `${size(through)} vs ${size(under)}`);
    assert.match(sh(`df -P '${dir}'`), /hakit-rfs/);
  });

  test('fsync returns success and is counted', async () => {
    const fd = fs.openSync(join(dir, 'synced'), 'w');
    fs.writeSync(fd, 'durable');
    fs.fsyncSync(fd);
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    assert.ok(((await rfs.stats()).ops.fsync?.calls ?? 0) >= 2);
  });

  test('after unmount the underlying directory holds exactly what the mount showed', async () => {
    seen = manifest(dir);
    assert.ok(seen.size > 20);
    assert.deepEqual(await rfs.unmount(), { lazy: false });
    assert.ok(!rfsMountPoints().includes(dir));
    assert.deepEqual(manifest(dir), seen);
    assert.equal(fs.readFileSync(join(dir, 'before-mount'), 'utf8'), 'was here before\n');
  });
});

describe('rfs: records, modes and crash recovery', needs('root', 'fuse'), () => {
  let base: string;
  let dir: string;

  before(() => {
    base = fs.mkdtempSync('/tmp/hakit-fuse-');
    fs.chmodSync(base, 0o755);
    dir = join(base, 'data');
    fs.mkdirSync(dir);
  });
  after(async () => {
    await recoverStaleMount(dir).catch(() => undefined);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('the records the replicator sees match the calls, in order', async () => {
    const rfs = new RfsProcess({ replicator: 'recording' });
    try {
      await rfs.mount(dir, 'rw');
      fs.mkdirSync(join(dir, 'r'), { mode: 0o755 });
      fs.writeFileSync(join(dir, 'r/f'), 'abc');
      fs.appendFileSync(join(dir, 'r/f'), 'de');
      fs.renameSync(join(dir, 'r/f'), join(dir, 'r/g'));
      fs.chmodSync(join(dir, 'r/g'), 0o600);
      fs.symlinkSync('g', join(dir, 'r/s'));
      fs.linkSync(join(dir, 'r/g'), join(dir, 'r/h'));
      fs.truncateSync(join(dir, 'r/g'), 1);
      fs.unlinkSync(join(dir, 'r/h'));
      fs.unlinkSync(join(dir, 'r/s'));
      fs.unlinkSync(join(dir, 'r/g'));
      fs.rmdirSync(join(dir, 'r'));
      const recs = await rfs.records();
      assert.deepEqual(recs.map((r) => r.seq), recs.map((_, i) => i + 1));
      const summary = recs.map((r) => `${r.op} ${String(r.path)}${r.op === 'write' ? `@${String(r.offset)}=${Buffer.from(String(r.data), 'base64').toString()}` : ''}`);
      assert.deepEqual(summary, [
        'mkdir /r', 'create /r/f', 'write /r/f@0=abc', 'write /r/f@3=de', 'rename /r/g', 'chmod /r/g',
        'symlink /r/s', 'link /r/h', 'truncate /r/g', 'unlink /r/h', 'unlink /r/s', 'unlink /r/g', 'rmdir /r',
      ]);
    } finally {
      await rfs.unmount().catch(() => undefined);
      await rfs.stop();
    }
  });

  test('ro refuses writes with EROFS and allows reads; blocked holds a write until rw', async () => {
    fs.writeFileSync(join(dir, 'ro-file'), 'readable');
    const rfs = new RfsProcess();
    try {
      await rfs.mount(dir, 'ro');
      assert.equal(fs.readFileSync(join(dir, 'ro-file'), 'utf8'), 'readable');
      assert.equal(errCode(() => fs.writeFileSync(join(dir, 'ro-file'), 'x')), 'EROFS');
      assert.equal(errCode(() => fs.writeFileSync(join(dir, 'new-file'), 'x')), 'EROFS');
      assert.equal(errCode(() => fs.mkdirSync(join(dir, 'nd'))), 'EROFS');
      assert.equal(errCode(() => fs.unlinkSync(join(dir, 'ro-file'))), 'EROFS');

      await rfs.setMode('blocked');
      const writer = spawn('sh', ['-c', `echo held > '${join(dir, 'held')}'`], { stdio: 'ignore' });
      const exited = new Promise<number | null>((r) => writer.on('exit', (c) => r(c)));
      await until(async () => (await rfs.stats()).held === 1, 5000, 'the write to be held');
      // (No lookup in `dir` here: the kernel holds the directory's lock during the held create.)
      assert.equal(writer.exitCode, null, 'the writer waits while blocked');
      await rfs.setMode('rw');
      assert.equal(await exited, 0);
      assert.equal(fs.readFileSync(join(dir, 'held'), 'utf8'), 'held\n');
    } finally {
      await rfs.unmount().catch(() => undefined);
      await rfs.stop();
    }
  });

  test('SIGTERM unmounts cleanly', async () => {
    const rfs = new RfsProcess();
    await rfs.mount(dir, 'rw');
    assert.ok(rfsMountPoints().includes(dir));
    assert.equal(await rfs.stop(), 0);
    assert.ok(!rfsMountPoints().includes(dir));
  });

  test('a busy mount is unmounted lazily: the session ends, the holder gets ENOTCONN, the rfs goes on', async () => {
    fs.writeFileSync(join(dir, 'held-open'), 'held');
    const rfs = new RfsProcess();
    try {
      await rfs.mount(dir, 'rw');
      // Another process keeps a file of the mount open (and the mount busy).
      const holder = spawn('sh', ['-c', `exec 3<'${join(dir, 'held-open')}'; read line; cat <&3`], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      holder.stdout.on('data', (b: Buffer) => { out += b.toString(); });
      holder.stderr.on('data', (b: Buffer) => { err += b.toString(); });
      const exited = new Promise<number | null>((r) => holder.on('exit', (c) => r(c)));
      await until(() => fs.readdirSync('/proc/' + String(holder.pid) + '/fd').some((fd) => {
        try { return fs.readlinkSync(`/proc/${holder.pid}/fd/${fd}`).endsWith('held-open'); } catch { return false; }
      }), 5000, 'the holder to open the file');
      assert.deepEqual(await rfs.unmount(), { lazy: true });
      assert.ok(!rfsMountPoints().includes(dir), 'the mount is gone from the path');
      assert.equal(fs.readFileSync(join(dir, 'held-open'), 'utf8'), 'held', 'the path shows the file underneath');
      holder.stdin.end('go\n');
      assert.notEqual(await exited, 0, `the holder read through a dead session: ${out}`);
      assert.match(err, /not connected/i);
      // The rfs process still answers and can mount again.
      await rfs.mount(dir, 'rw');
      assert.ok(rfsMountPoints().includes(dir));
      await rfs.unmount();
    } finally {
      await rfs.unmount().catch(() => undefined);
      await rfs.stop();
    }
  });

  test('SIGKILL leaves a stale mount; recoverStaleMount clears it and the files show again', async () => {
    fs.writeFileSync(join(dir, 'survivor'), 'under');
    const rfs = new RfsProcess({ stderr: 'ignore' });
    await rfs.mount(dir, 'rw');
    fs.writeFileSync(join(dir, 'written-through'), 'through');
    rfs.child.kill('SIGKILL');
    await rfs.exited;
    assert.equal(errCode(() => fs.readdirSync(dir)), 'ENOTCONN');
    assert.equal(await recoverStaleMount(dir), 1);
    assert.equal(await recoverStaleMount(dir), 0);
    assert.equal(fs.readFileSync(join(dir, 'survivor'), 'utf8'), 'under');
    assert.equal(fs.readFileSync(join(dir, 'written-through'), 'utf8'), 'through');
  });
});
