// replication.dirs[].exclude: which paths stay local (docs/config.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { excludeMatcher } from '../../src/core/replication/exclude.js';

test('exclude patterns: names at any depth, rooted paths, parents, trailing slash, dot files', () => {
  const m = excludeMatcher(['*.tmp', 'cache/', 'logs/*.log', '/spool/**']);
  const yes = ['/a.tmp', '/x/y/a.tmp', '/.tmp', '/cache', '/cache/z', '/x/cache/z', '/logs/a.log', '/spool/q/r'];
  const no = ['/a.tmpx', '/x/logs/a.log', '/logs/sub/a.log', '/ok.txt', '/cached', '/spooled/x'];
  for (const p of yes) assert.equal(m(p), true, `${p} should be excluded`);
  for (const p of no) assert.equal(m(p), false, `${p} should be replicated`);
});

test('no patterns: nothing is excluded', () => {
  assert.equal(excludeMatcher([])('/anything.tmp'), false);
});
