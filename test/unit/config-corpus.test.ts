// Defends DESIGN.md 3.7 (bad input is refused with a clear error naming file, line and field) and
// issue 2 item 4: every bad config of test/fixtures/config/bad/ goes through the real config-dir
// reader and parser, and the printed lines must equal the case's expected.txt exactly (all of
// them, in order). expected.txt files are written and checked by hand; there is no update mode.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigDir } from '../../src/adapters/configfs/index.js';
import { formatIssue } from '../../src/core/config/index.js';

// dist/test/unit -> the repository root (fixtures are not copied into dist).
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const badDir = join(root, 'test', 'fixtures', 'config', 'bad');
const cases = readdirSync(badDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

test('the corpus holds at least 40 bad configs, each with an expected.txt', () => {
  assert.ok(cases.length >= 40, `only ${cases.length} cases`);
  for (const c of cases) {
    const lines = readFileSync(join(badDir, c, 'expected.txt'), 'utf8').split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0, `${c}/expected.txt is empty`);
    for (const l of lines) assert.match(l, /^[^:]+:\d+: \S+: .+ \(column \d+\)$/, `${c}: not file:line: field: message (column c): ${l}`);
  }
});

for (const c of cases) {
  test(`bad config ${c}: config check reports exactly expected.txt`, () => {
    const expected = readFileSync(join(badDir, c, 'expected.txt'), 'utf8').split('\n').filter((l) => l !== '');
    const res = loadConfigDir(join(badDir, c));
    assert.equal(res.ok, false, `${c} was accepted`);
    if (res.ok) return;
    assert.deepEqual(res.errors.map(formatIssue), expected);
  });
}

test('errors of several files come sorted by file (cluster.yaml first, then modules by name), line, column', () => {
  const res = loadConfigDir(join(badDir, 'many-errors-many-files'));
  assert.equal(res.ok, false);
  if (res.ok) return;
  const files = [...new Set(res.errors.map((e) => e.file))];
  assert.deepEqual(files, ['cluster.yaml', 'modules/app/module.yaml', 'modules/db/module.yaml', 'modules/web/module.yaml']);
  for (let i = 1; i < res.errors.length; i++) {
    const a = res.errors[i - 1]!;
    const b = res.errors[i]!;
    if (a.file === b.file) assert.ok(a.line < b.line || (a.line === b.line && a.column <= b.column), `${formatIssue(a)} before ${formatIssue(b)}`);
  }
});
