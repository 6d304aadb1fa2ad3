// Failback that copies only what changed (issue 5), end to end: real daemons in network
// namespaces, real FUSE mounts in place, the replication link over TCP. The bytes on the wire
// are the sender's veth counters (eth0 of the serving node: the replication link and the lan
// heartbeats), so TCP/IP headers and heartbeats count against the bound.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { pseudoRandomBytes } from '../helpers/data.js';
import { assertTreesEqual, treeSnapshot } from '../helpers/tree.js';
import { TestCluster } from '../testbed/cluster.js';

const DIR = '/srv/hakit-failback';
const MiB = 1024 * 1024;
const YAML = [
  'replication:',
  `  dirs: [ { path: ${DIR} } ]`,
  '  timeout: 1s',
].join('\n');
const HEARTBEAT = 'heartbeat: { networks: [lan, hb2], pulse: 100ms, timeout: 1s }';

/** About 1 % of a 100 MiB tree, through the mount: in place, append, delete, rename, new files and dir, truncate, chmod, symlink. */
function changes(tag: string): { script: string; bytes: number } {
  return {
    script: [
      `cd ${DIR}`,
      `printf "%1048576s" | tr " " "${tag}" | dd of=big bs=1M seek=7 conv=notrunc status=none`,
      'head -c 1048576 /dev/urandom >> d0/f0',
      `rm d1/f${tag.charCodeAt(0) % 8}`,
      `mv d2/f${tag.charCodeAt(0) % 8} d2/renamed-${tag} && mv d5 d5-${tag} && mv d5-${tag} d5`, // replayed, nothing travels
      `head -c 1048576 /dev/urandom > d3/new-${tag}`,
      `mkdir new-${tag} && head -c 524288 /dev/urandom > new-${tag}/x`,
      `truncate -s 102400 d4/f${tag.charCodeAt(0) % 8}`,
      `chmod 600 d5/f${tag.charCodeAt(0) % 8}`,
      `ln -s ../big d0/sl-${tag}`,
    ].join(' && '),
    bytes: 3.5 * MiB + 102400,
  };
}

describe('failback copies only what changed (testbed, real FUSE, real daemons)', needs('root', 'netns', 'fuse'), () => {
  let c: TestCluster;
  const under = (node: string): string => c.tb.host(node).hostPath(DIR);
  const sh = async (node: string, script: string) => {
    const r = await c.tb.host(node).exec(['sh', '-c', script], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `${node}: ${script}: ${r.stderr}`);
  };
  /** Bytes sent so far by `node` on the lan (the veth that carries the replication link). */
  const txBytes = (node: string): Promise<number> => c.tb.host(node).txBytes('lan');
  const daemonLog = (node: string): string => readFileSync(join(c.tb.host(node).dir, 'daemon.log'), 'utf8');
  /** Resyncs of `kind` that `node` served to completion so far (its daemon log). */
  const served = (node: string, kind: 'full' | 'incremental'): number => (daemonLog(node).match(new RegExp(`resync served to n\\d: done \\(${kind}`, 'g')) ?? []).length;
  const equal = (what: string) => assertTreesEqual(treeSnapshot(under('n1')), treeSnapshot(under('n2')), { what, ignoreMtimeOf: () => false });

  before(async () => {
    c = await TestCluster.create({ moduleYaml: YAML, heartbeat: HEARTBEAT, mountPaths: [DIR] });
    // 100 MiB on n1 before the first start: 6 dirs of 8 files of 2 MiB, a 4 MiB file.
    for (let d = 0; d < 6; d++) {
      mkdirSync(join(under('n1'), `d${d}`), { recursive: true });
      for (let f = 0; f < 8; f++) writeFileSync(join(under('n1'), `d${d}/f${f}`), pseudoRandomBytes(2 * MiB, d * 8 + f + 1));
    }
    writeFileSync(join(under('n1'), 'big'), pseudoRandomBytes(4 * MiB, 77));
    symlinkSync('d0/f0', join(under('n1'), 'link'));
    await c.startDaemon('n1');
    await c.startDaemon('n2');
    await c.startBoth();
    await c.settled(60_000);
  });
  after(async () => { await c?.dispose(); });

  test('the primary stops cleanly, the other takes over and changes 1 %; the old primary comes back SECOND through an incremental resync: trees equal, bytes on the wire within 1.1 x the change', async (t) => {
    equal('after the first full sync');
    assert.equal((await c.hakit('n1', ['stop', 'web'])).code, 0);
    await c.waitState('n2', 'ALONE', 20_000);
    const ch = changes('A');
    await sh('n2', ch.script);
    let rep: { mode?: string; dirtyPaths?: number; changeLogComplete?: boolean } | undefined;
    await c.waitFor('the survivor is alone and its change log names every change', async () => {
      rep = (await c.status('n2'))?.replication as typeof rep;
      return rep?.mode === 'alone' && rep.changeLogComplete === true && (rep.dirtyPaths ?? 0) >= 10;
    }, 5_000, () => JSON.stringify(rep), 200);
    const tx0 = await txBytes('n2');
    assert.equal((await c.hakit('n1', ['start', 'web'])).code, 0);
    await c.waitState('n1', 'SECOND', 60_000);
    await c.waitFor('n1 up to date', async () => (await c.status('n1'))?.replication?.upToDate === true, 60_000);
    const wire = (await txBytes('n2')) - tx0;
    t.diagnostic(`failback after a clean failover: ${wire} bytes on the wire for ${ch.bytes} changed bytes (${(wire / ch.bytes).toFixed(3)} x) in a 100 MiB tree`);
    assert.match(daemonLog('n2'), /resync served to n1: done \(incremental/);
    equal('after the incremental failback');
    assert.ok(wire <= 1.1 * ch.bytes + 128 * 1024, `bytes on the wire ${wire} > 1.1 x ${ch.bytes} + 128 KiB`);
  });

  test('the ALONE node\'s host is SIGKILLed after changes: restarted, it serves an incremental resync (no full rescan) and the trees are equal', async (t) => {
    const [primary, secondary] = await c.settled(60_000);
    assert.equal((await c.hakit(secondary, ['stop', 'web'])).code, 0);
    await c.waitState(primary, 'ALONE', 20_000);
    const ch = changes('B');
    await sh(primary, ch.script);
    await c.crash(primary);
    await c.powerOn(primary);
    await c.startDaemon(primary);
    await c.waitState(primary, 'ALONE', 30_000);
    // status shows the rfs's figures as of its last refresh (every second).
    let rep: { changeLogComplete?: boolean; dirtyPaths?: number } | undefined;
    await c.waitFor('the change log survived the crash, complete, with its marks', async () => {
      rep = (await c.status(primary))?.replication as typeof rep;
      return rep?.changeLogComplete === true && (rep.dirtyPaths ?? 0) >= 10;
    }, 5_000, () => JSON.stringify(rep), 200);
    const [incr0, full0] = [served(primary, 'incremental'), served(primary, 'full')];
    const tx0 = await txBytes(primary);
    assert.equal((await c.hakit(secondary, ['start', 'web'])).code, 0);
    await c.waitState(secondary, 'SECOND', 60_000);
    await c.waitFor(`${secondary} up to date`, async () => (await c.status(secondary))?.replication?.upToDate === true, 60_000);
    const wire = (await txBytes(primary)) - tx0;
    t.diagnostic(`resync after a crash of the ALONE node: ${wire} bytes on the wire for ${ch.bytes} changed bytes (${(wire / ch.bytes).toFixed(3)} x)`);
    assert.equal(served(primary, 'incremental'), incr0 + 1, 'one more incremental resync served');
    assert.equal(served(primary, 'full'), full0, 'no full resync');
    equal('after the resync that followed the crash');
    assert.ok(wire <= 1.1 * ch.bytes + 128 * 1024, `bytes on the wire ${wire}`);
  });

  test('the primary\'s host is SIGKILLed in sync mode: the other takes over and changes 1 %; the old primary (it may hold unacknowledged writes) comes back through a full resync by comparison: trees equal, only the change travels', async (t) => {
    const [primary, secondary] = await c.settled(60_000);
    await c.crash(primary);
    await c.waitState(secondary, 'ALONE', 20_000);
    const ch = changes('C');
    await sh(secondary, ch.script);
    const full0 = served(secondary, 'full');
    const tx0 = await txBytes(secondary);
    await c.powerOn(primary);
    await c.startDaemon(primary);
    await c.waitState(primary, 'SECOND', 60_000);
    await c.waitFor(`${primary} up to date`, async () => (await c.status(primary))?.replication?.upToDate === true, 60_000);
    const wire = (await txBytes(secondary)) - tx0;
    // A full resync does not know renames: the renamed 2 MiB file is copied under its new name.
    const expected = ch.bytes + 2 * MiB;
    t.diagnostic(`full resync by comparison after a crash of the primary host: ${wire} bytes on the wire for ${expected} changed bytes (the change + the renamed file) (${(wire / expected).toFixed(3)} x) in a 100 MiB tree`);
    assert.equal(served(secondary, 'full'), full0 + 1, 'a copy that may hold unacknowledged writes gets a full resync');
    equal('after the full resync by comparison');
    assert.ok(wire <= 1.1 * expected + 256 * 1024, `bytes on the wire ${wire} > 1.1 x ${expected} + 256 KiB (a full copy would be 100 MiB)`);
  });

  test('the secondary\'s host crashes: restarted (a new boot id), its copy is suspect (lost page cache under kept file times) and gets a full resync comparing every block; after a clean stop, a crash makes nothing suspect', async (t) => {
    const [primary, secondary] = await c.settled(60_000);
    const suspectLines = () => (daemonLog(secondary).match(/the host restarted without a clean stop/g) ?? []).length;
    const s0 = suspectLines();
    await c.crash(secondary);
    // What a lost writeback looks like: bytes of a file back to older content, its size and mtime kept.
    const victim = join(under(secondary), 'd3/f6');
    const { mtime, atime } = statSync(victim);
    const b = readFileSync(victim);
    for (const at of [1000, 700_000, 1_500_000]) b[at] = (b[at] ?? 0) ^ 0x5a;
    writeFileSync(victim, b);
    utimesSync(victim, atime, mtime);
    await c.waitState(primary, 'ALONE', 20_000);
    await sh(primary, `cd ${DIR} && printf more >> d0/small-after-crash`);
    const full0 = served(primary, 'full');
    await c.powerOn(secondary);
    await c.startDaemon(secondary);
    await c.waitState(secondary, 'SECOND', 60_000);
    await c.waitFor(`${secondary} up to date`, async () => (await c.status(secondary))?.replication?.upToDate === true, 60_000);
    assert.equal(suspectLines(), s0 + 1, 'the restarted node says its copy is suspect');
    assert.equal(served(primary, 'full'), full0 + 1, 'a suspect copy gets a full resync');
    t.diagnostic(daemonLog(primary).split('\n').filter((l) => l.includes('resync served to')).at(-1)?.slice(0, 300) ?? '');
    equal('after the resync of a suspect copy (the lost bytes are back)');
    // A clean stop flushes the copy: a crash after it leaves nothing suspect.
    assert.equal((await c.hakit(secondary, ['stop', 'web'])).code, 0);
    await c.waitState(primary, 'ALONE', 20_000);
    await c.crash(secondary);
    await c.powerOn(secondary);
    await c.startDaemon(secondary);
    assert.equal((await c.hakit(secondary, ['start', 'web'])).code, 0);
    await c.waitState(secondary, 'SECOND', 60_000);
    await c.waitFor(`${secondary} up to date`, async () => (await c.status(secondary))?.replication?.upToDate === true, 60_000);
    assert.equal(suspectLines(), s0 + 1, 'no suspect copy after a clean stop');
    assert.equal(served(primary, 'full'), full0 + 1, 'no full resync after a clean stop');
    equal('after a crash that followed a clean stop');
  });

  test('hakit verify: equal replicas (a writer writing meanwhile) report nothing; a byte flipped behind hakit\'s back on the secondary\'s directory is found', async (t) => {
    const [primary, secondary] = await c.settled(60_000);
    const stop = join(c.tb.host(primary).dir, 'stop-writer');
    const writer = c.tb.host(primary).exec(['sh', '-c', `i=0; while [ ! -e ${stop} ] && [ $i -lt 2000 ]; do printf "line $i\\n" >> ${DIR}/live.log; printf "%04d" $i | dd of=${DIR}/big bs=4 seek=$i conv=notrunc status=none; i=$((i+1)); done`], { timeoutMs: 60_000 });
    const ok = await c.hakit(primary, ['verify', 'web'], 60_000);
    writeFileSync(stop, '');
    await writer;
    t.diagnostic(ok.stdout.trim());
    assert.equal(ok.code, 0, `${ok.stdout}${ok.stderr}`);
    assert.match(ok.stdout, /the replicas are equal \(\d+ entries/);
    const refused = await c.hakit(secondary, ['verify', 'web']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /run verify on the primary/);
    // Behind hakit's back: one byte of one file of the secondary's underlying directory.
    const victim = join(under(secondary), 'd3/f5');
    const b = readFileSync(victim);
    b[12345] = (b[12345] ?? 0) ^ 0xff;
    writeFileSync(victim, b);
    const bad = await c.hakit(primary, ['verify', 'web'], 60_000);
    t.diagnostic(bad.stdout.trim());
    assert.equal(bad.code, 1, `${bad.stdout}${bad.stderr}`);
    assert.match(bad.stdout, /1 path differs/);
    assert.match(bad.stdout, new RegExp(`${DIR}/d3/f5: content differs`));
  });
});
