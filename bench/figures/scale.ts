/**
 * `scale` (issue 7 item 5, issue 5 "Performance"): the incremental resync after the same small
 * change must not grow with the size of the tree. Two trees of small files (4 KiB each, 1000 to a
 * directory): `small` and ten times as many (`large`); for each, a new testbed, the first full
 * sync, the module on n2 stopped cleanly, the same change on n1 (ALONE) through the mount — 10
 * files rewritten, 5 new, 2 deleted, 1 renamed — then n2 started again. Measured: the resync
 * served (n1's daemon log: request served -> done, as in `resync`). Full run: 1 000 and 10 000
 * files; --quick: 200 and 2 000. The 1 M-file run of the issue is not part of this figure yet
 * (the full sync of a million files through FUSE would take most of the 30-minute budget).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '../../test/testbed/cluster.js';
import { pseudoRandomBytes } from '../../test/helpers/data.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';
import { servedMs } from './resync.js';

const DIR = '/srv/hakit-scale';
const BOUND_MS = 900_000;
const CHANGE = [
  ...Array.from({ length: 10 }, (_v, i) => `head -c 4096 /dev/urandom > d0/f${i * 7}`),
  ...Array.from({ length: 5 }, (_v, i) => `head -c 4096 /dev/urandom > d0/new${i}`),
  'rm d0/f1 d0/f2',
  'mv d0/f3 d0/f3.renamed',
].join(' && ');

function writeTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const d = join(root, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i % 1000}`), pseudoRandomBytes(4096, i + 1));
  }
}

export const scale: Figure = {
  name: 'scale',
  runs: { full: 3, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const sizes = ctx.quick ? [200, 2000] : [1000, 10_000];
    const m = sizes.map((n, i) => {
      const metric: Metric = {
        id: i === 0 ? 'scale.incr.small' : 'scale.incr.large', figure: 'scale', unit: 'ms', samples: [],
        title: `incremental resync after the same 18-file change, tree of ${n} files of 4 KiB: the resync served (n1's log)`,
        ...(i === 0 ? {} : { peer: 'scale.incr.small', goal: { ratioBelow: 1.5, text: `does not grow with the tree (${sizes[1]} vs ${sizes[0]} files: ratio < 1.5)` } }),
      };
      metrics.push(metric);
      return metric;
    });
    for (let run = 1; run <= ctx.runs; run++) {
      for (const [i, files] of sizes.entries()) {
        const tag = `run ${run}/${ctx.runs}, ${files} files`;
        const c = await TestCluster.create({ mountPaths: [DIR], moduleYaml: ['replication:', `  dirs: [ { path: ${DIR} } ]`].join('\n'), defaultPrimary: 'n1' });
        try {
          writeTree(c.tb.host('n1').hostPath(DIR), files);
          await c.startDaemon('n1');
          await c.startDaemon('n2');
          for (const n of c.nodes) if ((await c.hakit(n, ['start', 'web'])).code !== 0) throw new Error(`${tag}: hakit start web on ${n} failed`);
          await c.waitFor(`${tag}: n2 up to date after the first sync`, async () => (await c.status('n2'))?.replication?.upToDate === true, BOUND_MS, undefined, 200);
          await c.waitState('n1', 'PRIM', 30_000);
          if ((await c.hakit('n2', ['stop', 'web'])).code !== 0) throw new Error(`${tag}: hakit stop web on n2 failed`);
          await c.waitState('n1', 'ALONE', 30_000);
          const r = await c.tb.host('n1').exec(['sh', '-c', `cd ${DIR} && ${CHANGE}`], { timeoutMs: 60_000 });
          if (r.code !== 0) throw new Error(`${tag}: the change failed: ${r.stderr}`);
          if ((await c.hakit('n2', ['start', 'web'])).code !== 0) throw new Error(`${tag}: hakit start web on n2 failed`);
          await c.waitFor(`${tag}: n2 up to date after the incremental resync`, async () => (await c.status('n2'))?.replication?.upToDate === true, BOUND_MS, undefined, 50);
          const ms = servedMs(join(c.tb.host('n1').dir, 'daemon.log'), 'incremental');
          m[i]!.samples.push(ms);
          ctx.log(`${tag}: incremental resync served in ${ms} ms`);
        } finally {
          await c.dispose();
        }
      }
    }
  },
};
