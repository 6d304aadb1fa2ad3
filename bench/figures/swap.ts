/**
 * `swap`: the client-visible outage of a planned `hakit swap web` on the primary. Two metrics per
 * run: from the command to the client's first success on the new primary (`swap`), and the gap
 * between the client's last success on the old primary and its first on the new (`swap.gap`).
 * Runs alternate direction (n1 -> n2, then n2 -> n1, ...); before each run both nodes are ready.
 */
import { join } from 'node:path';
import { MODULE, TestCluster } from '../../test/testbed/cluster.js';
import { Probe, monoMs, waitModule, startPair } from '../harness.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';

const SWAP_BOUND_MS = 30_000;

export const swap: Figure = {
  name: 'swap',
  runs: { full: 10, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const cmd: Metric = { id: 'swap', figure: 'swap', title: 'hakit swap web: the command -> first successful request on the new primary', unit: 'ms', samples: [], failures: 0 };
    const gap: Metric = { id: 'swap.gap', figure: 'swap', title: 'hakit swap web: last success on the old primary -> first on the new', unit: 'ms', samples: [], failures: 0 };
    metrics.push(cmd, gap);
    const c = await TestCluster.create({ defaultPrimary: 'n1' });
    let probe: Probe | undefined;
    try {
      await startPair(c, MODULE);
      probe = Probe.start(c.tb.host('client'), join(ctx.logDir, 'probe-swap.log'));
      let [from, to] = ['n1', 'n2'];
      for (let i = 1; i <= ctx.runs; i++) {
        await waitModule(c, from, MODULE, 'PRIM', 30_000);
        await waitModule(c, to, MODULE, 'SECOND', 30_000);
        await probe.waitFor(from, monoMs(), 10_000);
        probe.forget(monoMs() - 1000);
        const t0 = monoMs();
        const r = await c.hakit(from, ['swap', MODULE]);
        if (r.code !== 0) throw new Error(`hakit swap ${MODULE} on ${from} exited ${r.code}: ${r.stderr.trim()}`);
        const ok = await probe.waitFor(to, t0, SWAP_BOUND_MS).catch(() => undefined);
        if (!ok) {
          cmd.failures = (cmd.failures ?? 0) + 1;
          gap.failures = (gap.failures ?? 0) + 1;
          throw new Error(`the client got no answer from ${to} within ${SWAP_BOUND_MS} ms of the swap (run ${i})`);
        }
        const last = probe.lastBefore(ok.t, from);
        cmd.samples.push(ok.t - t0);
        if (last) gap.samples.push(ok.t - last.t);
        ctx.log(`swap run ${i}/${ctx.runs} ${from} -> ${to}: ${(ok.t - t0).toFixed(0)} ms after the command, gap ${last ? (ok.t - last.t).toFixed(0) : '?'} ms`);
        [from, to] = [to, from];
      }
    } finally {
      probe?.stop();
      await c.dispose();
    }
  },
};
