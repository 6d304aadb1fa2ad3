/**
 * The real VIP manager: iproute2, procps `sysctl`, Habets `arping` 2.23 and iputils `ping`, all
 * run through an injectable Exec (the daemon runs them directly; tests run them in a network
 * namespace). Every command is bounded by a timeout. Facts it relies on were measured on kernel
 * 6.18 and are checked by test/integration/vip.*.test.ts; docs/vip.md explains them.
 *
 * Duplicate check, IPv4: `arping -r -0 -C 1 -c 2 -W T/2 -w T -i IF ADDR` asks "who has ADDR"
 *   from 0.0.0.0 (an ARP probe, RFC 5227). Habets arping exits 0 when at least one reply came
 *   (the address is taken; stdout holds the MAC), 1 when none came (free) and also 1 on errors, so
 *   an exit 1 with anything on stderr is an error. (iputils' `-D`/`-I` mean other things in Habets
 *   arping: `-D` only changes the display.)
 * Duplicate check, IPv6: the kernel's own DAD takes 1–2 s (random delay up to
 *   router_solicitation_delay, then retrans_time per probe), too long for a failover. Instead the
 *   neighbour entry of ADDR is flushed and `ping -6 -c 1 -W T -I IF ADDR` makes the kernel send a
 *   neighbour solicitation; the address is taken when the ping is answered or, for a host that
 *   drops echo requests, when the neighbour entry became REACHABLE with a MAC. The VIP is then
 *   added with `nodad`. This needs a route to ADDR on IF (normally the node's own address in the
 *   VIP's prefix); without one `add` resolves reason 'error' saying so.
 * Announcement: with `net.ipv4.conf.IF.arp_notify=1` / `net.ipv6.conf.IF.ndisc_notify=1`,
 *   setting the interface's MAC to the MAC it already has makes the kernel send a gratuitous ARP
 *   and an unsolicited NA for every address of IF (10–20 ms). IPv4 also gets a second shot from
 *   `arping -U -S ADDR -c 1 -w 0 -i IF ADDR` (without `-S` Habets arping uses the interface's
 *   primary address as sender, which updates no client's entry for ADDR).
 * Removal: `ip addr del CIDR dev IF`, after `promote_secondaries=1` on IF so that removing a VIP
 *   that happens to be the primary address of its subnet does not take the node's own (secondary)
 *   addresses with it.
 *
 * Note: /sys/class/net is not namespace-aware for a process that only entered a network namespace,
 * so the MAC is read from `ip -j addr show`, never from sysfs.
 */
import { HakitError, isHakitError } from '../../core/errors.js';
import { type Exec, type ExecResult, execFileBounded, showArgv } from './exec.js';
import { KeyedQueue, type VipAddResult, type VipConfig, type VipManager, vipKey } from './vip.js';

export interface IpVipManagerOptions {
  /** How commands are run (default: execFile, bounded). */
  exec?: Exec;
  /** How long the duplicate check waits for an answer, ms (default 200: a LAN answers within milliseconds, and the check is part of every takeover). IPv4 sends 2 probes in that time, IPv6 one. */
  dadTimeoutMs?: number;
  /** Timeout of each `ip`/`sysctl` command, ms (default 5000). */
  commandTimeoutMs?: number;
}

/** One address of an interface, as `ip -j addr show` reports it. */
interface AddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  secondary?: boolean;
  tentative?: boolean;
  dadfailed?: boolean;
}

/** What `ip -j addr show dev IF` says about an interface. */
interface LinkInfo {
  ifindex: number;
  ifname: string;
  /** The interface's MAC (undefined for links without one). */
  mac: string | undefined;
  addrs: AddrInfo[];
}

/** Who answered a duplicate check. */
type Probe = { taken: false } | { taken: true; mac: string | undefined };

export class IpVipManager implements VipManager {
  private readonly exec: Exec;
  private readonly dadTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly queue = new KeyedQueue();
  /** `ifindex:sysctl` already set to 1 by this manager (a re-created interface has a new index). */
  private readonly sysctlsSet = new Set<string>();

  constructor(opts: IpVipManagerOptions = {}) {
    this.exec = opts.exec ?? execFileBounded;
    this.dadTimeoutMs = opts.dadTimeoutMs ?? 200;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 5000;
  }

  add(vip: VipConfig): Promise<VipAddResult> {
    return this.queue.run(vipKey(vip), async () => {
      let added = false;
      try {
        const link = await this.link(vip);
        if (link === undefined) return noInterface(vip);
        if (findAddr(link, vip, false) !== undefined) {
          await this.announceOn(link, vip);
          return { ok: true };
        }
        const probe = await this.probe(link, vip);
        if (probe.taken) {
          const by = probe.mac === undefined ? 'another host' : `another host (${probe.mac})`;
          const res: VipAddResult = { ok: false, reason: 'conflict', detail: `${vip.address} is already answered by ${by} on ${vip.interface}; not added` };
          if (probe.mac !== undefined) res.mac = probe.mac;
          return res;
        }
        const argv = ['ip', 'addr', 'add', vip.cidr, 'dev', vip.interface];
        if (vip.family === 6) argv.push('nodad');
        const r = await this.run(argv, vip);
        if (r.code !== 0) {
          if (/does not exist|Cannot find device/i.test(r.stderr)) return noInterface(vip);
          throw this.failure('add', vip, argv, r);
        }
        added = true;
        await this.announceOn(link, vip);
        return { ok: true };
      } catch (e) {
        if (added) await this.run(['ip', 'addr', 'del', vip.cidr, 'dev', vip.interface], vip).catch(() => undefined);
        return { ok: false, reason: 'error', detail: errorDetail(e) };
      }
    });
  }

  remove(vip: VipConfig): Promise<void> {
    return this.queue.run(vipKey(vip), async () => {
      const link = await this.link(vip);
      if (link === undefined || findAddr(link, vip, true) === undefined) return;
      if (vip.family === 4) await this.setSysctl(link, vip, 'ipv4', 'promote_secondaries');
      const argv = ['ip', 'addr', 'del', vip.cidr, 'dev', vip.interface];
      const r = await this.run(argv, vip);
      // Gone meanwhile (removed by someone else, or the interface vanished): nothing left to remove.
      if (r.code !== 0 && !/Cannot assign requested address|does not exist|Cannot find device/i.test(r.stderr)) throw this.failure('remove', vip, argv, r);
    });
  }

  announce(vip: VipConfig): Promise<void> {
    return this.queue.run(vipKey(vip), async () => {
      const link = await this.link(vip);
      if (link === undefined) throw new HakitError('VIP', { op: 'announce', vip: vip.cidr, interface: vip.interface, detail: 'the interface does not exist' });
      if (findAddr(link, vip, false) === undefined) {
        throw new HakitError('VIP', { op: 'announce', vip: vip.cidr, interface: vip.interface, detail: 'this node does not hold it (announcing it would take it from its holder)' });
      }
      await this.announceOn(link, vip);
    });
  }

  async holds(vip: VipConfig): Promise<boolean> {
    const link = await this.link(vip);
    return link !== undefined && findAddr(link, vip, false) !== undefined;
  }

  /** The interface of `vip`, or undefined when it does not exist. Rejects with HAKIT_E_VIP when `ip` fails otherwise. */
  private async link(vip: VipConfig): Promise<LinkInfo | undefined> {
    const argv = ['ip', '-j', 'addr', 'show', 'dev', vip.interface];
    const r = await this.run(argv, vip);
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
      throw this.failure('inspect', vip, argv, r);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.stdout);
    } catch {
      throw this.failure('inspect', vip, argv, { ...r, stderr: `unparsable output: ${r.stdout.slice(0, 200)}` });
    }
    const first = Array.isArray(parsed) ? (parsed[0] as Record<string, unknown> | undefined) : undefined;
    if (first === undefined) return undefined;
    return {
      ifindex: Number(first.ifindex),
      ifname: String(first.ifname),
      mac: typeof first.address === 'string' && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(first.address) ? first.address : undefined,
      addrs: Array.isArray(first.addr_info) ? (first.addr_info as AddrInfo[]) : [],
    };
  }

  /** Asks the LAN whether another host answers for `vip.address` (see the file comment). */
  private async probe(link: LinkInfo, vip: VipConfig): Promise<Probe> {
    const seconds = (ms: number): string => (ms / 1000).toFixed(3);
    if (vip.family === 4) {
      const argv = ['arping', '-r', '-0', '-C', '1', '-c', '2', '-W', seconds(this.dadTimeoutMs / 2), '-w', seconds(this.dadTimeoutMs), '-i', link.ifname, vip.address];
      const r = await this.run(argv, vip, this.dadTimeoutMs + 2000);
      if (r.code === 0) return { taken: true, mac: firstMac(r.stdout) };
      if (r.code === 1 && r.stderr.trim() === '') return { taken: false };
      throw this.failure('check for a duplicate of', vip, argv, r);
    }
    await this.run(['ip', '-6', 'neigh', 'flush', 'to', vip.address, 'dev', link.ifname], vip);
    const argv = ['ping', '-6', '-n', '-q', '-c', '1', '-W', seconds(this.dadTimeoutMs), '-I', link.ifname, vip.address];
    const r = await this.run(argv, vip, this.dadTimeoutMs + 2000);
    if (r.code !== 0 && r.code !== 1) throw this.failure('check for a duplicate of', vip, argv, r, ' (give the interface an address in the VIP\'s prefix so the node can reach it)');
    const neigh = await this.run(['ip', '-6', '-j', 'neigh', 'show', 'to', vip.address, 'dev', link.ifname], vip);
    const entry = parseNeigh(neigh.stdout);
    if (r.code === 0) return { taken: true, mac: entry?.lladdr };
    if (entry?.lladdr !== undefined && !entry.state.some((s) => s === 'INCOMPLETE' || s === 'FAILED')) return { taken: true, mac: entry.lladdr };
    return { taken: false };
  }

  /** Makes the kernel announce every address of the interface, plus an arping for IPv4. */
  private async announceOn(link: LinkInfo, vip: VipConfig): Promise<void> {
    if (link.mac === undefined) {
      throw new HakitError('VIP', { op: 'announce', vip: vip.cidr, interface: vip.interface, detail: 'the interface has no Ethernet MAC address' });
    }
    if (vip.family === 4) {
      await this.setSysctl(link, vip, 'ipv4', 'arp_notify');
      await this.setSysctl(link, vip, 'ipv4', 'promote_secondaries');
    } else {
      await this.setSysctl(link, vip, 'ipv6', 'ndisc_notify');
    }
    const trick = ['ip', 'link', 'set', 'dev', link.ifname, 'address', link.mac];
    const r = await this.run(trick, vip);
    if (r.code !== 0) throw this.failure('announce', vip, trick, r);
    if (vip.family === 4) {
      const argv = ['arping', '-q', '-U', '-S', vip.address, '-c', '1', '-w', '0', '-i', link.ifname, vip.address];
      const a = await this.run(argv, vip);
      // An unsolicited ARP gets no reply, so exit 1 is the normal outcome; errors print to stderr.
      if ((a.code !== 0 && a.code !== 1) || a.stderr.trim() !== '') throw this.failure('announce', vip, argv, a);
    }
  }

  /** Sets `net.<proto>.conf.<if>.<name>` to 1, once per interface instance. */
  private async setSysctl(link: LinkInfo, vip: VipConfig, proto: 'ipv4' | 'ipv6', name: string): Promise<void> {
    const key = `${link.ifindex}:${proto}:${name}`;
    if (this.sysctlsSet.has(key)) return;
    // The slash form keeps dots in interface names (eth0.100) literal.
    const argv = ['sysctl', '-q', '-w', `net/${proto}/conf/${link.ifname}/${name}=1`];
    const r = await this.run(argv, vip);
    if (r.code !== 0) throw this.failure(`set ${proto} ${name} for`, vip, argv, r);
    this.sysctlsSet.add(key);
  }

  private async run(argv: readonly string[], vip: VipConfig, timeoutMs = this.commandTimeoutMs): Promise<ExecResult> {
    try {
      return await this.exec(argv, { timeoutMs });
    } catch (e) {
      const tool = argv[0] ?? '';
      const pkg = { ip: 'iproute2', arping: 'arping', ping: 'iputils-ping', sysctl: 'procps' }[tool] ?? tool;
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HakitError('MISSING_TOOL', { tool, pkg }, { cause: e });
      throw new HakitError('VIP', { op: 'manage', vip: vip.cidr, interface: vip.interface, detail: `\`${showArgv(argv)}\` could not start: ${(e as Error).message}` }, { cause: e });
    }
  }

  private failure(op: string, vip: VipConfig, argv: readonly string[], r: ExecResult, hint = ''): HakitError {
    return new HakitError('VIP', { op, vip: vip.cidr, interface: vip.interface, detail: `\`${showArgv(argv)}\` exited with ${r.code}: ${r.stderr.trim() || r.stdout.trim() || '(no output)'}${hint}` });
  }
}

/** The address of `vip` on the link: exact address and prefix; `anyState` also finds a failed-DAD leftover. */
function findAddr(link: LinkInfo, vip: VipConfig, anyState: boolean): AddrInfo | undefined {
  const family = vip.family === 4 ? 'inet' : 'inet6';
  return link.addrs.find((a) => a.family === family && a.local === vip.address && a.prefixlen === vip.prefix && (anyState || a.dadfailed !== true));
}

function firstMac(text: string): string | undefined {
  return /([0-9a-f]{2}(?::[0-9a-f]{2}){5})/i.exec(text)?.[1]?.toLowerCase();
}

function parseNeigh(text: string): { lladdr: string | undefined; state: string[] } | undefined {
  try {
    const list = JSON.parse(text) as unknown;
    const e = Array.isArray(list) ? (list[0] as Record<string, unknown> | undefined) : undefined;
    if (e === undefined) return undefined;
    return { lladdr: typeof e.lladdr === 'string' ? e.lladdr : undefined, state: Array.isArray(e.state) ? e.state.map(String) : [] };
  } catch {
    return undefined;
  }
}

function noInterface(vip: VipConfig): VipAddResult {
  return { ok: false, reason: 'no-interface', detail: `the interface ${vip.interface} of the virtual IP ${vip.cidr} does not exist on this node` };
}

function errorDetail(e: unknown): string {
  if (isHakitError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
