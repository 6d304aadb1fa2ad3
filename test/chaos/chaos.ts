/**
 * The chaos suite (issue 8, part 2): real daemons, FUSE, VIPs and a checking workload on the
 * testbed, faults drawn at random from one seed. A client on a third host POSTs numbered records
 * through the application on the VIP; the application appends each to a file in the replicated
 * directory and fsyncs before it answers 200. After each round the cluster must settle (one PRIM,
 * one SECOND up to date) and:
 *   - every acknowledged record is in the primary's copy (RPO = 0);
 *   - the two copies are equal (content, modes, owners, links);
 * and at the end, from the daemons' logs (and the crash times): the intervals in which each node
 * had its replicated dir mounted read-write (from the request to mount rw until the mount left
 * rw) never overlap: never two writers.
 *
 * Faults: SIGKILL of the primary host, of the secondary host, of the primary's daemon only, of
 * the primary's rfs process only; clean stop and start of the primary's daemon; stopstart; swap;
 * both daemons stopped and started in either order; start_prim failing on the node that takes
 * over; a stop script that hangs; every network cut between the two nodes (both still reach the
 * witness host); the primary cut from everything; SIGSTOP of the primary's daemon for longer than
 * the heartbeat timeout; every frame from the primary to the secondary lost (one-way loss);
 * flapping links (the primary's cable on lan, sometimes hb2 too, pulled and plugged back a few
 * times); a slow replication link (tbf towards the secondary); a crash of either host while a
 * resync runs (24 MiB of ballast and a slow link make the resync last seconds); every heartbeat
 * lost while the TCP replication link stays (UDP dropped between the nodes). The module has a
 * `splitbrain` checker with an arbitrator witness (`hakit witness` on the host `wit`), which is
 * what keeps one writer when the nodes are cut apart. The secondary's file system full (another
 * program's file fills it, outside the replicated dir) for a few seconds while the client writes:
 * each host's replicated dir lives on a 128 MiB file system of its own.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { diffTrees, treeSnapshot } from '../helpers/tree.js';
import { rng } from '../sim/prng.js';
import { REPO, TestCluster, VIP, APP_PORT, MODULE } from '../testbed/cluster.js';
import { execCommand } from '../testbed/run.js';

/** Each host's own size-limited file system (so that a fault can fill it up)... */
export const CHAOS_FS = '/srv/hakit-chaos';
/** ...and the replicated dir on it. */
export const CHAOS_DIR = `${CHAOS_FS}/data`;
/** The testbed gives host i address .i: n1, n2, client, wit. */
const WIT_ADDR = '198.18.0.4';
const CLIENT = join(REPO, 'test/fixtures/apps/chaos-client.mjs');

export const FAULTS = [
  'kill-primary-host', 'kill-secondary-host', 'kill-primary-daemon', 'kill-primary-rfs', 'restart-primary-daemon',
  'stopstart', 'swap', 'restart-both', 'start-prim-fails', 'stop-hangs', 'partition-nodes', 'isolate-primary', 'pause-primary-daemon',
  'one-way-loss', 'flapping-links', 'slow-replication', 'crash-during-resync', 'partition-heartbeats', 'secondary-disk-full',
] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosOptions {
  rounds: number;
  seed: number;
  /** Draw only these faults (default: all of FAULTS). */
  faults?: readonly Fault[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  rounds: number;
  faults: Record<string, number>;
  acked: number;
  lost: number[];
  unequalRounds: string[];
  dualWriters: string[];
  /** What the run did as an administrator would to recover from a fault (see settle). */
  admin: string[];
  /** Resyncs the daemons served (by kind, from their logs) and quarantines made before full ones. */
  resyncs: { incremental: number; full: number; abandoned: number; quarantines: number };
  durationMs: number;
}

interface Interval { node: string; from: number; to: number }

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const rand = rng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const log = opts.log ?? (() => undefined);
  const report: ChaosReport = { seed: opts.seed, rounds: 0, faults: {}, acked: 0, lost: [], unequalRounds: [], dualWriters: [], admin: [], resyncs: { incremental: 0, full: 0, abandoned: 0, quarantines: 0 }, durationMs: 0 };
  const c = await TestCluster.create({
    clients: ['client', 'wit'],
    mountPaths: [CHAOS_FS],
    mountSize: '128m',
    heartbeat: 'heartbeat: { networks: [lan, hb2], pulse: 100ms, timeout: 1s }',
    moduleYaml: ['replication:', `  dirs: [ { path: ${CHAOS_DIR} } ]`, '  timeout: 1s',
      `checkers: [ { type: splitbrain, arbitrator: "${WIT_ADDR}:7407" } ]`].join('\n'),
  });
  const crashes: { node: string; at: number }[] = [];
  const under = (n: string): string => c.tb.host(n).hostPath(CHAOS_DIR);
  const flag = (n: string, name: string): string => join(c.moduleDir(n), 'run', name);
  let client: ChildProcess | null = null;
  const acksFile = join(c.tb.host('client').dir, 'acks');
  let next = 1;
  try {
    for (const n of c.nodes) {
      mkdirSync(under(n));
      writeFileSync(join(c.moduleDir(n), 'app/data-file'), `${CHAOS_DIR}/records.log\n`);
    }
    // The arbitrator witness on its own host; it grants nothing for one lease after it starts.
    const w = c.tb.host('wit');
    if (w.addr('lan') !== WIT_ADDR) throw new Error(`the witness host has ${w.addr('lan')}, not ${WIT_ADDR}`);
    writeFileSync(join(w.dir, 'cluster.key'), readFileSync(join(c.configDir('n1'), 'cluster.key')), { mode: 0o600 });
    writeFileSync(join(w.dir, 'witness.yaml'), `listen: ${WIT_ADDR}:7407\nkey_file: cluster.key\ncluster: test\nlease: 2s\n`);
    w.spawn(['/usr/bin/node', '--enable-source-maps', join(REPO, 'bin/hakit.js'), 'witness', '--config', join(w.dir, 'witness.yaml')], { stdio: 'ignore' });
    await sleep(2500);
    writeFileSync(acksFile, '');
    for (const n of c.nodes) await c.startDaemon(n);
    for (const n of c.nodes) await c.hakit(n, ['start', MODULE]);
    await settle(c);

    const startClient = (): void => {
      client = c.tb.host('client').spawn(['/usr/bin/node', CLIENT, `http://${VIP}:${APP_PORT}`, acksFile, String(next)]);
    };
    const stopClient = async (): Promise<void> => {
      const p = client as ChildProcess | null;
      client = null;
      if (p === null || p.exitCode !== null) return;
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
      p.kill('SIGKILL');
    };

    for (let round = 1; round <= opts.rounds; round++) {
      const fault = pick(opts.faults ?? FAULTS);
      report.faults[fault] = (report.faults[fault] ?? 0) + 1;
      const { primary, secondary } = await roles(c);
      log(`round ${round}: ${fault} (primary ${primary})`);
      startClient();
      await sleep(300 + Math.floor(rand() * 700));
      await inject(c, fault, primary, secondary, crashes, flag, rand);
      await sleep(500);
      await settle(c, 45_000, report.admin);
      // Some records after the recovery too, then a quiet cluster for the checks.
      await sleep(300);
      await stopClient();
      next += 100_000;
      const acked = ackedNumbers(acksFile);
      const now = await roles(c);
      const have = new Set(numbersIn(join(under(now.primary), 'records.log')));
      const lost = acked.filter((n) => !have.has(n));
      report.lost.push(...lost.filter((n) => !report.lost.includes(n)));
      // The secondary is up to date when settled: its copy must equal the primary's.
      const d = diffTrees(treeSnapshot(under(now.primary)), treeSnapshot(under(now.secondary)), { ignoreMtimeOf: () => true });
      if (d.length > 0) report.unequalRounds.push(`round ${round} (${fault}): ${d.slice(0, 3).join('; ')}`);
      report.rounds = round;
      if (fault === 'crash-during-resync' || fault === 'secondary-disk-full') {
        // The ballast (and the spill) goes away through the primary's mount (replicated like any delete).
        const rm = await c.tb.host(now.primary).exec(['rm', '-f', `${CHAOS_DIR}/ballast`, `${CHAOS_DIR}/spill`]);
        if (rm.code !== 0) throw new Error(`could not remove the ballast on ${now.primary}: ${rm.stderr}`);
      }
      log(`  acked so far ${acked.length}, lost ${lost.length}, copies ${d.length === 0 ? 'equal' : 'DIFFER'}`);
    }
    report.acked = ackedNumbers(acksFile).length;
  } finally {
    await (async () => { const p = client as ChildProcess | null; p?.kill('SIGKILL'); })();
    try {
      report.dualWriters = overlaps(primaryIntervals(c, crashes));
    } catch (e) {
      report.dualWriters = [`could not read the daemons' logs: ${(e as Error).message}`];
    }
    report.resyncs = resyncCounts(c);
    await c.dispose();
    report.durationMs = Date.now() - t0;
  }
  return report;
}

async function inject(
  c: TestCluster, fault: Fault, primary: string, secondary: string, crashes: { node: string; at: number }[],
  flag: (n: string, name: string) => string, rand: () => number,
): Promise<void> {
  switch (fault) {
    case 'kill-primary-host':
    case 'kill-secondary-host': {
      const victim = fault === 'kill-primary-host' ? primary : secondary;
      crashes.push({ node: victim, at: Date.now() });
      await c.crash(victim);
      await sleep(1500 + Math.floor(rand() * 1000));
      await c.startDaemon(victim);
      return;
    }
    case 'kill-primary-daemon':
      crashes.push({ node: primary, at: Date.now() });
      await c.killDaemon(primary);
      await sleep(1500);
      await c.startDaemon(primary);
      return;
    case 'kill-primary-rfs': {
      // Only the primary host's rfs (the PID namespace is shared with the other hosts).
      const pids = (await c.tb.host(primary).pids()).filter((pid) => {
        try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('rfs-main.js'); } catch { return false; }
      });
      if (pids.length === 0) throw new Error(`no rfs process on ${primary} to kill`);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      return;
    }
    case 'restart-primary-daemon':
      await c.stopDaemon(primary);
      await c.startDaemon(primary);
      return;
    case 'stopstart':
      await c.hakit(primary, ['stopstart', MODULE]);
      return;
    case 'swap':
      await c.hakit(primary, ['swap', MODULE]);
      return;
    case 'restart-both': {
      const first = rand() < 0.5 ? primary : secondary;
      const second = first === primary ? secondary : primary;
      await Promise.all([c.stopDaemon(primary), c.stopDaemon(secondary)]);
      await c.startDaemon(first);
      await sleep(Math.floor(rand() * 1500));
      await c.startDaemon(second);
      return;
    }
    case 'start-prim-fails':
      // The node that takes over cannot start the application: it releases; the old primary,
      // back, takes the role again.
      writeFileSync(flag(secondary, 'fail-start'), '');
      crashes.push({ node: primary, at: Date.now() });
      await c.crash(primary);
      await sleep(2500);
      rmSync(flag(secondary, 'fail-start'), { force: true });
      await c.startDaemon(primary);
      // The failed node waits (start_prim-failed) until the primary is back, then follows it.
      return;
    case 'partition-nodes':
      await c.tb.partition([primary], [secondary]);
      await sleep(2000 + Math.floor(rand() * 1500));
      await c.tb.heal();
      return;
    case 'isolate-primary':
      await c.tb.partition([primary], [secondary, 'client', 'wit']);
      await sleep(4000 + Math.floor(rand() * 1500));
      await c.tb.heal();
      return;
    case 'pause-primary-daemon': {
      const pid = c.daemonPid(primary);
      if (pid === undefined) throw new Error(`no daemon on ${primary} to pause`);
      process.kill(pid, 'SIGSTOP');
      await sleep(2000 + Math.floor(rand() * 1000));
      process.kill(pid, 'SIGCONT');
      return;
    }
    case 'partition-heartbeats':
      // Every heartbeat lost (UDP between the two nodes, on every network) while the TCP
      // replication link and the witness stay: each node hears silence; the lease decides.
      await c.tb.partition([primary], [secondary], { proto: 'udp' });
      await sleep(2500 + Math.floor(rand() * 1500));
      await c.tb.heal();
      return;
    case 'one-way-loss':
      // The secondary hears nothing from the primary (heartbeats, replication); the primary
      // still hears the secondary and keeps the witness's lease.
      await c.tb.oneWayLoss(primary, secondary);
      await sleep(2000 + Math.floor(rand() * 1500));
      await c.tb.heal();
      return;
    case 'flapping-links': {
      const nets = rand() < 0.5 ? ['lan'] : ['lan', 'hb2'];
      const flaps = 2 + Math.floor(rand() * 3);
      for (let i = 0; i < flaps; i++) {
        for (const n of nets) await c.tb.linkDown(primary, n);
        await sleep(200 + Math.floor(rand() * 600));
        for (const n of nets) await c.tb.linkUp(primary, n);
        await sleep(200 + Math.floor(rand() * 600));
      }
      return;
    }
    case 'slow-replication':
      // 2 Mbit/s towards the secondary on lan (the replication network) while the client writes.
      await c.tb.limitRate(secondary, 'lan', 2000);
      try { await sleep(3000 + Math.floor(rand() * 2000)); } finally { await c.tb.unlimitRate(secondary, 'lan'); }
      return;
    case 'crash-during-resync': {
      // The secondary away, ballast written through the primary's mount meanwhile (24 MiB the
      // incremental resync must send), a slow link, the secondary back: its resync then lasts
      // seconds; either host crashes in the middle of it.
      await c.tb.limitRate(secondary, 'lan', 16_000);
      try {
        crashes.push({ node: secondary, at: Date.now() });
        await c.crash(secondary);
        const dd = await c.tb.host(primary).exec(['dd', 'if=/dev/urandom', `of=${CHAOS_DIR}/ballast`, 'bs=1M', 'count=24', 'conv=fsync', 'status=none'], { timeoutMs: 60_000 });
        if (dd.code !== 0) throw new Error(`could not write the ballast on ${primary}: ${dd.stderr}`);
        await c.startDaemon(secondary);
        await c.waitFor(`a resync towards ${secondary}`, async () => {
          const st = await c.status(primary);
          return st?.replication?.resync?.active === true && (st.replication.resync.bytesDone ?? 0) > 0;
        }, 20_000, undefined, 100);
        await sleep(300 + Math.floor(rand() * 1500));
        const victim = rand() < 0.5 ? primary : secondary;
        crashes.push({ node: victim, at: Date.now() });
        await c.crash(victim);
        await sleep(1500);
        await c.startDaemon(victim);
      } finally {
        await c.tb.unlimitRate(secondary, 'lan');
      }
      return;
    }
    case 'secondary-disk-full': {
      // Another program fills the secondary's file system (outside the replicated dir) while
      // the client writes; its file goes away 2-4 s later, as an administrator would free space.
      const fill = c.tb.host(secondary).hostPath(`${CHAOS_FS}/fill`);
      try {
        const dd = await execCommand('fill the file system', ['dd', 'if=/dev/zero', `of=${fill}`, 'bs=1M', 'status=none'], { timeoutMs: 30_000 });
        if (dd.code === 0 || !dd.stderr.includes('No space left')) throw new Error(`could not fill ${secondary}'s file system: ${dd.stderr || `dd exited ${dd.code}`}`);
        // The records the client appends may fit in pages the file already has: the
        // application also writes a new file, which needs new space on the secondary.
        const w = await c.tb.host(primary).exec(['dd', 'if=/dev/urandom', `of=${CHAOS_DIR}/spill`, 'bs=64k', 'count=16', 'conv=fsync', 'status=none'], { timeoutMs: 30_000 });
        if (w.code !== 0) throw new Error(`the primary ${primary} could not write while its peer's disk was full: ${w.stderr}`);
        await sleep(2000 + Math.floor(rand() * 2000));
      } finally {
        rmSync(fill, { force: true });
      }
      return;
    }
    case 'stop-hangs':
      writeFileSync(flag(primary, 'hang-stop'), '');
      await c.hakit(primary, ['stopstart', MODULE]);
      await sleep(500);
      rmSync(flag(primary, 'hang-stop'), { force: true });
      return;
  }
}

const HELD = new Set(['start_prim-failed', 'vip-conflict', 'rfs-failed']);

/**
 * Waits for one PRIM and one SECOND (up to date, ready). What an administrator does after a
 * fault whose cause is gone is done here too, and counted in `admin`: a module left STOPped
 * (also by maxloop) is started; a node held in WAIT (start_prim-failed, vip-conflict, rfs-failed) whose peer is not
 * primary is restarted (`stopstart`), after its peer had a heartbeat timeout to take over.
 */
async function settle(c: TestCluster, timeoutMs = 45_000, admin: string[] = []): Promise<void> {
  let last = '';
  const heldSince = new Map<string, number>();
  await c.waitFor('the cluster to settle (PRIM + SECOND up to date)', async () => {
    const st = await Promise.all(c.nodes.map((n) => c.status(n)));
    last = JSON.stringify(st.map((s) => s && { state: s.state, ready: s.ready, reason: s.reason, up: s.replication?.upToDate }));
    const anyPrimary = st.some((s) => s?.state === 'PRIM' || s?.state === 'ALONE');
    for (const [i, s] of st.entries()) {
      const node = c.nodes[i] as string;
      // Stopped by an admin action of a fault, or by maxloop (restarted too often in its window;
      // docs/states.md: run start after fixing the cause).
      if (s?.state === 'STOP' && s.ready && (s.reason === null || s.reason === 'maxloop')) {
        admin.push(`start ${node}${s.reason ? ` (${s.reason})` : ''}`);
        await c.hakit(node, ['start', MODULE]);
      }
      // Diverged (both wrote while apart, e.g. an isolated primary until its lease deadline):
      // the documented recovery keeps the running primary's data (docs/states.md).
      if (s?.state === 'WAIT' && s.ready && s.reason === 'diverged' && anyPrimary) { admin.push(`second ${node} (diverged)`); await c.hakit(node, ['second', MODULE]); }
      if (s?.state === 'WAIT' && s.ready && HELD.has(s.reason ?? '') && !anyPrimary) {
        const since = heldSince.get(node) ?? Date.now();
        heldSince.set(node, since);
        if (Date.now() - since > 3000) { admin.push(`stopstart ${node} (${s.reason})`); heldSince.delete(node); await c.hakit(node, ['stopstart', MODULE]); }
      } else heldSince.delete(node);
    }
    const states = st.map((s) => (s?.ready ? s.state : '?')).sort().join(',');
    return states === 'PRIM,SECOND' && st.every((s) => s?.replication?.upToDate === true);
  }, timeoutMs, () => last, 300);
}

async function roles(c: TestCluster): Promise<{ primary: string; secondary: string }> {
  const s1 = await c.status('n1');
  return s1?.state === 'PRIM' || s1?.state === 'ALONE' ? { primary: 'n1', secondary: 'n2' } : { primary: 'n2', secondary: 'n1' };
}

function ackedNumbers(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').map((l) => l.split(' ')[2]).filter((x): x is string => x !== undefined && /^\d+$/.test(x)).map(Number);
}

function numbersIn(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

/**
 * Intervals in which each node could write its replicated dir: from the daemon's log line before
 * it asks for the rw mount until the line after the mount left rw (ro, blocked or none), or the
 * node's crash (SIGKILL of its host or daemon: the rfs then fences itself read-only).
 */
/** Resyncs served by kind and quarantines, counted in both daemons' logs. */
function resyncCounts(c: TestCluster): ChaosReport['resyncs'] {
  const n = { incremental: 0, full: 0, abandoned: 0, quarantines: 0 };
  for (const node of c.nodes) {
    const f = join(c.tb.host(node).dir, 'daemon.log');
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (/resync served to \w+: done \(incremental/.test(line)) n.incremental++;
      else if (/resync served to \w+: done \(full/.test(line)) n.full++;
      else if (/resync served to \w+: abandoned/.test(line)) n.abandoned++;
      else if (line.includes('"event":"quarantine"')) n.quarantines++;
    }
  }
  return n;
}

function primaryIntervals(c: TestCluster, crashes: { node: string; at: number }[]): Interval[] {
  const out: Interval[] = [];
  for (const node of c.nodes) {
    const f = join(c.tb.host(node).dir, 'daemon.log');
    if (!existsSync(f)) continue;
    const ends = crashes.filter((x) => x.node === node).map((x) => x.at).sort((a, b) => a - b);
    let open: number | null = null;
    const close = (at: number): void => { if (open !== null) { out.push({ node, from: open, to: at }); open = null; } };
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line.includes('"event":"mount"') || !line.includes(`"module":"${MODULE}"`)) continue;
      const e = JSON.parse(line) as { time: number; mode: string };
      // A crash ends the writing even if the log says nothing more (the process died).
      while (open !== null && ends.length > 0 && (ends[0] as number) < e.time) close(ends.shift() as number);
      if (e.mode === 'rw' && open === null) open = e.time;
      else if (e.mode !== 'rw' && open !== null) close(e.time);
    }
    if (open !== null) close(ends.find((x) => x >= (open as number)) ?? Number.MAX_SAFE_INTEGER);
  }
  return out;
}

function overlaps(iv: Interval[]): string[] {
  const out: string[] = [];
  for (const a of iv) for (const b of iv) {
    if (a.node < b.node && a.from < b.to && b.from < a.to) out.push(`${a.node} [${a.from}, ${a.to}] and ${b.node} [${b.from}, ${b.to}]`);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

