/**
 * The daemon's wiring (src/daemon) with the in-memory twins of every adapter: two node agents in
 * one process, connected by a MemoryHeartbeatNetwork, sharing a FakeLan for their VIPs, with
 * fake scripts. The real adapters are covered by their contract tests and by
 * test/integration/mirror.test.ts; this test checks what the agent adds: node discovery, status,
 * refusals, the executor order, shutdown handing over. Short heartbeat settings keep it fast.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { FakeScriptRunner } from '../../src/adapters/scripts/index.js';
import { FakeModuleRfs } from '../../src/adapters/fuse/fake-module.js';
import { MemoryHeartbeatNetwork } from '../../src/adapters/udp/memory-transport.js';
import { FakeLan, FakeVipManager } from '../../src/adapters/vip/index.js';
import { loadConfigDir } from '../../src/adapters/configfs/index.js';
import { NodeAgent, findNode } from '../../src/daemon/agent.js';
import { Logbook } from '../../src/daemon/logbook.js';
import { openFileChangeLog } from '../../src/adapters/store/changelog.js';
import { isHakitError } from '../../src/core/errors.js';
import { twoNodeClusterYaml } from '../helpers/config.js';

const VIP = '198.18.0.100';

function writeConfig(dir: string, extraModule = ''): void {
  mkdirSync(join(dir, 'modules/web'), { recursive: true });
  mkdirSync(join(dir, 'modules/data'), { recursive: true });
  writeFileSync(join(dir, 'cluster.key'), generateKey(), { mode: 0o600 });
  writeFileSync(join(dir, 'cluster.yaml'), twoNodeClusterYaml('t'));
  writeFileSync(join(dir, 'modules/web/module.yaml'), [
    'kind: mirror',
    'nodes: [n1, n2]',
    'default_primary: n1',
    'heartbeat: { pulse: 20ms, timeout: 200ms }',
    `vip: [ { address: ${VIP}/24, interface: eth0 } ]`,
    extraModule,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'modules/data/module.yaml'), [
    'kind: mirror',
    'nodes: [n1, n2]',
    'heartbeat: { pulse: 20ms, timeout: 200ms }',
    'vip: [ { address: 198.18.0.101/24, interface: eth0 } ]',
    'replication: { dirs: [ { path: /srv/data } ], resync_bandwidth: 40MiB/s, zone_size: 256KiB }',
    '',
  ].join('\n'));
}

const quiet = () => new Writable({ write(_c, _e, cb) { cb(); } });

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('findNode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hakit-daemon-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeConfig(dir);
  const res = loadConfigDir(dir);
  assert.ok(res.ok);
  const config = res.ok ? res.config : undefined!;

  test('finds the node whose address is on this host', () => {
    assert.equal(findNode(config, undefined, new Set(['127.0.0.1', '198.19.0.2'])), 'n2');
  });
  test('refuses a host with no node address, naming the nodes and the --node flag', () => {
    assert.throws(() => findNode(config, undefined, new Set(['127.0.0.1'])), /no address of any node \(n1, n2\).*--node NAME/);
  });
  test('refuses a host holding addresses of two nodes', () => {
    assert.throws(() => findNode(config, undefined, new Set(['198.18.0.1', '198.18.0.2'])), /several nodes \(n1, n2\)/);
  });
  test('--node must name a node of cluster.yaml', () => {
    assert.equal(findNode(config, 'n1', new Set()), 'n1');
    assert.throws(() => findNode(config, 'n9', new Set()), /--node n9 is not a node/);
  });
});

describe('two node agents over in-memory adapters', { timeout: 30_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'hakit-daemon-'));
  const lan = new FakeLan();
  const net = new MemoryHeartbeatNetwork();
  const agents: NodeAgent[] = [];
  const vips: Record<string, FakeVipManager> = {};
  const rfs: Record<string, FakeModuleRfs[]> = { n1: [], n2: [] };
  /** The newest rfs of each node, paired with the other node's newest. */
  const spawnRfs = (node: 'n1' | 'n2') => (): FakeModuleRfs => {
    const f = new FakeModuleRfs();
    rfs[node]!.push(f);
    const other = rfs[node === 'n1' ? 'n2' : 'n1']!.at(-1);
    if (other) FakeModuleRfs.pair(f, other);
    return f;
  };
  after(async () => {
    for (const a of agents) await a.shutdown().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  async function agent(node: 'n1' | 'n2', mac: string): Promise<NodeAgent> {
    const dir = join(root, node);
    writeConfig(join(dir, 'etc'));
    // Both nodes need the same key: copy n1's.
    if (node === 'n2') writeFileSync(join(dir, 'etc/cluster.key'), readFileSync(join(root, 'n1/etc/cluster.key'), 'utf8'), { mode: 0o600 });
    const key = parseKey(readFileSync(join(dir, 'etc/cluster.key'), 'utf8'));
    const i = node === 'n1' ? 1 : 2;
    vips[node] = new FakeVipManager({ lan, mac });
    const a = await NodeAgent.create({
      configDir: join(dir, 'etc'), stateDir: join(dir, 'state'), node, logbook: new Logbook({ destination: quiet() }),
      scripts: new FakeScriptRunner(), vips: vips[node], spawnRfs: spawnRfs(node),
      transport: net.transport({ key, cluster: 't', node, members: { web: ['n1', 'n2'], data: ['n1', 'n2'] },
        bind: [{ network: 'lan', address: `198.18.0.${i}` }, { network: 'hb2', address: `198.19.0.${i}` }] }),
    });
    agents.push(a);
    return a;
  }

  let n1: NodeAgent;
  let n2: NodeAgent;
  const holders = () => lan.answering(VIP);

  test('started on both, the default primary n1 is PRIM and only n1 holds the VIP', async () => {
    n1 = await agent('n1', '02:00:00:00:00:01');
    n2 = await agent('n2', '02:00:00:00:00:02');
    await n1.command('web', { cmd: 'start' });
    await n2.command('web', { cmd: 'start' });
    const st = (a: NodeAgent) => a.status('web').modules[0]!;
    await waitFor('PRIM + SECOND', () => st(n1).state === 'PRIM' && st(n1).ready && st(n2).state === 'SECOND' && st(n2).ready);
    assert.deepEqual(holders(), ['02:00:00:00:00:01']);
    const s2 = n2.status('web');
    assert.equal(s2.node, 'n2');
    assert.deepEqual(s2.modules[0]!.peer, { name: 'n1', state: 'PRIM' });
    assert.deepEqual(s2.modules[0]!.vip, [`${VIP}/24`]);
    assert.equal(s2.modules[0]!.replication?.upToDate, true);
  });

  test('a module with replicated dirs: first start elects n1, which serves n2 a full resync, then PRIM replicates synchronously', async () => {
    const f1 = rfs.n1!.at(-1)!;
    const f2 = rfs.n2!.at(-1)!;
    assert.equal(f1.config?.dirs[0]?.path, '/srv/data');
    assert.deepEqual(f1.config?.listen, { address: '198.18.0.1', port: 7406 });
    assert.deepEqual(f1.config?.peerAddress, { address: '198.18.0.2', port: 7406 });
    assert.equal(f1.config?.resyncBytesPerSec, 40 * 1024 * 1024, 'replication.resync_bandwidth reaches the rfs');
    assert.equal(f1.config?.zoneBytes, 256 * 1024, 'replication.zone_size reaches the rfs');
    await n1.command('data', { cmd: 'start' });
    await n2.command('data', { cmd: 'start' });
    const st = (a: NodeAgent) => a.status('data').modules[0]!;
    await waitFor('data PRIM + SECOND up to date', () => st(n1).state === 'PRIM' && st(n2).state === 'SECOND' && st(n2).ready && st(n2).replication?.upToDate === true);
    // n1 started ALONE (n2 had no data yet), mounted rw only after choosing how to replicate.
    assert.ok(f1.calls.indexOf('replicate alone') < f1.calls.indexOf('mount rw'), f1.calls.join(', '));
    assert.ok(f1.calls.includes('replicate resync'), f1.calls.join(', '));
    assert.deepEqual(f2.calls.filter((c) => c.startsWith('mount') || c === 'expect-sync'), ['mount ro', 'expect-sync']);
    assert.equal(f1.mountMode, 'rw');
    assert.equal(f2.mountMode, 'ro');
  });

  test('replication lost: n1 goes ALONE and releases held writes only once n2 says it is behind; n2 resyncs; PRIM again', async () => {
    const f1 = rfs.n1!.at(-1)!;
    const before = f1.calls.length;
    f1.replicateMode = 'sync';
    f1.emit({ event: 'replication-lost', detail: 'no ack for 3000 ms' });
    const st = (a: NodeAgent) => a.status('data').modules[0]!;
    await waitFor('n1 released its held writes', () => f1.calls.slice(before).includes('replicate alone'));
    // By then n2 had said it is not up to date (or n1 would still hold the writes).
    assert.equal(st(n1).state === 'ALONE' || st(n1).state === 'PRIM', true);
    await waitFor('n2 resynced and n1 PRIM again', () => st(n1).state === 'PRIM' && st(n2).replication?.upToDate === true);
    assert.notEqual(st(n1).generation, undefined);
    assert.deepEqual((st(n1).generation as { current: string }).current, (st(n2).generation as { current: string }).current);
  });

  test('the rfs of the primary dies: n1 releases (rfs-failed) and n2 takes over', async () => {
    const f1 = rfs.n1!.at(-1)!;
    f1.die();
    const st = (a: NodeAgent) => a.status('data').modules[0]!;
    await waitFor('n2 primary of data', () => (st(n2).state === 'ALONE' || st(n2).state === 'PRIM') && st(n2).ready);
    await waitFor('n1 SECOND of data with a new rfs', () => st(n1).state === 'SECOND' && st(n1).ready && rfs.n1!.length > 1);
    assert.equal(rfs.n1!.at(-1)!.mountMode, 'ro');
  });

  test('refusals: swap on the secondary is BAD_STATE; an unknown module is NO_MODULE; state unchanged', async () => {
    await assert.rejects(n2.command('web', { cmd: 'swap' }), (e: unknown) => isHakitError(e) && e.code === 'HAKIT_E_BAD_STATE' && /swap/.test(e.message));
    await assert.rejects(n2.command('nope', { cmd: 'start' }), (e: unknown) => isHakitError(e) && e.code === 'HAKIT_E_NO_MODULE');
    assert.throws(() => n2.status('nope'), (e: unknown) => isHakitError(e) && e.code === 'HAKIT_E_NO_MODULE');
    assert.equal(n2.status('web').modules[0]!.state, 'SECOND');
  });

  test('shutdown of the primary\'s daemon hands over: n2 holds the VIP, never both at once', async () => {
    let both = false;
    const watch = setInterval(() => { if (holders().length > 1) both = true; }, 1);
    try {
      const closing = n1.shutdown();
      // Regression (simulator finding 8): once the shutdown began, commands are refused.
      await assert.rejects(n1.command('web', { cmd: 'start' }), (e: unknown) => isHakitError(e) && e.code === 'HAKIT_E_BAD_STATE' && /shutting down/.test(e.message));
      await closing;
      agents.splice(agents.indexOf(n1), 1);
      await waitFor('n2 ALONE ready', () => { const s = n2.status('web').modules[0]!; return s.state === 'ALONE' && s.ready; });
      assert.deepEqual(holders(), ['02:00:00:00:00:02']);
      assert.equal(both, false, 'the VIP was held by both nodes at some moment');
      const log = n2.log('web', 100).map((e) => e.message).join('\n');
      assert.match(log, /stopped cleanly: taking over/);
    } finally {
      clearInterval(watch);
    }
  });
});

describe('a host restart without a clean stop makes the copy suspect (lost page cache)', { timeout: 30_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'hakit-boot-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const stateFile = join(root, 'state/modules/data/mirror.json');
  const saved = (): Record<string, unknown> => JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  const flushed: string[] = [];
  let flushHook: (dir: string) => Promise<void> = async (d) => { flushed.push(d); };

  async function start(bootId: string): Promise<NodeAgent> {
    writeConfig(join(root, 'etc'));
    const key = parseKey(readFileSync(join(root, 'etc/cluster.key'), 'utf8'));
    return NodeAgent.create({
      configDir: join(root, 'etc'), stateDir: join(root, 'state'), node: 'n1', logbook: new Logbook({ destination: quiet() }),
      scripts: new FakeScriptRunner(), vips: new FakeVipManager({ lan: new FakeLan(), mac: '02:00:00:00:00:01' }), spawnRfs: () => new FakeModuleRfs(),
      transport: new MemoryHeartbeatNetwork().transport({ key, cluster: 't', node: 'n1', members: { web: ['n1', 'n2'], data: ['n1', 'n2'] },
        bind: [{ network: 'lan', address: '198.18.0.1' }, { network: 'hb2', address: '198.19.0.1' }] }),
      bootId: () => bootId, flushDir: (d) => flushHook(d),
    });
  }

  test('a new boot id and no clean stop: suspect and unacked; a clean stop flushes the dirs; a restart after it is not suspect', async () => {
    mkdirSync(join(root, 'state/modules/data'), { recursive: true });
    writeFileSync(stateFile, JSON.stringify({
      generation: { current: 'g.1', history: ['g.0'] }, upToDate: true, enabled: true, failover: true, lastPrimary: 'n2', idCounter: 1,
      bootId: 'boot-1', cleanStop: false,
    }));
    // A complete change log with a mark; `unlogged` absent (as set): the crash may have rolled
    // back what no mark names (simulator finding 12).
    const logFile = join(root, 'state/modules/data/changes.log');
    writeFileSync(logFile, 'S complete\n0 M 0 "/a"\n');
    assert.equal(openFileChangeLog(logFile).complete, true);
    let a = await start('boot-2');
    try {
      assert.match(a.log('data', 100).map((e) => e.message).join('\n'), /the host restarted without a clean stop of this module/);
      const log = openFileChangeLog(logFile);
      assert.equal(log.complete, false, 'an unlogged copy after a host crash serves no incremental resync');
      assert.equal(log.set.paths, 1, 'the marks are kept (quarantine)');
      log.close();
      assert.deepEqual([saved().suspect, saved().unacked, saved().bootId, saved().cleanStop], [true, true, 'boot-2', false]);
      assert.equal((a.status('data').modules[0]?.replication as { unacked?: boolean } | undefined)?.unacked, true, 'status says the copy may differ');
      await a.command('data', { cmd: 'stop' });
      await waitFor('data STOP ready and flushed', () => saved().cleanStop === true);
      assert.deepEqual(flushed, ['/srv/data']);
      assert.equal(saved().suspect, true, 'only a completed resync clears it');
    } finally { await a.shutdown(); }
    assert.equal(saved().unlogged, false, 'a clean stop flushed everything');
    writeFileSync(logFile, 'S complete\n');
    a = await start('boot-3');
    try {
      assert.doesNotMatch(a.log('data', 100).map((e) => e.message).join('\n'), /restarted without a clean stop/);
      assert.equal(saved().bootId, 'boot-3');
      assert.equal(openFileChangeLog(logFile).complete, true, 'a start after a clean stop leaves the log alone');
    } finally { await a.shutdown(); }
    // A host crash after the dirs were flushed in alone mode (unlogged false): every change since
    // is marked, so the log stays complete and the resync it serves may be incremental (issue 5).
    // Its replays, though, may name renames the crash undid (simulator finding 17): they become
    // whole marks of both names and listings of their parents.
    writeFileSync(stateFile, JSON.stringify({ ...saved(), bootId: 'boot-3', cleanStop: false, unlogged: false }));
    writeFileSync(logFile, 'S complete\n0 Z 2 "/db"\n0 R 0 ["/d/old","/e/new"]\n');
    assert.equal(openFileChangeLog(logFile).set.replays(0).length, 1);
    a = await start('boot-4');
    try {
      const text = a.log('data', 100).map((e) => e.message).join('\n');
      assert.match(text, /the host restarted without a clean stop of this module/);
      assert.match(text, /the crash may have undone renames or links of the change log: the next resync copies the 1 renamed or linked entry whole/);
      const log = openFileChangeLog(logFile);
      assert.equal(log.complete, true, 'the marks of an ALONE copy are durable before its writes');
      assert.deepEqual(log.set.replays(0), [], 'a replay survived the crash');
      assert.deepEqual(log.set.plan(0).map((e) => `${e.path}:${e.changes.whole ? 'W' : ''}${e.changes.listing ? 'L' : ''}${[...e.changes.zones].join(',')}`),
        ['/d:L', '/d/old:W', '/db:2', '/e:L', '/e/new:W']);
      log.close();
    } finally { await a.shutdown(); }
  });

  test('a new generation starts only once the copy is flushed: a power loss after it cannot lose writes the peer holds (simulator finding 9, seed 16663)', async () => {
    // The last primary, alone: after listening it takes the role (ALONE, a new generation).
    writeFileSync(stateFile, JSON.stringify({
      generation: { current: 'g.1', history: ['g.0'] }, upToDate: true, enabled: true, failover: true, lastPrimary: 'n1', idCounter: 1,
      bootId: 'boot-5', cleanStop: true,
    }));
    let release = (): void => {};
    const gate = new Promise<void>((r) => { release = r; });
    const seen: string[] = [];
    flushHook = async () => { seen.push(String((saved().generation as { current: string }).current)); await gate; };
    const a = await start('boot-5');
    try {
      await waitFor('the flush asked for by the takeover', () => seen.length > 0);
      // Held here: the VIP may be added, but no new generation is written before the flush ends.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((saved().generation as { current: string }).current, 'g.1', 'a new generation was written before the copy was flushed');
      assert.equal(a.status('data').modules[0]?.state, 'ALONE');
      assert.equal(a.status('data').modules[0]?.ready, false);
      release();
      await waitFor('data ALONE ready', () => { const m = a.status('data').modules[0]; return m?.state === 'ALONE' && m.ready; });
      assert.notEqual((saved().generation as { current: string }).current, 'g.1');
      // The first flush is the takeover's (later ones: `replicate alone` clears Persisted.unlogged).
      assert.equal(seen[0], 'g.1');
      assert.match(a.log('data', 100).map((e) => e.message).join('\n'), /replicated dirs flushed in \d+ ms \(before the new generation\)/);
    } finally {
      release();
      flushHook = async (d) => { flushed.push(d); };
      await a.shutdown();
    }
  });
});
