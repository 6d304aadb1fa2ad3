// Synchronous replication end to end (issue 4, DESIGN.md 3.2 and 5): real daemons in network
// namespaces, real FUSE mounts in place over /srv/hakit-repl (a different directory on each
// host), the replication link over TCP, the writer a real process on the primary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { treeSnapshot, assertTreesEqual } from '../helpers/tree.js';
import { REPO, TestCluster } from '../testbed/cluster.js';

const DIR = '/srv/hakit-repl';
const WRITER = join(REPO, 'test/fixtures/apps/append-writer.mjs');
const YAML = [
  'replication:',
  `  dirs: [ { path: ${DIR}, exclude: ["*.tmp", "cache"] } ]`,
  '  timeout: 1s',
].join('\n');
const HEARTBEAT = 'heartbeat: { networks: [lan, hb2], pulse: 100ms, timeout: 1s }';

/** Numbers (one per line) in a file; empty if it does not exist. */
function numbers(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

describe('replication (testbed, real FUSE, real daemons)', needs('root', 'netns', 'fuse'), () => {
  let c: TestCluster;
  const under = (node: string): string => c.tb.host(node).hostPath(DIR);
  const sh = async (node: string, script: string, timeoutMs = 20_000) => c.tb.host(node).exec(['sh', '-c', script], { timeoutMs });

  before(async () => {
    c = await TestCluster.create({ moduleYaml: YAML, heartbeat: HEARTBEAT, mountPaths: [DIR] });
  });
  after(async () => { await c?.dispose(); });

  test('first start: the elected node\'s (n1, the lowest name) data is copied to the other node, stale files there are removed; then every change is on the secondary when it returns, the secondary\'s mount is read-only, excluded files stay local', async () => {
    // Data before the first start: n1 (elected: lowest name) holds the reference copy.
    mkdirSync(join(under('n1'), 'docs/deep'), { recursive: true });
    writeFileSync(join(under('n1'), 'docs/deep/a.txt'), 'alpha\n');
    writeFileSync(join(under('n1'), 'name with spaces \u00e9\n.txt'), 'odd name\n');
    symlinkSync('docs/deep/a.txt', join(under('n1'), 'link'));
    writeFileSync(join(under('n2'), 'stale.txt'), 'must go\n');
    mkdirSync(join(under('n2'), 'docs'), { recursive: true });
    writeFileSync(join(under('n2'), 'docs/deep'), 'a file where n1 has a directory\n');

    await c.startDaemon('n1');
    await c.startDaemon('n2');
    for (const n of ['n1', 'n2']) assert.equal((await c.hakit(n, ['start', 'web'])).code, 0);
    await c.waitState('n1', 'PRIM', 30_000);
    const s2 = await c.waitState('n2', 'SECOND', 30_000);
    assert.equal(s2.replication?.upToDate, true);
    assertTreesEqual(treeSnapshot(under('n1')), treeSnapshot(under('n2')));

    const r = await sh('n1', [
      `cd ${DIR}`,
      'mkdir -p app/db && printf "hello" > app/db/f',
      'dd if=/dev/urandom of=big bs=1M count=6 status=none',
      'printf "more" >> app/db/f',
      'mv app/db/f app/db/g',
      'ln app/db/g hard',
      'chmod 640 big && truncate -s 100000 big',
      'chown 1234:1234 app/db/g',
      'echo scratch > work.tmp && mkdir -p cache && echo c > cache/x',
      'echo final > doc.tmp && mv doc.tmp doc.txt',
      'rm -f link && ln -s app/db/g link',
      'touch -d "2020-01-02 03:04:05" app/db/g',
      'setfattr -n user.origin -v n1 app/db/g && setfattr -n user.gone -v x big && setfattr -x user.gone big',
      'setfattr -h -n trusted.on-link -v l link',
      `chmod 1777 app && setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo mine > ${DIR}/app/owned-by-nobody'`,
    ].join(' && '));
    assert.equal(r.code, 0, r.stderr);
    // Every call returned only after the secondary applied it: no waiting here. Modification
    // times set by the application are replicated (app/db/g); those that writes leave are the
    // secondary's own apply time (milliseconds later), not compared.
    const n1 = treeSnapshot(under('n1'));
    const n2 = treeSnapshot(under('n2'));
    assertTreesEqual(n1, n2, { skip: (p) => p === '/work.tmp' || p === '/cache' || p.startsWith('/cache/'), ignoreMtimeOf: (p) => p !== '/app/db/g' && p !== '/hard' });
    assert.equal(n2.get('/app/db/g')?.mtimeMs, Date.parse('2020-01-02T03:04:05'));
    assert.equal(n2.get('/app/db/g')?.xattrs, `user.origin=${Buffer.from('n1').toString('hex')}`, 'the xattr is on the secondary');
    assert.equal(n2.get('/big')?.xattrs, undefined, 'the removed xattr is gone on the secondary');
    assert.equal(n2.get('/app/owned-by-nobody')?.uid, 65534, 'a file keeps its creator as owner on the secondary');
    assert.equal(existsSync(join(under('n2'), 'work.tmp')), false, 'an excluded file was replicated');
    assert.equal(readFileSync(join(under('n2'), 'doc.txt'), 'utf8'), 'final\n');

    const w = await sh('n2', `echo nope > ${DIR}/nope.txt`);
    assert.notEqual(w.code, 0, 'the secondary accepted a local write');
    assert.match(w.stderr, /Read-only file system/);
    // status shows the rfs's counters as of its last refresh (every second).
    let sent = 0;
    await c.waitFor('records sent in status', async () => {
      sent = ((await c.status('n1'))?.replication as { recordsSent?: number } | undefined)?.recordsSent ?? 0;
      return sent > 0;
    }, 3_000, () => `recordsSent ${sent}`, 200);
  });

  test('RPO = 0: the primary host is SIGKILLed during fsync\'d appends, 20 rounds; every acknowledged record is on the survivor', async () => {
    let primary = 'n1';
    let next = 1;
    for (let round = 1; round <= 20; round++) {
      const survivor = primary === 'n1' ? 'n2' : 'n1';
      await c.waitState(primary, 'PRIM', 30_000);
      await c.waitState(survivor, 'SECOND', 30_000);
      const acks = join(c.tb.host(primary).dir, `acks-${round}`);
      writeFileSync(acks, '');
      const writer = c.tb.host(primary).spawn(['/usr/bin/node', WRITER, `${DIR}/log.txt`, acks, String(next)]);
      // Crash at a moment that depends on the round: after 3..22 acknowledged records.
      await c.waitFor(`writer on ${primary} acknowledged records`, async () => numbers(acks).length >= 3 + round, 15_000);
      await c.crash(primary);
      writer.kill('SIGKILL');
      await c.waitState(survivor, 'ALONE', 20_000);
      const acked = numbers(acks);
      const have = new Set(numbers(join(under(survivor), 'log.txt')));
      const missing = acked.filter((n) => !have.has(n));
      assert.deepEqual(missing, [], `round ${round}: acknowledged records missing on ${survivor} after failover`);
      next = Math.max(next, ...acked) + 1000;
      await c.startDaemon(primary);
      await c.waitState(primary, 'SECOND', 30_000);
      await c.waitState(survivor, 'PRIM', 30_000);
      primary = survivor;
    }
    assertTreesEqual(treeSnapshot(under('n1')), treeSnapshot(under('n2')), { ignoreMtimeOf: () => true });
  });

  test('the secondary going away mid-write: the writer goes on after replication.timeout plus the heartbeat timeout', async () => {
    const st1 = await c.status('n1');
    const primary = st1?.state === 'PRIM' ? 'n1' : 'n2';
    const secondary = primary === 'n1' ? 'n2' : 'n1';
    await c.waitState(secondary, 'SECOND', 30_000);
    const acks = join(c.tb.host(primary).dir, 'acks-gone');
    writeFileSync(acks, '');
    const writer = c.tb.host(primary).spawn(['/usr/bin/node', WRITER, `${DIR}/log2.txt`, acks, '1']);
    try {
      await c.waitFor('first records', async () => numbers(acks).length >= 5, 15_000);
      await c.crash(secondary);
      const before = numbers(acks).length;
      // replication.timeout (1 s) + heartbeat timeout (1 s) + margin: the writer must not hang.
      await c.waitFor(`writer on ${primary} goes on alone`, async () => numbers(acks).length > before + 20, 8_000);
      await c.waitState(primary, 'ALONE', 5_000);
      // status shows the rfs's counters as of its last refresh (every second).
      let held = -1;
      await c.waitFor('no held writes in status', async () => {
        held = ((await c.status(primary))?.replication as { heldWrites?: number } | undefined)?.heldWrites ?? -1;
        return held === 0;
      }, 3_000, () => `heldWrites ${held}`);
    } finally {
      writer.kill('SIGKILL');
    }
    await c.startDaemon(secondary);
    await c.waitState(secondary, 'SECOND', 30_000);
    await c.waitState(primary, 'PRIM', 30_000);
    assertTreesEqual(treeSnapshot(under('n1')), treeSnapshot(under('n2')), { ignoreMtimeOf: () => true });
  });
});
