// Contract of the heartbeat seam (STYLE.md 3, 4; DESIGN.md 3 promise 6 "Authenticated", 5
// "Heartbeats"): the same checks against the real UDP transport and its in-memory twin, so the
// fake that the simulator uses cannot drift from real sockets.
//
// The real transport runs on loopback addresses 127.0.0.1..5 of the current namespace by default.
// test/integration/heartbeat.netns.test.ts runs this same file inside a network namespace it
// creates, with HAKIT_TEST_HB_NET=netns: then the addresses are 198.18.0.x (lan) and 198.19.0.x
// (hb2) on their own interfaces, and "unreachable" is an address with no route at all.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { MAX_DATAGRAM } from '../../src/adapters/udp/codec.js';
import {
  DROP_REASONS, type DecodedHeartbeat, type DropReason, type HeartbeatCounters, type HeartbeatTransport, type HeartbeatView,
} from '../../src/adapters/udp/transport.js';
import { UdpHeartbeatTransport } from '../../src/adapters/udp/udp-transport.js';
import { MemoryHeartbeatNetwork } from '../../src/adapters/udp/memory-transport.js';

const NETWORKS = ['lan', 'hb2'] as const;
type Net = (typeof NETWORKS)[number];
const netns = process.env.HAKIT_TEST_HB_NET === 'netns';

/** Host number (1, 2: cluster nodes; 3: a raw socket, the "attacker") -> address per network. */
const HOSTS: Record<number, Record<Net, string>> = netns
  ? { 1: { lan: '198.18.0.1', hb2: '198.19.0.1' }, 2: { lan: '198.18.0.2', hb2: '198.19.0.2' }, 3: { lan: '198.18.0.3', hb2: '198.19.0.3' } }
  : { 1: { lan: '127.0.0.1', hb2: '127.0.0.3' }, 2: { lan: '127.0.0.2', hb2: '127.0.0.4' }, 3: { lan: '127.0.0.5', hb2: '127.0.0.6' } };
const MEMORY_HOSTS: typeof HOSTS = {
  1: { lan: '198.18.0.1', hb2: '198.19.0.1' }, 2: { lan: '198.18.0.2', hb2: '198.19.0.2' }, 3: { lan: '198.18.0.3', hb2: '198.19.0.3' },
};

const KEY = parseKey(generateKey());
const MEMBERS = { web: ['n1', 'n2'], web2: ['n1', 'n2'] };

interface OpenOptions {
  node: string;
  host: 1 | 2;
  key?: Buffer;
  cluster?: string;
  epochStart?: number;
  /** Ports to bind per network; default: any free port (real), 7405 (memory). */
  ports?: Partial<Record<Net, number>>;
}

interface Peer {
  t: HeartbeatTransport;
  /** "host:port" per network, what the other side sends to. */
  addr: Record<Net, string>;
  ports: Record<Net, number>;
}

/** A plain datagram socket on host 3's lan address: captures and sends raw bytes. */
interface Raw {
  address: string;
  send(to: string, bytes: Buffer): void;
  /** The next datagram that arrives (in arrival order). */
  next(): Promise<Buffer>;
}

interface Harness {
  open(o: OpenOptions): Promise<Peer>;
  raw(): Promise<Raw>;
  /** An address datagrams cannot reach (no route, or nobody listening). */
  unreachable: string;
  /** True when `unreachable` makes the operating system refuse the send (counted in sendErrors). */
  unreachableRefused: boolean;
  close(): Promise<void>;
}

function rawQueue(): { push(b: Buffer): void; next(): Promise<Buffer> } {
  const got: Buffer[] = [];
  const waiting: ((b: Buffer) => void)[] = [];
  return {
    push: (b) => { const w = waiting.shift(); if (w) w(b); else got.push(b); },
    next: () => { const b = got.shift(); return b ? Promise.resolve(b) : new Promise((r) => waiting.push(r)); },
  };
}

const harnesses: Record<string, () => Harness> = {
  udp: () => {
    const opened: HeartbeatTransport[] = [];
    const sockets: dgram.Socket[] = [];
    return {
      unreachable: netns ? '198.18.1.9:7405' : '127.0.0.1:9',
      unreachableRefused: netns,
      async open(o) {
        const t = await UdpHeartbeatTransport.open({
          key: o.key ?? KEY, cluster: o.cluster ?? 'demo', node: o.node, members: MEMBERS, epochStart: o.epochStart,
          bind: NETWORKS.map((network) => ({ network, address: (HOSTS[o.host] as Record<Net, string>)[network], port: o.ports?.[network] ?? 0 })),
        });
        opened.push(t);
        const b = t.bound();
        const port = (n: Net): number => (b.find((x) => x.network === n) as { port: number }).port;
        return {
          t,
          addr: { lan: `${(HOSTS[o.host] as Record<Net, string>).lan}:${port('lan')}`, hb2: `${(HOSTS[o.host] as Record<Net, string>).hb2}:${port('hb2')}` },
          ports: { lan: port('lan'), hb2: port('hb2') },
        };
      },
      async raw() {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        const q = rawQueue();
        s.on('message', (m) => q.push(m));
        await new Promise<void>((resolve) => s.bind({ address: (HOSTS[3] as Record<Net, string>).lan, port: 0 }, resolve));
        return {
          address: `${s.address().address}:${s.address().port}`,
          send: (to, bytes) => { const [h, p] = to.split(':') as [string, string]; s.send(bytes, Number(p), h); },
          next: q.next,
        };
      },
      async close() {
        await Promise.all(opened.map((t) => t.close()));
        await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
      },
    };
  },
  memory: () => {
    const net = new MemoryHeartbeatNetwork();
    const opened: HeartbeatTransport[] = [];
    return {
      unreachable: '198.18.1.9:7405',
      unreachableRefused: false,
      async open(o) {
        const h = MEMORY_HOSTS[o.host] as Record<Net, string>;
        const ports = { lan: o.ports?.lan ?? 7405, hb2: o.ports?.hb2 ?? 7405 };
        const t = net.transport({
          key: o.key ?? KEY, cluster: o.cluster ?? 'demo', node: o.node, members: MEMBERS, epochStart: o.epochStart,
          bind: NETWORKS.map((network) => ({ network, address: h[network], port: ports[network] })),
        });
        opened.push(t);
        return { t, addr: { lan: `${h.lan}:${ports.lan}`, hb2: `${h.hb2}:${ports.hb2}` }, ports };
      },
      async raw() {
        const s = net.socket('lan', (MEMORY_HOSTS[3] as Record<Net, string>).lan, 4000);
        const q = rawQueue();
        s.onMessage((b) => q.push(b));
        return { address: s.address, send: (to, bytes) => s.send(to, bytes), next: q.next };
      },
      async close() {
        await Promise.all(opened.map((t) => t.close()));
      },
    };
  },
};

/** Waits (event loop turns, 3 s at most) until `cond` holds; fails naming `what`. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 3000;
  while (!cond()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function view(state: string, extra: Partial<HeartbeatView> = {}): HeartbeatView {
  return { state, ready: true, reason: null, generation: { current: 'g1', history: ['g0'] }, upToDate: true, stopping: false, ...extra };
}

/** Records what a transport's handlers get. */
function record(t: HeartbeatTransport): { network: string; from: string; d: DecodedHeartbeat }[] {
  const got: { network: string; from: string; d: DecodedHeartbeat }[] = [];
  t.onReceive((network, from, d) => got.push({ network, from, d }));
  return got;
}

/** The drop counts that are not zero. */
function drops(c: HeartbeatCounters): Partial<Record<DropReason, number>> {
  return Object.fromEntries(Object.entries(c.dropped).filter(([, n]) => n > 0));
}

/** Waits until `t` has received `n` datagrams in total (accepted or dropped). */
function received(t: HeartbeatTransport, n: number): Promise<void> {
  return until(() => t.counters().received >= n, `${n} datagrams received`);
}

for (const [name, make] of Object.entries(harnesses)) {
  describe(`Heartbeat transport contract: ${name}${name === 'udp' && netns ? ' (network namespace)' : ''}`, () => {
    const open: Harness[] = [];
    const h = (): Harness => { const x = make(); open.push(x); return x; };
    after(async () => { for (const x of open) await x.close(); });

    test('a heartbeat arrives with its sender, network, module, view and seq; counters add up per network', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM', { msg: { cmd: 'swap' } }) });
      a.t.send('hb2', b.addr.hb2, { module: 'web', view: view('PRIM') });
      await until(() => got.length === 2, 'two heartbeats');
      const byNet = Object.fromEntries(got.map((g) => [g.network, g]));
      assert.equal(byNet.lan?.from, a.addr.lan);
      assert.equal(byNet.hb2?.from, a.addr.hb2);
      assert.equal(byNet.lan?.d.node, 'n1');
      assert.equal(byNet.lan?.d.module, 'web');
      assert.equal(byNet.lan?.d.network, 'lan');
      assert.deepEqual(byNet.lan?.d.view, view('PRIM', { msg: { cmd: 'swap' } }));
      assert.deepEqual(got.map((g) => g.d.seq).sort(), [1n, 2n]);
      const ca = a.t.counters();
      assert.equal(ca.sent, 2);
      assert.equal(ca.networks.lan?.sent, 1);
      assert.equal(ca.networks.hb2?.sent, 1);
      const cb = b.t.counters();
      assert.equal(cb.received, 2);
      assert.equal(cb.accepted, 2);
      assert.equal(cb.networks.hb2?.accepted, 1);
      assert.deepEqual(drops(cb), {});
      assert.deepEqual(Object.keys(cb.dropped).sort(), [...DROP_REASONS].sort(), 'every reason is present, zero or not');
    });

    test('the views of several modules go in one datagram; each is checked and delivered on its own', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', b.addr.lan, [{ module: 'web', view: view('PRIM') }, { module: 'db', view: view('SECOND') }, { module: 'web2', view: view('ALONE') }]);
      await received(b.t, 3);
      // db is not configured on b: only that view is dropped; web and web2 arrive in order, same seq.
      assert.deepEqual(got.map((g) => [g.d.module, g.d.view.state, g.d.seq]), [['web', 'PRIM', 1n], ['web2', 'ALONE', 1n]]);
      const ca = a.t.counters();
      assert.equal(ca.sent, 3);
      assert.equal(ca.datagramsSent, 1);
      const cb = b.t.counters();
      assert.equal(cb.datagramsReceived, 1);
      assert.equal(cb.received, 3);
      assert.equal(cb.accepted, 2);
      assert.deepEqual(drops(cb), { 'unknown-module': 1 });
      assert.throws(() => a.t.send('lan', b.addr.lan, [{ module: 'web', view: view('PRIM') }, { module: 'web2', view: view('PRIM', { msg: 'x'.repeat(2000) }) }]), /more than 1400/);
      assert.equal(a.t.counters().sent, 3, 'a refused bundle sends nothing, not even its first view');
    });

    test('a heartbeat under another key is dropped as bad-mac and counted; the handler is not called', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1, key: randomBytes(32) });
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      await received(b.t, 1);
      assert.deepEqual(drops(b.t.counters()), { 'bad-mac': 1 });
      assert.equal(b.t.counters().networks.lan?.dropped['bad-mac'], 1);
      assert.equal(b.t.counters().accepted, 0);
      assert.equal(got.length, 0);
    });

    test('a heartbeat of another cluster (same key, other name) is dropped as wrong-cluster', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1, cluster: 'other' });
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      await received(b.t, 1);
      assert.deepEqual(drops(b.t.counters()), { 'wrong-cluster': 1 });
      assert.equal(got.length, 0);
    });

    test('a captured datagram replayed, or an older seq after a newer one, is dropped as replay', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const tap = await H.raw();
      const got = record(b.t);
      a.t.send('lan', tap.address, { module: 'web', view: view('PRIM') }); // seq 1, captured
      const seq1 = await tap.next();
      a.t.send('lan', tap.address, { module: 'web', view: view('PRIM') }); // seq 2, captured
      const seq2 = await tap.next();
      tap.send(b.addr.lan, seq2);
      await until(() => got.length === 1, 'the forwarded datagram accepted');
      tap.send(b.addr.lan, seq2);
      tap.send(b.addr.lan, seq1);
      await received(b.t, 3);
      assert.equal(got.length, 1);
      assert.equal(got[0]?.d.seq, 2n);
      assert.deepEqual(drops(b.t.counters()), { replay: 2 });
    });

    test('a module not configured here, or a node not in the module, is dropped and counted', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const stranger = await H.open({ node: 'n3', host: 1, ports: { lan: 7406, hb2: 7406 } }); // same key, not a member
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', b.addr.lan, { module: 'db', view: view('PRIM') });
      stranger.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      await received(b.t, 2);
      assert.deepEqual(drops(b.t.counters()), { 'unknown-module': 1, 'unknown-node': 1 });
      assert.equal(got.length, 0);
    });

    test('garbage, a header cut short, an empty and an oversized datagram are dropped; a cut tail fails the MAC', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const tap = await H.raw();
      const got = record(b.t);
      a.t.send('lan', tap.address, { module: 'web', view: view('PRIM') });
      const good = await tap.next();
      tap.send(b.addr.lan, Buffer.from('not a heartbeat at all, just some bytes that are long enough to pass the length check'));
      tap.send(b.addr.lan, good.subarray(0, 30));
      tap.send(b.addr.lan, Buffer.alloc(0));
      tap.send(b.addr.lan, Buffer.concat([good, Buffer.alloc(MAX_DATAGRAM)]));
      tap.send(b.addr.lan, good.subarray(0, good.length - 1));
      await received(b.t, 5);
      assert.deepEqual(drops(b.t.counters()), { malformed: 3, 'too-large': 1, 'bad-mac': 1 });
      assert.equal(got.length, 0);
      tap.send(b.addr.lan, good);
      await until(() => got.length === 1, 'the intact datagram accepted after the bad ones');
    });

    test('a datagram that arrives on another network than the one it was sent for is dropped as wrong-network', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const tap = await H.raw();
      const got = record(b.t);
      a.t.send('lan', b.addr.hb2, { module: 'web', view: view('PRIM') }); // sent for lan, lands on hb2
      await received(b.t, 1);
      a.t.send('lan', tap.address, { module: 'web', view: view('PRIM') });
      tap.send(b.addr.hb2, await tap.next()); // a captured lan datagram replayed onto hb2
      await received(b.t, 2);
      assert.deepEqual(drops(b.t.counters()), { 'wrong-network': 2 });
      assert.equal(b.t.counters().networks.hb2?.dropped['wrong-network'], 2);
      assert.equal(got.length, 0);
    });

    test('a restarted sender (new epoch, later start) is accepted; its old epochs replayed afterwards are refused', async () => {
      const H = h();
      const b = await H.open({ node: 'n2', host: 2 });
      const tap = await H.raw();
      const got = record(b.t);
      // A boot b never heard of, before the others.
      const a0 = await H.open({ node: 'n1', host: 1, epochStart: 1_000_000 });
      a0.t.send('lan', tap.address, { module: 'web', view: view('BOOT0') });
      const fromA0 = await tap.next();
      await a0.t.close();
      // The boot b knows; a datagram with seq 2 that b never saw is captured.
      const a1 = await H.open({ node: 'n1', host: 1, epochStart: 2_000_000, ports: a0.ports });
      a1.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      a1.t.send('lan', tap.address, { module: 'web', view: view('PRIM') });
      const fromA1 = await tap.next();
      await until(() => got.length === 1, 'the first boot heard');
      await a1.t.close();
      // The restart, on the same ports: accepted at once, seq starts again at 1.
      const a2 = await H.open({ node: 'n1', host: 1, epochStart: 3_000_000, ports: a1.ports });
      a2.t.send('lan', b.addr.lan, { module: 'web', view: view('SECOND') });
      await until(() => got.length === 2, 'the restarted sender heard');
      assert.equal(got[1]?.d.view.state, 'SECOND');
      assert.equal(got[1]?.d.seq, 1n);
      assert.notEqual(got[1]?.d.epoch, got[0]?.d.epoch);
      tap.send(b.addr.lan, fromA1); // the replaced boot, seq never seen
      tap.send(b.addr.lan, fromA0); // an older boot, while the current one is alive
      await received(b.t, 4);
      assert.deepEqual(drops(b.t.counters()), { replay: 2 });
      assert.equal(got.length, 2);
      a2.t.send('lan', b.addr.lan, { module: 'web', view: view('SECOND') });
      await until(() => got.length === 3, 'the current boot still heard after the replays');
    });

    test('sending to an unreachable address never throws, and the transport keeps working', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      const b = await H.open({ node: 'n2', host: 2 });
      const got = record(b.t);
      a.t.send('lan', H.unreachable, { module: 'web', view: view('PRIM') });
      a.t.send('lan', '[2001:2::9]:7405', { module: 'web', view: view('PRIM') }); // an IPv6 peer from an IPv4 socket
      await until(() => a.t.counters().sendErrors >= (H.unreachableRefused ? 2 : 1), 'the refused sends counted');
      a.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      await until(() => got.length === 1, 'a heartbeat after the failed sends');
      const c = a.t.counters();
      assert.equal(c.sent, 3);
      assert.equal(c.sendErrors, H.unreachableRefused ? 2 : 1);
      assert.equal(c.networks.lan?.sendErrors, c.sendErrors);
    });

    test('programming errors throw: a network not bound, an address that is not an IP', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      assert.throws(() => a.t.send('nope', '198.18.0.2', { module: 'web', view: view('PRIM') }), /not bound to network nope/);
      assert.throws(() => a.t.send('lan', 'peer.example:7405', { module: 'web', view: view('PRIM') }), RangeError);
      assert.throws(() => a.t.send('lan', '198.18.0.2:70000', { module: 'web', view: view('PRIM') }), RangeError);
      assert.throws(() => a.t.send('lan', '198.18.0.2', { module: 'web', view: view('PRIM', { msg: 'x'.repeat(MAX_DATAGRAM) }) }), RangeError);
      assert.equal(a.t.counters().sent, 0);
    });

    test('a port in use is refused; close() releases the ports, after it sends are ignored and nothing is received', async () => {
      const H = h();
      const a = await H.open({ node: 'n1', host: 1 });
      await assert.rejects(H.open({ node: 'n1', host: 1, ports: a.ports }), /in use|EADDRINUSE/);
      const b = await H.open({ node: 'n2', host: 2 });
      const gotA = record(a.t);
      await a.t.close();
      await a.t.close(); // twice is harmless
      a.t.send('lan', b.addr.lan, { module: 'web', view: view('PRIM') });
      assert.equal(a.t.counters().sent, 0);
      const again = await H.open({ node: 'n1', host: 1, ports: a.ports });
      const gotAgain = record(again.t);
      b.t.send('lan', again.addr.lan, { module: 'web', view: view('SECOND') });
      await until(() => gotAgain.length === 1, 'a heartbeat on the re-bound port');
      assert.equal(gotA.length, 0);
    });
  });
}
