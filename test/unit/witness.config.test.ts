// Defends DESIGN.md 3 promise 7 "Bad input is refused" for `hakit witness --config FILE`
// (issue 6 part 4): its config errors name file, line and field like the cluster config's; a
// valid config runs a witness that logs what it grants and refuses, and stops on request.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { UdpWitnessClient } from '../../src/adapters/witness/index.js';
import { parseWitnessConfig } from '../../src/core/config/witness.js';
import { formatIssue } from '../../src/core/config/index.js';
import { main } from '../../src/cli/main.js';
import { runWitness } from '../../src/daemon/witness.js';

function errorsOf(text: string): string[] {
  const r = parseWitnessConfig('witness.yaml', '/etc/hakit', text);
  assert.equal(r.ok, false, 'expected the config to be refused');
  return r.ok ? [] : r.errors.map(formatIssue);
}

describe('witness config', () => {
  test('defaults: port 7407, key_file cluster.key next to the config, lease 4s', () => {
    const r = parseWitnessConfig('witness.yaml', '/etc/hakit', 'listen: 198.18.0.254\ncluster: demo\n');
    assert.deepEqual(r, { ok: true, config: { listen: { host: '198.18.0.254', port: 7407 }, keyFile: '/etc/hakit/cluster.key', cluster: 'demo', leaseMs: 4000 } });
    const r6 = parseWitnessConfig('w.yaml', '/etc/hakit', 'listen: "[2001:2::fe]:7500"\ncluster: demo\nkey_file: ../keys/k\nlease: 2s\n');
    assert.deepEqual(r6, { ok: true, config: { listen: { host: '2001:2::fe', port: 7500 }, keyFile: '/etc/keys/k', cluster: 'demo', leaseMs: 2000 } });
  });

  test('every error is located as file:line: field: message, in line order', () => {
    assert.deepEqual(errorsOf('listen: witness.example\ncluster: "bad name"\nlease: 3\nlaese: 4s\n'), [
      'witness.yaml:1: listen: expected an IP address with an optional port (198.18.0.254, 198.18.0.254:7407 or [2001:2::fe]:7407), got "witness.example" (a host name is not allowed: give the address to listen on) (column 9)',
      'witness.yaml:2: cluster: expected a cluster name of letters, digits, ".", "_" or "-" (starting with a letter or digit, at most 63 characters), got "bad name" (column 10)',
      'witness.yaml:3: lease: expected a duration with a unit (250ms, 2s, 1m), got 3 (a bare number has no unit) (column 8)',
      'witness.yaml:4: laese: unknown key "laese"; allowed keys: listen, key_file, cluster, lease (column 1)',
    ]);
  });

  test('missing keys, bad ports, unquoted IPv6 brackets, leases out of range, empty files', () => {
    assert.deepEqual(errorsOf('cluster: demo\n'), ['witness.yaml:1: listen: required key "listen" is missing (column 1)']);
    assert.match(errorsOf('listen: "198.18.0.254:0"\ncluster: demo\n')[0]!, /a port is 1 to 65535/);
    assert.match(errorsOf('listen: [2001:2::fe]:7407\ncluster: demo\n')[0]!, /^witness\.yaml:1: /);
    assert.match(errorsOf('listen: [2001:2::fe]\ncluster: demo\n')[0]!, /quote it/);
    assert.match(errorsOf('listen: 198.18.0.254\ncluster: demo\nlease: 100ms\n')[0]!, /^witness\.yaml:3: lease: expected a lease from 500ms to 1h, got "100ms"/);
    assert.match(errorsOf('# nothing\n')[0]!, /the file is empty/);
    assert.match(errorsOf('listen: 198.18.0.254\ncluster: demo\ncluster: other\n')[0]!, /key "cluster" appears twice/);
  });
});

describe('hakit witness', () => {
  test('a bad config: every error on stderr, exit 1, nothing started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hakit-witness-'));
    try {
      writeFileSync(join(dir, 'w.yaml'), 'listen: 198.18.0.254\nlease: 2\n');
      let err = '';
      const code = await main(['node', 'hakit', 'witness', '--config', join(dir, 'w.yaml')], { out: () => undefined, err: (s) => (err += s), env: {} });
      assert.equal(code, 1);
      const lines = err.trim().split('\n');
      assert.equal(lines.length, 3, err);
      assert.match(lines[0]!, /w\.yaml:1: cluster: required key "cluster" is missing/);
      assert.match(lines[1]!, /w\.yaml:2: lease: expected a duration/);
      assert.match(lines[2]!, /^hakit: 2 errors in .*w\.yaml \[HAKIT_E_CONFIG\]$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing key file is refused with HAKIT_E_KEY_FILE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hakit-witness-'));
    try {
      writeFileSync(join(dir, 'w.yaml'), 'listen: 127.0.0.1:17499\ncluster: demo\n');
      let err = '';
      const code = await main(['node', 'hakit', 'witness', '--config', join(dir, 'w.yaml')], { out: () => undefined, err: (s) => (err += s), env: {} });
      assert.equal(code, 1);
      assert.match(err, /cluster\.key: the file does not exist.*\[HAKIT_E_KEY_FILE\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('runs from its config, answers with the configured lease, logs grants and refusals, stops on request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hakit-witness-'));
    const stop = new AbortController();
    const logs = new PassThrough();
    let text = '';
    logs.on('data', (d: Buffer) => (text += d.toString()));
    const port = 20000 + Math.floor(Math.random() * 20000);
    const keyText = generateKey();
    writeFileSync(join(dir, 'cluster.key'), keyText, { mode: 0o600 });
    writeFileSync(join(dir, 'w.yaml'), `listen: 127.0.0.1:${port}\ncluster: demo\nlease: 500ms\n`);
    const running = runWitness({ config: join(dir, 'w.yaml'), err: () => undefined, logTo: logs }, stop.signal);
    const clients: UdpWitnessClient[] = [];
    try {
      const open = async (node: string) => {
        const c = await UdpWitnessClient.open({ key: parseKey(keyText), cluster: 'demo', node, witness: `127.0.0.1:${port}`, timeoutMs: 500 });
        clients.push(c);
        return c;
      };
      const [n1, n2] = [await open('n1'), await open('n2')];
      // The witness may still be binding: ask until it answers (each ask bounded by the timeout).
      let first = await n1.acquire('web');
      for (let i = 0; i < 10 && 'error' in first; i++) first = await n1.acquire('web');
      assert.deepEqual({ ...first, remainingMs: undefined }, { granted: false, holder: null, remainingMs: undefined }, 'refused during the quiet period');
      await new Promise((r) => setTimeout(r, 'remainingMs' in first ? first.remainingMs + 20 : 0));
      const g = await n1.acquire('web');
      assert.ok('granted' in g && g.granted && g.leaseMs === 500, JSON.stringify(g));
      const refused = await n2.acquire('web');
      assert.ok('granted' in refused && !refused.granted && refused.holder === 'n1', JSON.stringify(refused));
    } finally {
      for (const c of clients) await c.close();
      stop.abort();
      assert.equal(await running, 0);
      rmSync(dir, { recursive: true, force: true });
    }
    const msgs = text.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; node?: string; holder?: string });
    assert.deepEqual(msgs.map((m) => m.msg).filter((m) => m !== 'lease refused: witness just started'),
      ['witness ready', 'lease granted', 'lease refused: held by another node', 'witness stopped']);
    assert.equal(msgs.find((m) => m.msg === 'lease refused: held by another node')?.holder, 'n1');
  });
});
