/**
 * `alloc`: what the idle heartbeat path allocates, per node and pulse: two mirror modules (one
 * with a replicated dir) PRIM on n1 and SECOND on n2, default heartbeat settings, both node
 * agents in this process over the memory heartbeat transport (the real codec, MACs, batcher,
 * runtimes and core; no UDP sockets, no rfs process), measured with V8's sampling heap profiler
 * counting the objects young collections freed too. No goal in the issues: it explains `cost`
 * (an idle daemon's CPU here is mostly per wake-up work, and what it allocates is part of it)
 * and catches a change that makes every heartbeat allocate more (docs/bench.md: object spreads
 * with added fields cost 1.2 KiB each in Node 20). Needs no root.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { FakeModuleRfs } from '../../src/adapters/fuse/fake-module.js';
import { FakeScriptRunner } from '../../src/adapters/scripts/index.js';
import { MemoryHeartbeatNetwork } from '../../src/adapters/udp/memory-transport.js';
import { FakeLan, FakeVipManager } from '../../src/adapters/vip/index.js';
import { NodeAgent } from '../../src/daemon/agent.js';
import { Logbook } from '../../src/daemon/logbook.js';
import { sleep, waitUntil } from '../harness.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';
import { twoNodeClusterYaml } from '../../test/helpers/config.js';

const NODES = ['n1', 'n2'] as const;
const MODULES = ['web', 'web2'] as const;
/** The default pulse (config: heartbeat.pulse): the window holds windowMs / PULSE_MS pulses per node. */
const PULSE_MS = 250;

interface SamplingNode { selfSize: number; children: SamplingNode[] }

function totalBytes(n: SamplingNode): number {
  return n.children.reduce((sum, c) => sum + totalBytes(c), n.selfSize);
}

function writeConfig(dir: string, key: string): void {
  for (const m of MODULES) mkdirSync(join(dir, 'modules', m), { recursive: true });
  writeFileSync(join(dir, 'cluster.key'), key, { mode: 0o600 });
  writeFileSync(join(dir, 'cluster.yaml'), twoNodeClusterYaml('alloc'));
  MODULES.forEach((m, i) => writeFileSync(join(dir, 'modules', m, 'module.yaml'), [
    'kind: mirror', 'nodes: [n1, n2]', 'default_primary: n1', `vip: [ { address: 198.18.0.${100 + i}/24, interface: eth0 } ]`,
    ...(i === 0 ? ['replication: { dirs: [ { path: /srv/hakit-alloc } ] }'] : []), '',
  ].join('\n')));
}

export const alloc: Figure = {
  name: 'alloc',
  runs: { full: 3, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const windowMs = ctx.quick ? 3_000 : 10_000;
    const m: Metric = { id: 'alloc.pulse', figure: 'alloc', unit: 'KiB', samples: [],
      title: `idle heartbeat path, 2 modules, both node agents in one process: heap allocated per node and pulse (${PULSE_MS} ms) over ${windowMs / 1000} s` };
    metrics.push(m);
    const root = mkdtempSync(join(tmpdir(), 'hakit-alloc-'));
    const agents: NodeAgent[] = [];
    const session = new Session();
    try {
      const lan = new FakeLan();
      const net = new MemoryHeartbeatNetwork();
      const rfs: Record<string, FakeModuleRfs | undefined> = {};
      const key = generateKey();
      for (const [i, node] of NODES.entries()) {
        const dir = join(root, node);
        writeConfig(join(dir, 'etc'), key);
        agents.push(await NodeAgent.create({
          configDir: join(dir, 'etc'), stateDir: join(dir, 'state'), node, scripts: new FakeScriptRunner(),
          logbook: new Logbook({ destination: new Writable({ write(_c, _e, cb) { cb(); } }) }),
          vips: new FakeVipManager({ lan, mac: `02:00:00:00:00:0${i + 1}` }),
          spawnRfs: () => {
            const f = new FakeModuleRfs();
            const other = rfs[NODES[1 - i]!];
            if (other) FakeModuleRfs.pair(f, other);
            return (rfs[node] = f);
          },
          transport: net.transport({ key: parseKey(key), cluster: 'alloc', node, members: { web: [...NODES], web2: [...NODES] },
            bind: [{ network: 'lan', address: `198.18.0.${i + 1}` }, { network: 'hb2', address: `198.19.0.${i + 1}` }] }),
        }));
      }
      for (const a of agents) for (const mod of MODULES) await a.command(mod, { cmd: 'start' });
      const ready = (): boolean => MODULES.every((mod) => {
        const [p, s] = agents.map((a) => a.status(mod).modules[0]);
        return p?.state === 'PRIM' && p.ready && s?.state === 'SECOND' && s.ready;
      });
      await waitUntil('both modules PRIM on n1 and SECOND on n2', ready, 30_000);
      session.connect();
      for (let run = 1; run <= ctx.runs; run++) {
        // includeObjectsCollectedBy*: count what the heartbeat path allocates, not what it keeps.
        await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
        await sleep(windowMs);
        const { profile } = await session.post('HeapProfiler.stopSampling');
        if (!ready()) throw new Error('a module left PRIM/SECOND during the window');
        const kib = totalBytes(profile.head as unknown as SamplingNode) / 1024 / NODES.length / (windowMs / PULSE_MS);
        m.samples.push(kib);
        ctx.log(`alloc run ${run}/${ctx.runs}: ${kib.toFixed(1)} KiB per node and pulse`);
      }
    } finally {
      session.disconnect();
      for (const a of agents) await a.shutdown().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    }
  },
};
