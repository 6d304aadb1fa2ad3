// Replication records (DESIGN.md 5 "Replicated directories", promise 2): every record survives
// encode → decode unchanged, streams split at any chunk boundary, malformed input is a result.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Record, type RecordBody, OP_CODES, MUTATING_OPS, RecordNumberer, RecordReader, decodeRecord, encodeRecord, encodeRecordAfter, encodeRecordParts, packXattrs, payloadBytes, unpackXattrs,
} from '../../src/core/replication/records.js';

const bodies: RecordBody[] = [
  { op: 'create', path: '/a file with spaces', mode: 0o100640, uid: 65534, gid: 65534 },
  { op: 'mknod', path: '/fifo', mode: 0o010644, rdev: 0, uid: 0, gid: 0 },
  { op: 'mkdir', path: '/dir/ünïcødé', mode: 0o755, uid: 1000, gid: 1000 },
  { op: 'symlink', path: '/link', target: '../somewhere/else\nwith newline', uid: 0, gid: 0 },
  { op: 'link', from: '/a', path: '/b' },
  { op: 'write', path: '/big', offset: 5 * 1024 ** 3 + 7, data: new Uint8Array([0, 1, 2, 255]) },
  { op: 'write', path: '/empty-write', offset: 0, data: new Uint8Array(0) },
  { op: 'truncate', path: '/big', size: 2 ** 40 },
  { op: 'unlink', path: '/a' },
  { op: 'rmdir', path: '/dir' },
  { op: 'rename', from: '/x', path: '/y' },
  { op: 'chmod', path: '/x', mode: 0o4755 },
  { op: 'chown', path: '/x', uid: 4294967294, gid: 7 },
  { op: 'utimens', path: '/x', atimeMs: -1, mtimeMs: 1_700_000_000_123 },
  { op: 'setxattr', path: '/x', name: 'user.k', value: new TextEncoder().encode('v'), flags: 1 },
  { op: 'removexattr', path: '/x', name: 'user.k' },
  { op: 'fsync', path: '/x', datasync: true },
  { op: 'sync-begin', path: '/' },
  { op: 'sync-dir', path: '/d', mode: 0o755, uid: 0, gid: 0, names: ['a', 'b\nc', 'ü d'], more: false },
  { op: 'sync-file', path: '/f', mode: 0o644, uid: 1, gid: 2, size: 2 ** 33 },
  { op: 'sync-end', path: '/' },
  { op: 'sync-zones', path: '/db', mode: 0o640, uid: 7, gid: 8, size: 5 * 1024 * 1024 * 1024 + 3 },
  { op: 'verify', path: '/db', offset: 4 * 1024 * 1024, length: 4 * 1024 * 1024 },
  { op: 'sync-probe', path: '/db', offset: 2 ** 40, length: 4 * 1024 * 1024, block: 128 * 1024 },
  { op: 'sync-xattrs', path: '/db', xattrs: packXattrs([['user.k', new Uint8Array([1, 0, 2])]]) },
];

describe('records codec', () => {
  test('every op has a body in this test and a unique wire code', () => {
    assert.deepEqual(new Set(bodies.map((b) => b.op)), new Set(Object.keys(OP_CODES)));
    assert.equal(new Set(Object.values(OP_CODES)).size, Object.keys(OP_CODES).length);
    assert.ok(!MUTATING_OPS.includes('fsync') && MUTATING_OPS.includes('write'));
    assert.ok(!MUTATING_OPS.includes('sync-begin') && !MUTATING_OPS.includes('sync-end') && MUTATING_OPS.includes('sync-dir'));
    assert.ok(!MUTATING_OPS.includes('verify') && !MUTATING_OPS.includes('sync-probe') && MUTATING_OPS.includes('sync-zones'));
  });

  test('encode then decode gives back the same record, for every op', () => {
    const n = new RecordNumberer(41);
    for (const body of bodies) {
      const rec = n.number(body);
      const res = decodeRecord(encodeRecord(rec));
      assert.ok(res.ok, res.ok ? '' : res.error);
      assert.deepEqual(res.record, rec);
    }
    assert.equal(n.next, 41 + bodies.length);
  });

  test('numbers are handed out in call order starting at 1', () => {
    const n = new RecordNumberer();
    assert.deepEqual([n.number(bodies[0] as RecordBody).seq, n.number(bodies[1] as RecordBody).seq], [1, 2]);
  });

  test('a stream cut at every possible byte boundary yields the same records in order', () => {
    const n = new RecordNumberer();
    const recs = bodies.map((b) => n.number(b));
    const stream = concat(recs.map(encodeRecord));
    for (const step of [1, 3, 7, 64, stream.length]) {
      const r = new RecordReader();
      const got: Record[] = [];
      for (let i = 0; i < stream.length; i += step) {
        r.push(stream.subarray(i, i + step));
        for (let res = r.take(); res !== undefined; res = r.take()) {
          assert.ok(res.ok);
          got.push(res.record);
        }
      }
      assert.deepEqual(got, recs, `chunk size ${step}`);
    }
  });

  test('malformed records are refused with a reason, never half decoded', () => {
    const good = encodeRecord({ op: 'unlink', path: '/a', seq: 1 });
    const cases: [string, Uint8Array, RegExp][] = [
      ['short', good.subarray(0, 10), /too short/],
      ['length mismatch', concat([good, new Uint8Array([0])]), /does not match/],
      ['bad version', patch(good, 4, 9), /version 9/],
      ['bad op', patch(good, 5, 200), /op code 200/],
      ['truncated field', fixLen(good.subarray(0, good.length - 1)), /past the end/],
      ['bad utf-8', patch(good, good.length - 1, 0xff), /not UTF-8/],
    ];
    for (const [name, bytes, re] of cases) {
      const res = decodeRecord(bytes);
      assert.equal(res.ok, false, name);
      assert.match(res.ok ? '' : res.error, re, name);
    }
  });

  test('an oversized length prefix fails the reader instead of buffering forever', () => {
    const r = new RecordReader();
    r.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1]));
    const res = r.take();
    assert.ok(res !== undefined && !res.ok);
    assert.match(r.failed ?? '', /above/);
    assert.equal(r.take(), undefined);
  });

  test('values the format cannot hold are refused at encode time', () => {
    assert.throws(() => encodeRecord({ op: 'write', path: '/a', offset: -1, data: new Uint8Array(1), seq: 1 }), RangeError);
    assert.throws(() => encodeRecord({ op: 'chmod', path: '/a', mode: 2 ** 32, seq: 1 }), RangeError);
    assert.throws(() => encodeRecord({ op: 'unlink', path: '/a', seq: 2 ** 53 }), RangeError);
  });

  test('payloadBytes counts write data and xattr values only', () => {
    assert.equal(payloadBytes({ op: 'write', path: '/a', offset: 0, data: new Uint8Array(10) }), 10);
    assert.equal(payloadBytes({ op: 'setxattr', path: '/a', name: 'user.a', value: new Uint8Array(3), flags: 0 }), 3);
    assert.equal(payloadBytes({ op: 'unlink', path: '/a' }), 0);
  });
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function patch(b: Uint8Array, at: number, v: number): Uint8Array {
  const c = b.slice();
  c[at] = v;
  return c;
}

function fixLen(b: Uint8Array): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(0, c.length - 4);
  return c;
}

test('encodeRecord leaves headroom for a payload header, and decodeRecord gives write data as a view of the bytes', () => {
  const data = new Uint8Array([1, 2, 3, 4, 5]);
  const rec = { op: 'write', seq: 9, path: '/f', offset: 4096, data } as const;
  const plain = encodeRecord(rec);
  const roomy = encodeRecordAfter(3, rec);
  assert.deepEqual(roomy.subarray(0, 3), new Uint8Array(3), 'the headroom is zeros for the caller to fill');
  assert.deepEqual(roomy.subarray(3), plain, 'the record after the headroom is the same bytes');
  const r = decodeRecord(plain);
  assert.ok(r.ok && r.record.op === 'write');
  assert.deepEqual(r.record.data, data);
  assert.equal(r.record.data.buffer, plain.buffer, 'no copy of the data');
});

test('encodeRecordParts lends large trailing data (the same buffer, not a copy) and copies small data', () => {
  const big = new Uint8Array(70_000).fill(7);
  const rec = { op: 'write', seq: 3, path: '/d/ü f', offset: 2 ** 33, data: big } as const;
  const parts = encodeRecordParts(3, rec, 65_536);
  assert.equal(parts.length, 2);
  assert.equal(parts[1], big, 'the data is the caller\'s buffer');
  assert.deepEqual(Buffer.concat(parts), Buffer.from(encodeRecordAfter(3, rec)), 'head + data are the record\'s bytes');
  const small = encodeRecordParts(3, { ...rec, data: big.subarray(0, 100) }, 65_536);
  assert.equal(small.length, 1, 'below the bound the data is copied into the one part');
  assert.deepEqual(small[0], encodeRecordAfter(3, { ...rec, data: big.subarray(0, 100) }));
  // A record whose last field is not bytes is one part whatever the bound.
  assert.equal(encodeRecordParts(0, { op: 'truncate', seq: 4, path: '/f', size: 9 }, 0).length, 1);
});

test('sync-xattrs: the packed attributes (binary values, UTF-8 names, none) round-trip; bytes not made by packXattrs are refused', () => {
  const attrs: [string, Uint8Array][] = [['user.bin', new Uint8Array([0, 1, 0xff, 0])], ['user.ünï', new Uint8Array(0)], ['trusted.x', new TextEncoder().encode('v')]];
  for (const set of [attrs, []]) {
    const rec = new RecordNumberer(3).number({ op: 'sync-xattrs', path: '/f', xattrs: packXattrs(set) });
    const d = decodeRecord(encodeRecord(rec));
    assert.ok(d.ok);
    assert.equal(d.record.op, 'sync-xattrs');
    assert.deepEqual(unpackXattrs((d.record as { xattrs: Uint8Array }).xattrs).map(([n, v]) => [n, [...v]]), set.map(([n, v]) => [n, [...v]]));
  }
  assert.throws(() => unpackXattrs(packXattrs(attrs).subarray(0, 10)), /truncated/);
});
