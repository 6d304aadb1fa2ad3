/**
 * `failover` and `failover-keepalived`: the client-visible outage when the primary host dies.
 * Measured from the moment the bench starts the crash (TestCluster.crash: SIGKILL of every
 * process of the host, then its cables pulled and the VIP removed) to the client probe's first
 * successful HTTP answer on the VIP from the other node. After each run the node is powered on
 * again and takes its role back (hakit: default_primary; keepalived: higher priority) before the
 * next run starts.
 */
import { join } from 'node:path';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { MODULE, TestCluster } from '../../test/testbed/cluster.js';
import { KeepalivedPair, Probe, monoMs, startPair, waitModule, waitUntil } from '../harness.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';

/** How long a takeover may take before the run counts as failed. */
const TAKEOVER_BOUND_MS = 30_000;
/** How long a node may take to come back and take its role back. */
const RESTORE_BOUND_MS = 60_000;

/** One run: SIGKILL of n1's host, then the client's first success on n2 (or a failure, which ends the figure). */
async function crashRun(c: TestCluster, probe: Probe, m: Metric, ctx: FigureContext, label: string, i: number): Promise<void> {
  probe.forget(monoMs() - 1000);
  const t0 = monoMs();
  await c.crash('n1');
  const ok = await probe.waitFor('n2', t0, TAKEOVER_BOUND_MS).catch(() => undefined);
  if (ok) m.samples.push(ok.t - t0);
  else m.failures = (m.failures ?? 0) + 1;
  ctx.log(`${label} run ${i}/${ctx.runs}: ${ok ? `${(ok.t - t0).toFixed(0)} ms` : `no takeover within ${TAKEOVER_BOUND_MS} ms`}`);
  if (!ok) throw new Error(`n2 did not take over within ${TAKEOVER_BOUND_MS} ms (run ${i})`);
}

export const FAILOVER_GOAL = { max: 2500, ratioBelow: 1, text: 'median <= 2.5 s and below keepalived' };

/** Copies each host's logs (daemon, keepalived, app) into the figure's log dir. */
function keepLogs(c: TestCluster, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const h of c.tb.hosts) {
    for (const f of ['daemon.log', 'keepalived.log']) {
      const src = join(h.dir, f);
      if (existsSync(src)) copyFileSync(src, join(dir, `${h.name}-${f}`));
    }
  }
}

export const failover: Figure = {
  name: 'failover',
  runs: { full: 10, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const m: Metric = { id: 'failover', figure: 'failover', title: 'hakit: SIGKILL of the primary host -> first successful request on the VIP',
      unit: 'ms', samples: [], failures: 0, peer: 'failover-keepalived', goal: FAILOVER_GOAL };
    metrics.push(m);
    const c = await TestCluster.create({ defaultPrimary: 'n1' });
    let probe: Probe | undefined;
    try {
      await startPair(c, MODULE);
      await waitModule(c, 'n1', MODULE, 'PRIM', 30_000);
      await waitModule(c, 'n2', MODULE, 'SECOND', 30_000);
      probe = Probe.start(c.tb.host('client'), join(ctx.logDir, 'probe.log'));
      await probe.waitFor('n1', 0, 10_000);
      for (let i = 1; i <= ctx.runs; i++) {
        await crashRun(c, probe, m, ctx, 'failover', i);
        if (i === ctx.runs) break;
        await c.startDaemon('n1');
        await waitModule(c, 'n1', MODULE, 'PRIM', RESTORE_BOUND_MS);
        await waitModule(c, 'n2', MODULE, 'SECOND', RESTORE_BOUND_MS);
        await probe.waitFor('n1', monoMs(), 10_000);
      }
    } finally {
      probe?.stop();
      keepLogs(c, join(ctx.logDir, 'failover'));
      await c.dispose();
    }
  },
};

export const failoverKeepalived: Figure = {
  name: 'failover-keepalived',
  runs: { full: 10, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const m: Metric = { id: 'failover-keepalived', figure: 'failover-keepalived',
      title: 'keepalived (VRRP, advert_int 1 s): SIGKILL of the master host -> first successful request on the VIP', unit: 'ms', samples: [], failures: 0 };
    metrics.push(m);
    const c = await TestCluster.create({ defaultPrimary: 'n1' });
    const k = new KeepalivedPair(c);
    let probe: Probe | undefined;
    const restored = async () => {
      await waitUntil('the VIP on n1 only', async () => (await k.holder()) === 'n1', RESTORE_BOUND_MS, 50);
      await probe!.waitFor('n1', monoMs(), 10_000);
    };
    try {
      await k.start('n1');
      await k.start('n2');
      probe = Probe.start(c.tb.host('client'), join(ctx.logDir, 'probe-keepalived.log'));
      await restored();
      for (let i = 1; i <= ctx.runs; i++) {
        await crashRun(c, probe, m, ctx, 'failover-keepalived', i);
        if (i === ctx.runs) break;
        await c.powerOn('n1');
        await k.start('n1');
        await restored();
      }
    } finally {
      probe?.stop();
      keepLogs(c, join(ctx.logDir, 'failover-keepalived'));
      await c.dispose();
    }
  },
};
