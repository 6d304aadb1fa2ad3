// Contract of the replication link seam (STYLE.md 3, 4; DESIGN.md 3 promises 2 "no acknowledged
// write is lost", 6 "authenticated", 5 "Peer slow or gone"): the same checks against the real
// TCP pair and the in-memory twin, so the fake the simulator uses cannot drift from sockets.
//
// The real pair runs on 127.0.0.1 (random ports) with a test proxy in the middle that can hold
// (pause), tamper with and capture the bytes. test/integration/tcp.netns.test.ts runs this file
// again inside a network namespace with HAKIT_TEST_TCP_HOST=198.18.0.1.
// No wall-clock assertions: timeouts are asserted by outcome, not by duration.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import {
  MAX_PAYLOAD, MemoryReplicationNetwork, connectSender, isPeerGone, listenReceiver, type Direction, type ReplicationReceiver, type ReplicationSender,
} from '../../src/adapters/tcp/index.js';

const HOST = process.env.HAKIT_TEST_TCP_HOST ?? '127.0.0.1';
const KEY = parseKey(generateKey());
const OTHER_KEY = parseKey(generateKey());
const BASE = { cluster: 'demo', module: 'web' } as const;

interface ListenOpts { key?: Buffer; port?: number; node?: string }
interface ConnectOpts { key?: Buffer; timeoutMs?: number; maxInFlightBytes?: number }

/** A raw byte stream to a receiver: what an attacker (or a replayer) has. */
interface Raw {
  write(b: Buffer): void;
  /** Resolves when the receiver closed the stream. */
  closed: Promise<void>;
  destroy(): void;
}

interface Harness {
  listen(o?: ListenOpts): Promise<ReplicationReceiver>;
  /** A sender from n1 to the receiver at `port`, through the faults of this harness. */
  connect(port: number, o?: ConnectOpts): ReplicationSender;
  raw(port: number): Promise<Raw>;
  pause(): void;
  resume(): void;
  /** Sees (and may replace) every chunk between sender and receiver; null removes it. */
  transit(fn: ((dir: Direction, chunk: Buffer) => Buffer) | null): void;
  close(): Promise<void>;
}

/** A TCP proxy: forwards to `target`, and can hold or rewrite bytes in both directions. */
class Proxy {
  paused = false;
  transit: ((dir: Direction, chunk: Buffer) => Buffer) | null = null;
  private readonly server: net.Server;
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      const up = net.connect({ host: HOST, port: this.target });
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => { this.sockets.delete(s); client.destroy(); up.destroy(); });
      }
      const pipe = (from: net.Socket, to: net.Socket, dir: Direction): void => {
        from.on('data', (b: Buffer) => {
          const go = (): void => { if (!to.destroyed) to.write(this.transit ? this.transit(dir, b) : b); };
          if (this.paused || this.held.length > 0) this.held.push(go);
          else go();
        });
      };
      pipe(client, up, 'to-listener');
      pipe(up, client, 'to-dialer');
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen({ host: HOST, port: 0 }, r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  resume(): void {
    this.paused = false;
    for (const go of this.held.splice(0)) go();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const harnesses: Record<string, () => Harness> = {
  tcp: () => {
    const receivers: ReplicationReceiver[] = [];
    const senders: ReplicationSender[] = [];
    const proxies: Proxy[] = [];
    const raws: net.Socket[] = [];
    let transit: ((dir: Direction, chunk: Buffer) => Buffer) | null = null;
    const proxyFor = new Map<number, Proxy>();
    return {
      async listen(o = {}) {
        const r = await listenReceiver({ ...BASE, address: HOST, port: o.port ?? 0, key: o.key ?? KEY, node: o.node ?? 'n2', peers: ['n1'] });
        receivers.push(r);
        if (!proxyFor.has(r.port)) {
          const p = new Proxy(r.port);
          p.transit = transit;
          await p.start();
          proxies.push(p);
          proxyFor.set(r.port, p);
        }
        return r;
      },
      connect(port, o = {}) {
        const p = proxyFor.get(port) as Proxy;
        const s = connectSender({
          ...BASE, host: HOST, port: p.port, key: o.key ?? KEY, node: 'n1', peer: 'n2', timeoutMs: o.timeoutMs ?? 2000,
          maxInFlightBytes: o.maxInFlightBytes, backoffMinMs: 20, backoffMaxMs: 200,
        });
        senders.push(s);
        return s;
      },
      async raw(port) {
        const s = net.connect({ host: HOST, port });
        raws.push(s);
        s.on('error', () => {});
        s.resume(); // read and discard what the receiver answers, so its close is seen
        await new Promise<void>((r) => s.once('connect', () => r()));
        return { write: (b) => { s.write(b); }, closed: new Promise<void>((r) => s.once('close', () => r())), destroy: () => s.destroy() };
      },
      pause() { for (const p of proxies) p.paused = true; },
      resume() { for (const p of proxies) p.resume(); },
      transit(fn) { transit = fn; for (const p of proxies) p.transit = fn; },
      async close() {
        for (const p of proxies) p.resume();
        await Promise.all(senders.map((s) => s.close()));
        await Promise.all(receivers.map((r) => r.close()));
        for (const s of raws) s.destroy();
        await Promise.all(proxies.map((p) => p.close()));
      },
    };
  },
  memory: () => {
    const network = new MemoryReplicationNetwork();
    const receivers: ReplicationReceiver[] = [];
    const senders: ReplicationSender[] = [];
    return {
      async listen(o = {}) {
        const r = network.listenReceiver({ ...BASE, address: 'mem', port: o.port ?? 0, key: o.key ?? KEY, node: o.node ?? 'n2', peers: ['n1'] });
        receivers.push(r);
        return r;
      },
      connect(port, o = {}) {
        const s = network.connectSender({
          ...BASE, host: 'mem', port, key: o.key ?? KEY, node: 'n1', peer: 'n2', timeoutMs: o.timeoutMs ?? 2000,
          maxInFlightBytes: o.maxInFlightBytes, backoffMinMs: 20, backoffMaxMs: 200,
        });
        senders.push(s);
        return s;
      },
      async raw(port) {
        const c = await network.connect('mem', port);
        return { write: (b) => c.write([b]), closed: new Promise<void>((r) => c.onClose(() => r())), destroy: () => c.destroy() };
      },
      pause: () => network.faults.pause(),
      resume: () => network.faults.resume(),
      transit(fn) { network.faults.transit = fn; },
      async close() {
        network.faults.resume();
        await Promise.all(senders.map((s) => s.close()));
        await Promise.all(receivers.map((r) => r.close()));
      },
    };
  },
};

/** Resolves at the next transition of `link` to `want` (or at once if it is there already). */
function reach(link: { state: string; onState(fn: (s: 'up' | 'down', why: string) => void): () => void }, want: 'up' | 'down'): Promise<string> {
  if (link.state === want) return Promise.resolve('already');
  return new Promise((resolve) => {
    const off = link.onState((s, why) => { if (s === want) { off(); resolve(why); } });
  });
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function payload(i: number, size: number): Buffer {
  const b = size >= 4 ? randomBytes(size) : Buffer.alloc(4);
  b.writeUInt32BE(i, 0);
  return b;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

for (const [name, make] of Object.entries(harnesses)) {
  describe(`Replication link contract: ${name}${name === 'tcp' ? ` (${HOST})` : ''}`, () => {
    const opened: Harness[] = [];
    const harness = (): Harness => { const h = make(); opened.push(h); return h; };
    after(async () => { await Promise.all(opened.map((h) => h.close())); });

    test('10k payloads of mixed sizes, many in flight, arrive complete and in order (promise 2)', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port);
      const got: { i: number; seq: bigint; hash: string }[] = [];
      let maxPending = 0;
      r.onPayload(async (p, seq) => {
        got.push({ i: p.readUInt32BE(0), seq, hash: sha(p) });
        maxPending = Math.max(maxPending, s.stats().inFlight);
      });
      const N = 10_000;
      const sizes = Array.from({ length: N }, (_, i) => (i % 997 === 0 ? MAX_PAYLOAD : i % 10 === 0 ? 65_536 : 4 + (i * 7919) % 4096));
      const sent = sizes.map((size, i) => payload(i, size));
      const hashes = sent.map(sha);
      await Promise.all(sent.map((p) => s.send(p)));
      assert.equal(got.length, N);
      for (let i = 0; i < N; i++) {
        const g = got[i] as (typeof got)[number];
        assert.equal(g.i, i, `payload ${i} arrived at position ${got.findIndex((x) => x.i === i)}`);
        assert.equal(g.seq, BigInt(i + 1));
        assert.equal(g.hash, hashes[i], `payload ${i} was changed on the way`);
      }
      const st = s.stats();
      assert.equal(st.acked, N);
      assert.equal(st.framesSent, N);
      assert.equal(st.inFlight, 0);
      assert.equal(st.authFailures, 0);
      assert.ok(maxPending > 100, `sends were not pipelined: at most ${maxPending} pending at once`);
      assert.equal(r.stats().applied, N);
    });

    test('send resolves only after the receiver handler resolved, in order', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port);
      const gates: (() => void)[] = [];
      let called = 0;
      r.onPayload(() => { called++; return new Promise<void>((res) => gates.push(res)); });
      const done: number[] = [];
      const sends = [0, 1, 2].map((i) => s.send(payload(i, 100)).then(() => { done.push(i); }));
      while (called < 1) await turn();
      for (let k = 0; k < 20; k++) await turn();
      assert.deepEqual(done, [], 'a send resolved before its payload was applied');
      assert.equal(called, 1, 'the handler was called again before the previous call resolved');
      (gates.shift() as () => void)();
      await sends[0];
      assert.deepEqual(done, [0]);
      while (called < 2) await turn();
      for (let k = 0; k < 20; k++) await turn();
      assert.deepEqual(done, [0], 'payload 1 was acked before it was applied');
      (gates.shift() as () => void)();
      while (called < 3) await turn();
      (gates.shift() as () => void)();
      await Promise.all(sends);
      assert.deepEqual(done, [0, 1, 2]);
    });

    test('a slow receiver makes send wait (bounded in-flight bytes), order kept', async () => {
      const h = harness();
      const r = await h.listen();
      const MAX = 256 * 1024;
      const s = h.connect(r.port, { maxInFlightBytes: MAX });
      const got: number[] = [];
      let maxUnacked = 0;
      let sawQueued = false;
      r.onPayload(async (p) => {
        const st = s.stats();
        maxUnacked = Math.max(maxUnacked, st.inFlightBytes);
        if (st.inFlight * 64 * 1024 > MAX) sawQueued = true;
        for (let k = 0; k < 3; k++) await turn();
        got.push(p.readUInt32BE(0));
      });
      await Promise.all(Array.from({ length: 60 }, (_, i) => s.send(payload(i, 64 * 1024))));
      assert.deepEqual(got, Array.from({ length: 60 }, (_, i) => i));
      assert.ok(maxUnacked <= MAX, `${maxUnacked} bytes were unacknowledged, bound ${MAX}`);
      assert.ok(sawQueued, 'no send ever waited for the in-flight bound');
    });

    test('a silent peer: after timeoutMs every pending send rejects PEER_GONE and the link goes down', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port, { timeoutMs: 300 });
      let applied = 0;
      r.onPayload(async () => { applied++; });
      await s.send(payload(0, 10));
      const downs: string[] = [];
      s.onState((st, why) => { if (st === 'down') downs.push(why); });
      h.pause();
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => s.send(payload(i + 1, 1000))));
      for (const x of results) {
        assert.equal(x.status, 'rejected');
        assert.ok(isPeerGone((x as PromiseRejectedResult).reason), String((x as PromiseRejectedResult).reason));
      }
      assert.equal(s.state, 'down');
      assert.equal(downs.length, 1);
      assert.match(downs[0] as string, /no acknowledgement/);
      await assert.rejects(s.send(payload(99, 10)), (e) => isPeerGone(e), 'a send while down must reject at once');
      h.resume();
      assert.equal(applied >= 1, true);
    });

    test('a wrong key: the connection is refused and counted, no payload is delivered (promise 6)', async () => {
      const h = harness();
      const r = await h.listen({ key: OTHER_KEY });
      let applied = 0;
      r.onPayload(async () => { applied++; });
      const s = h.connect(r.port);
      const sent = s.send(payload(0, 100));
      await assert.rejects(sent, (e) => isPeerGone(e));
      await reach(s, 'down');
      assert.ok(s.stats().failures['bad-proof'] >= 1, JSON.stringify(s.stats()));
      assert.ok(s.stats().authFailures >= 1);
      assert.equal(applied, 0);
      assert.equal(r.stats().sessions, 0);
      // A client without the key that answers the challenge anyway is refused and counted by the receiver.
      const raw = await h.raw(r.port);
      const { encodeHello } = await import('../../src/adapters/tcp/frame.js');
      const { linkKeys, VERSION } = await import('../../src/adapters/tcp/frame.js');
      raw.write(encodeHello({ clusterId: linkKeys(KEY, 'demo').clusterId, nonce: randomBytes(32), module: 'web', from: 'n1', to: 'n2' }));
      raw.write(Buffer.concat([Buffer.from('HKRP'), Buffer.from([VERSION, 0x12]), randomBytes(32)]));
      await raw.closed;
      assert.equal(r.stats().failures['bad-proof'], 1);
      assert.equal(applied, 0);
    });

    test('a tampered frame closes the connection and is counted; the tampered payload is never applied', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port);
      const got: string[] = [];
      r.onPayload(async (p) => { got.push(sha(p)); });
      const good = payload(0, 4096);
      await s.send(good);
      h.transit((dir, chunk) => {
        if (dir !== 'to-listener' || chunk.length < 1000) return chunk;
        const c = Buffer.from(chunk);
        c[c.length - 100] = (c[c.length - 100] as number) ^ 0x01;
        return c;
      });
      await assert.rejects(s.send(payload(1, 4096)), (e) => isPeerGone(e));
      h.transit(null);
      assert.equal(r.stats().failures['bad-mac'], 1, JSON.stringify(r.stats()));
      assert.equal(r.stats().authFailures, 1);
      assert.deepEqual(got, [sha(good)]);
    });

    test('replies: the receiver answers the sender in order, after the ack of what it applied; none without a connection', async () => {
      const h = harness();
      const r = await h.listen();
      assert.equal(r.reply(Buffer.from('nobody')), false, 'a reply with no sender connected was said to be sent');
      const s = h.connect(r.port);
      const replies: string[] = [];
      const ackedWhenReplied: number[] = [];
      s.onReply((m) => { replies.push(m.toString('utf8')); ackedWhenReplied.push(s.stats().acked); });
      // Each applied payload is answered from inside the handler: the ack of it must come first.
      r.onPayload(async (p) => {
        const i = p.readUInt32BE(0);
        assert.equal(r.reply(Buffer.from(`got ${i}`)), true);
      });
      await Promise.all([0, 1, 2, 3, 4].map((i) => s.send(payload(i, 64))));
      while (replies.length < 5) await turn();
      assert.deepEqual(replies, ['got 0', 'got 1', 'got 2', 'got 3', 'got 4']);
      // reply() inside the handler runs before that payload's own ack: at least the earlier ones are acked.
      ackedWhenReplied.forEach((a, i) => assert.ok(a >= i, `reply ${i} arrived before the ack of payload ${i - 1} (acked ${a})`));
      assert.equal(s.stats().repliesReceived, 5);
      assert.equal(r.stats().repliesSent, 5);
      // A big reply, the largest allowed, arrives whole; a larger one is refused.
      const big = randomBytes(MAX_PAYLOAD);
      const gotBig = new Promise<Buffer>((res) => { const off = s.onReply((m) => { if (m.length === MAX_PAYLOAD) { off(); res(m); } }); });
      assert.equal(r.reply(big), true);
      assert.equal(sha(await gotBig), sha(big));
      assert.throws(() => r.reply(Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
    });

    test('a tampered reply closes the link on the sender and is counted; it is never delivered', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port);
      r.onPayload(async () => {});
      await s.send(payload(0, 16));
      const replies: Buffer[] = [];
      s.onReply((m) => replies.push(m));
      h.transit((dir, chunk) => {
        if (dir !== 'to-dialer' || chunk.length < 1000) return chunk;
        const c = Buffer.from(chunk);
        c[c.length - 100] = (c[c.length - 100] as number) ^ 0x01;
        return c;
      });
      const down = reach(s, 'down');
      assert.equal(r.reply(randomBytes(4096)), true);
      await down;
      h.transit(null);
      assert.equal(s.stats().failures['bad-mac'], 1, JSON.stringify(s.stats()));
      assert.equal(replies.length, 0);
    });

    test('a captured session replayed to a fresh receiver is refused (promise 6)', async () => {
      const h = harness();
      const r1 = await h.listen();
      const captured: Buffer[] = [];
      h.transit((dir, chunk) => { if (dir === 'to-listener') captured.push(Buffer.from(chunk)); return chunk; });
      const s = h.connect(r1.port);
      r1.onPayload(async () => {});
      for (let i = 0; i < 5; i++) await s.send(payload(i, 500));
      h.transit(null);
      assert.ok(captured.length > 0);
      const r2 = await h.listen();
      let applied = 0;
      r2.onPayload(async () => { applied++; });
      const raw = await h.raw(r2.port);
      raw.write(Buffer.concat(captured));
      await raw.closed;
      assert.equal(applied, 0);
      assert.equal(r2.stats().sessions, 0);
      assert.equal(r2.stats().failures['bad-proof'], 1, JSON.stringify(r2.stats()));
    });

    test('the sender reconnects after the receiver restarts; the new session starts at seq 1', async () => {
      const h = harness();
      const r1 = await h.listen();
      const port = r1.port;
      const s = h.connect(port);
      r1.onPayload(async () => {});
      await s.send(payload(0, 100));
      const down = reach(s, 'down');
      await r1.close();
      assert.match(await down, /closed/);
      await assert.rejects(s.send(payload(1, 10)), (e) => isPeerGone(e));
      const r2 = await h.listen({ port });
      const seqs: bigint[] = [];
      r2.onPayload(async (_p, seq) => { seqs.push(seq); });
      await reach(s, 'up');
      await s.send(payload(2, 100));
      assert.deepEqual(seqs, [1n]);
      assert.ok(s.stats().reconnects >= 1);
    });

    test('a handler that rejects closes the link: pending sends reject PEER_GONE', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port);
      r.onPayload(async (p) => { if (p.readUInt32BE(0) === 3) throw new Error('disk full'); });
      const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => s.send(payload(i, 100))));
      assert.deepEqual(results.slice(0, 3).map((x) => x.status), ['fulfilled', 'fulfilled', 'fulfilled']);
      for (const x of results.slice(3)) assert.ok(x.status === 'rejected' && isPeerGone(x.reason));
      assert.match(((results[3] as PromiseRejectedResult).reason as Error).message, /disk full/);
      assert.equal(s.state, 'down');
    });

    test('an oversized payload is refused; an aborted queued send is withdrawn', async () => {
      const h = harness();
      const r = await h.listen();
      const s = h.connect(r.port, { maxInFlightBytes: 100 });
      const got: number[] = [];
      r.onPayload(async (p) => { got.push(p.readUInt32BE(0)); });
      await assert.rejects(s.send(Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
      await reach(s, 'up');
      const ac = new AbortController();
      h.pause();
      const a = s.send(payload(0, 10));
      const b = s.send(payload(1, MAX_PAYLOAD), { signal: ac.signal });
      ac.abort(new Error('caller gave up'));
      await assert.rejects(b, /caller gave up/);
      h.resume();
      await a;
      await s.send(payload(2, 10));
      // b waited behind a (in-flight bound 100 bytes), so the abort withdrew it before it was written.
      assert.deepEqual(got, [0, 2]);
      assert.equal(s.stats().framesSent, 2);
    });
  });
}
