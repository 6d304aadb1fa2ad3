// The heartbeat datagram codec (DESIGN.md 3 promise 6; wire format in docs/security.md): a
// round trip keeps every field, and each way a datagram can be wrong gives its own reason.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import {
  MAC_BYTES, MAX_DATAGRAM, codecKeys, decodeDatagram, encodeDatagram, type CodecKeys, type HeartbeatHeader, type HeartbeatView,
} from '../../src/adapters/udp/codec.js';

const KEY = parseKey(generateKey());
const keys = codecKeys(KEY, 'demo');
const header: HeartbeatHeader = { network: 'lan', module: 'web', node: 'n1', epoch: '0102030405060708', epochStart: 1_700_000_000_123, seq: 42n };
const view: HeartbeatView = {
  state: 'PRIM', ready: true, reason: null, generation: { current: 'g2', history: ['g1', 'g0'] }, upToDate: true, stopping: false, msg: { cmd: 'swap', n: 1 },
};

/** Re-signs a tampered datagram with the right key, as a peer with a bug would send it. */
function resign(k: CodecKeys, d: Buffer): Buffer {
  const body = d.subarray(0, d.length - MAC_BYTES);
  return Buffer.concat([body, createHmac('sha256', k.macKey).update(body).digest().subarray(0, MAC_BYTES)]);
}

function reason(d: Buffer, k: CodecKeys = keys): string {
  const r = decodeDatagram(k, d);
  return r.ok ? 'ok' : r.reason;
}

describe('heartbeat codec', () => {
  test('a round trip keeps every header field and the view', () => {
    const d = encodeDatagram(keys, header, view);
    const r = decodeDatagram(keys, d);
    assert.ok(r.ok);
    assert.deepEqual(r.value, { ...header, view });
  });

  test('the layout is the documented one: magic, version, flags, cluster id, epoch, start, seq, names, payload, MAC', () => {
    const d = encodeDatagram(keys, header, view);
    assert.equal(d.toString('ascii', 0, 4), 'HKHB');
    assert.equal(d[4], 1);
    assert.equal(d[5], 0);
    assert.deepEqual(d.subarray(6, 14), keys.clusterId);
    assert.equal(d.toString('hex', 14, 22), header.epoch);
    assert.equal(d.readBigUInt64BE(22), BigInt(header.epochStart));
    assert.equal(d.readBigUInt64BE(30), 42n);
    assert.equal(d[38], 3);
    assert.equal(d.toString('utf8', 39, 42), 'lan');
    const payloadLen = d.readUInt16BE(38 + 4 + 4 + 3);
    assert.equal(38 + 4 + 4 + 3 + 2 + payloadLen + MAC_BYTES, d.length);
    assert.deepEqual(resign(keys, d), d, 'the MAC is HMAC-SHA-256 of everything before it under the heartbeat subkey, first 16 bytes');
  });

  test('the same key and a cluster of another name, or another key, cannot read it', () => {
    const d = encodeDatagram(keys, header, view);
    assert.equal(reason(d, codecKeys(KEY, 'other')), 'wrong-cluster');
    assert.equal(reason(d, codecKeys(parseKey(generateKey()), 'demo')), 'bad-mac');
  });

  test('every flipped bit is refused (no byte of the datagram is left unauthenticated)', () => {
    const d = encodeDatagram(keys, header, view);
    for (let i = 0; i < d.length; i++) {
      const t = Buffer.from(d);
      t[i] = (t[i] as number) ^ 0x01;
      assert.notEqual(reason(t), 'ok', `flipping byte ${i} went unnoticed`);
    }
  });

  test('each failure has its reason', () => {
    const d = encodeDatagram(keys, header, view);
    const v2 = Buffer.from(d);
    v2[4] = 2;
    const flags = Buffer.from(d);
    flags[5] = 1;
    const magic = Buffer.from(d);
    magic[0] = 0x58;
    const cases: [string, Buffer, string][] = [
      ['larger than MAX_DATAGRAM', Buffer.alloc(MAX_DATAGRAM + 1), 'too-large'],
      ['empty', Buffer.alloc(0), 'malformed'],
      ['shorter than the fixed header', d.subarray(0, 40), 'malformed'],
      ['bad magic', magic, 'malformed'],
      ['another version', v2, 'bad-version'],
      ['unknown flags', flags, 'malformed'],
      ['cut tail (MAC checked before parsing)', d.subarray(0, d.length - 1), 'bad-mac'],
      ['one byte appended', Buffer.concat([d, Buffer.from([0])]), 'bad-mac'],
    ];
    for (const [what, bytes, want] of cases) assert.equal(reason(bytes), want, what);
  });

  test('an authenticated datagram with bad framing or a bad view is malformed, never a crash', () => {
    const d = encodeDatagram(keys, header, view);
    const at = 38 + 4 + 4 + 3; // offset of the payload length
    const withPayload = (json: string): Buffer => {
      const p = Buffer.from(json);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(p.length);
      return resign(keys, Buffer.concat([d.subarray(0, at), len, p, Buffer.alloc(MAC_BYTES)]));
    };
    assert.equal(reason(withPayload(JSON.stringify(view))), 'ok', 'the helper itself builds a valid datagram');
    assert.equal(reason(withPayload('{not json')), 'malformed');
    assert.equal(reason(withPayload(JSON.stringify({ ...view, extra: 1 }))), 'malformed', 'unknown view fields');
    assert.equal(reason(withPayload(JSON.stringify({ ...view, ready: 'yes' }))), 'malformed', 'wrong type');
    assert.equal(reason(withPayload(JSON.stringify({ ...view, state: 'x'.repeat(33) }))), 'malformed', 'state too long');
    const zeroName = Buffer.from(d);
    zeroName[38] = 0;
    assert.equal(reason(resign(keys, zeroName)), 'malformed', 'empty network name');
    const longName = Buffer.from(d);
    longName[38] = 250;
    assert.equal(reason(resign(keys, longName)), 'malformed', 'name runs past the end');
    const lenOff = Buffer.from(d);
    lenOff.writeUInt16BE(lenOff.readUInt16BE(at) + 1, at);
    assert.equal(reason(resign(keys, lenOff)), 'malformed', 'payload length beyond the datagram');
    const bigStart = Buffer.from(d);
    bigStart.writeBigUInt64BE(2n ** 63n, 22);
    assert.equal(reason(resign(keys, bigStart)), 'malformed', 'epoch start beyond a safe integer');
  });

  test('encode refuses what does not fit: empty or long names, a bad epoch, more than MAX_DATAGRAM bytes', () => {
    assert.throws(() => encodeDatagram(keys, { ...header, network: '' }, view), /network must be 1\.\.255/);
    assert.throws(() => encodeDatagram(keys, { ...header, module: 'm'.repeat(256) }, view), /module must be 1\.\.255/);
    assert.throws(() => encodeDatagram(keys, { ...header, epoch: '0102' }, view), /epoch must be 8 bytes/);
    assert.throws(() => encodeDatagram(keys, header, { ...view, msg: 'x'.repeat(MAX_DATAGRAM) }), /more than 1400/);
    // The largest msg that fits gives a datagram of exactly MAX_DATAGRAM bytes, which decodes.
    const base = encodeDatagram(keys, header, { ...view, msg: '' }).length;
    const exact = encodeDatagram(keys, header, { ...view, msg: 'x'.repeat(MAX_DATAGRAM - base) });
    assert.equal(exact.length, MAX_DATAGRAM);
    assert.equal(reason(exact), 'ok');
    assert.throws(() => encodeDatagram(keys, header, { ...view, msg: 'x'.repeat(MAX_DATAGRAM - base + 1) }), RangeError);
  });
});
