// Contract of the witness seam (STYLE.md 3, 4; DESIGN.md 3 promises 1 "One writer" and 6
// "Authenticated", 5 "Split brain"): the same checks against the real UDP client talking to a
// real witness server on 127.0.0.1, and against the in-memory twin on a fake clock, so the fake
// that the simulator and the mirror tests use cannot drift from the real one.
//
// Time: the fake moves its clock; the real one lets real time pass. Waiting out a lease is the
// behaviour under test here, not a race being hidden: every wait is at least a whole lease or
// timeout, and the assertions never depend on how fast the machine is.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { FakeClock, realClock } from '../../src/adapters/clock/index.js';
import {
  MemoryWitness, UdpWitnessClient, WitnessServer, WitnessService, type AcquireAnswer, type WitnessClient, type WitnessServiceCounters,
} from '../../src/adapters/witness/index.js';

const KEY = parseKey(generateKey());
// Long enough that a loaded machine (2 cores, a parallel test run) never stalls through a lease
// between two requests of one test.
const LEASE_MS = 1000;
const TIMEOUT_MS = 200;

interface Harness {
  client(node: string, opts?: { key?: Buffer; cluster?: string }): Promise<WitnessClient>;
  /** Lets `ms` pass for the witness and every client. */
  pass(ms: number): Promise<void>;
  /** The witness stops answering (process gone). */
  down(): Promise<void>;
  /** The witness comes back as a new life (leases forgotten). */
  restart(): Promise<void>;
  counters(): WitnessServiceCounters;
  /** The client clock's now (ms), for untilMs checks. */
  now(): number;
  close(): Promise<void>;
}

async function memoryHarness(): Promise<Harness> {
  const clock = new FakeClock({ start: 1000 });
  const w = new MemoryWitness({ key: KEY, cluster: 'demo', leaseMs: LEASE_MS, clock });
  const clients: WitnessClient[] = [];
  return {
    async client(node, opts = {}) {
      const c = w.client(node, { timeoutMs: TIMEOUT_MS, attempts: 2, ...opts });
      clients.push(c);
      return c;
    },
    pass: (ms) => clock.advanceAsync(ms),
    async down() { w.down(); },
    async restart() { w.up(); w.restart(); },
    counters: () => w.service.counters(),
    now: () => clock.now(),
    async close() { for (const c of clients) await c.close(); },
  };
}

async function udpHarness(): Promise<Harness> {
  const newService = () => new WitnessService({ key: KEY, cluster: 'demo', leaseMs: LEASE_MS, now: () => realClock.now() });
  let server: WitnessServer | undefined = await WitnessServer.listen(newService(), '127.0.0.1', 0);
  const address = server.address();
  const port = Number(address.split(':')[1]);
  let last = server.service;
  const clients: WitnessClient[] = [];
  return {
    async client(node, opts = {}) {
      const c = await UdpWitnessClient.open({ key: KEY, cluster: 'demo', node, witness: address, timeoutMs: TIMEOUT_MS, attempts: 2, ...opts });
      clients.push(c);
      return c;
    },
    pass: (ms) => delay(ms),
    async down() { await server?.close(); server = undefined; },
    async restart() {
      await server?.close();
      server = await WitnessServer.listen(newService(), '127.0.0.1', port);
      last = server.service;
    },
    counters: () => last.counters(),
    now: () => realClock.now(),
    async close() {
      for (const c of clients) await c.close();
      await server?.close();
    },
  };
}

/** Runs a request while time passes, for answers that only come by timeout. */
async function whilePassing<T>(h: Harness, p: Promise<T>, ms: number): Promise<T> {
  await h.pass(ms);
  return p;
}

function assertGranted(a: AcquireAnswer, h: Harness, what: string): void {
  assert.ok('granted' in a && a.granted, `${what}: expected a grant, got ${JSON.stringify(a)}`);
  assert.equal(a.leaseMs, LEASE_MS);
  assert.equal(a.untilMs, a.sentAtMs + LEASE_MS, 'untilMs counts from the send time of the granted request');
  assert.ok(a.untilMs <= h.now() + LEASE_MS, 'untilMs is never later than a lease from now');
}

function assertRefused(a: AcquireAnswer, holder: string | null, what: string): number {
  assert.ok('granted' in a && !a.granted, `${what}: expected a refusal, got ${JSON.stringify(a)}`);
  assert.equal(a.holder, holder, what);
  assert.ok(a.remainingMs > 0 && a.remainingMs <= LEASE_MS, `${what}: remaining ${a.remainingMs} ms`);
  return a.remainingMs;
}

for (const [name, make] of [['memory', memoryHarness], ['udp 127.0.0.1', udpHarness]] as const) {
  describe(`witness contract: ${name}`, () => {
    /** A fresh witness whose quiet period is over. */
    async function ready(): Promise<Harness> {
      const h = await make();
      await h.pass(LEASE_MS);
      return h;
    }

    test('a witness that just started grants nothing for one lease length', async () => {
      const h = await make();
      try {
        const n1 = await h.client('n1');
        assertRefused(await n1.acquire('web'), null, 'at start');
        await h.pass(LEASE_MS);
        assertGranted(await n1.acquire('web'), h, 'after the quiet period');
      } finally {
        await h.close();
      }
    });

    test('one holder at a time: the other is refused with the holder and its remaining time; the holder renews', async () => {
      const h = await ready();
      try {
        const [n1, n2] = [await h.client('n1'), await h.client('n2')];
        assertGranted(await n1.acquire('web'), h, 'n1 first');
        assertRefused(await n2.acquire('web'), 'n1', 'n2 while n1 holds');
        assertGranted(await n1.acquire('web'), h, 'n1 renews');
        assertGranted(await n2.acquire('db'), h, 'another module is independent');
        assertRefused(await n1.acquire('db'), 'n2', 'n1 on db');
      } finally {
        await h.close();
      }
    });

    test('a holder that stops renewing loses the lease only after it expires', async () => {
      const h = await ready();
      try {
        const [n1, n2] = [await h.client('n1'), await h.client('n2')];
        const g = await n1.acquire('web');
        assertGranted(g, h, 'n1');
        await h.pass(LEASE_MS / 4);
        assertRefused(await n2.acquire('web'), 'n1', 'n2 before expiry');
        await h.pass(LEASE_MS);
        assert.ok(h.now() > ('untilMs' in g ? g.untilMs : 0));
        assertGranted(await n2.acquire('web'), h, 'n2 after expiry');
        assertRefused(await n1.acquire('web'), 'n2', 'n1 after losing it');
      } finally {
        await h.close();
      }
    });

    test('release frees the lease at once; only the holder can release it', async () => {
      const h = await ready();
      try {
        const [n1, n2] = [await h.client('n1'), await h.client('n2')];
        assertGranted(await n1.acquire('web'), h, 'n1');
        const notHolder = await n2.release('web');
        assert.ok('released' in notHolder && !notHolder.released && notHolder.holder === 'n1', JSON.stringify(notHolder));
        assert.deepEqual(await n1.release('web'), { released: true });
        assertGranted(await n2.acquire('web'), h, 'n2 right after the release');
      } finally {
        await h.close();
      }
    });

    test('a client with another key or cluster gets no answer, and takes nothing', async () => {
      const h = await ready();
      try {
        const intruder = await h.client('n2', { key: parseKey(generateKey()) });
        const other = await h.client('n2', { cluster: 'other' });
        const r1 = whilePassing(h, intruder.acquire('web'), TIMEOUT_MS + 50);
        const r2 = other.acquire('web');
        assert.deepEqual(await r1, { error: 'timeout' });
        assert.deepEqual(await r2, { error: 'timeout' });
        const c = h.counters();
        assert.ok(c.dropped['bad-mac'] >= 1 && c.dropped['wrong-cluster'] >= 1, JSON.stringify(c.dropped));
        assert.equal(c.answered, 0);
        const n1 = await h.client('n1');
        assertGranted(await n1.acquire('web'), h, 'n1 after the intruders');
      } finally {
        await h.close();
      }
    });

    test('witness down: an error within the timeout; restarted: no grant, not even a renewal, for one lease length', async () => {
      const h = await ready();
      try {
        const [n1, n2] = [await h.client('n1'), await h.client('n2')];
        assertGranted(await n1.acquire('web'), h, 'n1');
        await h.down();
        assert.deepEqual(await whilePassing(h, n1.acquire('web'), TIMEOUT_MS + 50), { error: 'timeout' });
        await h.restart();
        assertRefused(await n1.acquire('web'), null, 'n1 renewing right after the restart');
        assertRefused(await n2.acquire('web'), null, 'n2 right after the restart');
        await h.pass(LEASE_MS);
        assertGranted(await n2.acquire('web'), h, 'n2 after the quiet period');
        const c = n1.counters();
        assert.deepEqual(c, { sent: 4, accepted: 2, dropped: 0 }, 'one datagram per answered request, 2 attempts for the unanswered one');
      } finally {
        await h.close();
      }
    });

    test('close ends pending requests with "closed"', async () => {
      const h = await ready();
      try {
        const n1 = await h.client('n1');
        await h.down();
        const p = n1.acquire('web');
        await n1.close();
        assert.deepEqual(await p, { error: 'closed' });
        assert.deepEqual(await n1.acquire('web'), { error: 'closed' });
      } finally {
        await h.close();
      }
    });
  });
}
