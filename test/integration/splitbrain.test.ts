// Split-brain protection end to end (issue 6 parts 3-5; DESIGN.md 3.1, 5 "Split brain"): real
// daemons in network namespaces, a witness host `wit` on the lan (it answers pings; later it
// runs `hakit witness`), a replicated dir, a client that asks who serves the VIP every 50 ms,
// and the module's state on both nodes sampled every 50 ms through their sockets.
// Timings: pulse 100 ms, heartbeat timeout T = 1 s; ping witness interval 500 ms, timeout 300 ms
// (grace 900 ms); the arbitrator's lease 2 s; self-fencing bound T/2 = 500 ms.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { needs } from '../helpers/prereq.js';
import { REPO, TestCluster } from '../testbed/cluster.js';

const DIR = '/srv/hakit-sb';
const WRITER = join(REPO, 'test/fixtures/apps/append-writer.mjs');
const HAKIT = join(REPO, 'bin/hakit.js');
const HEARTBEAT = 'heartbeat: { networks: [lan, hb2], pulse: 100ms, timeout: 1s }';
const PRIMARY = new Set(['PRIM', 'ALONE']);

function numbers(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Sample { at: number; n1: string; n2: string; vip: string | null }

describe('split brain (testbed, real daemons, ping witness then arbitrator)', needs('root', 'netns', 'nft', 'fuse'), () => {
  let c: TestCluster;
  let wit = '';
  let witness: ChildProcess | undefined;
  const samples: Sample[] = [];
  let sampling = false;
  let sampler: Promise<void> = Promise.resolve();

  /** The module's state on a node as "STATE[~]" (or "?" when its daemon does not answer). */
  async function stateOf(node: string): Promise<string> {
    const s = await c.status(node);
    return s ? `${s.state}${s.ready ? '' : '~'}` : '?';
  }
  /** Samples both nodes' states and who serves the VIP, every 50 ms, until stopSampling. */
  function startSampling(): void {
    samples.length = 0;
    sampling = true;
    sampler = (async () => {
      while (sampling) {
        const [n1, n2, vip] = await Promise.all([stateOf('n1'), stateOf('n2'), c.get('client', 300)]);
        samples.push({ at: Date.now(), n1, n2, vip: vip?.split(' ')[0] ?? null });
        await sleep(50);
      }
    })();
  }
  async function stopSampling(): Promise<Sample[]> {
    sampling = false;
    await sampler;
    return [...samples];
  }
  /** Never both nodes primary and ready at once, never a VIP answer from the node that is not the one before without a gap. */
  function assertOneWriter(s: readonly Sample[], what: string): void {
    const both = s.find((x) => PRIMARY.has(x.n1) && PRIMARY.has(x.n2));
    assert.equal(both, undefined, `${what}: both nodes primary at once: ${JSON.stringify(both)}`);
  }
  async function setCheckers(line: string): Promise<void> {
    for (const n of ['n1', 'n2']) {
      const f = join(c.moduleDir(n), 'module.yaml');
      writeFileSync(f, readFileSync(f, 'utf8').replace(/^checkers: .*$/m, line));
    }
  }
  async function restartBoth(): Promise<void> {
    await Promise.all([c.stopDaemon('n1'), c.stopDaemon('n2')]);
    await c.startDaemon('n1');
    await c.startDaemon('n2');
  }
  async function converge(): Promise<{ prim: string; second: string }> {
    let prim = '';
    await c.waitFor('PRIM + SECOND', async () => {
      const [a, b] = [await c.status('n1'), await c.status('n2')];
      if (a?.state === 'PRIM' && a.ready && b?.state === 'SECOND' && b.ready) prim = 'n1';
      else if (b?.state === 'PRIM' && b.ready && a?.state === 'SECOND' && a.ready) prim = 'n2';
      else return false;
      return true;
    }, 30_000, () => 'states');
    return { prim, second: prim === 'n1' ? 'n2' : 'n1' };
  }

  before(async () => {
    c = await TestCluster.create({
      clients: ['client', 'wit'], heartbeat: HEARTBEAT, mountPaths: [DIR],
      moduleYaml: ['replication:', `  dirs: [ { path: ${DIR} } ]`, '  timeout: 1s', 'checkers: []'].join('\n'),
    });
    wit = c.tb.host('wit').addr('lan');
    await setCheckers(`checkers: [ { type: splitbrain, witnesses: [${wit}], interval: 500ms, timeout: 300ms } ]`);
    await c.startDaemon('n1');
    await c.startDaemon('n2');
    for (const n of ['n1', 'n2']) assert.equal((await c.hakit(n, ['start', 'web'])).code, 0);
    await c.waitState('n1', 'PRIM', 30_000);
    await c.waitState('n2', 'SECOND', 30_000);
  });
  after(async () => {
    sampling = false;
    await sampler;
    witness?.kill('SIGKILL');
    await c?.dispose();
  });

  test('ping witness, the secondary isolated from everything: it waits (WAIT isolated), the primary stays and keeps serving', async () => {
    startSampling();
    await c.tb.partition(['n2'], ['n1', 'client', 'wit']);
    try {
      const st = await c.waitState('n2', 'WAIT', 10_000);
      assert.equal(st.reason, 'isolated');
      await sleep(1500);
      const s1 = await c.status('n1');
      assert.ok(s1 && PRIMARY.has(s1.state) && s1.ready, `the primary did not stay: ${JSON.stringify(s1)}`);
      assert.equal((await c.get('client'))?.split(' ')[0], 'n1');
    } finally {
      await c.tb.heal();
    }
    await c.waitState('n2', 'SECOND', 30_000);
    await c.waitState('n1', 'PRIM', 30_000);
    const s = await stopSampling();
    assertOneWriter(s, 'secondary isolated');
    assert.ok(s.every((x) => x.vip === null || x.vip === 'n1'), 'the VIP moved');
  });

  test('ping witness, the primary isolated from everything: it holds writes and demotes before the secondary takes over; no acknowledged write after the takeover', async () => {
    const acks = join(c.tb.host('n1').dir, 'acks-isolated');
    writeFileSync(acks, '');
    const writer = c.tb.host('n1').spawn(['/usr/bin/node', WRITER, `${DIR}/iso.txt`, acks, '1']);
    try {
      await c.waitFor('writer on n1 acknowledged records', async () => numbers(acks).length >= 20, 15_000);
      startSampling();
      await c.tb.partition(['n1'], ['n2', 'client', 'wit']);
      // The takeover observed by polling n2 (at or after it happened): acks counted then.
      await c.waitState('n2', 'ALONE', 15_000);
      const atTakeover = numbers(acks).length;
      const st1 = await c.waitState('n1', 'WAIT', 10_000);
      assert.equal(st1.reason, 'isolated');
      await sleep(1000);
      assert.equal(numbers(acks).length, atTakeover, 'the isolated old primary acknowledged writes after the takeover');
      const s = await stopSampling();
      assertOneWriter(s, 'primary isolated');
      // The old primary's primary role ended (it was seen leaving it) before n2 was seen primary.
      const lastN1 = s.map((x) => PRIMARY.has(x.n1.replace('~', '')) && !x.n1.endsWith('~') ? x.at : 0).reduce((a, b) => Math.max(a, b), 0);
      const firstN2 = s.find((x) => PRIMARY.has(x.n2.replace('~', '')))?.at ?? Infinity;
      assert.ok(lastN1 < firstN2, `n1 ready primary at ${lastN1}, n2 primary from ${firstN2}`);
    } finally {
      writer.kill('SIGKILL');
      await c.tb.heal();
    }
    // Healed: n1 hears n2 ALONE with newer data and becomes its SECOND.
    const { prim } = await converge();
    assert.equal(prim, 'n2');
  });

  test('ping witness, every heartbeat network cut while both reach the witness: both become primary (the documented residual risk); healed, one releases', async () => {
    startSampling();
    await c.tb.partition(['n1'], ['n2']);
    try {
      await c.waitState('n1', 'ALONE', 15_000);
      await c.waitState('n2', 'ALONE', 15_000);
      // Each side writes while apart: what the loser wrote must survive, in quarantine.
      for (const n of ['n1', 'n2']) {
        const w = await c.tb.host(n).exec(['sh', '-c', `printf 'written on ${n} while apart' > ${DIR}/apart-${n}.txt`], { timeoutMs: 20_000 });
        assert.equal(w.code, 0, w.stderr);
      }
    } finally {
      await c.tb.heal();
    }
    const s = await stopSampling();
    assert.ok(s.some((x) => PRIMARY.has(x.n1) && PRIMARY.has(x.n2)), 'expected the documented two primaries');
    // Healed: two primaries with diverged data; the tie rule keeps one, the other waits
    // `diverged` until an admin picks (docs/states.md): `second` on it.
    let loser = '';
    await c.waitFor('one diverged', async () => {
      for (const n of ['n1', 'n2']) if ((await c.status(n))?.reason === 'diverged') loser = n;
      return loser !== '';
    }, 20_000);
    assert.equal((await c.hakit(loser, ['second', 'web'])).code, 0);
    await converge();
    // The loser's copy now equals the winner's; its own write is kept in its quarantine.
    const winner = loser === 'n1' ? 'n2' : 'n1';
    assert.equal(existsSync(join(c.tb.host(loser).hostPath(DIR), `apart-${loser}.txt`)), false);
    assert.equal(readFileSync(join(c.tb.host(loser).hostPath(DIR), `apart-${winner}.txt`), 'utf8'), `written on ${winner} while apart`);
    const qroot = join(c.stateDir(loser), 'modules/web/quarantine');
    const kept = readdirSync(qroot).map((stamp) => join(qroot, stamp, DIR.slice(1).replace(/\//g, '_'), `apart-${loser}.txt`)).filter((f) => existsSync(f));
    assert.equal(kept.length, 1, `the loser's write in ${qroot}`);
    assert.equal(readFileSync(kept[0]!, 'utf8'), `written on ${loser} while apart`);
    let q: { paths?: number } | null | undefined;
    await c.waitFor('status shows the quarantine', async () => {
      q = ((await c.status(loser))?.replication as { quarantine?: { paths?: number } | null } | undefined)?.quarantine;
      return (q?.paths ?? 0) >= 1;
    }, 5_000, () => JSON.stringify(q), 200);
  });

  test('arbitrator: every heartbeat network cut with both nodes alive: exactly one primary, always', async () => {
    const w = c.tb.host('wit');
    writeFileSync(join(w.dir, 'cluster.key'), readFileSync(join(c.configDir('n1'), 'cluster.key')), { mode: 0o600 });
    writeFileSync(join(w.dir, 'witness.yaml'), `listen: ${wit}:7407\nkey_file: cluster.key\ncluster: test\nlease: 2s\n`);
    witness = w.spawn(['/usr/bin/node', '--enable-source-maps', HAKIT, 'witness', '--config', join(w.dir, 'witness.yaml')], { stdio: 'ignore' });
    await setCheckers(`checkers: [ { type: splitbrain, arbitrator: "${wit}:7407" } ]`);
    await restartBoth();
    const { prim } = await converge();
    // The witness's quiet period (one lease) has passed: the primary holds the lease.
    await c.waitFor('lease granted', async () => /granted/.test(JSON.stringify((await c.status(prim))?.checkers ?? {})), 10_000);
    startSampling();
    await c.tb.partition(['n1'], ['n2']);
    try {
      await sleep(6000); // T + lease + margin, several times over the secondary's attempts
    } finally {
      await c.tb.heal();
    }
    const s = await stopSampling();
    assertOneWriter(s, 'arbitrator, heartbeats cut');
    assert.ok(s.every((x) => PRIMARY.has(prim === 'n1' ? x.n1 : x.n2)), 'the lease holder stopped being primary');
    await converge();
  });

  test('arbitrator down while the nodes hear each other: no failover', async () => {
    const { prim } = await converge();
    witness?.kill('SIGKILL');
    startSampling();
    await sleep(4000); // two leases
    const s = await stopSampling();
    assert.ok(s.every((x) => (prim === 'n1' ? x.n1 : x.n2) === 'PRIM' && (prim === 'n1' ? x.n2 : x.n1) === 'SECOND'), `states changed: ${JSON.stringify(s.find((x) => (prim === 'n1' ? x.n1 : x.n2) !== 'PRIM'))}`);
  });

  test('self-fencing: the primary\'s daemon SIGSTOPped longer than T, then SIGCONT: no write accepted by the old primary after the new one took over', async () => {
    // Back to the ping witness (the arbitrator is down).
    await setCheckers(`checkers: [ { type: splitbrain, witnesses: [${wit}], interval: 500ms, timeout: 300ms } ]`);
    await restartBoth();
    const { prim, second } = await converge();
    const acks = join(c.tb.host(prim).dir, 'acks-stop');
    writeFileSync(acks, '');
    const writer = c.tb.host(prim).spawn(['/usr/bin/node', WRITER, `${DIR}/stop.txt`, acks, '1']);
    const pid = c.daemonPid(prim);
    assert.ok(pid !== undefined);
    try {
      await c.waitFor(`writer on ${prim} acknowledged records`, async () => numbers(acks).length >= 20, 15_000);
      process.kill(pid, 'SIGSTOP');
      // The frozen host still answers for the VIP, and the duplicate-address check alone keeps
      // the peer from taking over (it waits `vip-conflict`: seen in the first runs of this
      // test). To test the fence itself, the VIP goes from the frozen host, as when clients do
      // not reach the data through the VIP.
      await c.tb.host(prim).exec(['ip', 'addr', 'del', '198.18.0.100/24', 'dev', 'eth0'], { timeoutMs: 5000 });
      try {
        await c.waitState(second, 'ALONE', 15_000);
        const atTakeover = numbers(acks).length;
        await sleep(500);
        assert.equal(numbers(acks).length, atTakeover, 'the stopped primary acknowledged writes after the takeover');
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const atResume = numbers(acks).length;
      // Resumed: it sees the new primary and releases; held writes fail, none is acknowledged.
      await c.waitState(prim, 'SECOND', 30_000);
      assert.equal(numbers(acks).length, atResume, 'the old primary acknowledged writes after it resumed');
      const log = readFileSync(join(c.tb.host(prim).dir, 'daemon.log'), 'utf8');
      assert.match(log, /the rfs fenced itself \(no word from the daemon/);
    } finally {
      writer.kill('SIGKILL');
    }
    // Every acknowledged record is on the new primary (the fence never acknowledged behind it).
    const have = new Set(numbers(join(c.tb.host(second).hostPath(DIR), 'stop.txt')));
    assert.deepEqual(numbers(acks).filter((n) => !have.has(n)), []);
  });
});
