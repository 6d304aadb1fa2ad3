// One contract for the rfs seam (STYLE.md 4), run against the in-memory FakeRfs and the real rfs
// child process with a FUSE mount: mount state and mode rules the daemon relies on (DESIGN.md 4).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/prereq.js';
import { FakeRfs, RfsProcess, type Rfs, recoverStaleMount } from '../../src/adapters/fuse/index.js';

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
