// Defends DESIGN.md section 7 "The testbed": hosts on a LAN that the root namespace is not part
// of, per-host views of shared paths, faults that do what they say, and nothing left behind by
// dispose() or, for crashed owners, by sweep().
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { needs } from '../helpers/prereq.js';
import { Testbed, sweep, type Host } from '../testbed/index.js';
import { DIR_ROOT, runDir } from '../testbed/layout.js';
import { execCommand } from '../testbed/run.js';

const NODE = process.execPath;

/**
 * True when one echo request from `from` to `to` is answered within 3 s. The wait covers the
 * kernel's ARP/ND retransmit interval (1 s): after a fault, a neighbour entry left INCOMPLETE
 * is resolved only at its next probe, and the echo request waits in its queue until then.
 */
async function pings(from: Host, to: string): Promise<boolean> {
  const r = await from.exec(['ping', '-n', '-c', '1', '-W', '3', to], { timeoutMs: 10_000 });
  return r.code === 0;
}

/** True when one echo request gets no answer within 1 s (a LAN answers in well under 1 ms). */
async function blocked(from: Host, to: string): Promise<boolean> {
  const r = await from.exec(['ping', '-n', '-c', '1', '-W', '1', to], { timeoutMs: 10_000 });
  return r.code !== 0;
}

/** Namespaces of a run still listed by `ip netns list`. */
async function netnsOf(prefix: string): Promise<string[]> {
  const r = await execCommand('list namespaces', ['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${prefix}-`));
}

function mountLinesMentioning(text: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(text));
}

/** Resolves with the child's exit code or signal. */
function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** The first line a child prints on stdout. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!child.stdout) return reject(new Error('child has no stdout pipe'));
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before printing a line`)));
  });
}

/** Polls `cond` every 10 ms until it holds or `ms` pass; returns whether it held. */
async function eventually(cond: () => boolean, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await delay(10);
  }
  return true;
}

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

// UDP receiver: prints "ready" once bound, then "got" on the first datagram, or "none" after 1.5 s.
const UDP_RECV = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', () => { console.log('got'); process.exit(0); });
s.bind(7777, process.argv[1], () => console.log('ready'));
setTimeout(() => { console.log('none'); process.exit(0); }, 1500);
`;
// UDP sender: 20 datagrams to argv[1]:7777, 10 ms apart.
const UDP_SEND = `
const s = require('node:dgram').createSocket('udp4');
let n = 0;
const t = setInterval(() => { s.send('x', 7777, process.argv[1]); if (++n === 20) { clearInterval(t); setTimeout(() => s.close(), 50); } }, 10);
`;

/** True when a datagram sent from `from` reaches `to` on the lan. */
async function udpReaches(from: Host, to: Host): Promise<boolean> {
  const rx = to.spawn([NODE, '-e', UDP_RECV, to.addr('lan')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: rx.stdout! });
  const it = lines[Symbol.asyncIterator]();
  assert.equal((await it.next()).value, 'ready');
  await from.run([NODE, '-e', UDP_SEND, to.addr('lan')]);
  const verdict = (await it.next()).value as string;
  await exited(rx);
  return verdict === 'got';
}

describe('testbed', needs('root', 'netns', 'nft'), () => {
  let tb: Testbed;
  before(async () => {
    tb = await Testbed.create({ hosts: ['n1', 'n2', 'client'], networks: ['lan', 'hb2'], mountPaths: ['/srv/app'] });
  });
  after(async () => {
    await tb?.dispose();
  });

  test('hosts reach each other on both networks, over IPv4 and IPv6, on eth0 and eth1', async () => {
    const [n1, n2, client] = [tb.host('n1'), tb.host('n2'), tb.host('client')];
    assert.equal(n1.addr('lan'), '198.18.0.1');
    assert.equal(n2.addr('hb2'), '198.19.0.2');
    assert.equal(client.addr6('lan'), '2001:2::3');
    const br = await n1.run(['ip', '-br', 'addr', 'show', 'dev', n1.ifname('hb2')]);
    assert.match(br, /^eth1\b.*198\.19\.0\.1\/24/);
    for (const [a, b] of [[n1, n2], [n2, client], [client, n1]] as const) {
      for (const net of tb.networks) {
        assert.ok(await pings(a, b.addr(net)), `${a.name} -> ${b.name} ${b.addr(net)}`);
        assert.ok(await pings(a, b.addr6(net)), `${a.name} -> ${b.name} ${b.addr6(net)}`);
      }
    }
    for (const h of tb.hosts) {
      assert.equal((await h.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(), '0', `${h.name} forwards IPv4`);
      assert.match(await h.run(['ip', '-br', 'link', 'show', 'dev', 'lo']), /\bUP\b|UNKNOWN/);
    }
  });

  test('the root namespace has no link, address or route on the test networks', async () => {
    const links = await execCommand('list links', ['ip', '-o', 'link']);
    for (const h of tb.hosts) for (const net of tb.networks) {
      assert.ok(!links.stdout.includes(` ${h.hubPort(net)}@`) && !links.stdout.includes(` ${h.hubPort(net)}:`), `${h.hubPort(net)} is in the root namespace`);
    }
    const addrs = await execCommand('list addresses', ['ip', '-o', 'addr']);
    assert.doesNotMatch(addrs.stdout, /inet 198\.1[89]\.|inet6 2001:2:/);
    const routes = await execCommand('list routes', ['sh', '-c', 'ip -4 route; ip -6 route']);
    assert.doesNotMatch(routes.stdout, /^198\.1[89]\.|^2001:2:/m);
    // The hub is a switch: no address of its own.
    const hub = await execCommand('list hub addresses', ['ip', '-n', tb.hub, '-o', 'addr']);
    assert.doesNotMatch(hub.stdout, /inet6? /);
  });

  test('a file written under a mount path on one host is seen by no other host', async () => {
    const [n1, n2] = [tb.host('n1'), tb.host('n2')];
    await n1.run(['sh', '-c', 'echo from-n1 > /srv/app/data']);
    assert.equal((await n1.run(['cat', '/srv/app/data'])).trim(), 'from-n1');
    assert.notEqual((await n2.exec(['test', '-e', '/srv/app/data'])).code, 0, 'n2 sees n1\'s file');
    assert.equal(readFileSync(n1.hostPath('/srv/app/data'), 'utf8'), 'from-n1\n');
    assert.ok(!existsSync(n2.hostPath('/srv/app/data')));
    assert.ok(!existsSync('/srv/app/data'), 'the root file system sees the file');
    // A mount made inside a host (as a FUSE mount would be) is seen by its processes only.
    await n1.run(['mount', '-t', 'tmpfs', 'tbtest', '/srv/app']);
    assert.equal((await n1.exec(['test', '-e', '/srv/app/data'])).code, 1, 'n1\'s new mount hides the directory below');
    assert.equal(mountLinesMentioning('tbtest').length, 0, 'the mount leaked to the root namespace');
    assert.doesNotMatch(await n2.run(['cat', '/proc/self/mountinfo']), /tbtest/);
    await n1.run(['umount', '/srv/app']);
  });

  test('partition cuts n1 from n2 (all or some networks) but not from client; heal restores', async () => {
    const [n1, n2, client] = [tb.host('n1'), tb.host('n2'), tb.host('client')];
    await tb.partition(['n1'], ['n2']);
    try {
      for (const net of tb.networks) {
        assert.ok(await blocked(n1, n2.addr(net)), `n1 reaches n2 on ${net}`);
        assert.ok(await blocked(n2, n1.addr6(net)), `n2 reaches n1 on ${net} (IPv6)`);
        assert.ok(await pings(n1, client.addr(net)), `n1 cannot reach client on ${net}`);
        assert.ok(await pings(n2, client.addr(net)), `n2 cannot reach client on ${net}`);
      }
    } finally {
      await tb.heal();
    }
    assert.ok(await pings(n1, n2.addr('lan')));
    assert.ok(await pings(n2, n1.addr('hb2')));

    await tb.partition(['n1'], ['n2', 'client'], { networks: ['lan'] });
    try {
      assert.ok(await blocked(n1, n2.addr('lan')));
      assert.ok(await blocked(client, n1.addr('lan')));
      assert.ok(await pings(n1, n2.addr('hb2')), 'a partition of lan cut hb2');
      assert.ok(await pings(n2, client.addr('lan')));
    } finally {
      await tb.heal();
    }
    assert.ok(await pings(n1, n2.addr('lan')));
  });

  test('partition with proto udp drops UDP between the hosts and lets ICMP (and TCP) through', async () => {
    const [n1, n2] = [tb.host('n1'), tb.host('n2')];
    assert.ok(await udpReaches(n1, n2), 'control: n1 -> n2 before the fault');
    await tb.partition(['n1'], ['n2'], { proto: 'udp' });
    try {
      assert.ok(!(await udpReaches(n1, n2)), 'n1 -> n2 UDP still delivered');
      assert.ok(!(await udpReaches(n2, n1)), 'n2 -> n1 UDP still delivered');
      assert.ok(await pings(n1, n2.addr('lan')), 'a UDP-only partition dropped ICMP');
    } finally {
      await tb.heal();
    }
    assert.ok(await udpReaches(n1, n2), 'UDP not back after heal');
  });

  test('oneWayLoss drops one direction only', async () => {
    const [n1, n2] = [tb.host('n1'), tb.host('n2')];
    // ARP needs both directions; pin the neighbours so that IPv4 datagrams can go one way.
    const mac = async (h: Host): Promise<string> => (JSON.parse(await h.run(['ip', '-j', 'link', 'show', 'dev', 'eth0'])) as { address: string }[])[0]!.address;
    await n1.run(['ip', 'neigh', 'replace', n2.addr('lan'), 'lladdr', await mac(n2), 'dev', 'eth0', 'nud', 'permanent']);
    await n2.run(['ip', 'neigh', 'replace', n1.addr('lan'), 'lladdr', await mac(n1), 'dev', 'eth0', 'nud', 'permanent']);
    try {
      assert.ok(await udpReaches(n1, n2), 'control: n1 -> n2 before the fault');
      await tb.oneWayLoss('n1', 'n2', { networks: ['lan'] });
      assert.ok(!(await udpReaches(n1, n2)), 'n1 -> n2 still delivered');
      assert.ok(await udpReaches(n2, n1), 'n2 -> n1 was dropped too');
      assert.ok(await pings(n1, n2.addr('hb2')), 'hb2 affected');
      await tb.heal();
      assert.ok(await udpReaches(n1, n2), 'n1 -> n2 after heal');
    } finally {
      await tb.heal();
      await n1.run(['ip', 'neigh', 'del', n2.addr('lan'), 'dev', 'eth0']);
      await n2.run(['ip', 'neigh', 'del', n1.addr('lan'), 'dev', 'eth0']);
    }
  });

  test('linkDown pulls the cable on one network; linkUp plugs it back', async () => {
    const [n1, n2] = [tb.host('n1'), tb.host('n2')];
    try {
      await tb.linkDown('n1', 'lan');
      assert.match(await n1.run(['ip', 'link', 'show', 'dev', 'eth0']), /NO-CARRIER/);
      assert.ok(await blocked(n2, n1.addr('lan')));
      assert.ok(await pings(n2, n1.addr('hb2')), 'hb2 went down with lan');
    } finally {
      await tb.linkUp('n1', 'lan');
    }
    assert.ok(await pings(n2, n1.addr('lan')));
  });

  test('crash SIGKILLs every process of the host, other hosts keep theirs, the host stays usable', async () => {
    const [n1, n2] = [tb.host('n1'), tb.host('n2')];
    const a = n1.spawn(['sleep', '1000']);
    const b = n1.spawn(['sh', '-c', 'sleep 1000 & sleep 1000 & wait']);
    const other = n2.spawn(['sleep', '1000']);
    try {
      assert.ok(await eventually(() => procState(b.pid!) !== undefined));
      const before = await n1.pids();
      assert.ok(before.includes(a.pid!) && before.includes(b.pid!));
      await tb.crash('n1');
      assert.deepEqual(await n1.pids(), []);
      assert.equal((await exited(a)).signal, 'SIGKILL');
      assert.equal((await exited(b)).signal, 'SIGKILL');
      assert.equal(other.exitCode, null);
      assert.ok((await n2.pids()).includes(other.pid!), 'crash of n1 killed a process of n2');
      assert.ok(await pings(n1, n2.addr('lan')), 'n1 unusable after crash');
      assert.equal((await n1.run(['cat', '/srv/app/data'])).trim(), 'from-n1');
    } finally {
      other.kill('SIGKILL');
    }
  });

  test('pause freezes a process and resume lets it go on', async () => {
    const p = tb.host('client').spawn(['sleep', '1000']);
    try {
      assert.ok(await eventually(() => procState(p.pid!) === 'S'));
      await tb.pause(p);
      assert.ok(await eventually(() => procState(p.pid!) === 'T'), `state ${procState(p.pid!)}`);
      await tb.resume(p);
      assert.ok(await eventually(() => procState(p.pid!) === 'S'), `state ${procState(p.pid!)}`);
      await tb.pause('client');
      assert.ok(await eventually(() => procState(p.pid!) === 'T'), 'pause of the host');
      await tb.resume('client');
      assert.ok(await eventually(() => procState(p.pid!) === 'S'), 'resume of the host');
    } finally {
      p.kill('SIGKILL');
    }
  });

  test('create refuses bad names before building anything', async () => {
    await assert.rejects(Testbed.create({ hosts: ['Bad_Name'] }), { code: 'HAKIT_E_TESTBED' });
    await assert.rejects(Testbed.create({ hosts: ['a', 'a'] }), { code: 'HAKIT_E_TESTBED' });
    await assert.rejects(Testbed.create({ hosts: ['a'], mountPaths: ['/proc/x'] }), { code: 'HAKIT_E_TESTBED' });
  });

  test('dispose removes every namespace, process, mount and directory, and is idempotent', async () => {
    const top = `/var/tmp/hakit-tb-${process.pid}`;
    const run = await Testbed.create({ hosts: ['a', 'b'], networks: ['lan', 'hb2'], mountPaths: [`${top}/app`] });
    const p = run.prefix;
    const sleeper = run.host('a').spawn(['sleep', '1000']);
    await run.host('b').run(['mount', '-t', 'tmpfs', 'tbdispose', `${top}/app`]);
    assert.equal((await netnsOf(p)).length, 3);
    assert.ok(existsSync(top));
    assert.ok(mountLinesMentioning(runDir(p)).length > 0);

    await run.dispose();
    await run.dispose();
    assert.deepEqual(await netnsOf(p), []);
    assert.deepEqual(mountLinesMentioning(p), []);
    assert.ok(!existsSync(runDir(p)), 'run directory left');
    assert.ok(!existsSync(`${DIR_ROOT}/${p}`), 'host directories left');
    assert.ok(!existsSync(top), 'mount point directory left');
    assert.equal((await exited(sleeper)).signal, 'SIGKILL');
    assert.throws(() => run.host('a').spawn(['true']), { code: 'HAKIT_E_TESTBED' });
  });

  test('mountSize gives each host a file system of that size behind its mount paths: it fills up alone, dispose unmounts it', async () => {
    await assert.rejects(Testbed.create({ hosts: ['a'], mountPaths: ['/srv/x'], mountSize: '1 GB' }), { code: 'HAKIT_E_TESTBED' });
    const run = await Testbed.create({ hosts: ['a', 'b'], mountPaths: ['/srv/hakit-tb-size'], mountSize: '4m' });
    const p = run.prefix;
    try {
      const fill = await run.host('a').exec(['dd', 'if=/dev/zero', 'of=/srv/hakit-tb-size/fill', 'bs=1M', 'count=8', 'status=none']);
      assert.notEqual(fill.code, 0, 'a wrote 8 MiB on a 4 MiB file system');
      assert.match(fill.stderr, /No space left on device/);
      const other = await run.host('b').exec(['dd', 'if=/dev/zero', 'of=/srv/hakit-tb-size/f', 'bs=1M', 'count=2', 'status=none']);
      assert.equal(other.code, 0, `b is full too: ${other.stderr}`);
      assert.ok(mountLinesMentioning(`${DIR_ROOT}/${p}/`).length >= 2, 'no mount behind the host directories');
    } finally {
      await run.dispose();
    }
    assert.deepEqual(mountLinesMentioning(p), []);
    assert.ok(!existsSync(`${DIR_ROOT}/${p}`), 'host directories left');
  });

  test('a process that forgets dispose() leaves nothing behind, whether it exits or gets SIGTERM', async () => {
    const index = fileURLToPath(new URL('../testbed/index.js', import.meta.url));
    for (const ending of ['process.exit(0)', "process.kill(process.pid, 'SIGTERM')"]) {
      const script = `
        const { Testbed } = await import(${JSON.stringify(index)});
        const tb = await Testbed.create({ hosts: ['x'] });
        tb.host('x').spawn(['sleep', '1000']);
        console.log(tb.prefix);
        setTimeout(() => { ${ending}; }, 50);
        setInterval(() => {}, 1000);`;
      const owner = spawn(NODE, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const prefix = await firstLine(owner);
      const end = await exited(owner);
      assert.deepEqual(end, ending.startsWith('process.exit') ? { code: 0, signal: null } : { code: null, signal: 'SIGTERM' }, 'the hook changed how the process ends');
      assert.deepEqual(await netnsOf(prefix), [], `namespaces left after ${ending}`);
      assert.ok(!existsSync(runDir(prefix)), `run directory left after ${ending}`);
    }
  });

  test('sweep removes a run whose owner was SIGKILLed and spares live runs', async () => {
    const index = fileURLToPath(new URL('../testbed/index.js', import.meta.url));
    const script = `
      const { Testbed } = await import(${JSON.stringify(index)});
      const tb = await Testbed.create({ hosts: ['x', 'y'], mountPaths: ['/var/tmp/hakit-tb-sweep-${process.pid}'] });
      const s = tb.host('x').spawn(['sleep', '1000']);
      console.log(tb.prefix + ' ' + s.pid);
      setInterval(() => {}, 1000);`;
    const owner = spawn(NODE, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let line: string;
    try {
      line = await firstLine(owner);
    } finally {
      owner.kill('SIGKILL');
      await exited(owner);
    }
    const [prefix = '', pid] = line.split(' ');
    const sleeper = Number(pid);
    assert.equal((await netnsOf(prefix)).length, 3, 'the dead owner\'s run should still be there');

    const removed = await sweep();
    assert.ok(removed.includes(prefix), `sweep removed ${removed.join(', ')}`);
    assert.ok(!removed.includes(tb.prefix), 'sweep removed a live run');
    assert.deepEqual(await netnsOf(prefix), []);
    assert.deepEqual(mountLinesMentioning(prefix), []);
    assert.ok(!existsSync(runDir(prefix)), 'run directory left');
    assert.ok(!existsSync(`${DIR_ROOT}/${prefix}`), 'host directories left');
    assert.ok(!existsSync(`/var/tmp/hakit-tb-sweep-${process.pid}`));
    const st = procState(sleeper);
    assert.ok(st === undefined || st === 'Z', `the run's process survived (state ${st})`);
    // The live run still works.
    assert.ok(await pings(tb.host('n1'), tb.host('n2').addr('lan')));
  });
});
