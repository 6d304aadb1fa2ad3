// One contract for the rfs seam (STYLE.md 4), run against the in-memory FakeRfs and the real rfs
// child process with a FUSE mount: mount state and mode rules the daemon relies on (DESIGN.md 4).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { FakeRfs, RfsProcess, type Rfs, recoverStaleMount } from '../../src/adapters/fuse/index.js';
import { FakeModuleRfs } from '../../src/adapters/fuse/fake-module.js';
import type { ModuleRfs, RfsConfig } from '../../src/adapters/fuse/rfs.js';
import { generateKey } from '../../src/adapters/key/cluster-key.js';

function contract(name: string, opts: { skip?: string }, make: () => { rfs: Rfs; close: () => Promise<unknown> }): void {
  describe(`rfs contract: ${name}`, opts, () => {
    test('mount, set-mode, stats, unmount follow the same rules', async () => {
      const base = fs.mkdtempSync('/tmp/hakit-fusec-');
      const dir = join(base, 'd');
      fs.mkdirSync(dir);
      const { rfs, close } = make();
      try {
        assert.equal((await rfs.stats()).mounted, false);
        await assert.rejects(rfs.setMode('ro'), /HAKIT_E_RFS|nothing is mounted/);
        await rfs.mount(dir, 'ro');
        let st = await rfs.stats();
        assert.equal(st.mounted, true);
        assert.equal(st.dir, dir);
        assert.equal(st.mode, 'ro');
        await assert.rejects(rfs.mount(dir, 'rw'), /already/);
        await rfs.setMode('rw');
        assert.equal((await rfs.stats()).mode, 'rw');
        await rfs.setMode('blocked');
        assert.equal((await rfs.stats()).mode, 'blocked');
        assert.deepEqual(await rfs.unmount(), { lazy: false });
        st = await rfs.stats();
        assert.equal(st.mounted, false);
        assert.deepEqual(await rfs.unmount(), { lazy: false }, 'unmount is idempotent');
      } finally {
        await close();
        await recoverStaleMount(dir).catch(() => undefined);
        fs.rmSync(base, { recursive: true, force: true });
      }
    });
  });
}

contract('FakeRfs', {}, () => ({ rfs: new FakeRfs(), close: async () => undefined }));
contract('RfsProcess (real FUSE)', needs('root', 'fuse'), () => {
  const p = new RfsProcess();
  return { rfs: p, close: () => p.stop() };
});

// The module rfs seam (ModuleRfs) as the daemon's RfsSupervisor drives it: the real child
// configured for a module (its link listening on 127.0.0.1, no peer) and FakeModuleRfs.
function moduleContract(name: string, opts: { skip?: string }, make: () => ModuleRfs): void {
  describe(`module rfs contract: ${name}`, opts, () => {
    test('configure once, then mount-all modes, replicate modes, resync requests; stop ends it', async () => {
      const base = fs.mkdtempSync('/tmp/hakit-fusem-');
      const dirs = [join(base, 'a'), join(base, 'b')];
      for (const d of dirs) fs.mkdirSync(d);
      const keyFile = join(base, 'cluster.key');
      fs.writeFileSync(keyFile, generateKey(), { mode: 0o600 });
      const config: RfsConfig = {
        module: 'web', cluster: 'c', node: 'n1', peer: 'n2', keyFile,
        dirs: dirs.map((path) => ({ path, exclude: [] })),
        listen: { address: '127.0.0.1', port: 0 }, peerAddress: { address: '127.0.0.1', port: 9 }, timeoutMs: 500,
      };
      const rfs = make();
      try {
        await assert.rejects(rfs.mountAll('rw'), /HAKIT_E_RFS|configure first/);
        await rfs.configure(config);
        await assert.rejects(rfs.configure(config), /configured already/);
        assert.equal((await rfs.stats()).mounted, false);
        await rfs.mountAll('ro');
        assert.equal((await rfs.stats()).mode, 'ro');
        await rfs.mountAll('rw');
        const st = await rfs.stats();
        assert.equal(st.mounted, true);
        assert.equal(st.mode, 'rw');
        await rfs.replicate('alone');
        // The file systems below the rw mounts are written out (a real child: syncfs of each dir).
        await rfs.flush();
        await rfs.expectSync(60_000);
        await rfs.stopResync();
        await rfs.mountAll('none');
        assert.equal((await rfs.stats()).mounted, false);
      } finally {
        await rfs.stop();
        for (const d of dirs) await recoverStaleMount(d).catch(() => undefined);
        fs.rmSync(base, { recursive: true, force: true });
      }
      await rfs.exited;
      await assert.rejects(rfs.stats(), /HAKIT_E_RFS|not running/);
    });

    test('self-fencing: rw mounts block after fenceMs without a line from the daemon, `fenced` comes before the next answer, rw stays blocked until unfence; ro clears it', async () => {
      const base = fs.mkdtempSync('/tmp/hakit-fusef-');
      const dir = join(base, 'a');
      fs.mkdirSync(dir);
      const keyFile = join(base, 'cluster.key');
      fs.writeFileSync(keyFile, generateKey(), { mode: 0o600 });
      const rfs = make();
      const events: string[] = [];
      const pushed: string[] = [];
      rfs.onEvent((e) => { if (e.event === 'stats') pushed.push(e.stats.mode); else events.push(e.event); });
      const silent = (): Promise<void> => new Promise((r) => setTimeout(r, 400));
      try {
        await rfs.configure({
          module: 'web', cluster: 'c', node: 'n1', peer: 'n2', keyFile, dirs: [{ path: dir, exclude: [] }],
          listen: { address: '127.0.0.1', port: 0 }, peerAddress: { address: '127.0.0.1', port: 9 }, timeoutMs: 500, fenceMs: 200,
        });
        await rfs.mountAll('ro');
        await silent();
        assert.equal((await rfs.stats()).mode, 'ro', 'a read-only mount fenced');
        await rfs.mountAll('rw');
        for (let i = 0; i < 8; i++) { rfs.keepalive(); await new Promise((r) => setTimeout(r, 50)); }
        assert.equal((await rfs.stats()).mode, 'rw', 'fenced although keepalives came');
        assert.deepEqual(events, []);
        await silent();
        const st = await rfs.stats();
        assert.deepEqual(events, ['fenced']);
        assert.equal(st.mode, 'blocked');
        await rfs.mountAll('rw');
        assert.equal((await rfs.stats()).mode, 'blocked', 'mount-all rw lifted the fence');
        await rfs.unfence();
        assert.equal((await rfs.stats()).mode, 'rw');
        await silent();
        // Keepalives alone (no request): the daemon heard again is told it was fenced.
        for (let i = 0; i < 20 && events.length < 2; i++) { rfs.keepalive(); await new Promise((r) => setTimeout(r, 50)); }
        assert.deepEqual(events, ['fenced', 'fenced'], 'no fenced event within 1 s of keepalives after the second fence');
        await rfs.mountAll('ro');
        assert.deepEqual(events, ['fenced', 'fenced']);
        await rfs.mountAll('rw');
        assert.equal((await rfs.stats()).mode, 'rw', 'ro did not clear the fence');
        // The status comes unasked when it changes (RfsEvent `stats`, checked every second).
        const since = pushed.length;
        await rfs.mountAll('ro');
        for (let i = 0; i < 30 && !pushed.slice(since).includes('ro'); i++) await new Promise((r) => setTimeout(r, 100));
        assert.ok(pushed.slice(since).includes('ro'), `no stats event with mode ro in 3 s after mount-all ro: ${JSON.stringify(pushed)}`);
        await rfs.mountAll('none');
      } finally {
        await rfs.stop();
        await recoverStaleMount(dir).catch(() => undefined);
        fs.rmSync(base, { recursive: true, force: true });
      }
    });
  });
}

moduleContract('FakeModuleRfs', {}, () => new FakeModuleRfs());
moduleContract('RfsProcess configured (real FUSE)', needs('root', 'fuse'), () => new RfsProcess({ stderr: 'ignore' }));
