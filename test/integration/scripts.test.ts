// Scripts others could change are refused when hakit runs as root (STYLE.md 8, as keepalived's
// script security): the file and every directory above it must be owned by root and not
// writable by group or others (a sticky directory such as /tmp may be writable).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessScriptRunner, type ScriptRequest } from '../../src/adapters/scripts/index.js';
import { needs } from '../helpers/prereq.js';

const roots: string[] = [];
after(async () => { for (const r of roots) await rm(r, { recursive: true, force: true }); });

interface Setup {
  root: string;
  bin: string;
  file: string;
  req: ScriptRequest;
  ran(): Promise<boolean>;
}

async function setup(): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'hakit-scripts-sec-'));
  roots.push(root);
  const moduleDir = join(root, 'modules', 'web');
  const bin = join(moduleDir, 'bin');
  await mkdir(bin, { recursive: true, mode: 0o755 });
  const file = join(bin, 'start_prim');
  await writeFile(file, `#!/bin/sh\ntouch '${root}/ran'\n`);
  await chmod(file, 0o755);
  return {
    root, bin, file,
    req: { module: 'web', node: 'n1', role: 'prim', script: 'start_prim', binDir: bin, moduleDir, args: ['STOP', 'PRIM', 'start'], timeoutMs: 5000, stopTimeoutMs: 5000, logDir: join(root, 'logs') },
    ran: () => readFile(join(root, 'ran')).then(() => true, () => false),
  };
}

describe('script security when running as root', needs('root'), () => {
  test('a root-owned script not writable by others runs', async () => {
    const s = await setup();
    const r = await new ProcessScriptRunner().run(s.req);
    assert.equal(r.ok, true, r.detail);
    assert.equal(await s.ran(), true);
  });

  test('a script owned by another user is refused, and runs when the check is off', async () => {
    const s = await setup();
    await chown(s.file, 1000, 1000);
    const r = await new ProcessScriptRunner().run(s.req);
    assert.equal(r.ok, false);
    assert.equal(r.logFile, null);
    assert.match(r.detail, new RegExp(`^Refusing to run ${s.file} as root: ${s.file} is owned by uid 1000, not root\\.`));
    assert.equal(await s.ran(), false, 'the refused script did not run');
    const off = await new ProcessScriptRunner({ checkOwnership: false }).run(s.req);
    assert.equal(off.ok, true, off.detail);
  });

  test('a script writable by its group is refused', async () => {
    const s = await setup();
    await chmod(s.file, 0o775);
    const r = await new ProcessScriptRunner().run(s.req);
    assert.equal(r.ok, false);
    assert.ok(r.detail.includes(`${s.file} is writable by group or others`), r.detail);
    assert.equal(await s.ran(), false);
  });

  test('a bin directory writable by others is refused; with the sticky bit it is accepted', async () => {
    const s = await setup();
    await chmod(s.bin, 0o777);
    const r = await new ProcessScriptRunner().run(s.req);
    assert.equal(r.ok, false);
    assert.ok(r.detail.includes(`${s.bin} is writable by group or others`), r.detail);
    assert.equal(await s.ran(), false);
    await chmod(s.bin, 0o1777);
    const sticky = await new ProcessScriptRunner().run(s.req);
    assert.equal(sticky.ok, true, sticky.detail);
  });

  test('a symbolic link to a script in a directory others can write is refused', async () => {
    const s = await setup();
    const unsafe = join(s.root, 'unsafe');
    await mkdir(unsafe);
    await chmod(unsafe, 0o777);
    const target = join(unsafe, 'real-start');
    await writeFile(target, `#!/bin/sh\ntouch '${s.root}/ran'\n`);
    await chmod(target, 0o755);
    await rm(s.file);
    await symlink(target, s.file);
    const r = await new ProcessScriptRunner().run(s.req);
    assert.equal(r.ok, false);
    assert.ok(r.detail.includes(`${unsafe} is writable by group or others`), r.detail);
    assert.equal(await s.ran(), false);
  });

  test('a script without any execute bit is refused even though root may execute anything', async () => {
    const s = await setup();
    await chmod(s.file, 0o644);
    const r = await new ProcessScriptRunner().run(s.req);
    assert.deepEqual({ ok: r.ok, detail: r.detail }, { ok: false, detail: 'not executable' });
    assert.equal(await s.ran(), false);
  });
});
