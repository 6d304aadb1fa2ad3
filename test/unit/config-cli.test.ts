// Defends DESIGN.md 6 (`hakit config check [--config-dir DIR]`: exit 0 valid, 1 invalid, errors as
// file:line: field: message) as a user runs it: the real bin/hakit.js in a child process.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'config');

function hakit(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const env0 = { ...process.env };
  delete env0.HAKIT_CONFIG_DIR;
  const r = spawnSync(process.execPath, [join(root, 'bin', 'hakit.js'), ...args], { cwd: root, env: { ...env0, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('config check on the DESIGN.md example exits 0 and says valid', () => {
  const dir = join(fixtures, 'good', 'design-example');
  const r = hakit(['config', 'check', '--config-dir', dir]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, `${dir}: valid. cluster demo: 2 nodes, modules: app (mirror)\n`);
});

for (const c of ['yaml-tab-indent', 'vip-equals-node-address', 'many-errors-many-files', 'module-folder-without-yaml']) {
  test(`config check on bad/${c} exits 1 and prints expected.txt on stdout, a count on stderr`, () => {
    const dir = join(fixtures, 'bad', c);
    const r = hakit(['config', 'check', '--config-dir', dir]);
    const expected = readFileSync(join(dir, 'expected.txt'), 'utf8');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, expected);
    const n = expected.split('\n').filter((l) => l !== '').length;
    assert.equal(r.stderr, `hakit: ${n} error${n === 1 ? '' : 's'} in ${dir} [HAKIT_E_CONFIG]\n`);
  });
}

test('HAKIT_CONFIG_DIR replaces --config-dir', () => {
  const dir = join(fixtures, 'bad', 'kind-bad');
  const r = hakit(['config', 'check'], { HAKIT_CONFIG_DIR: dir });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, readFileSync(join(dir, 'expected.txt'), 'utf8'));
});

test('a config dir without cluster.yaml exits 1 and says what to do', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hakit-cfg-'));
  try {
    const r = hakit(['config', 'check', '--config-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^cluster\.yaml:1: cluster\.yaml: file not found: the config dir needs a cluster\.yaml .*--config-dir DIR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
