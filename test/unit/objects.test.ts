// core/objects.ts: `extend` stands in for `{ ...base, ...fields }` where records are numbered and
// heartbeats stamped; what they rely on: a new object, the base untouched, the new fields last.
import test from 'node:test';
import assert from 'node:assert/strict';
import { extend } from '../../src/core/objects.js';

test('extend copies the base, adds or replaces the given fields, and leaves the base as it was', () => {
  const base = Object.freeze({ op: 'write', path: '/a', offset: 0, seq: 1 });
  const r = extend(base, { seq: 7, offset: 4096 });
  assert.notEqual(r, base);
  assert.deepEqual(r, { op: 'write', path: '/a', offset: 4096, seq: 7 });
  assert.deepEqual(base, { op: 'write', path: '/a', offset: 0, seq: 1 });
  assert.equal(JSON.stringify(extend({ n: 1, life: 'x' }, { t: 5, heard: null })), '{"n":1,"life":"x","t":5,"heard":null}');
});
