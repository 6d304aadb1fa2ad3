/**
 * `resync` (issue 7 item 3, issue 5 "Performance"): bringing the peer's copy level, against the
 * tools an administrator would use, measured in the same run on the same two testbed hosts:
 *
 *   full sync    hakit's first resync of a tree written on n1 before the module's first start
 *                (from `hakit start web` on n2 to n2 up to date), vs a `tar` stream of the same
 *                tree over TCP from n1 to n2 (tar -c | node socket -> node socket | tar -x);
 *   incremental  the module on n2 stopped cleanly, 1 % of the tree changed on n1 (ALONE) through
 *                the mount, n2 started again: from `hakit start web` to n2 up to date; vs
 *                `rsync -a --delete` of the same trees, changed the same way, to an rsync daemon
 *                on n2 (the tree copied there by rsync before the change);
 *   bytes        on the wire for the incremental resync and for rsync: the tx counter of n1's
 *                eth0 (the lan veth, which carries the replication link and the rsync session).
 *
 * The 1 % change (of a tree of `files` files of 1 MiB in 32 directories): 0.3 % of the files
 * rewritten in one 1 MiB zone in place, 0.2 % appended 1 MiB, 0.3 % new files, 0.1 % deleted,
 * 0.1 % renamed, a directory renamed, a truncate. The full run uses 1 GiB (1024 files); --quick 64
 * MiB. hakit's times include what an administrator waits for besides the copy (the module start,
 * the request over the heartbeats); the trees are checked equal after each.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '../../test/testbed/cluster.js';
import type { Host } from '../../test/testbed/index.js';
import { pseudoRandomBytes } from '../../test/helpers/data.js';
import { diffTrees, treeSnapshot } from '../../test/helpers/tree.js';
import { monoMs } from '../harness.js';
import type { Metric } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';

const REPL = '/srv/hakit-resync';
const RSRC = '/srv/rsync-src';
const RDST = '/srv/rsync-dst';
const MiB = 1024 * 1024;
const TCP_PORT = 7990;
const RSYNC_PORT = 8873;
const BOUND_MS = 600_000;

/** Writes the tree: `files` files of 1 MiB in 32 directories. */
function writeTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const d = join(root, `d${i % 32}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}`), pseudoRandomBytes(MiB, i + 1));
  }
}

/** The 1 % change as a shell script run in the tree's root, and the bytes it writes. */
function change(files: number): { script: string; bytes: number } {
  const n = (per1000: number) => Math.max(1, Math.round((files * per1000) / 1000));
  const f = (i: number) => `d${i % 32}/f${i}`;
  const lines: string[] = [];
  let written = 0;
  let k = 0;
  for (let j = 0; j < n(3); j++, k++) { lines.push(`dd if=/dev/urandom of=${f(k)} bs=1M count=1 conv=notrunc status=none`); written += MiB; }
  for (let j = 0; j < n(2); j++, k++) { lines.push(`head -c 1048576 /dev/urandom >> ${f(k)}`); written += MiB; }
  for (let j = 0; j < n(3); j++) { lines.push(`head -c 1048576 /dev/urandom > d${j % 32}/new${j}`); written += MiB; }
  for (let j = 0; j < n(1); j++, k++) lines.push(`rm ${f(k)}`);
  for (let j = 0; j < n(1); j++, k++) lines.push(`mv ${f(k)} ${f(k)}.renamed`);
  lines.push('mv d31 d31-renamed');
  lines.push(`truncate -s 65536 ${f(k)}`);
  written += 65536;
  return { script: lines.join(' && '), bytes: written };
}

/**
 * The last resync of `kind` that the daemon log names: from its "serving resync request" line to
 * its "resync served to ...: done (<kind>" line (pino's `time`, ms).
 */
export function servedMs(logFile: string, kind: 'full' | 'incremental'): number {
  let start: number | null = null;
  let took: number | null = null;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    let e: { time?: number; msg?: string };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue;
    }
    if (typeof e.time !== 'number' || typeof e.msg !== 'string') continue;
    if (e.msg.startsWith('serving resync request')) start = e.time;
    else if (start !== null && e.msg.includes(`: done (${kind}`)) took = e.time - start;
  }
  if (took === null) throw new Error(`no ${kind} resync served in ${logFile}`);
  return took;
}

/**
 * Waits (bounded) until the daemon log holds one more served resync of `kind` than `before`.
 * Reading the log costs nothing beside the copy; polling `hakit status` (a CLI process each
 * time) would take a core of this 2-core machine away from the copy being measured.
 */
async function waitServed(logFile: string, kind: 'full' | 'incremental', before: number, boundMs: number): Promise<void> {
  const end = monoMs() + boundMs;
  while (servedCount(logFile, kind) <= before) {
    if (monoMs() > end) throw new Error(`no ${kind} resync served within ${boundMs} ms (${logFile})`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

function servedCount(logFile: string, kind: 'full' | 'incremental'): number {
  return (readFileSync(logFile, 'utf8').match(new RegExp(`resync served to [^:]+: done \\(${kind}`, 'g')) ?? []).length;
}

export const resync: Figure = {
  name: 'resync',
  runs: { full: 3, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const files = ctx.quick ? 64 : 1024;
    const F = 'resync';
    const size = `${files} MiB`;
    const add = (m: Omit<Metric, 'figure' | 'samples'>): Metric => {
      const full: Metric = { ...m, figure: F, samples: [] };
      metrics.push(full);
      return full;
    };
    const fullHakit = add({ id: 'resync.full', title: `full sync of a ${size} tree (${files} files) by hakit: the resync served (n1's log: request served -> done)`, unit: 'ms', peer: 'resync.full.tar', goal: { ratioBelow: 1.25, text: 'throughput >= 0.8 x tar over TCP (time ratio <= 1.25)' } });
    const fullAdmin = add({ id: 'resync.full.admin', title: 'the same, as the administrator waits: hakit start on the secondary -> up to date', unit: 'ms', peer: 'resync.full.tar' });
    const fullTar = add({ id: 'resync.full.tar', title: `the same tree as a tar stream over TCP n1 -> n2`, unit: 'ms' });
    const incHakit = add({ id: 'resync.incr', title: `incremental resync after a 1 % change of the ${size} tree by hakit: the resync served (n1's log)`, unit: 'ms', peer: 'resync.incr.rsync', goal: { ratioBelow: 0.5, text: '<= 0.5 x rsync -a' } });
    const incAdmin = add({ id: 'resync.incr.admin', title: 'the same, as the administrator waits: hakit start on the secondary -> up to date', unit: 'ms', peer: 'resync.incr.rsync' });
    const incRsync = add({ id: 'resync.incr.rsync', title: 'rsync -a --delete of the same change to an rsync daemon on n2', unit: 'ms' });
    const wireHakit = add({ id: 'resync.incr.wire', title: 'bytes on the wire (n1 eth0 tx) for the incremental resync', unit: 'MB', peer: 'resync.incr.changed', goal: { ratioBelow: 1.1, text: '<= 1.1 x the changed bytes' } });
    const wireRsync = add({ id: 'resync.incr.rsync.wire', title: 'bytes on the wire (n1 eth0 tx) for rsync -a', unit: 'MB', peer: 'resync.incr.changed' });
    const changed = add({ id: 'resync.incr.changed', title: 'bytes the 1 % change wrote', unit: 'MB' });

    for (let run = 1; run <= ctx.runs; run++) {
      const tag = `run ${run}/${ctx.runs}`;
      const c = await TestCluster.create({
        mountPaths: [REPL, RSRC, RDST],
        moduleYaml: ['replication:', `  dirs: [ { path: ${REPL} } ]`].join('\n'),
        defaultPrimary: 'n1',
      });
      try {
        const n1 = c.tb.host('n1');
        const n2 = c.tb.host('n2');
        const n2addr = n2.addr('lan');
        const sh = async (h: Host, script: string, what: string): Promise<string> => {
          const r = await h.exec(['sh', '-c', script], { timeoutMs: BOUND_MS, env: { ...process.env, LC_ALL: 'C' } });
          if (r.code !== 0) throw new Error(`${tag}: ${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
          return r.stdout;
        };
        const equal = (a: string, b: string, what: string): void => {
          const d = diffTrees(treeSnapshot(a), treeSnapshot(b), { ignoreMtimeOf: () => true });
          if (d.length > 0) throw new Error(`${tag}: ${what}: the trees differ: ${d.slice(0, 5).join('; ')}`);
        };
        ctx.log(`${tag}: writing the ${size} tree twice on n1`);
        writeTree(n1.hostPath(REPL), files);
        writeTree(n1.hostPath(RSRC), files);

        // Full: tar over TCP.
        const recv = n2.spawn(['sh', '-c', `/usr/bin/node -e "const srv = require('net').createServer((s) => { s.pipe(process.stdout); s.on('end', () => srv.close()); }).listen(${TCP_PORT}, '${n2addr}')" | tar -xf - -C ${RDST}`]);
        const recvDone = new Promise<number | null>((res) => recv.once('exit', (code) => res(code)));
        await new Promise((res) => setTimeout(res, 500));
        // Each contestant starts with no dirty page cache: the writeback of what was written
        // before (the trees, the other contestant's copy) is not charged to it.
        await sh(n1, 'sync', 'sync');
        let t0 = monoMs();
        await sh(n1, `tar -cf - -C ${RSRC} . | /usr/bin/node -e "const s = require('net').connect(${TCP_PORT}, '${n2addr}', () => process.stdin.pipe(s))"`, 'tar -c | tcp');
        const code = await recvDone;
        fullTar.samples.push(monoMs() - t0);
        if (code !== 0) throw new Error(`${tag}: tar -x on n2 exited ${code}`);
        equal(n1.hostPath(RSRC), n2.hostPath(RDST), 'tar');
        ctx.log(`${tag} full tar: ${(fullTar.samples.at(-1)! / 1000).toFixed(2)} s`);

        // Full: hakit's first resync.
        await c.startDaemon('n1');
        await c.startDaemon('n2');
        if ((await c.hakit('n1', ['start', 'web'])).code !== 0) throw new Error('hakit start web on n1 failed');
        await c.waitState('n1', 'ALONE', 30_000);
        await sh(n1, 'sync', 'sync');
        const log1 = join(n1.dir, 'daemon.log');
        const full0 = servedCount(log1, 'full');
        t0 = monoMs();
        if ((await c.hakit('n2', ['start', 'web'])).code !== 0) throw new Error('hakit start web on n2 failed');
        await waitServed(log1, 'full', full0, BOUND_MS);
        await c.waitFor('n2 up to date after the full sync', async () => (await c.status('n2'))?.replication?.upToDate === true, BOUND_MS, undefined, 50);
        fullAdmin.samples.push(monoMs() - t0);
        fullHakit.samples.push(servedMs(join(n1.dir, 'daemon.log'), 'full'));
        equal(n1.hostPath(REPL), n2.hostPath(REPL), 'hakit full sync');
        ctx.log(`${tag} full hakit: ${(fullHakit.samples.at(-1)! / 1000).toFixed(2)} s served, ${(fullAdmin.samples.at(-1)! / 1000).toFixed(2)} s from the start command`);

        // Incremental: rsync daemon on n2.
        const conf = join(n2.dir, 'rsyncd.conf');
        writeFileSync(conf, `uid = root\ngid = root\nuse chroot = no\n[dst]\npath = ${RDST}\nread only = false\n`);
        const rsyncd = n2.spawn(['rsync', '--daemon', '--no-detach', `--config=${conf}`, `--address=${n2addr}`, `--port=${RSYNC_PORT}`]);
        try {
          await new Promise((res) => setTimeout(res, 500));
          const ch = change(files);
          changed.samples.push(ch.bytes / 1e6);
          await sh(n1, `cd ${RSRC} && ${ch.script}`, 'the change in the rsync tree');
          await sh(n1, 'sync', 'sync');
          let tx0 = await n1.txBytes('lan');
          t0 = monoMs();
          await sh(n1, `rsync -a --delete ${RSRC}/ rsync://${n2addr}:${RSYNC_PORT}/dst/`, 'rsync -a');
          incRsync.samples.push(monoMs() - t0);
          wireRsync.samples.push(((await n1.txBytes('lan')) - tx0) / 1e6);
          equal(n1.hostPath(RSRC), n2.hostPath(RDST), 'rsync');
          ctx.log(`${tag} incremental rsync: ${(incRsync.samples.at(-1)! / 1000).toFixed(2)} s, ${wireRsync.samples.at(-1)!.toFixed(2)} MB on the wire`);

          // Incremental: hakit.
          await c.waitState('n1', 'PRIM', 30_000);
          if ((await c.hakit('n2', ['stop', 'web'])).code !== 0) throw new Error('hakit stop web on n2 failed');
          await c.waitState('n1', 'ALONE', 30_000);
          await sh(n1, `cd ${REPL} && ${ch.script}`, 'the change through the mount');
          await sh(n1, 'sync', 'sync');
          tx0 = await n1.txBytes('lan');
          const incr0 = servedCount(log1, 'incremental');
          t0 = monoMs();
          if ((await c.hakit('n2', ['start', 'web'])).code !== 0) throw new Error('hakit start web on n2 failed');
          await waitServed(log1, 'incremental', incr0, BOUND_MS);
          await c.waitFor('n2 up to date after the incremental resync', async () => (await c.status('n2'))?.replication?.upToDate === true, BOUND_MS, undefined, 50);
          incAdmin.samples.push(monoMs() - t0);
          incHakit.samples.push(servedMs(join(n1.dir, 'daemon.log'), 'incremental'));
          wireHakit.samples.push(((await n1.txBytes('lan')) - tx0) / 1e6);
          equal(n1.hostPath(REPL), n2.hostPath(REPL), 'hakit incremental resync');
          ctx.log(`${tag} incremental hakit: ${(incHakit.samples.at(-1)! / 1000).toFixed(2)} s served, ${(incAdmin.samples.at(-1)! / 1000).toFixed(2)} s from the start command, ${wireHakit.samples.at(-1)!.toFixed(2)} MB on the wire for ${(ch.bytes / 1e6).toFixed(2)} MB changed`);
        } finally {
          rsyncd.kill('SIGTERM');
        }
      } finally {
        await c.dispose();
      }
    }
  },
};
