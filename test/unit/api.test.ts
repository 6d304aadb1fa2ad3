// Defends DESIGN.md 6 (the status --json format, commands) and promise 7 (bad input is refused
// with a clear error and nothing is applied), through fastify.inject (STYLE.md 14).
import test from 'node:test';
import assert from 'node:assert/strict';
import { buildApi, type Controller, type CommandRequest } from '../../src/api/server.js';
import { HakitError } from '../../src/core/errors.js';
import type { StatusReport } from '../../src/api/types.js';

function fakeController(): Controller & { calls: { module: string; req: CommandRequest }[] } {
  const report: StatusReport = {
    node: 'n1',
    modules: [{ name: 'web', kind: 'mirror', state: 'PRIM', ready: true, reason: null, peer: { name: 'n2', state: 'SECOND' }, vip: ['198.18.0.100/24'],
      replication: { upToDate: true, resync: { active: false, bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 } } }],
  };
  const calls: { module: string; req: CommandRequest }[] = [];
  return {
    calls,
    status(module) {
      if (module && module !== 'web') throw new HakitError('NO_MODULE', { module });
      return report;
    },
    async command(module, req) {
      if (module !== 'web') throw new HakitError('NO_MODULE', { module });
      if (req.cmd === 'swap') throw new HakitError('BAD_STATE', { command: 'swap', module, state: 'ALONE', detail: 'swap needs a ready secondary' });
      calls.push({ module, req });
      return { message: `${req.cmd} ${module}: done` };
    },
    log() {
      return [{ time: 0, level: 'info', message: 'PRIM ready' }];
    },
    checker(module, on, name) {
      if (module !== 'web') throw new HakitError('NO_MODULE', { module });
      if (name !== undefined && name !== 'app') throw new HakitError('NO_CHECKER', { checker: name, known: 'app' });
      return { message: `checker ${name ?? 'all'} ${on ? 'on' : 'off'}` };
    },
  };
}

test('GET /v1/status returns the status --json object', async () => {
  const app = buildApi(fakeController());
  const r = await app.inject({ method: 'GET', url: '/v1/status' });
  assert.equal(r.statusCode, 200);
  const body = r.json() as StatusReport;
  assert.equal(body.node, 'n1');
  assert.deepEqual(Object.keys(body.modules[0] ?? {}).sort(), ['kind', 'name', 'peer', 'ready', 'reason', 'replication', 'state', 'vip']);
});

test('an unknown module answers 404 with its code', async () => {
  const app = buildApi(fakeController());
  const r = await app.inject({ method: 'GET', url: '/v1/status?module=db' });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().code, 'HAKIT_E_NO_MODULE');
});

test('a command is passed to the controller once, well formed', async () => {
  const ctl = fakeController();
  const app = buildApi(ctl);
  const r = await app.inject({ method: 'POST', url: '/v1/modules/web/commands', payload: { cmd: 'second', fullsync: true } });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(ctl.calls, [{ module: 'web', req: { cmd: 'second', fullsync: true } }]);
});

test('malformed commands are refused and never reach the controller', async () => {
  const ctl = fakeController();
  const app = buildApi(ctl);
  const bad = [
    { cmd: 'explode' },
    { cmd: 'failover' },
    { cmd: 'stop', fullsync: true },
    { cmd: 'stop', extra: 1 },
    'not json',
  ];
  for (const payload of bad) {
    const r = await app.inject({ method: 'POST', url: '/v1/modules/web/commands', payload, headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 400, `payload ${JSON.stringify(payload)} should be refused`);
    assert.equal(r.json().code, 'HAKIT_E_BAD_REQUEST');
    assert.ok(r.json().message.length > 20);
  }
  assert.equal(ctl.calls.length, 0);
});

test('a command refused in the current state answers 409 with the reason', async () => {
  const app = buildApi(fakeController());
  const r = await app.inject({ method: 'POST', url: '/v1/modules/web/commands', payload: { cmd: 'swap' } });
  assert.equal(r.statusCode, 409);
  assert.equal(r.json().code, 'HAKIT_E_BAD_STATE');
  assert.match(r.json().message, /swap needs a ready secondary/);
});

test('log lines are bounded and validated', async () => {
  const app = buildApi(fakeController());
  assert.equal((await app.inject({ url: '/v1/modules/web/log?lines=0' })).statusCode, 400);
  const ok = await app.inject({ url: '/v1/modules/web/log?lines=5' });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().entries.length, 1);
});

test('POST checkers validates {on, name?} and maps an unknown checker to 404', async () => {
  const app = buildApi(fakeController());
  let r = await app.inject({ method: 'POST', url: '/v1/modules/web/checkers', payload: { on: false, name: 'app' } });
  assert.equal(r.statusCode, 200);
  assert.match(r.json().message, /checker app off/);
  r = await app.inject({ method: 'POST', url: '/v1/modules/web/checkers', payload: { on: 'no' } });
  assert.equal(r.statusCode, 400);
  assert.equal(r.json().code, 'HAKIT_E_BAD_REQUEST');
  r = await app.inject({ method: 'POST', url: '/v1/modules/web/checkers', payload: { on: true, name: 'db', extra: 1 } });
  assert.equal(r.statusCode, 400);
  r = await app.inject({ method: 'POST', url: '/v1/modules/web/checkers', payload: { on: true, name: 'db' } });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().code, 'HAKIT_E_NO_CHECKER');
});
