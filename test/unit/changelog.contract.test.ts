// The change log (issue 5): the pure marks (core/replication/changes.ts), then the same contract
// checks against the file medium and the memory fake, then the file's crash-safety details.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeLog, FileLogMedium, type LogMedium, MemoryLogMedium } from '../../src/adapters/store/index.js';
import { ChangeSet, type Mark, type Replay, formatMark, formatReplay, marksOf, parseLine, replaysMatchTree } from '../../src/core/replication/changes.js';

const MiB = 1024 * 1024;

describe('change marks (pure)', () => {
  test('a write marks the zones it touches; a zone already marked, or under a truncated tail or a whole mark, is nothing new', () => {
    const set = new ChangeSet();
    const added = (ms: Mark[]) => ms.filter((m) => set.add(m)).length;
    assert.deepEqual(marksOf(0, { op: 'write', path: '/f', offset: MiB - 1, length: 2 }).map((m) => m.zone), [0, 1]);
    assert.equal(added(marksOf(0, { op: 'write', path: '/f', offset: 10, length: 100 })), 1);
    assert.equal(added(marksOf(0, { op: 'write', path: '/f', offset: 200, length: 100 })), 0, 'same zone');
    assert.equal(added(marksOf(0, { op: 'truncate', path: '/f', size: 3 * MiB + 5 })), 1);
    assert.equal(added(marksOf(0, { op: 'write', path: '/f', offset: 5 * MiB, length: 1 })), 0, 'past the tail');
    assert.equal(added(marksOf(0, { op: 'write', path: '/f', offset: 2 * MiB, length: 1 })), 1, 'before the tail');
    assert.equal(added(marksOf(0, { op: 'create', path: '/g' })), 2, 'whole /g and the listing of /');
    assert.equal(added(marksOf(0, { op: 'write', path: '/g', offset: 0, length: 9 })), 0, 'a whole mark covers every zone');
    assert.equal(added(marksOf(0, { op: 'chmod', path: '/g' })), 0);
    assert.equal(added(marksOf(0, { op: 'unlink', path: '/h' })), 0, 'the listing of / is marked');
    assert.equal(added(marksOf(1, { op: 'unlink', path: '/h' })), 1, 'another dir has its own marks');
    assert.deepEqual(marksOf(0, { op: 'fsync', path: '/f' }), []);
  });

  test('a rename of an entry the peer has is replayed: its marks move with it, the replaced destination\'s marks go; the plan has parents first and nothing below a whole path', () => {
    const set = new ChangeSet();
    for (const c of [
      { op: 'write', path: '/a/x', offset: 0, length: 1 },
      { op: 'write', path: '/b/a/old', offset: 0, length: 1 },
      { op: 'rename', from: '/a', path: '/b/a' },
      { op: 'create', path: '/b/a/new' },
      { op: 'chmod', path: '/c d' },
    ]) set.record(0, c);
    const show = () => set.plan(0).map((p) => `${p.path}:${p.changes.whole ? 'W' : ''}${p.changes.listing ? 'L' : ''}${p.changes.meta ? 'M' : ''}${[...p.changes.zones].join(',')}`);
    assert.deepEqual(set.replays(0), [{ op: 'rename', from: '/a', to: '/b/a' }]);
    assert.deepEqual(show(), ['/b/a:L', '/b/a/new:W', '/b/a/x:0', '/c d:M']);
  });

  test('a rename of an entry new since the log started, or into a new directory, is a copy, not a replay', () => {
    const set = new ChangeSet();
    set.record(0, { op: 'create', path: '/tmp1' });
    assert.equal(set.record(0, { op: 'rename', from: '/tmp1', path: '/final' }).includes(' R '), false);
    set.record(0, { op: 'mkdir', path: '/newdir' });
    set.record(0, { op: 'rename', from: '/old', path: '/newdir/old' });
    set.record(0, { op: 'mkdir', path: '/fresh' });
    set.record(0, { op: 'create', path: '/fresh/f' });
    set.record(0, { op: 'rename', from: '/fresh/f', path: '/g' });
    assert.deepEqual(set.replays(0), []);
    assert.deepEqual(set.plan(0).map((p) => `${p.path}:${p.changes.whole ? 'W' : ''}${p.changes.listing ? 'L' : ''}`), ['/:L', '/final:W', '/fresh:W', '/g:W', '/newdir:W', '/tmp1:W']);
  });

  test('after a host crash, replays the tree shows done stay; otherwise a dir\'s replays become whole marks of both names and their parents\' listings (simulator finding 17)', () => {
    const rr = (from: string, to: string, op: Replay['op'] = 'rename'): Replay => ({ op, from, to });
    const tree = (...names: string[]) => (p: string) => names.includes(p);
    // A chain of renames and a link, all done: d4 -> d4x -> d4 back, /a -> /b, /b linked as /c.
    const done = [rr('/d4', '/d4x'), rr('/d4x', '/d4'), rr('/a', '/b'), rr('/b', '/c', 'link')];
    assert.equal(replaysMatchTree(done, tree('/d4', '/b', '/c')), true);
    // The last rename undone by the crash (/a still there, /b missing), or a rename over an
    // entry that existed (/b is there, but so is /a): not done.
    assert.equal(replaysMatchTree([rr('/x', '/y'), rr('/a', '/b')], tree('/y', '/a')), false);
    assert.equal(replaysMatchTree([rr('/a', '/b')], tree('/a', '/b')), false);
    assert.equal(replaysMatchTree([rr('/a', '/b', 'link')], tree('/b')), false, 'a link whose source is gone');
    // replaysToMarks: the dir kept stays as is, the other one's replays become marks.
    const set = new ChangeSet();
    set.record(0, { op: 'rename', from: '/a', path: '/b' });
    set.record(1, { op: 'write', path: '/f/x', offset: 0, length: 1 });
    set.record(1, { op: 'rename', from: '/f', path: '/g' });
    assert.equal(set.replaysToMarks((dir) => dir === 0), 1);
    assert.deepEqual(set.replays(0), [rr('/a', '/b')]);
    assert.deepEqual(set.replays(1), []);
    assert.deepEqual(set.plan(1).map((p) => `${p.path}:${p.changes.whole ? 'W' : ''}${p.changes.listing ? 'L' : ''}`), ['/:L', '/f:W', '/g:W']);
    // The rewritten log (replays first, then marks) loads back into the same set.
    const again = new ChangeSet();
    for (const line of set.text().split('\n')) {
      const l = parseLine(line);
      if (l === null || l.t === 'state') continue;
      if (l.t === 'replay') again.replay(l.dir, l.replay); else again.add(l.mark);
    }
    assert.deepEqual(again.replays(0), set.replays(0));
    assert.deepEqual(again.plan(1), set.plan(1));
  });

  test('log lines round-trip, names with spaces, quotes and newlines included; a torn or foreign line is ignored', () => {
    for (const path of ['/plain', '/a b', '/new\nline', '/quote"s', '/ünï']) {
      const m: Mark = { dir: 3, kind: 'zones', path, zone: 7 };
      const line = formatMark(m);
      assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
      assert.deepEqual(parseLine(line.slice(0, -1)), { t: 'mark', mark: m });
      assert.equal(parseLine(line.slice(0, -4)), null, 'a torn line');
    }
    assert.deepEqual(parseLine(formatReplay(2, { op: 'rename', from: '/a b', to: '/c\nd' }).slice(0, -1)), { t: 'replay', dir: 2, replay: { op: 'rename', from: '/a b', to: '/c\nd' } });
    assert.deepEqual(parseLine(formatReplay(0, { op: 'link', from: '/f', to: '/g' }).slice(0, -1)), { t: 'replay', dir: 0, replay: { op: 'link', from: '/f', to: '/g' } });
    assert.equal(parseLine(formatReplay(2, { op: 'rename', from: '/a', to: '/b' }).slice(0, -3)), null, 'a torn replay');
    assert.deepEqual(parseLine('S complete'), { t: 'state', complete: true });
    assert.equal(parseLine('garbage'), null);
    assert.equal(parseLine('0 W 0 "no-slash"'), null);
  });
});

interface Harness {
  readonly medium: LogMedium;
  /** A new log on what is durable now (a restart after a crash). */
  reopen(): ChangeLog;
  /** Appends raw text behind the log's back (a torn append). */
  tear(text: string): void;
}

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

const harnesses: Record<string, () => Harness> = {
  file: () => {
    const dir = mkdtempSync(join(tmpdir(), 'hakit-changelog-'));
    roots.push(dir);
    const file = join(dir, 'changes.log');
    const medium = new FileLogMedium(file);
    return { medium, reopen: () => new ChangeLog(new FileLogMedium(file)), tear: (t) => appendFileSync(file, t) };
  },
  memory: () => {
    const medium = new MemoryLogMedium();
    return { medium, reopen: () => new ChangeLog(medium), tear: (t) => { medium.durable += t; } };
  },
};

for (const [name, make] of Object.entries(harnesses)) {
  describe(`change log contract: ${name}`, () => {
    test('a new log is incomplete and empty; marks that resolved survive a restart, with the state', async () => {
      const h = make();
      const log = new ChangeLog(h.medium);
      assert.equal(log.complete, false);
      assert.equal(log.set.paths, 0);
      await log.reset(true);
      const p = log.mark(marksOf(0, { op: 'write', path: '/db/file', offset: 5 * MiB, length: 10 }));
      assert.ok(p !== null);
      await p;
      const again = h.reopen();
      assert.equal(again.complete, true);
      assert.deepEqual(again.set.plan(0).map((e) => [e.path, [...e.changes.zones]]), [['/db/file', [5]]]);
    });

    test('a mark that adds nothing costs nothing: no promise, no write', async () => {
      const h = make();
      const log = new ChangeLog(h.medium);
      await log.reset(true);
      await log.mark(marksOf(0, { op: 'write', path: '/f', offset: 0, length: 1 }));
      assert.equal(log.mark(marksOf(0, { op: 'write', path: '/f', offset: 100, length: 1 })), null);
      assert.equal(h.reopen().set.paths, 1);
    });

    test('concurrent marks share writes; all are durable when their promises resolve; a torn last line is ignored', async () => {
      const h = make();
      const log = new ChangeLog(h.medium);
      await log.reset(true);
      const ps = [];
      for (let i = 0; i < 50; i++) ps.push(log.mark(marksOf(0, { op: 'create', path: `/f${i}` })));
      await Promise.all(ps);
      h.tear('0 W 0 "/torn');
      const again = h.reopen();
      assert.equal(again.set.paths, 51, '50 files and the listing of /');
      assert.equal(again.complete, true);
    });

    test('reset forgets the marks and records the state; setComplete keeps them', async () => {
      const h = make();
      const log = new ChangeLog(h.medium);
      await log.mark(marksOf(0, { op: 'mkdir', path: '/d' }));
      await log.setComplete(true);
      assert.equal(h.reopen().set.paths, 2);
      assert.equal(h.reopen().complete, true);
      await log.setComplete(false);
      assert.equal(h.reopen().complete, false);
      await log.reset(true);
      const again = h.reopen();
      assert.equal(again.set.paths, 0);
      assert.equal(again.complete, true);
      log.mark(marksOf(0, { op: 'mkdir', path: '/e' }));
      await log.reset(false);
      assert.equal(h.reopen().set.paths, 0, 'a mark made before a reset is gone with it');
      assert.equal(h.reopen().complete, false);
    });
  });
}

test('the file log is plain lines a person can read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hakit-changelog-'));
  roots.push(dir);
  const file = join(dir, 'changes.log');
  const log = new ChangeLog(new FileLogMedium(file));
  await log.reset(true);
  await log.mark(marksOf(0, { op: 'link', from: '/a', path: '/b c' }));
  await log.record(0, { op: 'rename', from: '/x', path: '/y' }, MiB);
  await log.record(0, { op: 'link', from: '/y', path: '/z' }, MiB);
  assert.equal(readFileSync(file, 'utf8'), 'S complete\n0 W 0 "/b c"\n0 W 0 "/a"\n0 L 0 "/"\n0 R 0 ["/x","/y"]\n0 H 0 ["/y","/z"]\n');
  const again = new ChangeLog(new FileLogMedium(file));
  assert.deepEqual(again.set.replays(0), [{ op: 'rename', from: '/x', to: '/y' }, { op: 'link', from: '/y', to: '/z' }], 'replays are read back in order');
  again.close();
  log.close();
});
