/**
 * `replicated-writes` (issue 7 item 2, issue 4 "Performance"): what synchronous replication costs
 * a writer on the primary, against two baselines measured in the same run on the same host and
 * file system (the testbed's backing directories, on the root file system):
 *
 *   local  a plain directory on n1 (/srv/hakit-local, a bind mount like the others);
 *   fuse   a bare rfs on n1 (/srv/hakit-fuse): the same FUSE binding and pass-through file
 *          system, records acknowledged at once, no peer: the FUSE cost alone;
 *   repl   the replicated dir /srv/hakit-repl of a running 2-node cluster, module `web` PRIM on
 *          n1 and SECOND on n2: every call returns once n2 applied it.
 *
 * Each run measures, for each of the three in turn (a different one first in each run): sequential 1 MiB writes then fsync (dd
 * conv=fsync; MB/s = 10^6 bytes a second, dd's own timing: open to fsync done), fsync'd 4 KiB
 * appends (latency of each write + fsync: p50 and p99 of the run), small files (create + 4 KiB +
 * close: files a second), a random 4 KiB write mix with several writers (fio: 4 jobs, psync
 * pwrite at random offsets of their own file, an fsync every 32 writes: writes a second), and the
 * round trip n1 -> n2 (ping on the replication network). The CPU (time on CPU, schedstat, taken
 * around the dd command, over dd's own time) and peak RSS (VmHWM, read after it) of the module's
 * rfs process on each node, and the CPU of each node's daemon, are taken around the replicated
 * sequential write. A run fails when n1 is not PRIM with n2 up to date at its end, or when n2's copy of the
 * sequential file is not complete (the "replicated" figures would then not be replicated).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RFS_MAIN } from '../../src/adapters/fuse/process.js';
import { REPO, TestCluster } from '../../test/testbed/cluster.js';
import type { Host } from '../../test/testbed/index.js';
import { median, percentile, type Metric } from '../stats.js';
import { cpuNs, pidsOf } from '../harness.js';
import type { Figure, FigureContext } from './figure.js';

const REPL = '/srv/hakit-repl';
const LOCAL = '/srv/hakit-local';
const FUSE = '/srv/hakit-fuse';
const FSLOAD = join(REPO, 'dist/bench/fsload.js');
/** Bound on one load command (a 256 MiB write at a few MB/s would still fit). */
const LOAD_TIMEOUT_MS = 300_000;

interface Way {
  key: 'local' | 'fuse' | 'repl';
  dir: string;
  what: string;
}
const WAYS: readonly Way[] = [
  { key: 'local', dir: LOCAL, what: 'plain local dir on n1' },
  { key: 'fuse', dir: FUSE, what: 'bare rfs FUSE passthrough on n1, no peer' },
  { key: 'repl', dir: REPL, what: 'replicated dir on n1 (PRIM), n2 SECOND' },
];

/** Sizes of one run. */
export interface ReplSizes {
  seqMiB: number;
  appends: number;
  smallFiles: number;
  pings: number;
  /** Random write mix: seconds of fio, and the size of each of its 4 jobs' files in MiB. */
  randSeconds: number;
  randFileMiB: number;
}
export const FULL_SIZES: ReplSizes = { seqMiB: 256, appends: 500, smallFiles: 2000, pings: 20, randSeconds: 10, randFileMiB: 32 };
export const QUICK_SIZES: ReplSizes = { seqMiB: 8, appends: 50, smallFiles: 100, pings: 5, randSeconds: 1, randFileMiB: 4 };

/** Jobs of the random write mix, each writing its own file. */
const RAND_JOBS = 4;

/** The fio command of the random write mix in `dir` (JSON on stdout). */
export function fioCommand(dir: string, sz: ReplSizes): string[] {
  return ['fio', '--name=randmix', `--directory=${dir}`, '--rw=randwrite', '--bs=4k', `--size=${sz.randFileMiB}M`, `--numjobs=${RAND_JOBS}`,
    '--ioengine=psync', '--fsync=32', '--end_fsync=1', '--time_based', `--runtime=${sz.randSeconds}`, '--group_reporting', '--output-format=json'];
}

/** Writes a second of a fio JSON report (one group: the jobs together). */
export function parseFio(out: string): number {
  const start = out.indexOf('{');
  if (start < 0) throw new Error(`fio printed no JSON report: ${out.slice(0, 200)}`);
  const r = JSON.parse(out.slice(start)) as { jobs?: { write?: { iops?: number; total_ios?: number }; error?: number }[] };
  const job = r.jobs?.[0];
  if (!job?.write || typeof job.write.iops !== 'number') throw new Error('fio report without write figures');
  if (job.error) throw new Error(`fio job error ${job.error}`);
  if (!(job.write.total_ios! > 0)) throw new Error('fio wrote nothing');
  return job.write.iops;
}

/**
 * A bare rfs child (`rfs-main.js --replicator local`) started inside a testbed host, so that its
 * mount is in the host's mount namespace; spoken to in its JSON-lines protocol (RfsRequest /
 * RfsReply, see src/adapters/fuse/rfs-main.ts). Its stdin stays open while it serves: the end of
 * stdin would fence the mount read-only.
 */
class BareRfs {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rep: { id?: number; ok?: boolean; error?: { message?: string } };
      try {
        rep = JSON.parse(line) as typeof rep;
      } catch {
        return;
      }
      const p = rep.id === undefined ? undefined : this.pending.get(rep.id);
      if (!p) return;
      this.pending.delete(rep.id!);
      if (rep.ok) p.resolve();
      else p.reject(new Error(`bare rfs: ${rep.error?.message ?? line}`));
    });
    this.exited = new Promise((resolve) => child.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('the bare rfs process exited'));
      this.pending.clear();
      resolve();
    }));
  }

  /** Starts the child on `h` and mounts `dir` read-write; its stderr goes to `logFile`. */
  static async start(h: Host, dir: string, logFile: string): Promise<BareRfs> {
    const child = h.spawn(['/usr/bin/node', RFS_MAIN, '--replicator', 'local'], { stdio: ['pipe', 'pipe', openSync(logFile, 'a')] });
    const r = new BareRfs(child);
    await r.request({ cmd: 'mount', dir, mode: 'rw' }, 20_000);
    return r;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends one request; resolves on its ok reply, rejects on an error reply, exit or `timeoutMs`. */
  request(req: object, timeoutMs: number): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`bare rfs: no reply to ${JSON.stringify(req)} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: () => { clearTimeout(timer); resolve(); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      this.child.stdin!.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  /** Unmounts, then SIGTERM; resolves when the child is gone (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await this.request({ cmd: 'unmount' }, 10_000).catch(() => undefined);
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

/** VmHWM (peak resident set size over the process's life) of a process, in MiB. */
function hwmMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Runs a load on this machine (outside the testbed's hosts); its stdout. */
function runLoad(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: LOAD_TIMEOUT_MS, encoding: 'utf8' }, (e, stdout, stderr) => {
      if (e) reject(new Error(`${[file, ...args].join(' ')} failed: ${stderr.trim() || e.message}`));
      else resolve(stdout);
    });
  });
}

/** Bytes and seconds from dd's last line (`N bytes (...) copied, S s, R MB/s`, C locale). */
export function parseDd(stderr: string): { bytes: number; seconds: number } {
  const m = /^(\d+) bytes\b.*? copied, ([\d.]+(?:e[-+]?\d+)?) s,/m.exec(stderr);
  if (!m) throw new Error(`no transfer line in dd's output: ${stderr.trim()}`);
  return { bytes: Number(m[1]), seconds: Number(m[2]) };
}

/** The round-trip times (ms) of ping's reply lines (`... time=0.052 ms`). */
export function parsePing(stdout: string): number[] {
  return [...stdout.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

export const replicatedWrites: Figure = {
  name: 'replicated-writes',
  runs: { full: 5, quick: 1 },
  async run(ctx: FigureContext, metrics: Metric[]): Promise<void> {
    const sz = ctx.quick ? QUICK_SIZES : FULL_SIZES;
    const F = 'replicated-writes';
    const add = (m: Omit<Metric, 'figure' | 'samples'>): Metric => {
      const full: Metric = { ...m, figure: F, samples: [] };
      metrics.push(full);
      return full;
    };
    const seq = new Map<string, Metric>();
    const p50 = new Map<string, Metric>();
    const p99 = new Map<string, Metric>();
    const small = new Map<string, Metric>();
    for (const w of WAYS) {
      seq.set(w.key, add({
        id: `seq.${w.key}`, title: `sequential ${sz.seqMiB} x 1 MiB writes + fsync (dd conv=fsync), ${w.what}`, unit: 'MB/s',
        ...(w.key === 'local' ? {} : { peer: 'seq.local' }),
        ...(w.key === 'repl' ? { goal: { ratioAtLeast: 0.5, text: 'replicated/local >= 0.5 (floor 0.13)' } } : {}),
      }));
    }
    // The testbed's ceiling: n1 and n2 are namespaces of one machine, so their two copies share
    // one disk and two cores; a replicated write cannot beat both plain writes made at once.
    const seqPair = add({
      id: 'seq.pair', title: `the same dd at once on n1's and n2's plain local dirs (one disk, two copies: the testbed's ceiling for seq.repl), MB/s of the slower`, unit: 'MB/s', peer: 'seq.local',
    });
    for (const w of WAYS) {
      p50.set(w.key, add({ id: `append.${w.key}.p50`, title: `${sz.appends} fsync'd 4 KiB appends: p50 of write + fsync, ${w.what}`, unit: 'ms', ...(w.key === 'local' ? {} : { peer: 'append.local.p50' }) }));
      p99.set(w.key, add({ id: `append.${w.key}.p99`, title: `${sz.appends} fsync'd 4 KiB appends: p99 of write + fsync, ${w.what}`, unit: 'ms', ...(w.key === 'local' ? {} : { peer: 'append.local.p99' }) }));
    }
    const appendPair = add({
      id: 'append.pair.p50', title: `${sz.appends} fsync'd 4 KiB appends to a file in n1's and one in n2's plain local dir in lockstep (write both, fsync both: the testbed's ceiling for append.repl): p50`, unit: 'ms', peer: 'append.local.p50',
    });
    const rtt = add({ id: 'append.rtt', title: `round trip n1 -> n2 on the replication network (median of ${sz.pings} pings)`, unit: 'ms' });
    const delta = add({ id: 'append.repl-local.p50', title: 'replicated p50 - local p50 of the same run (fsync\'d 4 KiB appends)', unit: 'ms' });
    for (const w of WAYS) {
      small.set(w.key, add({
        id: `small.${w.key}`, title: `${sz.smallFiles} small files (create + 4 KiB + close), ${w.what}`, unit: 'files/s',
        ...(w.key === 'local' ? {} : { peer: 'small.local' }),
        ...(w.key === 'repl' ? { goal: { ratioAtLeast: 0.1, text: 'replicated/local >= 1/10 (floor 1/60)' } } : {}),
      }));
    }
    const rand = new Map<string, Metric>();
    for (const w of WAYS) {
      rand.set(w.key, add({
        id: `rand.${w.key}`, title: `random 4 KiB writes, ${RAND_JOBS} writers for ${sz.randSeconds} s, fsync every 32 (fio psync), ${w.what}`, unit: 'writes/s',
        ...(w.key === 'local' ? {} : { peer: 'rand.local' }),
      }));
    }
    const rss = new Map<string, Metric>();
    const cpu = new Map<string, Metric>();
    const cpuDaemon = new Map<string, Metric>();
    for (const n of ['n1', 'n2']) {
      cpuDaemon.set(n, add({ id: `cpu.daemon.${n}`, title: `CPU of the hakit daemon on ${n} (${n === 'n1' ? 'PRIM' : 'SECOND'}) during the replicated sequential write, % of one core`, unit: '%' }));
    }
    for (const n of ['n1', 'n2']) {
      cpu.set(n, add({ id: `cpu.rfs.${n}`, title: `CPU of the module's rfs on ${n} (${n === 'n1' ? 'PRIM' : 'SECOND'}) during the replicated sequential write, % of one core`, unit: '%' }));
    }
    for (const n of ['n1', 'n2']) {
      rss.set(n, add({ id: `rss.rfs.${n}`, title: `peak RSS (VmHWM) of the module's rfs on ${n} (${n === 'n1' ? 'PRIM' : 'SECOND'}) after the replicated sequential write`, unit: 'MiB', goal: { max: 256, text: '< 256 MB' } }));
    }

    const c = await TestCluster.create({
      mountPaths: [REPL, LOCAL, FUSE],
      moduleYaml: ['replication:', `  dirs: [ { path: ${REPL} } ]`].join('\n'),
    });
    let bare: BareRfs | undefined;
    try {
      const n1 = c.tb.host('n1');
      const n2addr = c.tb.host('n2').addr('lan');
      const shOn = async (host: Host, script: string, what: string): Promise<string> => {
        const r = await host.exec(['sh', '-c', script], { timeoutMs: LOAD_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } });
        if (r.code !== 0) throw new Error(`${what} on ${host.name} failed (exit ${r.code}): ${r.stderr.trim()}`);
        return `${r.stdout}\n${r.stderr}`;
      };
      const sh = (script: string, what: string): Promise<string> => shOn(n1, script, what);
      const both = (script: string, what: string): Promise<string[]> => Promise.all([n1, c.tb.host('n2')].map((h) => shOn(h, script, what)));
      await c.startDaemon('n1');
      await c.startDaemon('n2');
      for (const n of c.nodes) {
        const r = await c.hakit(n, ['start', 'web']);
        if (r.code !== 0) throw new Error(`hakit start web on ${n}: ${r.stderr.trim()}`);
      }
      await c.waitState('n1', 'PRIM', 30_000);
      await c.waitState('n2', 'SECOND', 30_000);
      mkdirSync(join(ctx.logDir, F), { recursive: true });
      bare = await BareRfs.start(n1, FUSE, join(ctx.logDir, F, 'n1-bare-rfs.log'));
      const rfsPid = async (node: string): Promise<number> => {
        const pids = (await pidsOf(c.tb.host(node), 'rfs-main')).filter((p) => p !== bare?.pid);
        if (pids.length !== 1) throw new Error(`expected one module rfs process on ${node}, found ${pids.length}`);
        return pids[0]!;
      };
      const rfs = { n1: await rfsPid('n1'), n2: await rfsPid('n2') };
      const daemonPid = async (node: string): Promise<number> => {
        const pids = await pidsOf(c.tb.host(node), 'hakit.js', 'daemon');
        if (pids.length !== 1) throw new Error(`expected one hakit daemon on ${node}, found ${pids.length}`);
        return pids[0]!;
      };
      const daemons = { n1: await daemonPid('n1'), n2: await daemonPid('n2') };

      for (let run = 1; run <= ctx.runs; run++) {
        const tag = `run ${run}/${ctx.runs}`;
        // Each run starts with a different one of the three, so that a drift of the shared disk
        // over the session does not always favour the same one.
        const ways = WAYS.map((_, i) => WAYS[(i + run - 1) % WAYS.length]!);
        // Sequential 1 MiB writes + fsync.
        for (const w of ways) {
          const f = `${w.dir}/seq.bin`;
          const ticks0 = { n1: cpuNs(rfs.n1), n2: cpuNs(rfs.n2) };
          const daemon0 = { n1: cpuNs(daemons.n1), n2: cpuNs(daemons.n2) };
          const out = await sh(`rm -f ${f} && dd if=/dev/zero of=${f} bs=1M count=${sz.seqMiB} conv=fsync`, `dd on ${w.dir}`);
          const { bytes, seconds } = parseDd(out);
          if (bytes !== sz.seqMiB * 1024 * 1024) throw new Error(`dd on ${w.dir} wrote ${bytes} bytes, not ${sz.seqMiB} MiB`);
          const mbs = bytes / 1e6 / seconds;
          seq.get(w.key)!.samples.push(mbs);
          if (w.key === 'repl') {
            const size = statSync(join(c.tb.host('n2').hostPath(REPL), 'seq.bin')).size;
            if (size !== bytes) throw new Error(`${tag}: n2's copy of seq.bin has ${size} bytes, not ${bytes}`);
            for (const n of ['n1', 'n2'] as const) {
              rss.get(n)!.samples.push(hwmMiB(rfs[n]));
              cpu.get(n)!.samples.push(((cpuNs(rfs[n]) - ticks0[n]) / 1e9 / seconds) * 100);
              cpuDaemon.get(n)!.samples.push(((cpuNs(daemons[n]) - daemon0[n]) / 1e9 / seconds) * 100);
            }
          }
          await sh(`rm -f ${f}`, `rm on ${w.dir}`);
          ctx.log(`${tag} seq ${w.key}: ${mbs.toFixed(1)} MB/s (${sz.seqMiB} MiB in ${seconds.toFixed(3)} s)`);
        }
        {
          const f = `${LOCAL}/seq.bin`;
          const outs = await both(`rm -f ${f} && dd if=/dev/zero of=${f} bs=1M count=${sz.seqMiB} conv=fsync`, 'dd at once on n1 and n2');
          const runs = outs.map(parseDd);
          if (runs.some((r) => r.bytes !== sz.seqMiB * 1024 * 1024)) throw new Error(`${tag}: a dd of the pair did not write ${sz.seqMiB} MiB`);
          const mbs = runs[0]!.bytes / 1e6 / Math.max(...runs.map((r) => r.seconds));
          seqPair.samples.push(mbs);
          await both(`rm -f ${f}`, `rm on ${LOCAL}`);
          ctx.log(`${tag} seq pair (n1 and n2 local at once): ${mbs.toFixed(1)} MB/s (${runs.map((r) => r.seconds.toFixed(3)).join(' s, ')} s)`);
        }
        const last = (m: Map<string, Metric>, n: string, d: number): string => m.get(n)!.samples.at(-1)!.toFixed(d);
        ctx.log(`${tag} rfs during the replicated write: n1 CPU ${last(cpu, 'n1', 0)} %, VmHWM ${last(rss, 'n1', 1)} MiB; n2 CPU ${last(cpu, 'n2', 0)} %, VmHWM ${last(rss, 'n2', 1)} MiB; daemons n1 ${last(cpuDaemon, 'n1', 1)} %, n2 ${last(cpuDaemon, 'n2', 1)} %`);

        // Round trip on the replication network (the `lan`, the first heartbeat network).
        const pings = parsePing(await sh(`ping -n -c ${sz.pings} -i 0.05 ${n2addr}`, 'ping n1 -> n2'));
        if (pings.length === 0) throw new Error(`${tag}: no ping reply from n2`);
        rtt.samples.push(median(pings));

        // fsync'd 4 KiB appends.
        const runP50 = new Map<string, number>();
        for (const w of ways) {
          const f = `${w.dir}/append.log`;
          const out = await sh(`rm -f ${f} && /usr/bin/node ${FSLOAD} append ${f} ${sz.appends}`, `appends on ${w.dir}`);
          const { latenciesMs } = JSON.parse(out.trim().split('\n')[0]!) as { latenciesMs: number[] };
          if (latenciesMs.length !== sz.appends) throw new Error(`appends on ${w.dir}: ${latenciesMs.length} latencies, not ${sz.appends}`);
          const a = percentile(latenciesMs, 50);
          const b = percentile(latenciesMs, 99);
          runP50.set(w.key, a);
          p50.get(w.key)!.samples.push(a);
          p99.get(w.key)!.samples.push(b);
          await sh(`rm -f ${f}`, `rm on ${w.dir}`);
          ctx.log(`${tag} append ${w.key}: p50 ${a.toFixed(3)} ms, p99 ${b.toFixed(3)} ms`);
        }
        {
          // Both copies are files of this machine: one process writes them in lockstep.
          const [fa, fb] = (['n1', 'n2'] as const).map((n) => join(c.tb.host(n).hostPath(LOCAL), 'append-pair.log')) as [string, string];
          try {
            const r = await runLoad(process.execPath, [FSLOAD, 'append-pair', fa, String(sz.appends), fb]);
            const { latenciesMs } = JSON.parse(r.trim().split('\n')[0]!) as { latenciesMs: number[] };
            if (latenciesMs.length !== sz.appends) throw new Error(`${tag}: append-pair: ${latenciesMs.length} latencies, not ${sz.appends}`);
            appendPair.samples.push(percentile(latenciesMs, 50));
          } finally {
            rmSync(fa, { force: true });
            rmSync(fb, { force: true });
          }
          ctx.log(`${tag} append pair (n1's and n2's plain dirs in lockstep): p50 ${appendPair.samples.at(-1)!.toFixed(3)} ms`);
        }
        delta.samples.push(runP50.get('repl')! - runP50.get('local')!);
        const rttMed = median(rtt.samples);
        delta.goal = { max: rttMed + 0.5, text: `<= 1 round trip (${rttMed.toFixed(3)} ms) + 0.5 ms` };
        ctx.log(`${tag} rtt ${rtt.samples.at(-1)!.toFixed(3)} ms; replicated p50 - local p50 = ${delta.samples.at(-1)!.toFixed(3)} ms`);

        // Small files.
        for (const w of ways) {
          const d = `${w.dir}/small`;
          const out = await sh(`rm -rf ${d} && /usr/bin/node ${FSLOAD} small ${d} ${sz.smallFiles}`, `small files on ${w.dir}`);
          const { files, ms } = JSON.parse(out.trim().split('\n')[0]!) as { files: number; ms: number };
          const rate = files / (ms / 1000);
          small.get(w.key)!.samples.push(rate);
          await sh(`rm -rf ${d}`, `rm on ${w.dir}`);
          ctx.log(`${tag} small ${w.key}: ${rate.toFixed(0)} files/s`);
        }

        // Random 4 KiB writes, several writers.
        for (const w of ways) {
          const d = `${w.dir}/rand`;
          const out = await sh(`rm -rf ${d} && mkdir ${d} && ${fioCommand(d, sz).join(' ')}`, `fio on ${w.dir}`);
          const iops = parseFio(out);
          rand.get(w.key)!.samples.push(iops);
          await sh(`rm -rf ${d}`, `rm on ${w.dir}`);
          ctx.log(`${tag} random writes ${w.key}: ${iops.toFixed(0)} writes/s`);
        }

        // The replicated figures only count if replication held all along.
        const s1 = await c.status('n1');
        const s2 = await c.status('n2');
        if (s1?.state !== 'PRIM' || s2?.state !== 'SECOND' || s2.replication?.upToDate !== true) {
          throw new Error(`${tag}: replication did not hold (n1 ${s1?.state ?? '?'}, n2 ${s2?.state ?? '?'} upToDate ${String(s2?.replication?.upToDate)})`);
        }
      }
    } finally {
      await bare?.stop().catch(() => undefined);
      const logs = join(ctx.logDir, F);
      mkdirSync(logs, { recursive: true });
      for (const n of c.nodes) {
        const src = join(c.tb.host(n).dir, 'daemon.log');
        if (existsSync(src)) copyFileSync(src, join(logs, `${n}-daemon.log`));
      }
      await c.dispose();
    }
  },
};
