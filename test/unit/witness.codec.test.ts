// Defends DESIGN.md 3 promise 6 "Authenticated" for the arbitrator witness (issue 6 part 4):
// only datagrams with the cluster key's witness subkey are answered; forged, truncated, replayed
// and foreign datagrams get no answer and are counted; a heartbeat key cannot sign witness
// messages.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { codecKeys } from '../../src/adapters/udp/codec.js';
import { decodeWitness, encodeWitness, witnessKeys, type WitnessMessage } from '../../src/adapters/witness/codec.js';
import { WitnessService, type WitnessEvent } from '../../src/adapters/witness/service.js';

const KEY = parseKey(generateKey());
const KEYS = witnessKeys(KEY, 'demo');
const EPOCH = '0102030405060708';

function req(seq: bigint, over: Partial<WitnessMessage> = {}): WitnessMessage {
  return { type: 'acquire', epoch: EPOCH, epochStart: 1_700_000_000_000, seq, module: 'web', node: 'n1', ...over };
}

/** A service whose quiet period is over at t=0 (it started at -lease). */
function service(events: WitnessEvent[] = []): { svc: WitnessService; clock: { t: number } } {
  const clock = { t: -4000 };
  const svc = new WitnessService({ key: KEY, cluster: 'demo', leaseMs: 4000, now: () => clock.t, onEvent: (e) => events.push(e) });
  clock.t = 0;
  return { svc, clock };
}

function answer(svc: WitnessService, m: WitnessMessage): WitnessMessage['reply'] | undefined {
  const out = svc.handle(encodeWitness(KEYS, m), '198.18.0.1:40000');
  if (!out) return undefined;
  const d = decodeWitness(KEYS, out);
  assert.ok(d.ok && d.value.type === 'reply');
  return d.value.reply;
}

describe('witness codec', () => {
  test('request and reply round-trip; the reply echoes epoch, seq, module and node', () => {
    const m = req(7n, { type: 'release', node: 'nœud-2' });
    const d = decodeWitness(KEYS, encodeWitness(KEYS, m));
    assert.deepEqual(d, { ok: true, value: m });
    const { svc } = service();
    const raw = svc.handle(encodeWitness(KEYS, req(9n)), 'x');
    const r = decodeWitness(KEYS, raw!);
    assert.ok(r.ok);
    assert.deepEqual({ ...r.value, reply: undefined }, { ...req(9n), type: 'reply', reply: undefined });
    assert.deepEqual(r.value.reply, { result: 'granted', ms: 4000, holder: '' });
  });

  test('every flipped bit and every truncation fails to decode', () => {
    const bytes = encodeWitness(KEYS, req(1n));
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i] = bad[i]! ^ 0x01;
      assert.equal(decodeWitness(KEYS, bad).ok, false, `bit flip at byte ${i} was accepted`);
    }
    for (let n = 0; n < bytes.length; n++) assert.equal(decodeWitness(KEYS, bytes.subarray(0, n)).ok, false, `truncated to ${n} bytes was accepted`);
  });

  test('another key, another cluster name, or the heartbeat subkey are refused', () => {
    const bytes = encodeWitness(KEYS, req(1n));
    assert.deepEqual(decodeWitness(witnessKeys(parseKey(generateKey()), 'demo'), bytes), { ok: false, reason: 'bad-mac' });
    assert.deepEqual(decodeWitness(witnessKeys(KEY, 'other'), bytes), { ok: false, reason: 'wrong-cluster' });
    // Same cluster id, MAC made with the heartbeat subkey of the same cluster key.
    const hb = codecKeys(KEY, 'demo');
    const body = bytes.subarray(0, bytes.length - 16);
    const forged = Buffer.concat([body, createHmac('sha256', hb.macKey).update(body).digest().subarray(0, 16)]);
    assert.deepEqual(decodeWitness(KEYS, forged), { ok: false, reason: 'bad-mac' });
  });
});

describe('witness service receive pipeline', () => {
  test('bad MAC, truncated, oversized, wrong cluster: no reply, counted per reason, no lease changes', () => {
    const events: WitnessEvent[] = [];
    const { svc } = service(events);
    const good = encodeWitness(KEYS, req(1n));
    const badMac = Buffer.from(good);
    badMac[badMac.length - 1] = badMac[badMac.length - 1]! ^ 0xff;
    assert.equal(svc.handle(badMac, 'a'), undefined);
    assert.equal(svc.handle(good.subarray(0, 20), 'a'), undefined);
    assert.equal(svc.handle(Buffer.alloc(2000), 'a'), undefined);
    assert.equal(svc.handle(encodeWitness(witnessKeys(KEY, 'other'), req(2n)), 'a'), undefined);
    assert.equal(svc.table.holder('demo', 'web', 0), undefined, 'a dropped datagram took the lease');
    const c = svc.counters();
    assert.equal(c.received, 4);
    assert.equal(c.answered, 0);
    assert.deepEqual([c.dropped['bad-mac'], c.dropped.malformed, c.dropped['too-large'], c.dropped['wrong-cluster']], [1, 1, 1, 1]);
    assert.deepEqual(events.map((e) => e.kind), ['drop', 'drop', 'drop', 'drop']);
  });

  test('a replayed request is dropped: it cannot renew a lease its node stopped renewing', () => {
    const { svc, clock } = service();
    const first = encodeWitness(KEYS, req(1n));
    assert.equal(answer(svc, req(1n))?.result, 'granted');
    clock.t = 3000;
    assert.equal(svc.handle(first, 'attacker'), undefined);
    assert.equal(svc.counters().dropped.replay, 1);
    clock.t = 4000; // n1's lease, granted at 0, ends now: the replay did not extend it
    assert.equal(answer(svc, req(1n, { node: 'n2' }))?.result, 'granted');
  });

  test('seq must grow within an epoch; a newer epoch replaces the old one, which is then refused', () => {
    const { svc } = service();
    assert.ok(answer(svc, req(5n)));
    assert.equal(answer(svc, req(5n)), undefined);
    assert.equal(answer(svc, req(4n)), undefined);
    assert.ok(answer(svc, req(6n)));
    const later = { epoch: 'aaaaaaaaaaaaaaaa', epochStart: 1_700_000_100_000 };
    assert.ok(answer(svc, req(1n, later)), 'a restarted client (new epoch, later start) is answered');
    assert.equal(answer(svc, req(7n)), undefined, 'the replaced epoch is refused');
    assert.equal(answer(svc, req(1n, { epoch: 'bbbbbbbbbbbbbbbb', epochStart: 1_600_000_000_000 })), undefined, 'an epoch started earlier is refused');
    assert.equal(svc.counters().dropped.replay, 4);
  });

  test('a reply sent to the witness is not a request', () => {
    const { svc } = service();
    const reply = encodeWitness(KEYS, { ...req(1n), type: 'reply', reply: { result: 'granted', ms: 4000, holder: '' } });
    assert.equal(svc.handle(reply, 'a'), undefined);
    assert.equal(svc.counters().dropped['not-a-request'], 1);
  });

  test('answers: held with holder and remaining time, starting during the quiet period, release', () => {
    const clock = { t: 0 };
    const svc = new WitnessService({ key: KEY, cluster: 'demo', leaseMs: 4000, now: () => clock.t });
    clock.t = 1000;
    assert.deepEqual(answer(svc, req(1n)), { result: 'starting', ms: 3000, holder: '' });
    clock.t = 4000;
    assert.deepEqual(answer(svc, req(2n)), { result: 'granted', ms: 4000, holder: '' });
    clock.t = 5000;
    assert.deepEqual(answer(svc, req(1n, { node: 'n2' })), { result: 'held', ms: 3000, holder: 'n1' });
    assert.deepEqual(answer(svc, req(2n, { node: 'n2', type: 'release' })), { result: 'not-released', ms: 3000, holder: 'n1' });
    assert.deepEqual(answer(svc, req(3n, { type: 'release' })), { result: 'released', ms: 0, holder: '' });
    assert.deepEqual(answer(svc, req(3n, { node: 'n2' })), { result: 'granted', ms: 4000, holder: '' });
    const c = svc.counters();
    assert.equal(c.received, c.answered + Object.values(c.dropped).reduce((a, b) => a + b, 0));
  });
});
