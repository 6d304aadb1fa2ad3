// The heartbeat datagram codec (DESIGN.md 3 promise 6; wire format in docs/security.md): a
// round trip keeps every field, and each way a datagram can be wrong gives its own reason.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import {
  MAC_BYTES, MAX_DATAGRAM, codecKeys, decodeDatagram, encodeDatagram, encodeDatagrams, parseView, type CodecKeys, type DatagramHeader, type HeartbeatView,
  type ModuleView, type ViewCache,
} from '../../src/adapters/udp/codec.js';

const KEY = parseKey(generateKey());
const keys = codecKeys(KEY, 'demo');
const header: DatagramHeader = { network: 'lan', node: 'n1', epoch: '0102030405060708', epochStart: 1_700_000_000_123, seq: 42n };
const view: HeartbeatView = {
  state: 'PRIM', ready: true, reason: null, generation: { current: 'g2', history: ['g1', 'g0'] }, upToDate: true, stopping: false, msg: { cmd: 'swap', n: 1 },
};
const web = (v: HeartbeatView = view): ModuleView[] => [{ module: 'web', view: v }];

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
  test('with a view cache, the same payload on a second network gives the same view object; a changed one is parsed; a forged one still fails', () => {
    const cache: ViewCache = new Map();
    const a = decodeDatagram(keys, encodeDatagram(keys, header, web()), cache);
    const b = decodeDatagram(keys, encodeDatagram(keys, { ...header, network: 'hb2', seq: 43n }, web()), cache);
    assert.ok(a.ok && b.ok);
    assert.equal(b.value.views[0]?.view, a.value.views[0]?.view, 'the second network\'s identical view was parsed again');
    assert.equal(b.value.network, 'hb2');
    const changed: HeartbeatView = { ...view, state: 'ALONE' };
    const c = decodeDatagram(keys, encodeDatagram(keys, { ...header, seq: 44n }, web(changed)), cache);
    assert.ok(c.ok);
    assert.deepEqual(c.value.views[0]?.view, changed);
    const forged = encodeDatagram(codecKeys(parseKey(generateKey()), 'demo'), { ...header, seq: 45n }, web(changed));
    assert.equal(decodeDatagram(keys, forged, cache).ok, false, 'a cached payload let a datagram with a wrong MAC through');
  });

  test('a round trip keeps every header field and the view', () => {
    const d = encodeDatagram(keys, header, web());
    const r = decodeDatagram(keys, d);
    assert.ok(r.ok);
    assert.deepEqual(r.value, { ...header, views: web() });
  });

  test('one datagram carries the views of several modules, in order', () => {
    const db: HeartbeatView = { ...view, state: 'SECOND', ready: false, reason: 'x', msg: undefined };
    delete db.msg;
    const views: ModuleView[] = [{ module: 'web', view }, { module: 'db', view: db }, { module: 'état', view }];
    const r = decodeDatagram(keys, encodeDatagram(keys, header, views));
    assert.ok(r.ok);
    assert.deepEqual(r.value.views, views);
  });

  test('encodeDatagrams packs views into as few datagrams as fit, each with its own seq, each view whole', () => {
    let seq = 10n;
    const next = (): bigint => ++seq;
    const { seq: _s, ...h } = header;
    // A view of about 300 bytes: four fit in one datagram of at most 1400 bytes, not five.
    const fat = (i: number): ModuleView => ({ module: `m${i}`, view: { ...view, msg: 'x'.repeat(240) } });
    const views = Array.from({ length: 9 }, (_, i) => fat(i));
    const ds = encodeDatagrams(keys, h, views, next);
    assert.ok(ds.length >= 2 && ds.length <= 4, `9 views of ~300 bytes in ${ds.length} datagrams`);
    const decoded = ds.map((d) => {
      assert.ok(d.length <= MAX_DATAGRAM);
      const r = decodeDatagram(keys, d);
      assert.ok(r.ok);
      return r.value;
    });
    assert.deepEqual(decoded.map((d) => d.seq), ds.map((_, i) => 11n + BigInt(i)), 'consecutive seqs');
    assert.deepEqual(decoded.flatMap((d) => d.views.map((v) => v.module)), views.map((v) => v.module), 'every view once, in order');
    assert.equal(encodeDatagrams(keys, h, views.slice(0, 2), next).length, 1, 'two modules: one datagram');
    // A view too large alone: nothing is encoded and no seq is taken.
    const before = seq;
    assert.throws(() => encodeDatagrams(keys, h, [fat(0), { module: 'big', view: { ...view, msg: 'x'.repeat(MAX_DATAGRAM) } }], next), /more than 1400/);
    assert.equal(seq, before);
  });

  test('parseView takes exactly the view fields, of their types and bounds', () => {
    assert.deepEqual(parseView(JSON.parse(JSON.stringify(view))), view);
    const { msg: _m, ...noMsg } = view;
    assert.deepEqual(parseView(noMsg), noMsg, 'msg is optional');
    const bad: unknown[] = [
      null, [], 'PRIM', { ...view, extra: 1 }, { ...view, ready: 1 }, { ...view, upToDate: null }, { ...view, stopping: 'no' },
      { ...view, state: 'x'.repeat(33) }, { ...view, reason: 5 }, { ...view, reason: 'r'.repeat(201) }, { ...view, generation: null },
      { ...view, generation: { current: 'g', history: [] , x: 1 } }, { ...view, generation: { current: 'g'.repeat(65), history: [] } },
      { ...view, generation: { current: 'g', history: Array(33).fill('h') } }, { ...view, generation: { current: 'g', history: [1] } },
      { ...view, generation: { current: 'g' } },
    ];
    for (const b of bad) assert.equal(parseView(b), null, JSON.stringify(b));
  });

  test('the layout is the documented one: magic, version, flags, cluster id, epoch, start, seq, network, node, count, views, MAC', () => {
    const d = encodeDatagram(keys, header, web());
    assert.equal(d.toString('ascii', 0, 4), 'HKHB');
    assert.equal(d[4], 2);
    assert.equal(d[5], 0);
    assert.deepEqual(d.subarray(6, 14), keys.clusterId);
    assert.equal(d.toString('hex', 14, 22), header.epoch);
    assert.equal(d.readBigUInt64BE(22), BigInt(header.epochStart));
    assert.equal(d.readBigUInt64BE(30), 42n);
    assert.equal(d[38], 3);
    assert.equal(d.toString('utf8', 39, 42), 'lan');
    assert.equal(d[42], 2);
    assert.equal(d.toString('utf8', 43, 45), 'n1');
    assert.equal(d[45], 1, 'one module view');
    assert.equal(d[46], 3);
    assert.equal(d.toString('utf8', 47, 50), 'web');
    const payloadLen = d.readUInt16BE(50);
    assert.deepEqual(JSON.parse(d.toString('utf8', 52, 52 + payloadLen)), view);
    assert.equal(52 + payloadLen + MAC_BYTES, d.length);
    assert.deepEqual(resign(keys, d), d, 'the MAC is HMAC-SHA-256 of everything before it under the heartbeat subkey, first 16 bytes');
  });

  test('the same key and a cluster of another name, or another key, cannot read it', () => {
    const d = encodeDatagram(keys, header, web());
    assert.equal(reason(d, codecKeys(KEY, 'other')), 'wrong-cluster');
    assert.equal(reason(d, codecKeys(parseKey(generateKey()), 'demo')), 'bad-mac');
  });

  test('every flipped bit is refused (no byte of the datagram is left unauthenticated)', () => {
    const d = encodeDatagram(keys, header, web());
    for (let i = 0; i < d.length; i++) {
      const t = Buffer.from(d);
      t[i] = (t[i] as number) ^ 0x01;
      assert.notEqual(reason(t), 'ok', `flipping byte ${i} went unnoticed`);
    }
  });

  test('each failure has its reason', () => {
    const d = encodeDatagram(keys, header, web());
    const v2 = Buffer.from(d);
    v2[4] = 1;
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
    const d = encodeDatagram(keys, header, web());
    const at = 50; // offset of the payload length
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
    /** The datagram with one header byte changed, signed again. */
    const withByte = (off: number, v: number): Buffer => { const b = Buffer.from(d); b[off] = v; return resign(keys, b); };
    assert.equal(reason(withByte(38, 0)), 'malformed', 'empty network name');
    assert.equal(reason(withByte(38, 250)), 'malformed', 'name runs past the end');
    assert.equal(reason(withByte(45, 0)), 'malformed', 'a count of 0 views');
    assert.equal(reason(withByte(45, 2)), 'malformed', 'a count beyond the views present');
    const lenOff = Buffer.from(d);
    lenOff.writeUInt16BE(lenOff.readUInt16BE(at) + 1, at);
    assert.equal(reason(resign(keys, lenOff)), 'malformed', 'payload length beyond the datagram');
    const bigStart = Buffer.from(d);
    bigStart.writeBigUInt64BE(2n ** 63n, 22);
    assert.equal(reason(resign(keys, bigStart)), 'malformed', 'epoch start beyond a safe integer');
  });

  test('encode refuses what does not fit: empty or long names, a bad epoch, more than MAX_DATAGRAM bytes', () => {
    assert.throws(() => encodeDatagram(keys, { ...header, network: '' }, web()), /network must be 1\.\.255/);
    assert.throws(() => encodeDatagram(keys, header, [{ module: 'm'.repeat(256), view }]), /module must be 1\.\.255/);
    assert.throws(() => encodeDatagram(keys, { ...header, epoch: '0102' }, web()), /epoch must be 8 bytes/);
    assert.throws(() => encodeDatagram(keys, header, []), /1\.\.255 module views/);
    assert.throws(() => encodeDatagram(keys, header, web({ ...view, msg: 'x'.repeat(MAX_DATAGRAM) })), /more than 1400/);
    // The largest msg that fits gives a datagram of exactly MAX_DATAGRAM bytes, which decodes.
    const base = encodeDatagram(keys, header, web({ ...view, msg: '' })).length;
    const exact = encodeDatagram(keys, header, web({ ...view, msg: 'x'.repeat(MAX_DATAGRAM - base) }));
    assert.equal(exact.length, MAX_DATAGRAM);
    assert.equal(reason(exact), 'ok');
    assert.throws(() => encodeDatagram(keys, header, web({ ...view, msg: 'x'.repeat(MAX_DATAGRAM - base + 1) })), RangeError);
  });
});
