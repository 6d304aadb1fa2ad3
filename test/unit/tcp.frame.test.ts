// The replication link's wire format and timing, below the contract suite (DESIGN.md 3 promise 6
// "authenticated", 5 "Peer slow or gone"; docs/security.md "Replication channel").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { FakeClock } from '../../src/adapters/clock/fake.js';
import {
  AUTH_BYTES, CHALLENGE_BYTES, ChunkReader, FrameType, FrameVerifier, HEADER_BYTES, MAC_BYTES, MAX_PAYLOAD,
  checkAuth, checkChallenge, decodeHello, encodeAuth, encodeChallenge, encodeFrame, encodeHello, helloLength, linkKeys, sessionKeys, VERSION,
} from '../../src/adapters/tcp/frame.js';
import { isPeerGone, memoryLink } from '../../src/adapters/tcp/index.js';

const KEY = parseKey(generateKey());
const keys = linkKeys(KEY, 'demo');

function handshake(k = keys): { hello: Buffer; challenge: Buffer } {
  const hello = encodeHello({ clusterId: k.clusterId, nonce: randomBytes(32), module: 'web', from: 'n1', to: 'n2' });
  return { hello, challenge: encodeChallenge(k, hello, randomBytes(32)) };
}

function reader(...bufs: Buffer[]): ChunkReader {
  const r = new ChunkReader();
  for (const b of bufs) r.push(b);
  return r;
}

test('hello round-trips, and its length is known from a prefix', () => {
  const { hello } = handshake();
  const h = decodeHello(hello);
  assert.ok(h);
  assert.deepEqual([h.module, h.from, h.to], ['web', 'n1', 'n2']);
  assert.equal(helloLength(hello.subarray(0, 10)), null);
  assert.equal(helloLength(hello), hello.length);
  assert.equal(helloLength(Buffer.from('GET / HTTP/1.1\r\n')), -1, 'stray traffic is refused at once');
});

test('each handshake proof checks only with the cluster key, and only for its own transcript', () => {
  const { hello, challenge } = handshake();
  assert.equal(challenge.length, CHALLENGE_BYTES);
  assert.equal(checkChallenge(keys, hello, challenge), 'ok');
  assert.equal(checkChallenge(linkKeys(parseKey(generateKey()), 'demo'), hello, challenge), 'bad-proof', 'a wrong key');
  const other = handshake();
  assert.equal(checkChallenge(keys, other.hello, challenge), 'bad-proof', 'a challenge answering another hello (replayed)');
  const auth = encodeAuth(keys, hello, challenge);
  assert.equal(auth.length, AUTH_BYTES);
  assert.equal(checkAuth(keys, hello, challenge, auth), 'ok');
  const fresh = encodeChallenge(keys, hello, randomBytes(32));
  assert.equal(checkAuth(keys, hello, fresh, auth), 'bad-proof', 'a recorded auth against a fresh challenge');
  // The server's proof is never accepted as the client's (labels differ).
  assert.equal(checkAuth(keys, hello, challenge, Buffer.concat([Buffer.from('HKRP'), Buffer.from([VERSION, 0x12]), challenge.subarray(38)])), 'bad-proof');
});

test('session keys differ per connection and per direction', () => {
  const a = handshake();
  const b = handshake();
  const ka = sessionKeys(keys, a.hello, a.challenge);
  const kb = sessionKeys(keys, b.hello, b.challenge);
  assert.notDeepEqual(ka.s2r, ka.r2s);
  assert.notDeepEqual(ka.s2r, kb.s2r);
  // A frame of connection a is refused on connection b, and a reflected frame is refused too.
  const frame = Buffer.concat(encodeFrame(ka.s2r, FrameType.Data, 1n, Buffer.from('x')));
  const other = new FrameVerifier(kb.s2r, [FrameType.Data]).next(reader(frame));
  assert.deepEqual(other, { failure: 'bad-mac' });
  const reflected = new FrameVerifier(ka.r2s, [FrameType.Data, FrameType.Ack]).next(reader(frame));
  assert.deepEqual(reflected, { failure: 'bad-mac' });
});

test('frames verify across arbitrary chunk splits; any flipped byte is refused', () => {
  const k = randomBytes(32);
  const payloads = [Buffer.alloc(0), randomBytes(1), randomBytes(70_000)];
  const wire = Buffer.concat(payloads.flatMap((p, i) => encodeFrame(k, FrameType.Data, BigInt(i + 1), p)));
  const r = new ChunkReader();
  const v = new FrameVerifier(k, [FrameType.Data]);
  const got: Buffer[] = [];
  for (let off = 0; off < wire.length; off += 997) {
    r.push(wire.subarray(off, off + 997));
    for (let f = v.next(r); f !== null; f = v.next(r)) {
      assert.ok(!('failure' in f));
      got.push(Buffer.from(f.payload));
    }
  }
  assert.deepEqual(got, payloads);
  const one = Buffer.concat(encodeFrame(k, FrameType.Data, 1n, Buffer.from('hello')));
  for (let i = 0; i < one.length; i++) {
    const bad = Buffer.from(one);
    bad[i] = (bad[i] as number) ^ 0x80;
    // Followed by enough bytes that a corrupted length field cannot leave the frame incomplete.
    const f = new FrameVerifier(k, [FrameType.Data]).next(reader(bad, Buffer.alloc(MAX_PAYLOAD + 64)));
    assert.ok(f !== null && 'failure' in f, `flipping byte ${i} was not detected`);
  }
});

test('a payload given in parts is framed as their concatenation, the parts themselves written (not copied)', () => {
  const k = randomBytes(32);
  const parts = [randomBytes(17), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
  const framed = encodeFrame(k, FrameType.Data, 5n, parts);
  assert.deepEqual(Buffer.concat(framed), Buffer.concat(encodeFrame(k, FrameType.Data, 5n, Buffer.concat(parts))), 'same bytes as the joined payload, MAC included');
  for (const p of parts) assert.ok(framed.includes(p), 'each part is one of the buffers to write');
  assert.throws(() => encodeFrame(k, FrameType.Data, 6n, [Buffer.alloc(MAX_PAYLOAD), Buffer.alloc(1)]), RangeError);
});

test('a seq gap, a duplicate, a wrong type and an oversized header are refused', () => {
  const k = randomBytes(32);
  const f = (seq: bigint, type: FrameType = FrameType.Data): Buffer => Buffer.concat(encodeFrame(k, type, seq, Buffer.from('p')));
  assert.deepEqual(new FrameVerifier(k, [FrameType.Data]).next(reader(f(2n))), { failure: 'seq-gap' });
  const v = new FrameVerifier(k, [FrameType.Data]);
  const r = reader(f(1n), f(1n));
  assert.ok(v.next(r) !== null);
  assert.deepEqual(v.next(r), { failure: 'seq-gap' }, 'a duplicated frame');
  assert.deepEqual(new FrameVerifier(k, [FrameType.Ack]).next(reader(f(1n))), { failure: 'bad-type' });
  const huge = Buffer.alloc(HEADER_BYTES);
  huge.writeUInt8(FrameType.Data, 0);
  huge.writeUInt32BE(MAX_PAYLOAD + 1, 1);
  assert.deepEqual(new FrameVerifier(k, [FrameType.Data]).next(reader(huge)), { failure: 'too-large' }, 'refused before the payload is buffered');
  assert.throws(() => encodeFrame(k, FrameType.Data, 1n, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
  assert.equal(MAC_BYTES, 16);
});

test('fake clock: a silent peer is declared gone exactly timeoutMs after the link fell silent', async () => {
  const clock = new FakeClock();
  const { sender, receiver, faults } = memoryLink({ key: KEY, cluster: 'demo', module: 'web', timeoutMs: 1000, clock });
  receiver.onPayload(async () => {});
  while (sender.state !== 'up') await new Promise((r) => setImmediate(r));
  await sender.send(Buffer.from('first'));
  faults.pause();
  clock.advance(500);
  let outcome: unknown = 'pending';
  const p = sender.send(Buffer.from('second')).then(() => { outcome = 'acked'; }, (e: unknown) => { outcome = e; });
  await clock.advanceAsync(999);
  assert.equal(outcome, 'pending', 'declared gone before timeoutMs without an ack');
  assert.equal(sender.state, 'up');
  await clock.advanceAsync(1);
  await p;
  assert.ok(isPeerGone(outcome), String(outcome));
  assert.equal(sender.state, 'down');
  faults.resume();
  await sender.close();
  await receiver.close();
});

test('fake clock: a slow link that keeps acking is not declared gone, though a send waits longer than timeoutMs', async () => {
  const clock = new FakeClock();
  // One frame in flight at a time (bound 1 byte): the 5th send waits for 4 round trips.
  const { sender, receiver, faults } = memoryLink({ key: KEY, cluster: 'demo', module: 'web', timeoutMs: 1000, clock, maxInFlightBytes: 1 });
  receiver.onPayload(async () => {});
  while (sender.state !== 'up') await new Promise((r) => setImmediate(r));
  faults.delayMs = 400; // each ack comes back 800 ms after its send: slow, but under the timeout
  const sends = Array.from({ length: 5 }, (_, i) => sender.send(Buffer.from([i])));
  const all = Promise.all(sends);
  const t0 = clock.now();
  await clock.runUntilSettled(all, 10_000);
  assert.ok(clock.now() - t0 >= 4 * 800, `the sends took ${clock.now() - t0} ms of fake time, expected 5 round trips of 800`);
  assert.equal(sender.state, 'up');
  assert.equal(sender.stats().acked, 5);
  faults.delayMs = 0;
  await sender.close();
  await receiver.close();
});
