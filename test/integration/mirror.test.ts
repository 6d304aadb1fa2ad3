/**
 * The mirror engine on the testbed (issue 3): real daemons in network namespaces, real VIPs with
 * gratuitous ARP, real scripts starting a real HTTP application, a client on a third host.
 * Defends DESIGN.md 3 promise 1 (one writer), 6 (authenticated) and 8 (timing path), and the
 * failover rules of DESIGN.md 5.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { TestCluster, VIP } from '../testbed/cluster.js';

const PREREQ = needs('root', 'netns', 'nft', 'arping');

describe('mirror module: failover on the testbed', PREREQ, () => {
  let c: TestCluster;
  let prim = '';
  let second = '';
  before(async () => { c = await TestCluster.create({ defaultPrimary: 'n1' }); });
  after(async () => { await c?.dispose(); });

  test('both started: default_primary n1 is PRIM, n2 SECOND, the VIP serves from n1', async () => {
    [prim, second] = await c.startBoth();
    assert.equal(prim, 'n1');
    await c.waitServedBy('n1');
    const st = await c.status('n2');
    assert.equal(st?.peer?.state, 'PRIM');
    assert.deepEqual(st?.vip, [`${VIP}/24`]);
    // The human table names the states too.
    const human = await c.hakit('n1', ['status']);
    assert.match(human.stdout, /web\s+mirror\s+PRIM/);
  });

  test('cutting one of the two heartbeat networks causes no failover, only a warning', async () => {
    await c.tb.partition([prim], [second], { networks: ['hb2'] });
    try {
      // Longer than the 2 s heartbeat timeout.
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal((await c.status(second))?.state, 'SECOND');
      assert.equal((await c.status(prim))?.state, 'PRIM');
      const log = await c.hakit(second, ['log', 'web', '-n', '200']);
      assert.match(log.stdout, /hb2/);
    } finally {
      await c.tb.heal();
    }
  });

  test('SIGKILL of the whole primary host: the secondary becomes ALONE and the client is served again', async () => {
    await c.crash(prim);
    const st = await c.waitState(second, 'ALONE', 15_000);
    assert.equal(st.reason, null);
    await c.waitServedBy(second);
  });

  test('the dead node comes back and becomes SECOND; default_primary n1 takes its role back', async () => {
    await c.startDaemon(prim);
    // Enabled before the crash: the daemon resumes the module without a `start`.
    await c.waitFor('n1 is PRIM again (default_primary swap back) or SECOND', async () => {
      const s = await c.status(prim);
      return !!s?.ready && (s.state === 'SECOND' || s.state === 'PRIM');
    }, 20_000);
    // default_primary: after failback the default primary takes the primary role back.
    await c.waitState('n1', 'PRIM', 20_000);
    await c.waitState('n2', 'SECOND', 20_000);
    await c.waitServedBy('n1');
    prim = 'n1'; second = 'n2';
  });

  test('swap exchanges the roles; refused on the secondary', async () => {
    const refused = await c.hakit(second, ['swap', 'web']);
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /HAKIT_E_BAD_STATE/);
    assert.equal((await c.hakit(prim, ['swap', 'web'])).code, 0);
    await c.waitState(second, 'PRIM', 20_000);
    await c.waitState(prim, 'SECOND', 20_000);
    await c.waitServedBy(second);
    [prim, second] = [second, prim];
  });

  test('clean stop of the primary: the secondary takes over on the announcement, not after the silence timeout', async () => {
    assert.equal((await c.hakit(prim, ['stop', 'web'])).code, 0);
    await c.waitState(second, 'ALONE', 15_000);
    const log = await c.hakit(second, ['log', 'web', '-n', '50']);
    assert.match(log.stdout, /stopped cleanly: taking over/);
    assert.doesNotMatch(log.stdout.split('stopped cleanly')[1] ?? '', /silent on every heartbeat network/);
    await c.waitServedBy(second);
    assert.equal((await c.waitState(prim, 'STOP')).state, 'STOP');
    // And back: started again it joins as SECOND.
    assert.equal((await c.hakit(prim, ['start', 'web'])).code, 0);
    await c.waitFor(`${prim} SECOND or PRIM again`, async () => {
      const s = await c.status(prim);
      return !!s?.ready && (s.state === 'SECOND' || s.state === 'PRIM');
    }, 20_000);
  });
});

describe('mirror module: refusals and failures', PREREQ, () => {
  let c: TestCluster;
  // No default_primary: at a cold start the tie goes to the lowest node name (n1).
  before(async () => { c = await TestCluster.create(); });
  after(async () => { await c?.dispose(); });

  test('failover off: the secondary waits instead of taking over', async () => {
    await c.startBoth();
    assert.equal((await c.hakit('n2', ['failover', 'off', 'web'])).code, 0);
    await c.tb.partition(['n1'], ['n2']);
    try {
      const st = await c.waitState('n2', 'WAIT', 10_000, false);
      assert.equal(st.reason, 'failover-off');
      assert.notEqual((await c.status('n2'))?.state, 'ALONE');
    } finally {
      await c.tb.heal();
    }
    await c.waitState('n2', 'SECOND', 20_000);
    assert.equal((await c.hakit('n2', ['failover', 'on', 'web'])).code, 0);
  });

  test('a forged heartbeat (wrong key) is dropped and counted; the module does not move', async () => {
    const before = JSON.parse((await c.hakit('n2', ['status', '--json'])).stdout);
    // A datagram with the right magic but a MAC under another key, sent to n2's heartbeat port.
    const forged = Buffer.concat([Buffer.from('HKHB'), Buffer.alloc(200, 7)]);
    await c.tb.host('client').exec(['/usr/bin/node', '-e', `
      const s = require('node:dgram').createSocket('udp4');
      const b = Buffer.from(${JSON.stringify(forged.toString('base64'))}, 'base64');
      let n = 0; const go = () => s.send(b, 7405, ${JSON.stringify(c.tb.host('n2').addr('lan'))}, () => { if (++n < 5) go(); else s.close(); });
      go();`], { timeoutMs: 5000 });
    await c.waitFor('drops counted', async () => {
      const now = JSON.parse((await c.hakit('n2', ['status', '--json'])).stdout);
      const sum = (r: { heartbeat: { dropped: Record<string, number> } }) => Object.values(r.heartbeat.dropped).reduce((a, b) => a + b, 0);
      return sum(now) >= sum(before) + 5;
    }, 5000);
    assert.equal((await c.status('n2'))?.state, 'SECOND');
  });

  test('a start_prim that fails makes the peer take over', async () => {
    // n1 is PRIM, n2 SECOND; n1's application will fail to start: `restart` runs stop_prim then
    // start_prim on n1, which fails, so n1 releases and n2 takes over.
    assert.equal((await c.status('n1'))?.state, 'PRIM');
    writeFileSync(join(c.moduleDir('n1'), 'run/fail-start'), '');
    try {
      assert.equal((await c.hakit('n1', ['restart', 'web'])).code, 0);
      await c.waitState('n2', 'PRIM', 20_000).catch(async () => c.waitState('n2', 'ALONE', 5000));
      await c.waitServedBy('n2');
    } finally {
      rmSync(join(c.moduleDir('n1'), 'run/fail-start'), { force: true });
    }
  });

  test('SIGKILL of the primary daemon only: the application keeps serving, the secondary does not steal the VIP; a restarted daemon cleans up and the pair reforms', async () => {
    const s1 = await c.status('n1');
    const prim = s1?.state === 'PRIM' || s1?.state === 'ALONE' ? 'n1' : 'n2';
    const second = prim === 'n1' ? 'n2' : 'n1';
    await c.waitState(second, 'SECOND', 20_000);
    await c.killDaemon(prim);
    // The secondary hears silence, but the VIP is still answered by the old primary's host:
    // the duplicate check refuses to take it (two writers would follow).
    const st = await c.waitState(second, 'WAIT', 15_000, false);
    assert.equal(st.reason, 'vip-conflict');
    assert.equal(await c.servedBy(), prim, 'the application on the old primary still serves');
    // Regression: the refused takeover must not start the application (nor mount rw) at all.
    const slog = await c.hakit(second, ['log', 'web', '-n', '200']);
    assert.doesNotMatch(slog.stdout.split('virtual IP could not be added').pop() ?? '', /script start_prim/);
    await c.startDaemon(prim);
    await c.waitFor('one PRIM/ALONE and one SECOND again', async () => {
      const [a, b] = [await c.status('n1'), await c.status('n2')];
      const states = [a?.state, b?.state].sort().join();
      return !!a?.ready && !!b?.ready && (states === 'PRIM,SECOND' || states === 'ALONE,SECOND');
    }, 30_000);
    const log = await c.hakit(prim, ['log', 'web', '-n', '200']);
    assert.match(log.stdout, /stop_prim \(cleanup\)/);
    assert.notEqual(await c.servedBy(), null);
  });

  test('a stop script that hangs is run again with force, then killed; the module stops', async () => {
    const s2 = await c.status('n2');
    const prim = s2?.state === 'PRIM' || s2?.state === 'ALONE' ? 'n2' : 'n1';
    writeFileSync(join(c.moduleDir(prim), 'run/hang-stop'), '');
    try {
      assert.equal((await c.hakit(prim, ['stop', 'web'])).code, 0);
      // stop_timeout is 2 s in this cluster: force run after 2 s; the forced run ends the app.
      await c.waitState(prim, 'STOP', 15_000);
      const log = await c.hakit(prim, ['log', 'web', '-n', '200']);
      assert.match(log.stdout, /stop_prim/);
      assert.ok(!existsSync(join(c.moduleDir(prim), 'run/app.pid')), 'the forced stop_prim stopped the application');
    } finally {
      rmSync(join(c.moduleDir(prim), 'run/hang-stop'), { force: true });
    }
  });
});

describe('mirror module: checkers', PREREQ, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.create({
      moduleYaml: ['checkers:', '  - { type: tcp, name: app, address: 127.0.0.1:8080, action: restart, interval: 300ms, timeout: 200ms, fall: 2 }'].join('\n'),
    });
  });
  after(async () => { await c?.dispose(); });

  const appPid = (node: string): number => Number(readFileSync(join(c.moduleDir(node), 'run/app.pid'), 'utf8').trim());

  test('a tcp checker with action restart restarts a killed application on the primary, without failover', async () => {
    const [prim] = await c.startBoth();
    await c.waitServedBy(prim);
    const before = appPid(prim);
    process.kill(before, 'SIGKILL');
    await c.waitFor('the application restarted by the checker', async () => {
      try { return appPid(prim) !== before && (await c.servedBy()) === prim; } catch { return false; }
    }, 15_000);
    const log = (await c.hakit(prim, ['log', 'web', '-n', '200'])).stdout;
    assert.match(log, /checker app down/);
    assert.match(log, /start_prim PRIM PRIM restart/);
    assert.equal((await c.status(prim))?.state, 'PRIM');
    const st = await c.status(prim);
    assert.equal((st?.checkers as Record<string, { status: string }>).app?.status, 'up');
  });

  test('checker off (maintenance): a killed application is left alone; checker on restarts it', async () => {
    const s1 = await c.status('n1');
    const prim = s1?.state === 'PRIM' ? 'n1' : 'n2';
    assert.equal((await c.hakit(prim, ['checker', 'off', 'web', 'app'])).code, 0);
    const before = appPid(prim);
    process.kill(before, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1500)); // 5 checker intervals
    assert.equal(await c.servedBy(), null, 'nothing restarted the application while its checker was off');
    const st = await c.status(prim);
    assert.equal((st?.checkers as Record<string, { status: string }>).app?.status, 'disabled');
    assert.equal((await c.hakit(prim, ['checker', 'on', 'web', 'app'])).code, 0);
    await c.waitServedBy(prim);
  });
});
