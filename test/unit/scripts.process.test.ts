// What only the real runner can show (DESIGN.md 6 "Scripts", STYLE.md 8): background children
// that keep the log open, scripts that ignore SIGTERM, log names from the wall clock, a log
// directory that cannot be created, and an event loop that keeps turning while scripts run.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessScriptRunner, type ScriptName, type ScriptRequest } from '../../src/adapters/scripts/index.js';
import { running } from '../helpers/proc.js';

const roots: string[] = [];
const pids: number[] = [];
after(async () => {
  for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function setup(): Promise<{ root: string; write(script: ScriptName, body: string): Promise<void>; req(script: ScriptName, over?: Partial<ScriptRequest>): ScriptRequest }> {
  const root = await mkdtemp(join(tmpdir(), 'hakit-scripts-'));
  roots.push(root);
  const moduleDir = join(root, 'modules', 'web');
  await mkdir(join(moduleDir, 'bin'), { recursive: true });
  return {
    root,
    write: async (script, body) => {
      const f = join(moduleDir, 'bin', script);
      await writeFile(f, `#!/bin/sh\n${body}`);
      await chmod(f, 0o755);
    },
    req: (script, over = {}) => ({
      module: 'web', node: 'n1', role: 'prim', script, binDir: join(moduleDir, 'bin'), moduleDir,
      args: ['STOP', 'PRIM', 'start'], timeoutMs: 5000, stopTimeoutMs: 5000, logDir: join(root, 'logs'), ...over,
    }),
  };
}

describe('ProcessScriptRunner', () => {
  test('a start script that leaves its application running in the background (holding stdout) ends the run; the application is not killed', async () => {
    const s = await setup();
    await s.write('start_prim', `sleep 30 & echo $! > '${s.root}/app.pid'\necho started\nexit 0\n`);
    const r = await new ProcessScriptRunner().run(s.req('start_prim', { timeoutMs: 10_000 }));
    const app = Number(await readFile(join(s.root, 'app.pid'), 'utf8'));
    pids.push(app);
    assert.deepEqual({ ok: r.ok, killed: r.killed, detail: r.detail }, { ok: true, killed: false, detail: 'exit 0' });
    assert.equal(await running(app), true, 'the background application still runs after the script ended');
    assert.match(await readFile(r.logFile!, 'utf8'), /started\n# hakit: exit 0/);
  });

  test('the working directory is the module directory', async () => {
    const s = await setup();
    await s.write('prestart', `pwd > '${s.root}/cwd'\n`);
    const req = s.req('prestart');
    assert.equal((await new ProcessScriptRunner().run(req)).ok, true);
    assert.equal((await readFile(join(s.root, 'cwd'), 'utf8')).trim(), req.moduleDir);
  });

  test('a script that ignores SIGTERM is killed with SIGKILL after the grace', async () => {
    const s = await setup();
    await s.write('start_second', `trap '' TERM\nsleep 30 & echo $! > '${s.root}/child.pid'\nwait\nwait\n`);
    // The timeout leaves the shell ample time to install its trap even on a loaded machine (with
    // 200 ms a slow start let SIGTERM arrive before `trap`, and the test failed under load).
    const r = await new ProcessScriptRunner({ killGraceMs: 200 }).run(s.req('start_second', { timeoutMs: 1500 }));
    const child = Number(await readFile(join(s.root, 'child.pid'), 'utf8'));
    pids.push(child);
    assert.deepEqual({ ok: r.ok, killed: r.killed, signal: r.signal, detail: r.detail }, { ok: false, killed: true, signal: 'SIGKILL', detail: 'killed after 1.5s' });
    assert.equal(await running(child), false, 'the child that ignored SIGTERM too is gone');
  });

  test('log names come from the wall clock in ISO 8601 basic form, distinct and in order within one millisecond', async () => {
    const s = await setup();
    await s.write('stop_both', 'exit 0\n');
    const runner = new ProcessScriptRunner({ now: () => Date.UTC(2024, 0, 2, 3, 4, 5, 678) });
    const a = await runner.run(s.req('stop_both'));
    const b = await runner.run(s.req('stop_both'));
    assert.equal(a.logFile, join(s.root, 'logs', '20240102T030405.678Z-stop_both.log'));
    assert.equal(b.logFile, join(s.root, 'logs', '20240102T030405.679Z-stop_both.log'));
    assert.match(await readFile(a.logFile!, 'utf8'), /started=2024-01-02T03:04:05.678Z/);
  });

  test('a log directory that cannot be created does not keep the script from running', async () => {
    const s = await setup();
    await s.write('start_prim', `touch '${s.root}/ran'\n`);
    await writeFile(join(s.root, 'file'), '');
    const r = await new ProcessScriptRunner().run(s.req('start_prim', { logDir: join(s.root, 'file', 'logs') }));
    assert.equal(r.ok, true);
    assert.equal(r.logFile, null);
    assert.match(r.detail, /^exit 0 \(no log: .*ENOTDIR/);
    await readFile(join(s.root, 'ran'));
  });

  test('the event loop keeps turning while a script runs', async () => {
    const s = await setup();
    await s.write('start_prim', 'sleep 30\n');
    let ticks = 0;
    const iv = setInterval(() => ticks++, 10);
    try {
      const r = await new ProcessScriptRunner().run(s.req('start_prim', { timeoutMs: 300 }));
      assert.equal(r.killed, true);
      assert.ok(ticks >= 3, `timer ticks while the script ran: ${ticks}`);
    } finally {
      clearInterval(iv);
    }
  });

  test('a directory in place of the script is refused', async () => {
    const s = await setup();
    await mkdir(join(s.root, 'modules', 'web', 'bin', 'poststop'));
    const r = await new ProcessScriptRunner().run(s.req('poststop'));
    assert.deepEqual({ ok: r.ok, missing: r.missing, detail: r.detail }, { ok: false, missing: false, detail: 'not a regular file' });
  });
});
