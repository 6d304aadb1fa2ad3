/**
 * `scale` (issue 7 item 5, issue 5 "Performance"): the incremental resync after the same small
 * change must not grow with the size of the tree. Trees of small files (1000 to a directory):
 * `small` and ten times as many (`large`), 4 KiB each; with --scale also `huge`, 1 000 000 files
 * of 512 bytes (smaller files so that its first full sync and its 2 x 1 M files fit in about 15
 * minutes and 1 GB of disk; the change is the same), one run whatever --runs says. For each, a
 * new testbed, the first full sync (n1 PRIM), the module on n2 stopped cleanly, the same change
 * on n1 (ALONE) through the mount — 10 files rewritten, 5 new, 2 deleted, 1 renamed — then n2
 * started again. Measured: the resync served (n1's daemon log: request served -> done, as in
 * `resync`). Full run: 1 000 and 10 000 files; --quick: 200 and 2 000.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '../../test/testbed/cluster.js';
import { pseudoRandomBytes } from '../../test/helpers/data.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';
import { servedMs } from './resync.js';
import { monoMs } from '../harness.js';

const DIR = '/srv/hakit-scale';
const BOUND_MS = 900_000;
const CHANGE = [
  ...Array.from({ length: 10 }, (_v, i) => `head -c 4096 /dev/urandom > d0/f${i * 7}`),
  ...Array.from({ length: 5 }, (_v, i) => `head -c 4096 /dev/urandom > d0/new${i}`),
  'rm d0/f1 d0/f2',
  'mv d0/f3 d0/f3.renamed',
].join(' && ');

function writeTree(root: string, files: number, bytes: number): void {
  for (let i = 0; i < files; i++) {
    const d = join(root, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i % 1000}`), pseudoRandomBytes(bytes, i + 1));
  }
}

/** A tree of the figure: files, their size, and the metric it fills. */
interface Size { readonly files: number; readonly bytes: number; readonly id: string; readonly runs: number }

export const scale: Figure = {
  name: 'scale',
  runs: { full: 3, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const base = ctx.quick ? [200, 2000] : [1000, 10_000];
    const sizes: Size[] = [
      { files: base[0]!, bytes: 4096, id: 'scale.incr.small', runs: ctx.runs },
      { files: base[1]!, bytes: 4096, id: 'scale.incr.large', runs: ctx.runs },
      ...(ctx.scale ? [{ files: 1_000_000, bytes: 512, id: 'scale.incr.huge', runs: 1 }] : []),
    ];
    const m = new Map(sizes.map((z): [string, Metric] => {
      const metric: Metric = {
        id: z.id, figure: 'scale', unit: 'ms', samples: [],
        title: `incremental resync after the same 18-file change, tree of ${z.files} files of ${z.bytes === 4096 ? '4 KiB' : `${z.bytes} bytes`}: the resync served (n1's log)`,
        ...(z.id === 'scale.incr.small' ? {} : { peer: 'scale.incr.small', goal: { ratioBelow: 1.5, text: `does not grow with the tree (${z.files} vs ${base[0]!} files: ratio < 1.5)` } }),
      };
      metrics.push(metric);
      return [z.id, metric];
    }));
    // The huge tree last (after every run of the others): its run is long and its cleanup heavy.
    const order = [...Array.from({ length: ctx.runs }, (_v, k) => sizes.filter((z) => z.id !== 'scale.incr.huge').map((z) => ({ z, run: k + 1 }))).flat(),
      ...sizes.filter((z) => z.id === 'scale.incr.huge').map((z) => ({ z, run: 1 }))];
    for (const { z, run } of order) {
      const tag = `run ${run}/${z.runs}, ${z.files} files`;
      const c = await TestCluster.create({ mountPaths: [DIR], moduleYaml: ['replication:', `  dirs: [ { path: ${DIR} } ]`].join('\n'), defaultPrimary: 'n1' });
      try {
        const t0 = monoMs();
        writeTree(c.tb.host('n1').hostPath(DIR), z.files, z.bytes);
        if (z.files > 100_000) ctx.log(`${tag}: tree written in ${((monoMs() - t0) / 1000).toFixed(0)} s`);
        const t1 = monoMs();
        await c.startDaemon('n1');
        await c.startDaemon('n2');
        for (const n of c.nodes) if ((await c.hakit(n, ['start', 'web'])).code !== 0) throw new Error(`${tag}: hakit start web on ${n} failed`);
        // PRIM: n2 is SECOND, up to date with n1's generation (the first full sync is done).
        await c.waitState('n1', 'PRIM', BOUND_MS);
        if (z.files > 100_000) ctx.log(`${tag}: first full sync done in ${((monoMs() - t1) / 1000).toFixed(0)} s`);
        if ((await c.hakit('n2', ['stop', 'web'])).code !== 0) throw new Error(`${tag}: hakit stop web on n2 failed`);
        await c.waitState('n1', 'ALONE', 30_000);
        const r = await c.tb.host('n1').exec(['sh', '-c', `cd ${DIR} && ${CHANGE}`], { timeoutMs: 60_000 });
        if (r.code !== 0) throw new Error(`${tag}: the change failed: ${r.stderr}`);
        if ((await c.hakit('n2', ['start', 'web'])).code !== 0) throw new Error(`${tag}: hakit start web on n2 failed`);
        // PRIM again: n2 resynced (its status may say up to date before it heard n1's newer generation).
        await c.waitState('n1', 'PRIM', BOUND_MS);
        const ms = servedMs(join(c.tb.host('n1').dir, 'daemon.log'), 'incremental');
        m.get(z.id)!.samples.push(ms);
        ctx.log(`${tag}: incremental resync served in ${ms} ms`);
      } finally {
        // Removing 2 x 1 M files takes minutes, more than the testbed's default 20 s.
        await c.dispose(z.files > 100_000 ? 900_000 : undefined);
      }
    }
  },
};
