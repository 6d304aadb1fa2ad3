// Contract of the state-store seam (STYLE.md 3, 4; DESIGN.md 5 "generations persisted"): the same
// checks against FileStateStore and MemoryStateStore, then the real store's crash-safety.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStateStore, type MemoryDisk, MemoryStateStore, type StateStore, moduleStateDir } from '../../src/adapters/store/index.js';
import { isHakitError } from '../../src/core/errors.js';

interface Harness {
  store: StateStore;
  /** Puts raw bytes where the store keeps `name` (to model a torn or hand-edited file). */
  putRaw(name: string, text: string): Promise<void>;
  /** A new store instance over the same durable data, as after a daemon restart. */
  reopen(): StateStore;
}

const roots: string[] = [];
after(async () => { for (const r of roots) await rm(r, { recursive: true, force: true }); });

async function tempRoot(): Promise<string> {
  const r = await mkdtemp(join(tmpdir(), 'hakit-store-'));
  roots.push(r);
  return r;
}

const harnesses: Record<string, () => Promise<Harness>> = {
  file: async () => {
    const dir = moduleStateDir(await tempRoot(), 'web');
    const store = new FileStateStore(dir);
    return {
      store,
      putRaw: async (name, text) => { await store.write(name, 0); await writeFile(store.fileOf(name), text); },
      reopen: () => new FileStateStore(dir),
    };
  },
  memory: async () => {
    const disk: MemoryDisk = new Map();
    return {
      store: new MemoryStateStore(disk),
      putRaw: async (name, text) => { disk.set(name, text); },
      reopen: () => new MemoryStateStore(disk),
    };
  },
};

const corrupt = (name: string) => (e: unknown): boolean =>
  isHakitError(e) && e.code === 'HAKIT_E_STATE_CORRUPT' && e.message.includes(`${name}.json`) && !(e instanceof SyntaxError);

for (const [kind, make] of Object.entries(harnesses)) {
  describe(`StateStore contract: ${kind}`, () => {
    test('an empty store reads undefined and lists nothing', async () => {
      const { store } = await make();
      assert.equal(await store.read('generation'), undefined);
      assert.deepEqual(await store.list(), []);
    });

    test('values come back as JSON copies, unaffected by later changes to the written object', async () => {
      const { store } = await make();
      const value = { id: 'g-7', history: ['g-5', 'g-6'], at: new Date(Date.UTC(2024, 1, 2)), nothing: undefined };
      await store.write('generation', value);
      value.history.push('mutated');
      const back = await store.read<Record<string, unknown>>('generation');
      assert.deepEqual(back, { id: 'g-7', history: ['g-5', 'g-6'], at: '2024-02-02T00:00:00.000Z' });
      assert.notEqual(back, await store.read('generation'), 'each read returns a fresh copy');
    });

    test('writes to one name apply in call order; remove and list', async () => {
      const { store } = await make();
      await Promise.all([store.write('role', 'PRIM'), store.write('role', 'SECOND'), store.write('role', 'ALONE'), store.write('a.b-c_1', 1)]);
      assert.equal(await store.read('role'), 'ALONE');
      assert.deepEqual(await store.list(), ['a.b-c_1', 'role']);
      await store.remove('role');
      await store.remove('role');
      assert.equal(await store.read('role'), undefined);
      assert.deepEqual(await store.list(), ['a.b-c_1']);
    });

    test('the first writes of a new store, to many names at once, all land (none is swept as a leftover)', async () => {
      // 40 fresh stores x 20 names: the file store's sweep of crash leftovers once raced with them.
      for (let round = 0; round < 40; round++) {
        const { store } = await make();
        const names = Array.from({ length: 20 }, (_, i) => `n${i}`);
        await Promise.all(names.map((n, i) => store.write(n, i)));
        assert.deepEqual(await store.list(), [...names].sort());
        for (const [i, n] of names.entries()) assert.equal(await store.read(n), i);
      }
    });

    test('what a resolved write stored survives a restart (a new store over the same data)', async () => {
      const h = await make();
      await h.store.write('generation', { id: 'g-1' });
      await h.store.write('generation', { id: 'g-2' });
      await h.store.write('gone', true);
      await h.store.remove('gone');
      const again = h.reopen();
      assert.deepEqual(await again.read('generation'), { id: 'g-2' });
      assert.deepEqual(await again.list(), ['generation']);
    });

    test('a torn or corrupt document is reported as HAKIT_E_STATE_CORRUPT naming the file', async () => {
      const h = await make();
      await h.putRaw('generation', '{"id": "g-3", "hist');
      await assert.rejects(h.store.read('generation'), corrupt('generation'));
      await h.putRaw('empty', '');
      await assert.rejects(h.store.read('empty'), (e) => corrupt('empty')(e) && /empty/.test((e as Error).message));
      await h.store.write('generation', { id: 'g-4' });
      assert.deepEqual(await h.store.read('generation'), { id: 'g-4' }, 'a new write replaces a corrupt document');
    });

    test('bad names and values without a JSON form are refused, nothing is stored', async () => {
      const { store } = await make();
      for (const bad of ['', '../x', 'a/b', '.hidden', 'x.tmp', 'a..b']) {
        await assert.rejects(async () => store.write(bad, 1), { code: 'HAKIT_E_INTERNAL' }, `name ${JSON.stringify(bad)}`);
        await assert.rejects(async () => store.read(bad), { code: 'HAKIT_E_INTERNAL' });
      }
      await assert.rejects(async () => store.write('fn', () => 1), { code: 'HAKIT_E_INTERNAL' });
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await assert.rejects(async () => store.write('cyclic', cyclic), { code: 'HAKIT_E_INTERNAL' });
      assert.deepEqual(await store.list(), []);
    });
  });
}

describe('FileStateStore on a real disk', () => {
  test('a crash in the middle of a write (a .tmp left behind) leaves the old value readable', async () => {
    const dir = join(await tempRoot(), 'modules', 'web');
    const store = new FileStateStore(dir);
    await store.write('generation', { id: 'g-1' });
    // What a crash between "write tmp" and "rename" leaves: a partial temporary file.
    const torn = `${store.fileOf('generation')}.4242.1.tmp`;
    await writeFile(torn, '{"id": "g-2", "hi');
    const restarted = new FileStateStore(dir);
    assert.deepEqual(await restarted.read('generation'), { id: 'g-1' });
    assert.deepEqual(await restarted.list(), ['generation']);
    await restarted.write('other', 1);
    assert.deepEqual((await readdir(dir)).sort(), ['generation.json', 'other.json'], 'the first write sweeps leftover .tmp files');
  });

  test('files are plain JSON, private to root, under <state-dir>/modules/<module>/<name>.json', async () => {
    const root = await tempRoot();
    const store = new FileStateStore(moduleStateDir(root, 'db'));
    await store.write('generation', { id: 'g-9' });
    const file = join(root, 'modules', 'db', 'generation.json');
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { id: 'g-9' });
    assert.equal((await stat(file)).mode & 0o077, 0);
  });

  test('an unusable state directory gives HAKIT_E_STATE_IO naming the file', async () => {
    const root = await tempRoot();
    await writeFile(join(root, 'modules'), 'not a directory');
    const store = new FileStateStore(moduleStateDir(root, 'db'));
    await assert.rejects(store.write('generation', 1), (e) => isHakitError(e) && e.code === 'HAKIT_E_STATE_IO' && e.message.includes('generation.json'));
    await assert.rejects(store.read('generation'), { code: 'HAKIT_E_STATE_IO' });
  });
});
