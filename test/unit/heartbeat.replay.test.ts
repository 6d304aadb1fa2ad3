// Replay protection rules of the receive pipeline (transport.ts; docs/security.md "Replay
// protection"), driven by hand on the memory twin with a fake monotonic clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { MemoryHeartbeatNetwork, type MemoryHeartbeatTransport } from '../../src/adapters/udp/memory-transport.js';
import type { HeartbeatView } from '../../src/adapters/udp/transport.js';

const KEY = parseKey(generateKey());
const view: HeartbeatView = { state: 'PRIM', ready: true, reason: null, generation: { current: 'g1', history: [] }, upToDate: true, stopping: false };

function setup(random?: () => number): { net: MemoryHeartbeatNetwork; b: MemoryHeartbeatTransport; now: { ms: number }; sender(epochStart: number, port: number): MemoryHeartbeatTransport } {
  const net = new MemoryHeartbeatNetwork({ autoDeliver: false, random });
  const now = { ms: 0 };
  const common = { key: KEY, cluster: 'demo', members: { web: ['n1', 'n2'] }, now: () => now.ms, epochSilenceMs: 2000 };
  const b = net.transport({ ...common, node: 'n2', bind: [{ network: 'lan', address: '198.18.0.2' }, { network: 'hb2', address: '198.19.0.2' }] });
  const sender = (epochStart: number, port: number): MemoryHeartbeatTransport =>
    net.transport({ ...common, node: 'n1', epochStart, bind: [{ network: 'lan', address: '198.18.0.1', port }, { network: 'hb2', address: '198.19.0.1', port }] });
  return { net, b, now, sender };
}

describe('heartbeat replay protection', () => {
  test('a new epoch with an earlier start is refused while the current one is heard, accepted after epochSilenceMs of silence', () => {
    const { net, b, now, sender } = setup();
    const current = sender(5_000, 7405);
    const clockWentBack = sender(4_000, 7406); // e.g. a peer restarted with its wall clock set back
    current.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    now.ms = 2000;
    clockWentBack.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    assert.equal(b.counters().dropped.replay, 1, 'refused while the current epoch was heard 2000 ms ago');
    now.ms = 2001;
    clockWentBack.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    assert.equal(b.counters().accepted, 2, 'accepted once the current epoch is silent for more than 2000 ms');
    current.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    assert.equal(b.counters().dropped.replay, 2, 'the replaced epoch is retired for good, later start or not');
  });

  test('sequence numbers are checked per network: the slower network is not a replay of the faster one', () => {
    const { net, b, sender } = setup();
    const a = sender(5_000, 7405);
    for (let i = 0; i < 3; i++) a.send('lan', '198.18.0.2', { module: 'web', view }); // seq 1..3
    a.send('hb2', '198.19.0.2', { module: 'web', view }); // seq 4
    net.deliverAll();
    assert.equal(b.counters().accepted, 4);
    assert.equal(b.counters().dropped.replay, 0);
  });

  test('reordered datagrams: the older one arriving second is dropped as replay (heartbeats are not retransmitted)', () => {
    const { net, b, sender } = setup(() => 0); // a reordered datagram goes to the head of the queue
    const a = sender(5_000, 7405);
    net.setFaults({ reorder: 1 });
    a.send('lan', '198.18.0.2', { module: 'web', view });
    a.send('lan', '198.18.0.2', { module: 'web', view }); // seq 2, queued before seq 1
    const got: bigint[] = [];
    b.onReceive((_n, _f, d) => got.push(d.seq));
    net.deliverAll();
    assert.deepEqual(got, [2n]);
    assert.equal(b.counters().accepted, 1);
    assert.equal(b.counters().dropped.replay, 1);
  });

  test('setMembers takes effect at once: a node removed from the module is dropped as unknown-node', () => {
    const { net, b, sender } = setup();
    const a = sender(5_000, 7405);
    a.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    b.setMembers({ web: ['n2', 'n3'] });
    a.send('lan', '198.18.0.2', { module: 'web', view });
    net.deliverAll();
    assert.deepEqual([b.counters().accepted, b.counters().dropped['unknown-node']], [1, 1]);
  });
});
