/**
 * What the bench figures share on top of the testbed and TestCluster: the client probe, waiting
 * with a bound, a second hakit module, a keepalived pair on the same testbed, and reading a
 * process's CPU time and RSS from /proc. Needs root (namespaces), like the testbed.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { StatusReport, ModuleStatus } from '../src/core/status.js';
import { APP_PORT, REPO, TestCluster, VIP } from '../test/testbed/cluster.js';
import type { Host } from '../test/testbed/index.js';

/** The system monotonic clock in ms (CLOCK_MONOTONIC: comparable with the probe's times). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it is true; throws naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = monoMs() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (monoMs() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** One successful request seen by the probe: when (monoMs) and which node answered. */
export interface Success {
  t: number;
  server: string;
}

/**
 * The client probe (bench/probe.ts) running on a client host against VIP:APP_PORT, and what it
 * has seen so far. Successes are kept in time order.
 */
export class Probe {
  readonly successes: Success[] = [];
  private constructor(private readonly child: ChildProcess) {}

  static start(client: Host, logFile: string, target = VIP, port = APP_PORT): Probe {
    const child = client.spawn(['/usr/bin/node', join(REPO, 'dist/bench/probe.js'), target, String(port), '100', '2', '20'],
      { stdio: ['pipe', 'pipe', openSync(logFile, 'a')] });
    const p = new Probe(child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [kind, t, server] = line.split(' ');
      if (kind === 'ok' && t && server) p.successes.push({ t: Number(t), server });
    });
    return p;
  }

  /** The first success served by `server` at or after `after` (monoMs), or undefined. */
  firstAfter(after: number, server: string): Success | undefined {
    return this.successes.find((s) => s.t >= after && s.server === server);
  }

  /** The last success served by `server` strictly before `before`, or undefined. */
  lastBefore(before: number, server: string): Success | undefined {
    for (let i = this.successes.length - 1; i >= 0; i--) {
      const s = this.successes[i]!;
      if (s.t < before && s.server === server) return s;
    }
    return undefined;
  }

  /** Waits for the first success served by `server` at or after `after`; throws after `timeoutMs`. */
  async waitFor(server: string, after: number, timeoutMs: number): Promise<Success> {
    let hit: Success | undefined;
    await waitUntil(`the client's first answer from ${server}`, () => (hit = this.firstAfter(after, server)) !== undefined, timeoutMs, 10);
    return hit!;
  }

  /** Forgets successes older than `before` (keeps memory bounded over long sessions). */
  forget(before: number): void {
    const i = this.successes.findIndex((s) => s.t >= before);
    this.successes.splice(0, i < 0 ? this.successes.length : i);
  }

  stop(): void {
    this.child.stdin?.end();
    this.child.kill('SIGTERM');
  }
}

/** The `hakit status --json` entry of module `name` on `node`, or undefined when it does not answer. */
export async function moduleStatus(c: TestCluster, node: string, name: string): Promise<ModuleStatus | undefined> {
  const r = await c.hakit(node, ['status', '--json']);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as StatusReport).modules.find((m) => m.name === name);
}

/** Waits until module `name` is in `state` and ready on `node`. */
export async function waitModule(c: TestCluster, node: string, name: string, state: string, timeoutMs: number): Promise<void> {
  await waitUntil(`${name} ${state} ready on ${node}`, async () => {
    const s = await moduleStatus(c, node, name);
    return s?.state === state && s.ready;
  }, timeoutMs, 100);
}

/** Starts both daemons and the module on each (hakit start), without waiting for their roles. */
export async function startPair(c: TestCluster, module: string): Promise<void> {
  await c.startDaemon('n1');
  await c.startDaemon('n2');
  await c.hakit('n1', ['start', module]);
  await c.hakit('n2', ['start', module]);
}

export const VIP2 = '198.18.0.101';
export const APP2_PORT = 8081;
export const MODULE2 = 'web2';

const START2 = `#!/bin/sh
# start_prim of the bench's second module: the demo HTTP app on port ${APP2_PORT}, in the background.
D="$HAKIT_MODULE_DIR"
mkdir -p "$D/run"
rm -f "$D/run/app.pid"
nohup /usr/bin/node "$D/app/http-app.mjs" ${APP2_PORT} "$HAKIT_NODE" "$D/run/app.pid" >>"$D/run/app.log" 2>&1 </dev/null &
i=0
while [ "$i" -lt 100 ] && [ ! -s "$D/run/app.pid" ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$D/run/app.pid" ] || { echo "start_prim: the application did not start"; exit 1; }
`;
const STOP2 = `#!/bin/sh
# stop_prim of the bench's second module: SIGKILL of the app (it holds nothing worth a clean stop).
D="$HAKIT_MODULE_DIR"
[ -s "$D/run/app.pid" ] && kill -9 "$(cat "$D/run/app.pid")" 2>/dev/null
rm -f "$D/run/app.pid"
exit 0
`;

/**
 * Adds a second mirror module `web2` (VIP 198.18.0.101/24, the demo app on port 8081) to every
 * node's config of a cluster whose daemons are not started yet.
 */
export function addSecondModule(c: TestCluster): void {
  const mod = ['kind: mirror', `nodes: [${c.nodes.join(', ')}]`, `default_primary: ${c.nodes[0]}`, 'heartbeat: { networks: [lan, hb2] }',
    'vip:', `  - { address: ${VIP2}/24, interface: eth0 }`, 'scripts: { stop_timeout: 2s }', ''].join('\n');
  for (const n of c.nodes) {
    const md = join(c.configDir(n), 'modules', MODULE2);
    for (const d of ['bin', 'app', 'run']) mkdirSync(join(md, d), { recursive: true, mode: 0o755 });
    chmodSync(md, 0o755);
    writeFileSync(join(md, 'module.yaml'), mod);
    writeFileSync(join(md, 'bin/start_prim'), START2, { mode: 0o755 });
    writeFileSync(join(md, 'bin/stop_prim'), STOP2, { mode: 0o755 });
    writeFileSync(join(md, 'app/http-app.mjs'), readFileSync(join(c.moduleDir(n), 'app/http-app.mjs')));
  }
}

/**
 * Time on CPU of a process, all its live threads, in nanoseconds (the first field of each
 * /proc/PID/task/TID/schedstat). Unlike utime + stime (clock ticks of 10 ms, 0.5 % of a core over
 * a 2 s window) it measures an idle daemon's fraction of a percent.
 */
export function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* the thread ended meanwhile */ }
  }
  return ns;
}

/** Resident set size of a process (VmRSS) in MiB. */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** The pids of a host's processes whose command line contains every one of `words`. */
export async function pidsOf(h: Host, ...words: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await h.pids()) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (words.every((w) => cmd.includes(w))) out.push(pid);
  }
  return out;
}

/** True when the host's network namespace holds `addr` on eth0. */
export async function hasAddress(h: Host, addr: string): Promise<boolean> {
  const r = await h.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { timeoutMs: 5000 });
  return r.code === 0 && r.stdout.includes(` ${addr}/`);
}

/**
 * keepalived (VRRP only, `--vrrp`) on the nodes of a TestCluster's testbed whose hakit daemons are
 * never started: one vrrp_instance per node for the same VIP, default advert_int 1 s, the first
 * node with the higher priority (so it is master, and takes the VIP back when it returns, as
 * hakit's default_primary does); the demo HTTP app runs on every node all the time.
 */
export class KeepalivedPair {
  constructor(readonly c: TestCluster) {}

  confFile(node: string): string { return join(this.c.tb.host(node).dir, 'keepalived.conf'); }

  private writeConf(node: string): void {
    const prio = node === this.c.nodes[0] ? 150 : 100;
    writeFileSync(this.confFile(node), [
      'global_defs {', `  router_id bench_${node}`, '}',
      'vrrp_instance bench {', '  state BACKUP', '  interface eth0', '  virtual_router_id 51', `  priority ${prio}`, '  advert_int 1',
      '  virtual_ipaddress {', `    ${VIP}/24 dev eth0`, '  }', '}', ''].join('\n'));
  }

  /** Starts the demo app (port 8080) and keepalived on `node`; resolves once the app answers. */
  async start(node: string): Promise<void> {
    const h = this.c.tb.host(node);
    const log = openSync(join(h.dir, 'keepalived.log'), 'a');
    h.spawn(['/usr/bin/node', join(this.c.moduleDir(node), 'app/http-app.mjs'), String(APP_PORT), node, join(h.dir, 'app.pid')], { stdio: ['ignore', log, log] });
    const client = this.c.tb.host(this.c.clients[0]!);
    await waitUntil(`the app on ${node}`, async () => (await client.exec(['curl', '-s', '--max-time', '0.5', `http://${h.addr('lan')}:${APP_PORT}/`], { timeoutMs: 3000 })).code === 0, 10_000, 50);
    this.writeConf(node);
    // A host that comes back after a crash has an empty /run: pid files of the keepalived it
    // lost made the new one exit with "daemon is already running" (a bench run on 2026-12-05).
    for (const f of ['keepalived.pid', 'keepalived-vrrp.pid']) rmSync(join(h.dir, f), { force: true });
    h.spawn(['keepalived', '-n', '-l', '-D', '--vrrp', '-f', this.confFile(node), '-p', join(h.dir, 'keepalived.pid'),
      '-r', join(h.dir, 'keepalived-vrrp.pid')], { stdio: ['ignore', log, log] });
    await waitUntil(`keepalived's VRRP process on ${node}`, async () => (await pidsOf(h, 'keepalived')).length >= 2, 10_000, 50);
    assertKeepalivedConfined();
  }

  /** The node holding the VIP, or null; throws when more than one holds it. */
  async holder(): Promise<string | null> {
    const held: string[] = [];
    for (const n of this.c.nodes) if (await hasAddress(this.c.tb.host(n), VIP)) held.push(n);
    if (held.length > 1) throw new Error(`the VIP is on ${held.join(' and ')}`);
    return held[0] ?? null;
  }
}

/**
 * Throws when any keepalived process on the machine runs in the root network namespace: every
 * VRRP packet of the bench must stay on the testbed's LAN.
 */
export function assertKeepalivedConfined(): void {
  let pids: string[];
  try {
    pids = execFileSync('pgrep', ['-x', 'keepalived'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return; // pgrep exits 1 when nothing matches
  }
  const root = readlinkSync('/proc/self/ns/net');
  for (const pid of pids) {
    let ns: string;
    try {
      ns = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      continue; // exited meanwhile
    }
    if (ns === root) throw new Error(`keepalived pid ${pid} runs in the root network namespace: refusing to go on (VRRP would leave the testbed)`);
  }
}
