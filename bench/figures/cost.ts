/**
 * `cost`: CPU and memory of an idle `hakit daemon` with two mirror modules (web on VIP
 * 198.18.0.100 with a replicated dir, web2 on 198.18.0.101 without), on both nodes, once both
 * modules are PRIM/SECOND ready; and of web's idle rfs process. CPU = time on CPU of the daemon
 * process (all threads, schedstat ns) over the window, in % of one core; RSS = VmRSS at the end
 * of the window. The applications the modules start are separate processes and not counted.
 *
 * The goal is about a daemon that idles (for days): its windows start once the start's one-off
 * work is over, 4 minutes after ready. Until then V8 is still at it: the memory reducer runs two
 * or three full collections (~15-60 ms each) in the 8-40 s after the allocations of a start,
 * and the heartbeat path's functions get hot one after the other and are compiled by TurboFan
 * on V8's worker threads (2-35 ms each; `--trace-opt` shows `pulse` compiled about 100 s after
 * the start, others up to 3 minutes). `cost.start.cpu.*` shows the first window after the start
 * (5 s after ready) on its own, with that work in it, so it stays visible.
 */
import { MODULE, TestCluster } from '../../test/testbed/cluster.js';
import { MODULE2, addSecondModule, cpuNs, monoMs, pidsOf, rssMiB, sleep, waitModule } from '../harness.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';

/** web's replicated dir: a mirror module as administrators run it has one (and an rfs child). */
const REPL = '/srv/hakit-cost';

export const cost: Figure = {
  name: 'cost',
  runs: { full: 3, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const windowMs = ctx.quick ? 2_000 : 10_000;
    const settleMs = ctx.quick ? 1_000 : 5_000;
    /** From ready to the first idle window: past the memory reducer and TurboFan's compiles (see above). */
    const idleAfterMs = ctx.quick ? 0 : 240_000;
    const c = await TestCluster.create({ defaultPrimary: 'n1', mountPaths: [REPL], moduleYaml: ['replication:', `  dirs: [ { path: ${REPL} } ]`].join('\n') });
    try {
      addSecondModule(c);
      const cpu = new Map<string, Metric>();
      const rss = new Map<string, Metric>();
      const rfsCpu = new Map<string, Metric>();
      const rfsRss = new Map<string, Metric>();
      for (const n of c.nodes) {
        const mc: Metric = { id: `cost.cpu.${n}`, figure: 'cost', title: `idle hakit daemon on ${n}, 2 modules: CPU over ${windowMs / 1000} s, % of one core`,
          unit: '%', samples: [], goal: { max: 1, text: '< 1 % of a core' } };
        const mr: Metric = { id: `cost.rss.${n}`, figure: 'cost', title: `idle hakit daemon on ${n}, 2 modules: RSS`, unit: 'MiB', samples: [], goal: { max: 150, text: '< 150 MB' } };
        cpu.set(n, mc);
        rss.set(n, mr);
        metrics.push(mc, mr);
      }
      const startCpu = new Map<string, Metric>();
      if (!ctx.quick) {
        for (const n of c.nodes) {
          const m: Metric = { id: `cost.start.cpu.${n}`, figure: 'cost', title: `hakit daemon on ${n}, 2 modules: CPU over the first ${windowMs / 1000} s window, ${settleMs / 1000} s after ready (one-off work of the start in it), % of one core`, unit: '%', samples: [] };
          startCpu.set(n, m);
          metrics.push(m);
        }
      }
      for (const n of c.nodes) {
        const fc: Metric = { id: `cost.rfs.cpu.${n}`, figure: 'cost', title: `idle rfs of module web on ${n} (${n === 'n1' ? 'PRIM' : 'SECOND'}): CPU over ${windowMs / 1000} s, % of one core`, unit: '%', samples: [] };
        const fr: Metric = { id: `cost.rfs.rss.${n}`, figure: 'cost', title: `idle rfs of module web on ${n}: RSS`, unit: 'MiB', samples: [] };
        rfsCpu.set(n, fc);
        rfsRss.set(n, fr);
        metrics.push(fc, fr);
      }
      for (const n of c.nodes) await c.startDaemon(n);
      for (const n of c.nodes) for (const mod of [MODULE, MODULE2]) await c.hakit(n, ['start', mod]);
      for (const mod of [MODULE, MODULE2]) {
        await waitModule(c, 'n1', mod, 'PRIM', 30_000);
        await waitModule(c, 'n2', mod, 'SECOND', 30_000);
      }
      const pids = new Map<string, number>();
      const rfsPids = new Map<string, number>();
      for (const n of c.nodes) {
        const p = await pidsOf(c.tb.host(n), 'hakit.js', 'daemon');
        if (p.length !== 1) throw new Error(`expected one hakit daemon process on ${n}, found ${p.length}`);
        pids.set(n, p[0]!);
        const r = await pidsOf(c.tb.host(n), 'rfs-main');
        if (r.length !== 1) throw new Error(`expected one rfs process on ${n}, found ${r.length}`);
        rfsPids.set(n, r[0]!);
      }
      const ready = monoMs();
      if (!ctx.quick) {
        await sleep(settleMs);
        const t0 = monoMs();
        const before = new Map([...pids].map(([n, pid]) => [n, cpuNs(pid)]));
        await sleep(windowMs);
        const elapsedS = (monoMs() - t0) / 1000;
        for (const [n, pid] of pids) {
          const pct = ((cpuNs(pid) - before.get(n)!) / 1e9 / elapsedS) * 100;
          startCpu.get(n)!.samples.push(pct);
          ctx.log(`cost first window after the start ${n}: CPU ${pct.toFixed(2)} % of a core over ${elapsedS.toFixed(1)} s`);
        }
      }
      await sleep(Math.max(0, ready + idleAfterMs - monoMs()));
      for (let run = 1; run <= ctx.runs; run++) {
        if (run > 1 || ctx.quick) await sleep(settleMs);
        const t0 = monoMs();
        const before = new Map([...pids].map(([n, pid]) => [n, cpuNs(pid)]));
        const rfsBefore = new Map([...rfsPids].map(([n, pid]) => [n, cpuNs(pid)]));
        await sleep(windowMs);
        const elapsedS = (monoMs() - t0) / 1000;
        for (const [n, pid] of pids) {
          const pct = ((cpuNs(pid) - before.get(n)!) / 1e9 / elapsedS) * 100;
          cpu.get(n)!.samples.push(pct);
          rss.get(n)!.samples.push(rssMiB(pid));
          const rfsPid = rfsPids.get(n)!;
          const rfsPct = ((cpuNs(rfsPid) - rfsBefore.get(n)!) / 1e9 / elapsedS) * 100;
          rfsCpu.get(n)!.samples.push(rfsPct);
          rfsRss.get(n)!.samples.push(rssMiB(rfsPid));
          ctx.log(`cost run ${run}/${ctx.runs} ${n}: CPU ${pct.toFixed(2)} % of a core over ${elapsedS.toFixed(1)} s, RSS ${rssMiB(pid).toFixed(1)} MiB; rfs ${rfsPct.toFixed(2)} %, ${rssMiB(rfsPid).toFixed(1)} MiB`);
        }
      }
    } finally {
      await c.dispose();
    }
  },
};
