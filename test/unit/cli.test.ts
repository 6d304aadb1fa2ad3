// Defends DESIGN.md 6: the CLI's commands, flags, exit codes and the status --json format, driven
// end to end over a real unix socket against the real API with a fake controller.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type Io } from '../../src/cli/main.js';
import { buildApi, type Controller } from '../../src/api/server.js';
import { HakitError } from '../../src/core/errors.js';
import type { StatusReport } from '../../src/api/types.js';

function capture(env: NodeJS.ProcessEnv = {}): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', env, out: (s: string) => { io.stdout += s; }, err: (s: string) => { io.stderr += s; } };
  return io;
}

const report: StatusReport = {
  node: 'n1',
  modules: [{ name: 'web', kind: 'mirror', state: 'PRIM', ready: true, reason: null, peer: { name: 'n2', state: 'SECOND' }, vip: ['198.18.0.100/24'],
    replication: { upToDate: true, resync: { active: false, bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 } } }],
};

const ctl: Controller = {
  status: (m) => {
    if (m && m !== 'web') throw new HakitError('NO_MODULE', { module: m });
    return report;
  },
  command: async (m, req) => {
    if (m !== 'web') throw new HakitError('NO_MODULE', { module: m });
    if (req.cmd === 'swap') throw new HakitError('BAD_STATE', { command: 'swap', module: m, state: 'ALONE', detail: 'swap needs a ready secondary' });
    return { message: `${req.cmd}${req.on === undefined ? '' : req.on ? ' on' : ' off'} ${m}: accepted` };
  },
  log: () => [],
  checker: (m, on, name) => {
    if (name !== undefined && name !== 'app') throw new HakitError('NO_CHECKER', { checker: name, known: 'app' });
    return { message: `checker ${name ?? 'all'} of ${m} ${on ? 'on' : 'off'}` };
  },
};

async function withDaemon(fn: (sock: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hakit-cli-'));
  const sock = join(dir, 'hakit.sock');
  const app = buildApi(ctl);
  await app.listen({ path: sock });
  try {
    await fn(sock);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('--help lists every command of the public interface', async () => {
  const io = capture();
  assert.equal(await main(['node', 'hakit', '--help'], io), 0);
  for (const c of ['daemon', 'status', 'start', 'stop', 'restart', 'stopstart', 'swap', 'prim', 'second', 'failover', 'verify', 'config', 'cluster']) {
    assert.match(io.stdout, new RegExp(`^\\s+${c}\\b`, 'm'), `help should list ${c}`);
  }
});

test('--version prints the package version', async () => {
  const io = capture();
  assert.equal(await main(['node', 'hakit', '--version'], io), 0);
  assert.match(io.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('an unknown command is a usage error (exit 2) that points to --help', async () => {
  const io = capture();
  assert.equal(await main(['node', 'hakit', 'explode'], io), 2);
  assert.match(io.stderr, /unknown command 'explode'/);
  assert.match(io.stderr, /hakit --help/);
});

test('a missing module argument is a usage error', async () => {
  const io = capture();
  assert.equal(await main(['node', 'hakit', 'swap'], io), 2);
  assert.match(io.stderr, /missing required argument 'module'/);
});

test('no daemon on the socket: exit 4 with what to do', async () => {
  const io = capture();
  assert.equal(await main(['node', 'hakit', '--socket', '/nonexistent/hakit.sock', 'status'], io), 4);
  assert.match(io.stderr, /No hakit daemon answers on \/nonexistent\/hakit.sock.*\[HAKIT_E_NO_DAEMON\]/);
});

test('status --json prints the DESIGN.md 6 object; HAKIT_SOCKET replaces --socket', async () => {
  await withDaemon(async (sock) => {
    const io = capture({ HAKIT_SOCKET: sock });
    assert.equal(await main(['node', 'hakit', 'status', '--json'], io), 0);
    assert.deepEqual(JSON.parse(io.stdout), report);
  });
});

test('status prints a human table', async () => {
  await withDaemon(async (sock) => {
    const io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'status'], io), 0);
    assert.match(io.stdout, /node n1/);
    assert.match(io.stdout, /web\s+mirror\s+PRIM \(ready\)\s+-\s+n2 SECOND\s+198\.18\.0\.100\/24\s+up to date/);
  });
});

test('module commands reach the daemon; refusals keep their code and exit status', async () => {
  await withDaemon(async (sock) => {
    let io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'failover', 'off', 'web'], io), 0);
    assert.match(io.stdout, /failover off web: accepted/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'swap', 'web'], io), 6);
    assert.match(io.stderr, /swap needs a ready secondary.*\[HAKIT_E_BAD_STATE\]/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'stop', 'db'], io), 5);
    assert.match(io.stderr, /HAKIT_E_NO_MODULE/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'failover', 'maybe', 'web'], io), 2);
    assert.match(io.stderr, /failover takes "on" or "off"/);
  });
});

test('checker on|off MODULE [NAME] reaches the daemon; a bad switch or an unknown checker is refused', async () => {
  await withDaemon(async (sock) => {
    let io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'checker', 'off', 'web', 'app'], io), 0);
    assert.match(io.stdout, /checker app of web off/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'checker', 'on', 'web'], io), 0);
    assert.match(io.stdout, /checker all of web on/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'checker', 'off', 'web', 'nope'], io), 5);
    assert.match(io.stderr, /no checker named nope.*\[HAKIT_E_NO_CHECKER\]/);
    io = capture();
    assert.equal(await main(['node', 'hakit', '--socket', sock, 'checker', 'maybe', 'web'], io), 2);
    assert.match(io.stderr, /checker takes "on" or "off"/);
  });
});

test('status shows a running resync with its kind, rate and time left, and the quarantine', async () => {
  const { renderStatus } = await import('../../src/cli/remote.js');
  const base = report.modules[0]!;
  const running: StatusReport = { node: 'n1', modules: [{ ...base, replication: { upToDate: true, resync: { active: true, incremental: true, bytesDone: 25e6, bytesTotal: 100e6, filesDone: 3, filesTotal: 12, bytesPerSec: 12.5e6, etaSeconds: 6 } } }] };
  assert.match(renderStatus(running, (_c, s) => s), /incremental resync \[##\.{8}\] 25% 3\/12 files, 12\.5 MB\/s, 6 s left/);
  const kept: StatusReport = { node: 'n1', modules: [{ ...base, replication: { upToDate: true, resync: { active: false, bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 }, mode: 'receiving', quarantine: { dir: '/var/lib/hakit/modules/web/quarantine/x', paths: 2 } } as StatusReport['modules'][0]['replication'] }] };
  assert.match(renderStatus(kept, (_c, s) => s), /up to date, 2 paths kept in quarantine \(\/var\/lib\/hakit\/modules\/web\/quarantine\/x\), receiving/);
});
