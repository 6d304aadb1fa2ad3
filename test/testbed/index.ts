/**
 * The multi-host testbed (DESIGN.md section 7, "The testbed"): a virtual LAN of named hosts on one
 * machine, for integration tests, chaos runs and benchmarks. See docs/testbed.md.
 *
 *   root namespace            hub namespace "<prefix>-hub"            host namespaces
 *   (never connected)         br0 (lan) ── <host>-e0 ═══ veth ═══ eth0   "<prefix>-<host>"
 *                             br1 (hb2) ── <host>-e1 ═══ veth ═══ eth1
 *                             nft table bridge hakit_faults (partitions, losses)
 *
 * Every host is a network namespace plus a persistent mount namespace (bound on a file in the
 * run directory) in which each mount path (e.g. /srv/app) is a bind mount of the host's own
 * directory. Every process of a host is started with `nsenter --net --mount`, so all processes of
 * a host share its mounts (FUSE included) and no other host sees them.
 *
 * Lifetime: `Testbed.create` writes an owner marker first; `dispose()` removes everything; a
 * process exit hook removes runs the process forgot; `sweep()` removes runs whose owner died.
 */
import { randomInt } from 'node:crypto';
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { HakitError } from '../../src/core/errors.js';
import { cleanupRun, cleanupRunSync, ownerMarker, sweep } from './cleanup.js';
import {
  DIR_ROOT, HOST_RE, LOCK_FILE, MAX_HOSTS, MAX_NETWORKS, MOUNTPOINTS_FILE, NETWORK_RE, RUN_ROOT,
  addr4, addr6, backingDir, bridgeName, checkMountPath, dropRules, faultTableScript, healScript,
  hostDir, hostPathOf, hubName, hubPortName, ifname, makePrefix, mntnsFile, mountPathsFile,
  netnsName, ownerFile, runDir, subnet4, subnet6,
} from './layout.js';
import { type ExecResult, execCommand, runCommand, signalProcess, killTree } from './run.js';

export { sweep };
export type { ExecResult };

export interface TestbedOptions {
  /** Host names, in order: host number i (1-based) gets address .i on every network. */
  hosts: readonly string[];
  /** Network names, in order: network k (0-based) is `eth<k>` in hosts. Default ['lan']. */
  networks?: readonly string[];
  /** Absolute paths that are a different directory on each host (bind mounts in its mount namespace). */
  mountPaths?: readonly string[];
  /**
   * When set (e.g. '96m'), each host's directory behind each mount path is a tmpfs of this size,
   * so that a test can fill it up (disk full). Default: directories on the root file system.
   */
  mountSize?: string;
}

export interface HostExecOptions {
  /** Kill the command's process group after this many ms (default 10000); rejects then. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  input?: string;
}

export interface HostSpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 'ignore' (an unread pipe would block the child once it fills). */
  stdio?: StdioOptions;
  cwd?: string;
}

/** Which networks a fault applies to; default every network of the run. */
export interface FaultOptions {
  networks?: readonly string[];
  /** Only this protocol's packets (IPv4 and IPv6), e.g. `udp`: heartbeats lost, TCP replication kept. */
  proto?: 'udp' | 'tcp';
}

const NETNS_DIR = '/run/netns';
/** How long crash() waits for the processes of a host to be gone. */
const CRASH_TIMEOUT_MS = 5_000;
/** How long linkUp()/linkDown() wait for the host to see the carrier change. */
const LINK_TIMEOUT_MS = 3_000;

/** Runs not yet disposed by this process; the exit hook removes them. */
const live = new Set<string>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const p of live) cleanupRunSync(p);
  });
  // A signal without a handler ends node without 'exit': clean up, then die of the same signal.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const p of live) cleanupRunSync(p);
      live.clear();
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** One host of a run. Obtain with `tb.host(name)`. */
export class Host {
  /** @internal */
  constructor(
    private readonly tb: Testbed,
    /** The name the test gave the host. */
    readonly name: string,
    /** 1-based number of the host: its addresses end in this number. */
    readonly index: number,
  ) {}

  /** The host's network namespace name (`ip -n <netns> ...`). */
  get netns(): string {
    return netnsName(this.tb.prefix, this.name);
  }

  /** The file the host's persistent mount namespace is bound to (for `nsenter --mount=`). */
  get mntns(): string {
    return mntnsFile(this.tb.prefix, this.name);
  }

  /** The host's private working directory, a real path on the root file system (visible everywhere). */
  get dir(): string {
    return hostDir(this.tb.prefix, this.name);
  }

  /** The host's IPv4 address on a network (no prefix length), e.g. '198.18.0.1'. */
  addr(network: string): string {
    return addr4(this.tb.networkIndex(network), this.index);
  }

  /** The host's IPv6 address on a network (no prefix length), e.g. '2001:2::1'. */
  addr6(network: string): string {
    return addr6(this.tb.networkIndex(network), this.index);
  }

  /** The host's interface on a network: 'eth0' for the first network, 'eth1' for the second. */
  ifname(network: string): string {
    return ifname(this.tb.networkIndex(network));
  }

  /** Bytes sent so far by the host's interface on `network` (its veth's tx counter). */
  async txBytes(network: string): Promise<number> {
    const dev = this.ifname(network);
    const r = await this.exec(['ip', '-j', '-s', 'link', 'show', 'dev', dev], { timeoutMs: 5000 });
    const v = (JSON.parse(r.stdout) as { stats64?: { tx?: { bytes?: number } } }[])[0]?.stats64?.tx?.bytes;
    if (typeof v !== 'number') throw new Error(`no tx counter for ${dev} on ${this.name}: ${r.stdout}`);
    return v;
  }

  /** The hub-side port of the host on a network (what faults act on). */
  hubPort(network: string): string {
    return hubPortName(this.name, this.tb.networkIndex(network));
  }

  /**
   * Where this host's view of `path` lives on the root file system: the backing directory for
   * paths under a mount path, `path` itself otherwise. A FUSE mount made inside the host is not
   * visible there (this is the directory below it).
   */
  hostPath(path: string): string {
    return hostPathOf(this.tb.prefix, this.name, this.tb.mountPaths, path);
  }

  /** The argv prefix that runs a command inside this host. */
  enterArgv(): string[] {
    return ['nsenter', `--net=${NETNS_DIR}/${this.netns}`, `--mount=${this.mntns}`, '--'];
  }

  /**
   * Runs argv inside the host (its network and mount namespaces) and resolves with its exit code
   * and output; a non-zero exit is a result, not a rejection. Rejects with HakitError('TESTBED')
   * when the command cannot start or exceeds `timeoutMs` (its process group is killed first).
   */
  exec(argv: readonly string[], opts: HostExecOptions = {}): Promise<ExecResult> {
    this.tb.assertLive();
    return execCommand(`run a command on host ${this.name}`, [...this.enterArgv(), ...argv], opts);
  }

  /** Like exec, but a non-zero exit rejects with HakitError('TESTBED'); resolves with stdout. */
  run(argv: readonly string[], opts: HostExecOptions = {}): Promise<string> {
    this.tb.assertLive();
    return runCommand(`run a command on host ${this.name}`, [...this.enterArgv(), ...argv], opts);
  }

  /**
   * Starts argv inside the host in its own process group (nsenter execs the program, so the
   * child's pid is the program's). The run tracks it: dispose() kills it, crash() of the host too.
   */
  spawn(argv: readonly string[], opts: HostSpawnOptions = {}): ChildProcess {
    this.tb.assertLive();
    const [cmd, ...args] = [...this.enterArgv(), ...argv];
    const child = spawn(cmd as string, args, { env: opts.env ?? process.env, stdio: opts.stdio ?? 'ignore', detached: true, cwd: opts.cwd });
    this.tb.track(child);
    return child;
  }

  /** Pids of every process in the host's network namespace. */
  async pids(): Promise<number[]> {
    const out = await runCommand(`list the processes of host ${this.name}`, ['ip', 'netns', 'pids', this.netns]);
    return out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
  }
}

export class Testbed {
  private readonly hostMap = new Map<string, Host>();
  private readonly children = new Set<ChildProcess>();
  private disposing: Promise<void> | undefined;

  private constructor(
    /** Per-run prefix of every name, e.g. 'hk3f9a'. */
    readonly prefix: string,
    readonly networks: readonly string[],
    readonly mountPaths: readonly string[],
    hosts: readonly string[],
    private readonly mountSize: string | undefined,
  ) {
    hosts.forEach((h, i) => this.hostMap.set(h, new Host(this, h, i + 1)));
  }

  /**
   * Builds a run: a hub namespace with one bridge per network, one namespace per host with an
   * interface and an IPv4 and IPv6 address on every network, `lo` up, ip_forward off, and a
   * persistent mount namespace per host with the mount paths bound to its own directories.
   * On failure removes what it built and rejects with HakitError('TESTBED').
   */
  static async create(opts: TestbedOptions): Promise<Testbed> {
    const networks = opts.networks ?? ['lan'];
    const mountPaths = opts.mountPaths ?? [];
    validate(opts.hosts, networks, mountPaths);
    if (opts.mountSize !== undefined && !/^[1-9]\d{0,5}[kmg]$/.test(opts.mountSize)) {
      throw new HakitError('TESTBED', { action: 'create a run', detail: `mountSize ${JSON.stringify(opts.mountSize)} is not a size like 96m` });
    }
    if (process.getuid?.() !== 0) throw new HakitError('NOT_ROOT', { what: 'The testbed' });
    mkdirSync(RUN_ROOT, { recursive: true });
    mkdirSync(DIR_ROOT, { recursive: true });
    const prefix = claimPrefix();
    // The owner marker comes first, so that sweep() of another process never takes this run for dead.
    writeFileSync(ownerFile(prefix), ownerMarker());
    installExitHook();
    live.add(prefix);
    const tb = new Testbed(prefix, [...networks], [...mountPaths], opts.hosts, opts.mountSize);
    try {
      await tb.build();
    } catch (e) {
      await tb.dispose().catch(() => undefined);
      throw e;
    }
    return tb;
  }

  /** The host named `name`; throws when the run has no such host. */
  host(name: string): Host {
    const h = this.hostMap.get(name);
    if (!h) throw new HakitError('TESTBED', { action: `find host ${name}`, detail: `the run has hosts ${[...this.hostMap.keys()].join(', ')}` });
    return h;
  }

  get hosts(): Host[] {
    return [...this.hostMap.values()];
  }

  /** The hub namespace name. */
  get hub(): string {
    return hubName(this.prefix);
  }

  /** @internal */
  networkIndex(network: string): number {
    const k = this.networks.indexOf(network);
    if (k < 0) throw new HakitError('TESTBED', { action: `find network ${network}`, detail: `the run has networks ${this.networks.join(', ')}` });
    return k;
  }

  /** @internal */
  assertLive(): void {
    if (this.disposing) throw new HakitError('TESTBED', { action: 'use a run', detail: `run ${this.prefix} is disposed` });
  }

  /** @internal */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
  }

  private async build(): Promise<void> {
    const p = this.prefix;
    const R = runDir(p);
    // The mount namespace files must live on a private mount.
    await runCommand('make the run directory a private mount', ['sh', '-c', 'mount --bind "$1" "$1" && mount --make-private "$1"', 'sh', R]);

    for (const h of this.hosts) {
      mkdirSync(h.dir, { recursive: true });
      for (const m of this.mountPaths) mkdirSync(backingDir(p, h.name, m), { recursive: true });
    }
    // Size-limited backing directories are mounted before the hosts' mount namespaces copy the
    // root namespace's mounts; cleanup unmounts them (everything mounted under the host dirs).
    if (this.mountSize !== undefined) {
      for (const h of this.hosts) for (const m of this.mountPaths) {
        await runCommand(`mount a ${this.mountSize} tmpfs behind ${m} of host ${h.name}`,
          ['mount', '-t', 'tmpfs', '-o', `size=${this.mountSize},mode=0755`, `${p}-${h.name}`, backingDir(p, h.name, m)]);
      }
    }
    if (this.mountPaths.length > 0) {
      writeFileSync(mountPathsFile(p), this.mountPaths.map((m) => `${m}\n`).join(''));
      await runCommand('create the mount points', ['flock', '-w', '20', LOCK_FILE, 'sh', '-c', CREATE_MOUNTPOINTS_SH, 'sh', MOUNTPOINTS_FILE, ...this.mountPaths]);
    }

    const namespaces = [this.hub, ...this.hosts.map((h) => h.netns)];
    await runCommand('create the namespaces', ['ip', '-b', '-'], { input: namespaces.map((n) => `netns add ${n}\n`).join('') });

    // New namespaces copy IPv4 sysctls from the root namespace: no forwarding anywhere. The hub
    // has no IPv6 at all (it is a switch); hosts do not forward IPv6 either.
    const hubSysctl = 'echo 0 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6';
    const hostSysctl = 'echo 0 > /proc/sys/net/ipv4/ip_forward && echo 0 > /proc/sys/net/ipv6/conf/all/forwarding';
    await Promise.all(namespaces.map((n, i) =>
      runCommand(`set the sysctls of ${n}`, ['nsenter', `--net=${NETNS_DIR}/${n}`, 'sh', '-c', i === 0 ? hubSysctl : hostSysctl])));

    let hubBatch = '';
    this.networks.forEach((_, k) => {
      hubBatch += `link add ${bridgeName(k)} type bridge stp_state 0 forward_delay 0 mcast_snooping 0\nlink set ${bridgeName(k)} up\n`;
    });
    for (const h of this.hosts) {
      this.networks.forEach((_, k) => {
        const port = hubPortName(h.name, k);
        hubBatch += `link add ${port} type veth peer name ${ifname(k)} netns ${h.netns}\nlink set ${port} master ${bridgeName(k)}\nlink set ${port} up\n`;
      });
    }
    await runCommand('build the hub', ['ip', '-n', this.hub, '-b', '-'], { input: hubBatch });
    await runCommand('create the fault table', ['nsenter', `--net=${NETNS_DIR}/${this.hub}`, 'nft', '-f', '-'], { input: faultTableScript() });

    await Promise.all(this.hosts.map((h) => {
      let batch = 'link set lo up\n';
      this.networks.forEach((_, k) => {
        const dev = ifname(k);
        batch += `addr add ${addr4(k, h.index)}/${subnet4(k).split('/')[1]} dev ${dev}\n`;
        batch += `addr add ${addr6(k, h.index)}/${subnet6(k).split('/')[1]} dev ${dev} nodad\n`;
        batch += `link set ${dev} up\n`;
      });
      return runCommand(`configure host ${h.name}`, ['ip', '-n', h.netns, '-b', '-'], { input: batch });
    }));

    await Promise.all(this.hosts.map(async (h) => {
      writeFileSync(h.mntns, '');
      await runCommand(`create the mount namespace of host ${h.name}`, ['unshare', `--mount=${h.mntns}`, '--propagation', 'private', 'true']);
      if (this.mountPaths.length === 0) return;
      const binds = this.mountPaths.flatMap((m) => [backingDir(p, h.name, m), m]);
      await runCommand(`bind the mount paths of host ${h.name}`, ['nsenter', `--mount=${h.mntns}`, 'sh', '-c', BIND_SH, 'sh', ...binds]);
    }));
  }

  /**
   * Crashes a host: SIGKILLs every process in its network namespace (repeating while processes
   * fork, bounded), then lazily unmounts the FUSE mounts in its mount namespace (their servers are
   * dead: "Transport endpoint is not connected" otherwise). The host stays usable afterwards.
   * Resolves once no process is left; rejects with HakitError('TESTBED') if they keep coming.
   */
  async crash(name: string): Promise<void> {
    this.assertLive();
    const h = this.host(name);
    const deadline = Date.now() + CRASH_TIMEOUT_MS;
    for (let round = 0; ; round++) {
      const pids = await h.pids();
      if (pids.length === 0) break;
      if (Date.now() > deadline) throw new HakitError('TESTBED', { action: `crash host ${name}`, detail: `processes still running after ${CRASH_TIMEOUT_MS} ms: ${pids.join(' ')}` });
      // Killed processes take a moment to exit; poll gently after the first rounds.
      if (round >= 3) await delay(10);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
      }
    }
    const info = await runCommand(`list the mounts of host ${name}`, ['nsenter', `--mount=${h.mntns}`, 'cat', '/proc/self/mountinfo']);
    const fuse = fuseMountPoints(info);
    for (const mp of fuse.reverse()) {
      await runCommand(`unmount ${mp} on host ${name}`, ['nsenter', `--mount=${h.mntns}`, 'umount', '-l', mp]);
    }
  }

  /**
   * Cuts every host of `a` off from every host of `b`, both ways, on the given networks (default
   * all): frames between their hub ports are dropped in the hub. Links stay up. Undo with heal().
   */
  async partition(a: readonly string[], b: readonly string[], opts: FaultOptions = {}): Promise<void> {
    const pairs: [string, string][] = [];
    for (const x of a) for (const y of b) {
      for (const [from, to] of this.portPairs(x, y, opts)) pairs.push([from, to], [to, from]);
    }
    await this.nft('add a partition', dropRules(pairs, 100, opts.proto));
  }

  /**
   * Drops `percent` % (default 100) of the frames from host `from` to host `to` on the given
   * networks (default all); the other direction is untouched. Note that ARP needs both
   * directions: once a neighbour entry expires, one-way loss becomes loss both ways for IPv4
   * traffic, as on a real LAN. Undo with heal().
   */
  async oneWayLoss(from: string, to: string, opts: FaultOptions & { percent?: number } = {}): Promise<void> {
    await this.nft('add a one-way loss', dropRules(this.portPairs(from, to, opts), opts.percent ?? 100, opts.proto));
  }

  /** Removes every partition and loss rule. Links set down by linkDown() stay down. */
  async heal(): Promise<void> {
    await this.nft('heal the network', healScript());
  }

  /**
   * Limits what reaches host `name` on `network` to `kbit` kbit/s (a slow link): a `tbf` qdisc on
   * its hub-side port, whose egress is the traffic towards the host. Replaces an earlier limit.
   * Undo with unlimit(); heal() leaves it.
   */
  async limitRate(name: string, network: string, kbit: number): Promise<void> {
    this.assertLive();
    if (!(Number.isInteger(kbit) && kbit > 0)) throw new HakitError('TESTBED', { action: 'limit a rate', detail: `bad rate ${kbit} kbit/s` });
    const port = this.host(name).hubPort(network);
    await runCommand(`limit ${name} on ${network} to ${kbit} kbit/s`,
      ['tc', '-n', this.hub, 'qdisc', 'replace', 'dev', port, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '16kb', 'latency', '200ms']);
  }

  /** Removes the limit limitRate() set (a no-op when there is none). */
  async unlimitRate(name: string, network: string): Promise<void> {
    this.assertLive();
    const port = this.host(name).hubPort(network);
    const r = await execCommand(`unlimit ${name} on ${network}`, ['tc', '-n', this.hub, 'qdisc', 'del', 'dev', port, 'root']);
    // "No such file or directory" / "Cannot delete qdisc with handle of zero": nothing was set.
    if (r.code !== 0 && !/No such file|handle of zero|Invalid handle/.test(r.stderr)) {
      throw new HakitError('TESTBED', { action: `unlimit ${name} on ${network}`, detail: r.stderr.trim() });
    }
  }

  /**
   * Pulls the host's cable on a network: its hub-side port goes down. Resolves once the host's
   * interface reports NO-CARRIER (operstate not UP), as a real NIC would.
   */
  async linkDown(name: string, network: string): Promise<void> {
    await this.setLink(name, network, 'down');
  }

  /**
   * Plugs the cable back in; resolves once the host's interface is operationally up again and the
   * bridge forwards on the hub-side port.
   */
  async linkUp(name: string, network: string): Promise<void> {
    await this.setLink(name, network, 'up');
  }

  private async setLink(name: string, network: string, state: 'up' | 'down'): Promise<void> {
    this.assertLive();
    const h = this.host(name);
    const action = `set the link of ${name} on ${network} ${state}`;
    await runCommand(action, ['ip', '-n', this.hub, 'link', 'set', h.hubPort(network), state]);
    const deadline = Date.now() + LINK_TIMEOUT_MS;
    for (;;) {
      const out = await runCommand(action, ['ip', '-n', h.netns, '-j', 'link', 'show', 'dev', h.ifname(network)]);
      const link = (JSON.parse(out) as { operstate?: string; flags?: string[] }[])[0];
      const noCarrier = link?.flags?.includes('NO-CARRIER') ?? false;
      // Up also means the bridge forwards on the port again (carrier events reach it via linkwatch).
      const port = state === 'up'
        ? (JSON.parse(await runCommand(action, ['bridge', '-n', this.hub, '-j', 'link', 'show', 'dev', h.hubPort(network)])) as { state?: string }[])[0]?.state
        : undefined;
      if (state === 'up' ? link?.operstate === 'UP' && port === 'forwarding' : noCarrier && link?.operstate !== 'UP') return;
      if (Date.now() > deadline) {
        throw new HakitError('TESTBED', { action, detail: `${h.ifname(network)} is ${link?.operstate} (${link?.flags?.join(',')}), hub port ${port ?? '?'}, after ${LINK_TIMEOUT_MS} ms` });
      }
      await delay(5);
    }
  }

  /**
   * Freezes with SIGSTOP a process (and its process group when it leads one), or with a host name
   * every process of that host (a hung machine: its sockets stay open, nothing answers).
   */
  async pause(target: ChildProcess | string): Promise<void> {
    await this.signal(target, 'SIGSTOP');
  }

  /** Resumes what pause() froze, with SIGCONT. */
  async resume(target: ChildProcess | string): Promise<void> {
    await this.signal(target, 'SIGCONT');
  }

  /**
   * Removes everything of the run: processes, namespaces (hub, bridges, veths, fault rules),
   * mounts, directories, mount points it created that no other run uses. Idempotent; safe after
   * a failed create. Rejects with HakitError('TESTBED') naming what is left. `timeoutMs`: for
   * the cleanup (default 20 s; a run that wrote a million files needs minutes to remove them).
   */
  dispose(timeoutMs?: number): Promise<void> {
    this.disposing ??= (async () => {
      for (const c of this.children) killTree(c, 'SIGKILL');
      await cleanupRun(this.prefix, timeoutMs);
      live.delete(this.prefix);
    })();
    return this.disposing;
  }

  private async signal(target: ChildProcess | string, sig: NodeJS.Signals): Promise<void> {
    this.assertLive();
    if (typeof target === 'string') {
      for (const pid of await this.host(target).pids()) {
        try {
          process.kill(pid, sig);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
      }
      return;
    }
    if (target.pid === undefined) throw new HakitError('TESTBED', { action: `send ${sig}`, detail: 'the process never started' });
    signalProcess(target.pid, sig);
  }

  private portPairs(x: string, y: string, opts: FaultOptions): [string, string][] {
    this.assertLive();
    const hx = this.host(x);
    const hy = this.host(y);
    if (hx === hy) throw new HakitError('TESTBED', { action: 'add a fault', detail: `host ${x} is on both sides` });
    return (opts.networks ?? this.networks).map((n) => [hx.hubPort(n), hy.hubPort(n)]);
  }

  private async nft(action: string, script: string): Promise<void> {
    this.assertLive();
    await runCommand(action, ['nsenter', `--net=${NETNS_DIR}/${this.hub}`, 'nft', '-f', '-'], { input: script });
  }
}

/** Mount points of FUSE file systems in a mountinfo text, in mount order. */
export function fuseMountPoints(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fstype = right.split(' ')[0] ?? '';
    const mp = left.split(' ')[4];
    if (mp && (fstype === 'fuse' || fstype === 'fuseblk' || fstype.startsWith('fuse.'))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out;
}

/**
 * Run under flock(LOCK_FILE). $1 = registry file, then the mount paths. Creates each missing
 * directory of each path, parent first, recording each one created in the registry.
 */
const CREATE_MOUNTPOINTS_SH = String.raw`
reg="$1"; shift
for p in "$@"; do
  missing=""; q="$p"
  while [ "$q" != "/" ] && [ ! -e "$q" ]; do missing="$q $missing"; q=$(dirname "$q"); done
  for d in $missing; do
    mkdir "$d" || exit 1
    echo "$d" >> "$reg"
  done
  [ -d "$p" ] || { echo "$p exists and is not a directory" >&2; exit 1; }
done
`;

/** Run inside a host's mount namespace. Arguments: pairs (source, target) to bind. */
const BIND_SH = String.raw`
while [ "$#" -ge 2 ]; do
  mount --bind "$1" "$2" || exit 1
  shift 2
done
`;

/** Picks an unused prefix and creates its run directory (atomically: mkdir fails when taken). */
function claimPrefix(): string {
  for (let attempt = 0; ; attempt++) {
    const prefix = makePrefix(() => randomInt(1 << 30) / (1 << 30));
    if (existsSync(`${NETNS_DIR}/${hubName(prefix)}`) || existsSync(`${DIR_ROOT}/${prefix}`)) continue;
    try {
      mkdirSync(runDir(prefix));
      return prefix;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 20) throw e;
    }
  }
}

function validate(hosts: readonly string[], networks: readonly string[], mountPaths: readonly string[]): void {
  const bad = (detail: string): never => {
    throw new HakitError('TESTBED', { action: 'create a run', detail });
  };
  if (hosts.length === 0 || hosts.length > MAX_HOSTS) bad(`give 1 to ${MAX_HOSTS} hosts, not ${hosts.length}`);
  if (networks.length === 0 || networks.length > MAX_NETWORKS) bad(`give 1 to ${MAX_NETWORKS} networks, not ${networks.length}`);
  for (const h of hosts) if (!HOST_RE.test(h) || h === 'hub') bad(`host name ${JSON.stringify(h)} must match ${HOST_RE} and not be "hub"`);
  for (const n of networks) if (!NETWORK_RE.test(n)) bad(`network name ${JSON.stringify(n)} must match ${NETWORK_RE}`);
  if (new Set(hosts).size !== hosts.length) bad('host names must be unique');
  if (new Set(networks).size !== networks.length) bad('network names must be unique');
  for (const m of mountPaths) {
    const why = checkMountPath(m);
    if (why) bad(`mount path ${JSON.stringify(m)} ${why}`);
  }
  for (const a of mountPaths) for (const b of mountPaths) {
    if (a !== b && b.startsWith(`${a}/`)) bad(`mount paths ${a} and ${b} are nested`);
  }
  if (new Set(mountPaths).size !== mountPaths.length) bad('mount paths must be unique');
}
