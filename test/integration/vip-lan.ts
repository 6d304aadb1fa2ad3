/**
 * A small LAN of network namespaces for the VIP tests (DESIGN.md 7 "The testbed"): a hub namespace
 * with bridge br0 and hosts whose `eth0` is a veth port on it. Host number i (1-based) gets
 * 198.18.0.i/24 and 2001:2::i/64. Names carry the run prefix `hkv` + 3 random characters, which
 * fits the testbed's prefix pattern: the run writes the testbed's owner marker, so a concurrent
 * `sweep()` leaves it alone and a crashed run's leftovers are swept like any testbed run's.
 *
 * Commands run with `nsenter --net=/run/netns/NAME` (never `ip netns exec`, DESIGN.md 7).
 * No tests here: the file only exports helpers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { type Exec, execFileBounded } from '../../src/adapters/vip/index.js';
import type { VipConfig } from '../../src/core/config/types.js';
import { cleanupRun, ownerMarker } from '../testbed/cleanup.js';
import { ownerFile, runDir } from '../testbed/layout.js';
import { runCommand } from '../testbed/run.js';

export interface LanHost {
  readonly name: string;
  /** The namespace: `/run/netns/<ns>`. */
  readonly ns: string;
  readonly addr4: string;
  readonly addr6: string;
  /** Runs commands inside the host's network namespace. */
  readonly exec: Exec;
  /** Runs a command in the host; rejects when it exits non-zero; resolves with stdout. */
  sh(...argv: string[]): Promise<string>;
  /** The MAC of the host's eth0. */
  mac(): Promise<string>;
  /** The neighbour entry for `address` on eth0 (lladdr and states), or undefined. */
  neigh(address: string): Promise<{ lladdr: string | undefined; state: string[] } | undefined>;
}

export interface Lan {
  readonly prefix: string;
  readonly hosts: Record<string, LanHost>;
  /** Removes every namespace of the run; safe to call twice. */
  dispose(): Promise<void>;
}

/** Creates the hub and the hosts `names` (in order: host i gets .i / ::i). */
export async function createLan(names: readonly string[]): Promise<Lan> {
  let suffix = '';
  for (let i = 0; i < 3; i++) suffix += randomInt(36).toString(36);
  const prefix = `hkv${suffix}`;
  mkdirSync(runDir(prefix), { recursive: true });
  writeFileSync(ownerFile(prefix), ownerMarker());
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    await cleanupRun(prefix);
  };
  try {
    const hub = `${prefix}-hub`;
    const run = (...argv: string[]): Promise<string> => runCommand('build the VIP test LAN', argv);
    await run('ip', 'netns', 'add', hub);
    await run('ip', '-n', hub, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await run('ip', '-n', hub, 'link', 'set', 'br0', 'up');
    const hosts: Record<string, LanHost> = {};
    let i = 0;
    for (const name of names) {
      i++;
      const ns = `${prefix}-${name}`;
      await run('ip', 'netns', 'add', ns);
      const exec: Exec = (argv, opts) => execFileBounded(['nsenter', `--net=/run/netns/${ns}`, ...argv], opts);
      const host = makeHost(name, ns, `198.18.0.${i}`, `2001:2::${i.toString(16)}`, exec);
      await host.sh('sysctl', '-q', '-w', 'net.ipv4.ip_forward=0');
      await run('ip', 'link', 'add', `${name}-e0`, 'netns', hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await run('ip', '-n', hub, 'link', 'set', `${name}-e0`, 'master', 'br0', 'up');
      await host.sh('ip', 'link', 'set', 'lo', 'up');
      await host.sh('ip', 'addr', 'add', `${host.addr4}/24`, 'dev', 'eth0');
      await host.sh('ip', 'addr', 'add', `${host.addr6}/64`, 'dev', 'eth0', 'nodad');
      await host.sh('ip', 'link', 'set', 'eth0', 'up');
      hosts[name] = host;
    }
    return { prefix, hosts, dispose };
  } catch (e) {
    await dispose().catch(() => undefined);
    throw e;
  }
}

function makeHost(name: string, ns: string, addr4: string, addr6: string, exec: Exec): LanHost {
  const sh = async (...argv: string[]): Promise<string> => {
    const r = await exec(argv, { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`[${name}] \`${argv.join(' ')}\` exited with ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  return {
    name, ns, addr4, addr6, exec, sh,
    async mac() {
      const j = JSON.parse(await sh('ip', '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[];
      const mac = j[0]?.address;
      if (mac === undefined) throw new Error(`[${name}] eth0 has no MAC`);
      return mac;
    },
    async neigh(address) {
      const j = JSON.parse(await sh('ip', '-j', 'neigh', 'show', 'to', address, 'dev', 'eth0')) as { lladdr?: string; state?: string[] }[];
      const e = j[0];
      return e === undefined ? undefined : { lladdr: e.lladdr, state: e.state ?? [] };
    },
  };
}

/** A VipConfig as the config parser would produce it. */
export function vipOf(address: string, prefix: number, iface = 'eth0'): VipConfig {
  return { address, prefix, family: address.includes(':') ? 6 : 4, cidr: `${address}/${prefix}`, interface: iface };
}
