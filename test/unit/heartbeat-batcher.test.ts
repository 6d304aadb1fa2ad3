// One datagram per peer and network per pulse, whatever the number of modules (issue 3's idle
// cost; DESIGN.md 5 "Heartbeats"): the pacer calls every module of a pulse in one timer callback,
// the batcher hands their heartbeats to the real transport together, and a receiver gets each
// module's view as before.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/adapters/clock/fake.js';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { MemoryHeartbeatNetwork } from '../../src/adapters/udp/memory-transport.js';
import type { HeartbeatView } from '../../src/adapters/udp/transport.js';
import { ClockPacer, HeartbeatBatcher } from '../../src/daemon/heartbeat-batcher.js';

const key = parseKey(generateKey());
const view = (state: string, msg?: unknown): HeartbeatView => ({
  state, ready: true, reason: null, generation: { current: 'g1', history: [] }, upToDate: true, stopping: false, ...(msg === undefined ? {} : { msg }),
});

function pair(): { net: MemoryHeartbeatNetwork; a: HeartbeatBatcher; got: string[]; flushes: (() => void)[]; b: ReturnType<MemoryHeartbeatNetwork['transport']>; errors: string[] } {
  const net = new MemoryHeartbeatNetwork();
  const members = { web: ['n1', 'n2'], db: ['n1', 'n2'] };
  const ta = net.transport({ key, cluster: 't', node: 'n1', members, bind: [{ network: 'lan', address: '198.18.0.1' }, { network: 'hb2', address: '198.19.0.1' }] });
  const b = net.transport({ key, cluster: 't', node: 'n2', members, bind: [{ network: 'lan', address: '198.18.0.2' }, { network: 'hb2', address: '198.19.0.2' }] });
  const flushes: (() => void)[] = [];
  const errors: string[] = [];
  const a = new HeartbeatBatcher(ta, { defer: (fn) => flushes.push(fn), onError: (network, module, e) => errors.push(`${network} ${module}: ${e.message}`) });
  const got: string[] = [];
  b.onReceive((network, _from, d) => got.push(`${network} ${d.module} ${d.view.state} ${d.seq}`));
  return { net, a, got, flushes, b, errors };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('heartbeat batcher', () => {
  test('the heartbeats of one turn leave as one datagram per network, in order; nothing leaves before the flush', async () => {
    const { a, b, got, flushes } = pair();
    a.send('lan', '198.18.0.2', { module: 'web', view: view('PRIM') });
    a.send('hb2', '198.19.0.2', { module: 'web', view: view('PRIM') });
    a.send('lan', '198.18.0.2', { module: 'db', view: view('SECOND') });
    a.send('hb2', '198.19.0.2', { module: 'db', view: view('SECOND') });
    assert.equal(flushes.length, 1, 'one flush scheduled for the turn');
    assert.equal(a.counters().sent, 0);
    flushes[0]!();
    await settle();
    assert.equal(a.counters().sent, 4);
    assert.equal(a.counters().datagramsSent, 2, 'two modules, two networks: two datagrams, not four');
    assert.equal(b.counters().datagramsReceived, 2);
    assert.deepEqual(got.sort(), ['hb2 db SECOND 2', 'hb2 web PRIM 2', 'lan db SECOND 1', 'lan web PRIM 1']);
  });

  test('a bad address throws at send; a view too large costs only its own module its heartbeat', async () => {
    const { a, got, flushes, errors } = pair();
    assert.throws(() => a.send('lan', 'peer.example', { module: 'web', view: view('PRIM') }), /want an IP address/);
    a.send('lan', '198.18.0.2', { module: 'web', view: view('PRIM') });
    a.send('lan', '198.18.0.2', { module: 'db', view: view('PRIM', 'x'.repeat(2000)) });
    flushes[0]!();
    await settle();
    assert.deepEqual(got, ['lan web PRIM 1']);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^lan db: .*more than 1400/);
  });

  test('close sends what is pending', async () => {
    const { a, got } = pair();
    a.send('lan', '198.18.0.2', { module: 'web', view: view('ALONE') });
    await a.close();
    assert.equal(a.counters().sent, 1);
    await settle();
    assert.deepEqual(got, ['lan web ALONE 1']);
  });
});

describe('clock pacer', () => {
  test('modules with the same pulse are called in one timer callback, every period, in join order', () => {
    const clock = new FakeClock();
    const pacer = new ClockPacer(clock);
    const calls: string[] = [];
    const stopA = pacer.every(250, () => calls.push(`a@${clock.now()}`));
    clock.advance(100);
    const stopB = pacer.every(250, () => calls.push(`b@${clock.now()}`));
    pacer.every(100, () => calls.push(`c@${clock.now()}`));
    clock.advance(400);
    assert.deepEqual(calls, ['c@200', 'a@250', 'b@250', 'c@300', 'c@400', 'a@500', 'b@500', 'c@500']);
    assert.equal(clock.pending(), 2, 'one timer per period, not per module');
    calls.length = 0;
    stopA();
    clock.advance(250);
    assert.deepEqual(calls.filter((c) => !c.startsWith('c')), ['b@750']);
    stopB();
    assert.equal(clock.pending(), 1, 'the last module of a period gone: its timer is cleared');
  });
});
