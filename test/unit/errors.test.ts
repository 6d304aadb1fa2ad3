// Defends STYLE.md 10: one table of errors with unique, stable codes and messages that say what to do.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, HakitError, formatMessage } from '../../src/core/errors.js';

test('error codes are unique and well formed', () => {
  const codes = Object.values(ERRORS).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length, `duplicate codes in ${codes.join(', ')}`);
  for (const c of codes) assert.match(c, /^HAKIT_E_[A-Z0-9_]+$/);
});

test('every message is a sentence that ends in a period and every exit code is non-zero', () => {
  for (const [name, e] of Object.entries(ERRORS)) {
    assert.ok(e.message.trim().endsWith('.'), `${name}: message should end with a period`);
    assert.ok(e.exit > 0, `${name}: exit code must be non-zero`);
  }
});

test('HakitError fills placeholders and keeps the code and details', () => {
  const e = new HakitError('NO_MODULE', { module: 'web' });
  assert.equal(e.code, 'HAKIT_E_NO_MODULE');
  assert.match(e.message, /no module named web/);
  assert.deepEqual(e.toJSON().details, { module: 'web' });
});

test('formatMessage leaves unknown placeholders visible', () => {
  assert.equal(formatMessage('a {x} b {y}', { x: 1 }), 'a 1 b {y}');
});
