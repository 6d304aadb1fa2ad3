// What each local probe finds (issue 6 item 2): tcp and http against a node server on
// 127.0.0.1 with a random port, process against a spawned `sleep`, custom with temp scripts,
// module through the context callback. Verdicts and details as an administrator reads them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BODY_LIMIT, type ProbeContext, probeFor } from '../../src/adapters/probes/index.js';
import type { CheckerConfig, ModuleState, ProcessMatch } from '../../src/core/config/types.js';

const never = new AbortController().signal;
const base = { intervalMs: 2000, timeoutMs: 2000, rise: 1, fall: 1, action: 'restart' as const };
const ctx = (over: Partial<ProbeContext> = {}): ProbeContext =>
  ({ moduleDir: '/nonexistent', binDir: '/nonexistent/bin', node: 'n1', module: 'app', vip: [], moduleState: () => undefined, ...over });
const check = (cfg: CheckerConfig, c: ProbeContext = ctx()) => probeFor(cfg, c).run(never);

describe('tcp probe', () => {
  test('up while something listens on host:port, down with the reason once it stopped', async () => {
    const server = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const cfg: CheckerConfig = { ...base, type: 'tcp', name: 'app', host: '127.0.0.1', port };
    try {
      assert.deepEqual(await check(cfg), { ok: true, detail: `connected to 127.0.0.1:${port}` });
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.deepEqual(await check(cfg), { ok: false, detail: `cannot connect to 127.0.0.1:${port}: ECONNREFUSED` });
  });
});

describe('http probe', () => {
  let server: Server;
  let url = '';
  const sockets = new Set<import('node:net').Socket>();
  before(async () => {
    server = createHttpServer((req, res) => {
      if (req.url === '/ok') res.end('status: ready\n');
      else if (req.url === '/fail') { res.statusCode = 503; res.end('down'); }
      else if (req.url === '/moved') { res.statusCode = 301; res.setHeader('location', '/ok'); res.end(); }
      else if (req.url === '/big') {
        // The match text comes after BODY_LIMIT bytes, and the body never ends: the probe must
        // judge on what it read, not wait for the rest.
        res.write('x'.repeat(BODY_LIMIT + 10));
        res.write('status: ready');
      } else if (req.url === '/slow') { /* never answers */ }
      else { res.statusCode = 404; res.end(); }
    });
    server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  const http = (path: string, over: { status?: number; body?: string; timeoutMs?: number } = {}): CheckerConfig =>
    ({ ...base, type: 'http', name: 'web', url: `${url}${path}`, status: over.status ?? 200, body: over.body, timeoutMs: over.timeoutMs ?? 2000 });

  test('the expected status is up', async () => {
    assert.deepEqual(await check(http('/ok')), { ok: true, detail: 'HTTP 200' });
    assert.deepEqual(await check(http('/fail', { status: 503 })), { ok: true, detail: 'HTTP 503' });
  });
  test('another status is down and says which; redirects are not followed', async () => {
    assert.deepEqual(await check(http('/fail')), { ok: false, detail: `HTTP 503 from ${url}/fail (expected 200)` });
    assert.deepEqual(await check(http('/moved')), { ok: false, detail: `HTTP 301 from ${url}/moved (expected 200)` });
  });
  test('the body must match the regular expression when one is set', async () => {
    assert.equal((await check(http('/ok', { body: '^status: ready$' }))).ok, false, 'no m flag: ^...$ spans the whole body');
    assert.deepEqual(await check(http('/ok', { body: 'status: (ready|ok)' })), { ok: true, detail: 'HTTP 200, body matches /status: (ready|ok)/' });
    assert.deepEqual(await check(http('/ok', { body: 'maintenance' })), { ok: false, detail: 'HTTP 200 but the body does not match /maintenance/' });
  });
  test('only the first BODY_LIMIT bytes are read: an endless body is judged, not waited for', async () => {
    assert.deepEqual(await check(http('/big', { body: 'ready' })), { ok: false, detail: `HTTP 200 but the body (first ${BODY_LIMIT} bytes) does not match /ready/` });
  });
  test('a server that never answers is a timeout', async () => {
    assert.deepEqual(await check(http('/slow', { timeoutMs: 300 })), { ok: false, detail: 'timed out after 300ms' });
  });
  test('nothing listening is down with the error code', async () => {
    const probe = http('/ok');
    const closed = { ...probe, url: 'http://127.0.0.1:1/' } as CheckerConfig;
    assert.deepEqual(await check(closed), { ok: false, detail: 'GET http://127.0.0.1:1/: ECONNREFUSED' });
  });
});

describe('process probe', () => {
  let child: ChildProcess;
  let root = '';
  // A sleep with an argument no other process on the machine has.
  const arg = `31${process.pid}.5`;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hakit-proc-'));
    child = spawn('sleep', [arg], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
  });
  after(async () => {
    child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });
  const proc = (match: ProcessMatch, min = 1, max?: number): CheckerConfig =>
    ({ ...base, type: 'process', name: 'p', match, min, max, class: 'prim', action: 'stopstart' });
  const cmdline = { by: 'cmdline' as const, pattern: `^sleep ${arg.replace('.', '\\.')}$` };

  test('by command line: counted, within min/max is up', async () => {
    assert.deepEqual(await check(proc(cmdline)), { ok: true, detail: `1 process matching /${cmdline.pattern}/ (want at least 1)` });
    assert.equal((await check(proc(cmdline, 2))).ok, false, 'fewer than min');
    assert.deepEqual(await check(proc(cmdline, 0, 0)), { ok: false, detail: `1 process matching /${cmdline.pattern}/ (want exactly 0)` });
  });
  test('by name (/proc/PID/comm)', async () => {
    const r = await check(proc({ by: 'name', name: 'sleep' }));
    assert.equal(r.ok, true);
    assert.match(r.detail, /^\d+ process(es)? named sleep \(want at least 1\)$/);
    assert.deepEqual(await check(proc({ by: 'name', name: `nosuch${process.pid}` })), { ok: false, detail: `0 processes named nosuch${process.pid} (want at least 1)` });
  });
  test('by pid file: up while that pid runs, down once it ended or the file is gone', async () => {
    const file = join(root, 'app.pid');
    await writeFile(file, `${child.pid}\n`);
    assert.deepEqual(await check(proc({ by: 'pidfile', path: file })), { ok: true, detail: `1 process with pid ${child.pid} from ${file} (want at least 1)` });
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    await writeFile(file, `${gone.pid}\n`);
    assert.equal((await check(proc({ by: 'pidfile', path: file }))).ok, false);
    assert.equal((await check(proc({ by: 'pidfile', path: join(root, 'none.pid') }))).detail, `cannot read ${join(root, 'none.pid')}: ENOENT (want at least 1)`);
  });
  test('a killed process stops counting, even while it is a zombie nobody reaps', async () => {
    // A copy of sleep under a unique name (matched by name: a zombie's cmdline is empty, its
    // comm is not). Its parent becomes `sleep 300` (exec), which never reaps it: once killed,
    // it stays a zombie in /proc.
    const name = `hkz${process.pid}`;
    await copyFile('/bin/sleep', join(root, name));
    await chmod(join(root, name), 0o755);
    const holder = spawn('sh', ['-c', `${join(root, name)} 300 & echo $!; exec sleep 300`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((r) => holder.stdout!.once('data', (d: Buffer) => r(d.toString()))));
      const m = { by: 'name' as const, name };
      assert.equal((await check(proc(m))).ok, true);
      process.kill(pid, 'SIGKILL');
      let state = '';
      for (let i = 0; i < 100 && state !== 'Z'; i++) {
        const st = await readFile(`/proc/${pid}/stat`, 'utf8');
        state = st.slice(st.lastIndexOf(')') + 2)[0] ?? '';
        if (state !== 'Z') await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(state, 'Z', 'precondition: the killed sleep is a zombie');
      assert.deepEqual(await check(proc(m)), { ok: false, detail: `0 processes named ${name} (want at least 1)` });
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('custom probe', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hakit-custom-'));
    await mkdir(join(root, 'bin'));
  });
  after(async () => { await rm(root, { recursive: true, force: true }); });
  const script = async (name: string, body: string, mode = 0o755): Promise<void> => {
    await writeFile(join(root, 'bin', name), `#!/bin/sh\n${body}\n`);
    await chmod(join(root, 'bin', name), mode);
  };
  const custom = (command: string, args: string[] = [], timeoutMs = 5000): Promise<{ ok: boolean; detail: string }> =>
    check({ ...base, type: 'custom', name: 'db', command, args, timeoutMs }, ctx({ moduleDir: root, binDir: join(root, 'bin') }));

  test('exit 0 is up, anything else down with the exit code and the first line of output', async () => {
    await script('ok', 'exit 0');
    await script('bad', 'echo "replica lag 30s" >&2; exit 3');
    assert.deepEqual(await custom('ok'), { ok: true, detail: 'exit 0' });
    assert.deepEqual(await custom('bad'), { ok: false, detail: 'exit 3: replica lag 30s' });
  });
  test('a first word UP or DOWN on stdout decides, whatever the exit code', async () => {
    await script('says-down', 'echo "DOWN: disk full"; exit 0');
    await script('says-up', 'echo "up all good"; exit 1');
    assert.deepEqual(await custom('says-down'), { ok: false, detail: 'DOWN: disk full' });
    assert.deepEqual(await custom('says-up'), { ok: true, detail: 'up all good' });
  });
  test('runs from the module dir with its arguments and hakit variables, clean environment', async () => {
    await script('env', 'echo "UP $1 $2 $(pwd) $HAKIT_MODULE $HAKIT_NODE $HAKIT_CHECKER ${HOME:-nohome}"');
    assert.deepEqual(await custom('env', ['--fast', 'x y']), { ok: true, detail: `UP --fast x y ${root} app n1 db nohome` });
  });
  test('an absolute command is used as is', async () => {
    await script('abs', 'echo UP absolute');
    assert.equal((await custom(join(root, 'bin', 'abs'))).detail, 'UP absolute');
  });
  test('missing or not executable: down, saying so', async () => {
    await script('noexec', 'exit 0', 0o644);
    assert.deepEqual(await custom('nope'), { ok: false, detail: `no such command ${join(root, 'bin', 'nope')}` });
    assert.deepEqual(await custom('noexec'), { ok: false, detail: `${join(root, 'bin', 'noexec')}: not executable` });
  });
  test('what the command left in the background is killed when it exits', async () => {
    await script('bg', `sleep 300 & echo $! > ${root}/bg.pid; exit 0`);
    assert.equal((await custom('bg')).ok, true);
    const pid = Number(await readFile(join(root, 'bg.pid'), 'utf8'));
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try { process.kill(pid, 0); await new Promise((r) => setTimeout(r, 20)); } catch { alive = false; }
    }
    assert.equal(alive, false);
  });
  test('a command that hangs is a failure after the timeout', async () => {
    await script('hang', 'exec sleep 300');
    assert.deepEqual(await custom('hang', [], 300), { ok: false, detail: 'timed out after 300ms' });
  });
});

describe('module probe', () => {
  const states: Record<string, string> = { db: 'PRIM', cache: 'WAIT' };
  const mod = (module: string, want: ModuleState[]): Promise<{ ok: boolean; detail: string }> =>
    check({ ...base, type: 'module', name: 'dep', module, states: want, action: 'wait' }, ctx({ moduleState: (n) => states[n] }));
  test('up while the other module is in a listed state', async () => {
    assert.deepEqual(await mod('db', ['PRIM', 'ALONE']), { ok: true, detail: 'module db is PRIM' });
    assert.deepEqual(await mod('cache', ['PRIM', 'ALONE']), { ok: false, detail: 'module cache is WAIT (expected PRIM or ALONE)' });
    assert.deepEqual(await mod('gone', ['PRIM']), { ok: false, detail: 'module gone does not run on this node' });
  });
});
