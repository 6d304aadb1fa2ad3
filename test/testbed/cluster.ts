/**
 * A hakit cluster on the testbed: real `hakit daemon` processes in network namespaces, each node
 * with its own config dir, state dir and control socket, driven through the real CLI
 * (`node bin/hakit.js ...` run inside the node), as an administrator would.
 *
 * Used by the integration tests and by `npm run demo`.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKey } from '../../src/adapters/key/cluster-key.js';
import type { StatusReport, ModuleStatus } from '../../src/core/status.js';
import { Testbed } from './index.js';

/** The repository root (dist/test/testbed/cluster.js -> ../../..). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const HAKIT = join(REPO, 'bin/hakit.js');
const FIXTURES = join(REPO, 'test/fixtures');

export interface ClusterOptions {
  /** Node names (default n1, n2); every other testbed host is a client. */
  nodes?: string[];
  clients?: string[];
  /** Extra module.yaml lines for the `web` module (e.g. `failover: false`). */
  moduleYaml?: string;
  /** Heartbeat settings line, default `heartbeat: { networks: [lan, hb2] }`. */
  heartbeat?: string;
  defaultPrimary?: string;
  /** Paths that are a different directory on each host (e.g. a replicated dir). */
  mountPaths?: string[];
  /** Size of a tmpfs behind each host's mount paths (Testbed's mountSize); default none. */
  mountSize?: string;
}

export const VIP = '198.18.0.100';
export const APP_PORT = 8080;
export const MODULE = 'web';

export class TestCluster {
  private daemons = new Map<string, ChildProcess>();
  private down = new Set<string>();
  private constructor(readonly tb: Testbed, readonly nodes: string[], readonly clients: string[]) {}

  static async create(opts: ClusterOptions = {}): Promise<TestCluster> {
    const nodes = opts.nodes ?? ['n1', 'n2'];
    const clients = opts.clients ?? ['client'];
    const tb = await Testbed.create({ hosts: [...nodes, ...clients], networks: ['lan', 'hb2'], ...(opts.mountPaths ? { mountPaths: opts.mountPaths } : {}), ...(opts.mountSize ? { mountSize: opts.mountSize } : {}) });
    const c = new TestCluster(tb, nodes, clients);
    try {
      c.writeConfig(opts);
    } catch (e) {
      await tb.dispose();
      throw e;
    }
    return c;
  }

  configDir(node: string): string { return join(this.tb.host(node).dir, 'etc'); }
  stateDir(node: string): string { return join(this.tb.host(node).dir, 'state'); }
  socket(node: string): string { return join(this.tb.host(node).dir, 'hakit.sock'); }
  moduleDir(node: string): string { return join(this.configDir(node), 'modules', MODULE); }

  private writeConfig(opts: ClusterOptions): void {
    const key = generateKey();
    const nodeLines = this.nodes.map((n) => {
      const h = this.tb.host(n);
      return `  - { name: ${n}, addresses: { lan: ${h.addr('lan')}, hb2: ${h.addr('hb2')} } }`;
    });
    const cluster = ['cluster:', '  name: test', '  key_file: cluster.key', 'networks: [lan, hb2]', 'nodes:', ...nodeLines, ''].join('\n');
    const mod = [
      'kind: mirror',
      `nodes: [${this.nodes.join(', ')}]`,
      ...(opts.defaultPrimary ? [`default_primary: ${opts.defaultPrimary}`] : []),
      opts.heartbeat ?? 'heartbeat: { networks: [lan, hb2] }',
      'vip:',
      `  - { address: ${VIP}/24, interface: eth0 }`,
      'scripts: { stop_timeout: 2s }',
      ...(opts.moduleYaml ? [opts.moduleYaml] : []),
      '',
    ].join('\n');
    for (const n of this.nodes) {
      const etc = this.configDir(n);
      const md = this.moduleDir(n);
      mkdirSync(join(md, 'bin'), { recursive: true, mode: 0o755 });
      mkdirSync(join(md, 'app'), { recursive: true, mode: 0o755 });
      mkdirSync(join(md, 'run'), { recursive: true, mode: 0o755 });
      writeFileSync(join(etc, 'cluster.yaml'), cluster);
      writeFileSync(join(etc, 'cluster.key'), key, { mode: 0o600 });
      writeFileSync(join(md, 'module.yaml'), mod);
      for (const f of readdirSync(join(FIXTURES, 'modules/web/bin'))) {
        copyFileSync(join(FIXTURES, 'modules/web/bin', f), join(md, 'bin', f));
        chmodSync(join(md, 'bin', f), 0o755);
      }
      copyFileSync(join(FIXTURES, 'apps/http-app.mjs'), join(md, 'app/http-app.mjs'));
    }
  }

  /** Starts `hakit daemon` on a node and waits until its socket answers. */
  async startDaemon(node: string, opts: { nodeArgs?: string[] } = {}): Promise<void> {
    await this.powerOn(node);
    const h = this.tb.host(node);
    // Each simulated host has its own boot id; crash() gives it a new one (as a real reboot).
    const bootId = join(h.dir, 'boot_id');
    if (!existsSync(bootId)) writeFileSync(bootId, randomUUID());
    const p = h.spawn(['/usr/bin/node', '--enable-source-maps', ...(opts.nodeArgs ?? []), HAKIT, 'daemon', '--config-dir', this.configDir(node),
      '--state-dir', this.stateDir(node), '--socket', this.socket(node)], {
      stdio: ['ignore', openSync(join(h.dir, 'daemon.log'), 'a'), openSync(join(h.dir, 'daemon.log'), 'a')],
      env: { ...process.env, HAKIT_BOOT_ID_FILE: bootId },
    });
    this.daemons.set(node, p);
    await this.waitFor(`daemon on ${node} answers`, async () => (await this.hakit(node, ['status', '--json'])).code === 0, 15_000);
  }

  /** The pid of the node's running daemon (to pause it alone: its rfs child and scripts run on). */
  daemonPid(node: string): number | undefined {
    return this.daemons.get(node)?.pid;
  }

  /** Runs `hakit ARGS` on a node against its daemon's socket. */
  async hakit(node: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.tb.host(node).exec(['/usr/bin/node', HAKIT, '--socket', this.socket(node), ...args], { timeoutMs });
  }

  /** The status of module `mod` (default: the cluster's module) on a node; undefined if the daemon does not answer. */
  async status(node: string, mod: string = MODULE): Promise<ModuleStatus | undefined> {
    const r = await this.hakit(node, ['status', '--json']);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as StatusReport).modules.find((m) => m.name === mod);
  }

  /** Waits until the node's module is in `state` (and ready, unless `ready` is false). */
  async waitState(node: string, state: string, timeoutMs = 20_000, ready = true): Promise<ModuleStatus> {
    let last: ModuleStatus | undefined;
    await this.waitFor(`${node} ${state}${ready ? ' ready' : ''}`, async () => {
      last = await this.status(node);
      return last?.state === state && (!ready || last.ready);
    }, timeoutMs, () => JSON.stringify(last), 200);
    return last!;
  }

  /** One HTTP GET of the VIP from a client host; the body ("n1 3") or null when it failed. */
  async get(client = this.clients[0]!, timeoutMs = 1000): Promise<string | null> {
    const r = await this.tb.host(client).exec(['curl', '-s', '--max-time', String(timeoutMs / 1000), `http://${VIP}:${APP_PORT}/`], { timeoutMs: timeoutMs + 2000 });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  /** The node that answers on the VIP, from the client's point of view (null: no answer). */
  async servedBy(): Promise<string | null> {
    const body = await this.get();
    return body === null ? null : body.split(' ')[0]!;
  }

  async waitServedBy(node: string, timeoutMs = 20_000): Promise<void> {
    let last: string | null = null;
    await this.waitFor(`client served by ${node}`, async () => (last = await this.servedBy()) === node, timeoutMs, () => `last answer from ${last}`);
  }

  /** Both daemons started and the module started on both; resolves with [primary, secondary] once settled. */
  async startBoth(): Promise<[string, string]> {
    for (const n of this.nodes) await this.startDaemon(n);
    for (const n of this.nodes) {
      const r = await this.hakit(n, ['start', MODULE]);
      if (r.code !== 0) throw new Error(`hakit start ${MODULE} on ${n} exited ${r.code}: ${r.stderr}`);
    }
    return this.settled();
  }

  /** Waits for one ready PRIM and one ready SECOND of the module; [primary, secondary]. A timeout shows both nodes' logs. */
  async settled(timeoutMs = 30_000): Promise<[string, string]> {
    let last = '';
    try {
      await this.waitFor('one PRIM and one SECOND', async () => {
        const [a, b] = [await this.status('n1'), await this.status('n2')];
        last = JSON.stringify([a && [a.state, a.ready, a.reason], b && [b.state, b.ready, b.reason]]);
        return !!a?.ready && !!b?.ready && [a.state, b.state].sort().join() === 'PRIM,SECOND';
      }, timeoutMs, () => last);
    } catch (e) {
      const logs = await Promise.all(this.nodes.map(async (n) => `--- ${n}\n${(await this.hakit(n, ['log', MODULE, '-n', '60'])).stdout}`));
      throw new Error(`${(e as Error).message}\n${logs.join('\n')}`, { cause: e });
    }
    return (await this.status('n1'))!.state === 'PRIM' ? ['n1', 'n2'] : ['n2', 'n1'];
  }

  /**
   * Polls `check` every `everyMs` (default 50) until it is true; throws naming `what` after
   * `timeoutMs`. Checks that run the CLI cost a process each: poll those slower.
   */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, detail?: () => string, everyMs = 50): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail()}` : ''}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** Stops a daemon with SIGTERM (clean stop of its modules) and waits for it to exit. */
  async stopDaemon(node: string, timeoutMs = 20_000): Promise<void> {
    const p = this.daemons.get(node);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((_r, rej) => setTimeout(() => rej(new Error(`daemon on ${node} did not stop in ${timeoutMs} ms`)), timeoutMs))]);
  }

  /** SIGKILLs the node's daemon only: the application and the VIP it holds stay up. */
  async killDaemon(node: string): Promise<void> {
    const p = this.daemons.get(node);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
    this.daemons.delete(node);
  }

  /**
   * The whole server dies: SIGKILL of every process of the host (FUSE mounts unmounted), its
   * cables pulled, and the addresses a reboot would not restore (the VIP) removed, so the dead
   * host answers nothing until `startDaemon` powers it on again.
   */
  async crash(node: string): Promise<void> {
    await this.tb.crash(node);
    writeFileSync(join(this.tb.host(node).dir, 'boot_id'), randomUUID()); // the host boots again
    this.daemons.delete(node);
    for (const net of ['lan', 'hb2']) await this.tb.linkDown(node, net);
    await this.tb.host(node).exec(['ip', 'addr', 'del', `${VIP}/24`, 'dev', 'eth0'], { timeoutMs: 5000 });
    this.down.add(node);
  }

  /** Powers a crashed node on again (cables back); its daemon is not started. */
  async powerOn(node: string): Promise<void> {
    if (!this.down.delete(node)) return;
    for (const net of ['lan', 'hb2']) await this.tb.linkUp(node, net);
  }

  /** Removes the testbed; with HAKIT_TEST_LOGS=DIR the daemons' logs are copied there first. */
  async dispose(timeoutMs?: number): Promise<void> {
    const keep = process.env.HAKIT_TEST_LOGS;
    if (keep) {
      for (const n of this.nodes) {
        const src = join(this.tb.host(n).dir, 'daemon.log');
        if (existsSync(src)) { mkdirSync(keep, { recursive: true }); copyFileSync(src, join(keep, `${this.tb.prefix}-${n}.log`)); }
      }
    }
    await this.tb.dispose(timeoutMs);
  }
}
