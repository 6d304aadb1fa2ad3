/**
 * Checkers on the testbed (issue 6; docs/checkers.md): real daemons, real probes, a real HTTP
 * application and a client on a third host that tells who serves the VIP. Each describe runs one
 * cluster with the checkers it needs:
 * - process checker with action restart: a killed application is restarted on the primary; killed
 *   again and again it hits maxloop: the primary goes to STOP (reason maxloop) and its secondary
 *   takes over (the client is served by the other node);
 * - tcp checker: up on the primary (`connected to ...`), idle on the secondary;
 * - http checker (status + body) with action stopstart: the health URL turning 503 fails the
 *   module over; a custom checker (a script's UP/DOWN output) with action restart; a custom
 *   checker that hangs is a failure at its timeout (`timed out`), and the module keeps serving;
 * - interface checker (action wait) on the VIP's NIC: the primary's cable pulled -> WAIT
 *   checker:nic (the peer takes over); plugged back -> it leaves WAIT and rejoins;
 * - vip checker: another host answering for the VIP is detected (checker down with the other
 *   host named) and its action runs.
 * - module checker (action wait) in a second module `dep`: it is primary where `web` is; `web`
 *   swapped, `dep` waits on the old node (checker:needsweb) and becomes primary on the new one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { TestCluster, VIP } from '../testbed/cluster.js';

const PREREQ = needs('root', 'netns', 'nft', 'arping');

interface CheckerView { status: string; detail?: string }
const checker = async (c: TestCluster, node: string, name: string): Promise<CheckerView | undefined> =>
  ((await c.status(node))?.checkers as Record<string, CheckerView> | undefined)?.[name];

const appPid = (c: TestCluster, node: string): number => Number(readFileSync(join(c.moduleDir(node), 'run/app.pid'), 'utf8').trim());

describe('checkers: process -> restart, then maxloop -> failover', PREREQ, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.create({
      defaultPrimary: 'n1',
      moduleYaml: [
        'maxloop: { count: 2, window: 1h }',
        'checkers:',
        '  - { type: process, name: proc, cmdline: "http-app\\\\.mjs 8080", action: restart, interval: 300ms, timeout: 200ms, fall: 1 }',
      ].join('\n'),
    });
    // A process checker reads the whole host's /proc, and the test files that run beside this
    // one start the same application on port 8080 in their own testbeds (a CI run counted theirs
    // and never saw this one go down). Each node's checker matches its own copy: the command
    // line names the node's module dir (start_prim).
    for (const n of c.nodes) {
      const md = c.moduleDir(n);
      const file = join(md, 'module.yaml');
      const yaml = readFileSync(file, 'utf8');
      const own = `cmdline: '${md.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/app/http-app\\.mjs 8080'`;
      const mine = yaml.replace('cmdline: "http-app\\\\.mjs 8080"', own);
      assert.notEqual(mine, yaml, 'the checker line to narrow was not found');
      writeFileSync(file, mine);
    }
  });
  after(async () => { await c?.dispose(); });

  test('a killed application is restarted on the primary; killed each time it comes back, maxloop stops it and the peer takes over', async () => {
    const [prim, second] = await c.startBoth();
    await c.waitServedBy(prim);
    const first = appPid(c, prim);
    process.kill(first, 'SIGKILL');
    await c.waitFor('the application restarted by the process checker', async () => {
      try { return appPid(c, prim) !== first && (await c.servedBy()) === prim; } catch { return false; }
    }, 15_000);
    assert.equal((await c.status(prim))?.state, 'PRIM', 'a restart is not a failover');
    assert.match((await c.hakit(prim, ['log', 'web', '-n', '300'])).stdout, /checker proc down/);
    // Keep killing it: every restart counts toward maxloop (2 in 1 h).
    let last = '';
    await c.waitFor(`${prim} stopped by maxloop`, async () => {
      const st = await c.status(prim);
      last = JSON.stringify(st && [st.state, st.ready, st.reason]);
      if (st?.state === 'STOP') return st.reason === 'maxloop';
      try { process.kill(appPid(c, prim), 'SIGKILL'); } catch { /* not running right now */ }
      return false;
    }, 30_000, () => last, 300);
    await c.waitServedBy(second);
    assert.equal((await c.status(second))?.state, 'ALONE');
    const log = (await c.hakit(prim, ['log', 'web', '-n', '300'])).stdout;
    assert.match(log, /maxloop/);
  });
});

describe('checkers: http -> stopstart, custom -> restart, a hanging custom checker', PREREQ, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.create({
      defaultPrimary: 'n1',
      moduleYaml: [
        'checkers:',
        '  - { type: http, name: health, url: "http://127.0.0.1:8080/health", body: "^ok", action: stopstart, interval: 300ms, timeout: 250ms, fall: 2 }',
        '  - { type: custom, name: flag, command: check-flag, action: restart, interval: 300ms, timeout: 250ms, fall: 1 }',
        '  - { type: custom, name: slow, command: check-flag, args: [hang], action: none, interval: 400ms, timeout: 300ms, fall: 1 }',
        '  - { type: tcp, name: port, address: 127.0.0.1:8080, action: none, interval: 300ms, timeout: 250ms, fall: 1 }',
      ].join('\n'),
    });
    // UP/DOWN from a flag file of the module; with `hang`, sleeps while the flag `hang` exists.
    const script = [
      '#!/bin/sh',
      'R="$HAKIT_MODULE_DIR/run"',
      'if [ "$1" = hang ]; then [ -f "$R/hang" ] && sleep 30; echo "UP not hanging"; exit 0; fi',
      '[ -f "$R/custom-down" ] && { echo "DOWN flag set"; exit 0; }',
      'echo "UP no flag"',
      '',
    ].join('\n');
    for (const n of c.nodes) writeFileSync(join(c.moduleDir(n), 'bin/check-flag'), script, { mode: 0o755 });
  });
  after(async () => { await c?.dispose(); });

  test('the health URL answering 503 fails the module over to its secondary (stopstart)', async () => {
    const [prim, second] = await c.startBoth();
    await c.waitServedBy(prim);
    await c.waitFor('the http checker up', async () => (await checker(c, prim, 'health'))?.status === 'up', 10_000);
    // The tcp checker watches the application: up on the primary, not run on the secondary.
    let port: CheckerView | undefined;
    await c.waitFor('the tcp checker up', async () => (port = await checker(c, prim, 'port'))?.status === 'up', 10_000, () => JSON.stringify(port));
    assert.match(port?.detail ?? '', /connected to 127\.0\.0\.1:8080/);
    assert.equal((await checker(c, second, 'port'))?.status, 'idle');
    writeFileSync(join(c.moduleDir(prim), 'run/unhealthy'), '');
    try {
      await c.waitServedBy(second);
    } finally {
      rmSync(join(c.moduleDir(prim), 'run/unhealthy'), { force: true });
    }
    const log = (await c.hakit(prim, ['log', 'web', '-n', '300'])).stdout;
    assert.match(log, /checker health down/);
    assert.match(log, /HTTP 503/);
    const [p2] = await c.settled();
    assert.equal(p2, second, 'the old primary came back as primary');
  });

  test('a custom checker saying DOWN restarts the application on the primary; UP again is shown', async () => {
    const [prim] = await c.settled();
    await c.waitFor('the custom checker up', async () => (await checker(c, prim, 'flag'))?.status === 'up', 10_000);
    const before = appPid(c, prim);
    writeFileSync(join(c.moduleDir(prim), 'run/custom-down'), '');
    try {
      await c.waitFor('the application restarted by the custom checker', async () => {
        try { return appPid(c, prim) !== before; } catch { return false; }
      }, 15_000);
    } finally {
      rmSync(join(c.moduleDir(prim), 'run/custom-down'), { force: true });
    }
    const log = (await c.hakit(prim, ['log', 'web', '-n', '300'])).stdout;
    assert.match(log, /checker flag down/);
    assert.match(log, /start_prim PRIM PRIM restart/);
    await c.waitFor('the custom checker up again', async () => (await checker(c, prim, 'flag'))?.status === 'up', 10_000);
    assert.equal((await c.status(prim))?.state, 'PRIM');
  });

  test('a custom checker that hangs is a failure at its timeout; the module keeps serving', async () => {
    const [prim, second] = await c.settled();
    writeFileSync(join(c.moduleDir(prim), 'run/hang'), '');
    try {
      let last: CheckerView | undefined;
      await c.waitFor('the hanging checker reported down', async () => (last = await checker(c, prim, 'slow'))?.status === 'down', 10_000, () => JSON.stringify(last));
      assert.match(last?.detail ?? '', /timed out/);
      // Heartbeats and the state machine are not held up by it.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await c.status(prim))?.state, 'PRIM');
      assert.equal((await c.status(second))?.state, 'SECOND');
      assert.equal(await c.servedBy(), prim);
    } finally {
      rmSync(join(c.moduleDir(prim), 'run/hang'), { force: true });
    }
    await c.waitFor('the hanging checker up again', async () => (await checker(c, prim, 'slow'))?.status === 'up', 10_000);
  });

  test('the application killed: the tcp checker reports the refused connection (action none, logged), the http checker fails the module over', async () => {
    const [prim, second] = await c.settled();
    process.kill(appPid(c, prim), 'SIGKILL');
    await c.waitServedBy(second);
    const log = (await c.hakit(prim, ['log', 'web', '-n', '300'])).stdout;
    assert.match(log, /checker port down: cannot connect to 127\.0\.0\.1:8080: ECONNREFUSED/);
    assert.match(log, /checker health down/);
    await c.settled();
  });
});

describe('checkers: interface -> wait, resume when the link is back', PREREQ, () => {
  let c: TestCluster;
  before(async () => {
    // No default_primary: the node that rejoins stays SECOND (no swap back), so what it shows is
    // the checker after the rejoin, not during another transition.
    c = await TestCluster.create({
      moduleYaml: ['checkers:', '  - { type: interface, name: nic, interface: eth0, interval: 300ms, timeout: 250ms, fall: 1, rise: 1 }'].join('\n'),
    });
  });
  after(async () => { await c?.dispose(); });

  test('the primary\'s cable pulled: it waits (checker:nic), the peer serves; plugged back: it rejoins', async () => {
    const [prim, second] = await c.startBoth();
    await c.waitServedBy(prim);
    await c.tb.linkDown(prim, 'lan');
    try {
      await c.waitFor(`${prim} WAIT checker:nic`, async () => {
        const st = await c.status(prim);
        return st?.state === 'WAIT' && st.reason === 'checker:nic';
      }, 15_000);
      await c.waitServedBy(second);
    } finally {
      await c.tb.linkUp(prim, 'lan');
    }
    await c.waitFor(`${prim} leaves WAIT once the link is back`, async () => {
      const st = await c.status(prim);
      return st?.ready === true && st.state === 'SECOND';
    }, 20_000);
    // It runs on the SECOND too (docs/checkers.md): from unknown after the transition, then up.
    let last: CheckerView | undefined;
    await c.waitFor('the interface checker up on the rejoined SECOND', async () => (last = await checker(c, prim, 'nic'))?.status === 'up', 10_000, () => JSON.stringify(last));
    await c.waitServedBy(second);
    assert.equal((await c.status(prim))?.state, 'SECOND');
  });
});

describe('checkers: vip conflict detected', PREREQ, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.create({
      defaultPrimary: 'n1',
      moduleYaml: ['checkers:', '  - { type: vip, name: vip, action: none, interval: 400ms, timeout: 350ms, fall: 1 }'].join('\n'),
    });
  });
  after(async () => { await c?.dispose(); });

  test('another host answering for the VIP turns the vip checker down, naming it; gone again, up', async () => {
    const [prim] = await c.startBoth();
    await c.waitServedBy(prim);
    await c.waitFor('the vip checker up', async () => (await checker(c, prim, 'vip'))?.status === 'up', 10_000);
    const intruder = c.tb.host('client');
    await intruder.run(['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
    try {
      let last: CheckerView | undefined;
      await c.waitFor('the vip checker down', async () => (last = await checker(c, prim, 'vip'))?.status === 'down', 10_000, () => JSON.stringify(last));
      assert.match(last?.detail ?? '', /also answered by another host/);
      assert.match((await c.hakit(prim, ['log', 'web', '-n', '200'])).stdout, /checker vip down/);
    } finally {
      await intruder.run(['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0']);
    }
    await c.waitFor('the vip checker up again', async () => (await checker(c, prim, 'vip'))?.status === 'up', 10_000);
  });
});

describe('checkers: module -> wait (a dependency follows its module)', PREREQ, () => {
  let c: TestCluster;
  const DEP = 'dep';
  before(async () => {
    c = await TestCluster.create({ defaultPrimary: 'n1' });
    // A second module with no VIP and no scripts of its own, which needs `web` primary on its node.
    const yaml = ['kind: mirror', `nodes: [${c.nodes.join(', ')}]`, 'heartbeat: { networks: [lan, hb2] }',
      'checkers:', '  - { type: module, name: needsweb, module: web, state: [PRIM, ALONE], action: wait, interval: 300ms, timeout: 250ms, fall: 1, rise: 1 }', ''].join('\n');
    for (const n of c.nodes) {
      const md = join(c.configDir(n), 'modules', DEP);
      mkdirSync(md, { recursive: true, mode: 0o755 });
      writeFileSync(join(md, 'module.yaml'), yaml);
    }
  });
  after(async () => { await c?.dispose(); });

  const primaryOf = async (mod: string): Promise<string | null> => {
    for (const n of c.nodes) {
      const st = await c.status(n, mod);
      if (st?.ready && (st.state === 'PRIM' || st.state === 'ALONE')) return n;
    }
    return null;
  };

  test('the dependent module is primary where web is; web swapped to the other node, it waits here (checker:needsweb) and goes there', async () => {
    const [prim, second] = await c.startBoth();
    for (const n of c.nodes) assert.equal((await c.hakit(n, ['start', DEP])).code, 0);
    let last = '';
    await c.waitFor(`${DEP} primary on ${prim} and waiting on ${second}`, async () => {
      last = `${await primaryOf(DEP)}`;
      return last === prim;
    }, 20_000, () => `dep primary on ${last}`);
    assert.equal((await c.hakit(prim, ['swap', 'web'])).code, 0);
    await c.waitServedBy(second);
    await c.waitFor(`${DEP} follows web to ${second}`, async () => (last = `${await primaryOf(DEP)}`) === second, 20_000, () => `dep primary on ${last}`);
    assert.match((await c.hakit(prim, ['log', DEP, '-n', '200'])).stdout, /checker needsweb down/);
  });
});
