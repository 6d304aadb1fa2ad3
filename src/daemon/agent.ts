/**
 * The node agent: loads the configuration, finds which node this host is, opens the heartbeat
 * transport and runs every module of this node. It is the `Controller` the control API serves
 * (src/api), but depends on nothing there.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { realClock, type Clock } from '../adapters/clock/index.js';
import { loadConfigDir } from '../adapters/configfs/index.js';
import { RfsProcess } from '../adapters/fuse/process.js';
import { recoverStaleMount } from '../adapters/fuse/recover.js';
import type { ModuleRfs } from '../adapters/fuse/rfs.js';
import { loadKey } from '../adapters/key/cluster-key.js';
import type { ProbeFactory } from '../adapters/probes/index.js';
import { ProcessScriptRunner, type ScriptRunner } from '../adapters/scripts/index.js';
import { FileStateStore, moduleStateDir } from '../adapters/store/index.js';
import type { HeartbeatTransport } from '../adapters/udp/transport.js';
import { UdpHeartbeatTransport, type UdpBind } from '../adapters/udp/udp-transport.js';
import { ClockPacer, HeartbeatBatcher } from './heartbeat-batcher.js';
import { IpVipManager, type VipManager } from '../adapters/vip/index.js';
import { UdpWitnessClient, type WitnessClient } from '../adapters/witness/index.js';
import { formatIssue, type HakitConfig, type ModuleConfig } from '../core/config/index.js';
import { HakitError } from '../core/errors.js';
import type { MirrorCommand } from '../core/mirror/index.js';
import type { LogEntry, ModuleStatus, StatusReport } from '../core/status.js';
import type { Logbook } from './logbook.js';
import { MirrorRuntime, REPLICATION_BASE_PORT } from './mirror-runtime.js';
import { currentBootId } from './boot-id.js';

export interface AgentOptions {
  readonly configDir: string;
  readonly stateDir: string;
  /** This node's name; default: the node whose address is configured on a local interface. */
  readonly node?: string;
  readonly logbook: Logbook;
  /** Adapters, for tests; real ones by default. */
  readonly clock?: Clock;
  readonly scripts?: ScriptRunner;
  readonly vips?: VipManager;
  readonly transport?: HeartbeatTransport;
  readonly probeFor?: ProbeFactory;
  /** Starts a module's rfs child (default: a real RfsProcess). */
  readonly spawnRfs?: () => ModuleRfs;
  /** Opens a client of the arbitrator witness at "IP:PORT" (default: a real UdpWitnessClient). */
  readonly openWitness?: (witness: string) => Promise<WitnessClient>;
  /** The host's boot id (default: boot-id.ts) and how a replicated dir is flushed at a clean stop (default: the rfs child flushes the file systems below its mounts). */
  readonly bootId?: () => string;
  readonly flushDir?: (dir: string) => Promise<void>;
}

/** A module of this node that this version cannot run: it stays STOP with `reason`. */
interface Unsupported {
  readonly module: ModuleConfig;
  readonly reason: string;
  /** What is missing, for the refusal of commands. */
  readonly what: string;
}

/** A command as the API passes it (validated there). */
export interface AgentCommand {
  readonly cmd: string;
  readonly fullsync?: boolean;
  readonly on?: boolean;
}

/** The addresses configured on this host's interfaces (canonical text). */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** Which node of the cluster this host is: `wanted` if given (checked), else by local addresses. */
export function findNode(config: HakitConfig, wanted: string | undefined, local: Set<string>): string {
  const names = config.cluster.nodes.map((n) => n.name);
  if (wanted !== undefined) {
    if (!names.includes(wanted)) throw new HakitError('NODE_UNKNOWN', { detail: `--node ${wanted} is not a node of cluster.yaml (nodes: ${names.join(', ')})` });
    return wanted;
  }
  const mine = config.cluster.nodes.filter((n) => Object.values(n.addresses).some((a) => local.has(a)));
  if (mine.length === 1) return mine[0]!.name;
  if (mine.length === 0) {
    throw new HakitError('NODE_UNKNOWN', { detail: `no address of any node (${names.join(', ')}) is configured on this host; configure the node's address or pass --node NAME` });
  }
  throw new HakitError('NODE_UNKNOWN', { detail: `addresses of several nodes (${mine.map((n) => n.name).join(', ')}) are on this host; pass --node NAME` });
}

function toMirrorCommand(c: AgentCommand): MirrorCommand {
  switch (c.cmd) {
    case 'start': case 'stop': case 'restart': case 'stopstart': case 'swap': case 'prim':
      return { cmd: c.cmd };
    case 'second':
      return { cmd: 'second', fullsync: c.fullsync === true };
    case 'failover':
      if (typeof c.on !== 'boolean') throw new HakitError('BAD_REQUEST', { detail: '"failover" needs "on": true or false' });
      return { cmd: 'failover', on: c.on };
    default:
      throw new HakitError('BAD_REQUEST', { detail: `unknown command ${JSON.stringify(c.cmd)}` });
  }
}

export class NodeAgent {
  private closing = false;

  private constructor(
    readonly node: string,
    readonly config: HakitConfig,
    private readonly logbook: Logbook,
    private readonly transport: HeartbeatTransport,
    private readonly mirrors: Map<string, MirrorRuntime>,
    /** Modules of this node the daemon cannot run yet, with why. */
    private readonly others: Map<string, Unsupported>,
  ) {}

  /** Loads and checks everything, then starts every module. Throws HakitError on bad config or key. */
  static async create(opts: AgentOptions): Promise<NodeAgent> {
    const res = loadConfigDir(opts.configDir);
    if (!res.ok) {
      const first = res.errors.slice(0, 5).map(formatIssue).join('; ');
      const more = res.errors.length > 5 ? ` and ${res.errors.length - 5} more` : '';
      throw new HakitError('CONFIG', { detail: `${res.errors.length} error(s) in ${opts.configDir}: ${first}${more}` });
    }
    const config = res.config;
    for (const w of res.warnings) opts.logbook.log(null, 'warn', formatIssue(w));
    const node = findNode(config, opts.node, localAddresses());
    const { key } = await loadKey(config.cluster.keyFile);
    const self = config.cluster.nodes.find((n) => n.name === node)!;
    const mine = config.modules.filter((m) => m.nodes.includes(node));
    const clock = opts.clock ?? realClock;

    let transport = opts.transport;
    if (!transport) {
      const nets = new Set(mine.flatMap((m) => m.heartbeat.networks));
      const bind: UdpBind[] = [...nets].flatMap((network) => {
        const address = self.addresses[network];
        return address === undefined ? [] : [{ network, address }];
      });
      transport = await UdpHeartbeatTransport.open({
        key, cluster: config.cluster.name, node,
        members: Object.fromEntries(mine.map((m) => [m.name, m.nodes])),
        bind,
        onDrop: rateLimited(opts.logbook, clock),
      });
    }
    // Every module's heartbeats of one pulse leave together: one datagram per peer and network.
    const batched = new HeartbeatBatcher(transport, {
      onError: (network, module, e) => opts.logbook.log(module, 'error', `heartbeat on ${network} not sent: ${e.message}`),
    });
    const pacer = new ClockPacer(clock);
    const scripts = opts.scripts ?? new ProcessScriptRunner();
    const vips = opts.vips ?? new IpVipManager();
    const mirrors = new Map<string, MirrorRuntime>();
    const others = new Map<string, Unsupported>();
    for (const m of mine) {
      if (m.kind !== 'mirror') {
        others.set(m.name, { module: m, reason: 'farm-not-implemented', what: 'farm modules' });
        opts.logbook.log(m.name, 'warn', `${m.kind} modules are not implemented yet in this version: module ${m.name} stays STOP`);
        continue;
      }
      const dir = moduleStateDir(opts.stateDir, m.name);
      mkdirSync(`${dir}/logs`, { recursive: true, mode: 0o700 });
      mirrors.set(m.name, new MirrorRuntime(
        { module: m, cluster: config.cluster, node, configDir: config.dir, moduleStateDir: dir, replicationPort: replicationPort(config.modules, m.name) },
        {
          clock, store: new FileStateStore(dir), scripts, vips, transport: batched, pacer, logbook: opts.logbook, idSeed: () => randomBytes(6).toString('hex'), bootId: opts.bootId ?? (() => currentBootId()),
          ...(opts.flushDir ? { flushDir: opts.flushDir } : {}),
          probeFor: opts.probeFor, moduleState: (name) => mirrors.get(name)?.status().state,
          spawnRfs: opts.spawnRfs ?? (() => new RfsProcess()), recoverMount: recoverStaleMount,
          openWitness: opts.openWitness ?? ((witness) => UdpWitnessClient.open({ key, cluster: config.cluster.name, node, clock, witness })),
        },
      ));
    }
    const agent = new NodeAgent(node, config, opts.logbook, batched, mirrors, others);
    opts.logbook.log(null, 'info', `node ${node} of cluster ${config.cluster.name}: modules ${mine.map((m) => m.name).join(', ') || 'none'}`);
    for (const rt of mirrors.values()) await rt.start();
    return agent;
  }

  status(module?: string): StatusReport {
    if (module !== undefined && !this.mirrors.has(module) && !this.others.has(module)) throw new HakitError('NO_MODULE', { module });
    const modules: ModuleStatus[] = [];
    for (const m of this.config.modules) {
      if (module !== undefined && m.name !== module) continue;
      const rt = this.mirrors.get(m.name);
      if (rt) modules.push(rt.status());
      else {
        const u = this.others.get(m.name);
        if (u) modules.push({ name: m.name, kind: m.kind, state: 'STOP', ready: true, reason: u.reason, peer: null, vip: m.vip.map((v) => v.cidr), replication: null });
      }
    }
    const c = this.transport.counters();
    return { node: this.node, modules, heartbeat: { sent: c.sent, received: c.received, accepted: c.accepted, dropped: c.dropped, datagramsSent: c.datagramsSent, datagramsReceived: c.datagramsReceived } } as StatusReport;
  }

  async command(module: string, req: AgentCommand): Promise<{ message: string; differ?: string[] }> {
    this.refuseWhileClosing(module, req.cmd);
    const rt = this.mirrors.get(module);
    if (!rt) {
      const u = this.others.get(module);
      if (u) throw new HakitError('NOT_IMPLEMENTED', { command: `${req.cmd} on a module with ${u.what}` });
      throw new HakitError('NO_MODULE', { module });
    }
    if (req.cmd === 'verify') return rt.verify();
    return { message: rt.command(toMirrorCommand(req)) };
  }

  /** `hakit checker on|off MODULE [NAME]`. */
  checker(module: string, on: boolean, name?: string): { message: string } {
    this.refuseWhileClosing(module, `checker ${on ? 'on' : 'off'}`);
    const rt = this.mirrors.get(module);
    if (!rt) {
      if (this.others.has(module)) throw new HakitError('NOT_IMPLEMENTED', { command: `checker on a module with ${this.others.get(module)!.what}` });
      throw new HakitError('NO_MODULE', { module });
    }
    const changed = rt.checker(on, name);
    const what = name === undefined ? 'every checker' : `checker ${name}`;
    return { message: `${what} of ${module} ${on ? 'on' : 'off'}${changed.length === 0 ? ' (already)' : ''}` };
  }

  log(module: string, lines: number): LogEntry[] {
    if (!this.mirrors.has(module) && !this.others.has(module)) throw new HakitError('NO_MODULE', { module });
    return this.logbook.entries(module, lines);
  }

  /**
   * Once the daemon shuts down, commands are refused: a `start` accepted then would restart a
   * module the shutdown is stopping, and the daemon would exit holding it (simulator finding 8).
   */
  private refuseWhileClosing(module: string, command: string): void {
    if (this.closing) throw new HakitError('BAD_STATE', { command, module, state: 'stopping', detail: 'the daemon is shutting down; run the command on the next daemon' });
  }

  /** Stops every module cleanly (keeping whether each is enabled), then closes the transport. */
  async shutdown(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.mirrors.values()].map((rt) => rt.shutdown()));
    await this.transport.close();
  }
}

/** Logs dropped heartbeats at most once per 10 s per (network, reason); the counters keep every one. */
function rateLimited(logbook: Logbook, clock: Clock): (network: string, from: string, reason: string) => void {
  const last = new Map<string, number>();
  return (network, from, reason) => {
    const k = `${network}/${reason}`;
    const now = clock.now();
    if ((last.get(k) ?? -Infinity) + 10_000 > now) return;
    last.set(k, now);
    logbook.log(null, 'warn', `heartbeat dropped on ${network} from ${from}: ${reason} (further drops counted in hakit status)`, { network, from, reason });
  };
}

/**
 * The replication port of a module: its `replication.port`, else 7406 + its index among the
 * cluster's mirror modules with replicated dirs, in name order (the same on both nodes, which
 * read the same config).
 */
export function replicationPort(modules: readonly ModuleConfig[], name: string): number | undefined {
  const replicated = modules.filter((m) => m.kind === 'mirror' && m.replication.dirs.length > 0).map((m) => m.name).sort();
  const m = modules.find((x) => x.name === name);
  if (m === undefined || m.kind !== 'mirror' || m.replication.dirs.length === 0) return undefined;
  return m.replication.port ?? REPLICATION_BASE_PORT + replicated.indexOf(name);
}
