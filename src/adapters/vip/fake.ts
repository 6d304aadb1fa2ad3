/**
 * The in-memory VIP manager (STYLE.md 3): a FakeLan stands for the Ethernet segment, each
 * FakeVipManager for one node on it. Keeps the promises of vip.ts; the contract test runs the same
 * checks against it and against IpVipManager.
 */
import { HakitError } from '../../core/errors.js';
import { KeyedQueue, type VipAddResult, type VipConfig, type VipManager, vipKey } from './vip.js';

/** Which MACs answer for which address on one segment (addresses in canonical form). */
export class FakeLan {
  private readonly holders = new Map<string, Set<string>>();

  /** Makes `mac` answer for `address` (another host holds it, or a node added it). */
  occupy(address: string, mac: string): void {
    const set = this.holders.get(address) ?? new Set<string>();
    set.add(mac);
    this.holders.set(address, set);
  }

  /** `mac` no longer answers for `address`. */
  release(address: string, mac: string): void {
    const set = this.holders.get(address);
    set?.delete(mac);
    if (set?.size === 0) this.holders.delete(address);
  }

  /** The MACs answering for `address`, sorted. */
  answering(address: string): string[] {
    return [...(this.holders.get(address) ?? [])].sort();
  }
}

export interface FakeVipManagerOptions {
  /** The segment this node is on (default: a segment of its own). */
  lan?: FakeLan;
  /** This node's MAC (default 02:00:00:00:00:01). */
  mac?: string;
  /** The interfaces this node has (default ['eth0']). */
  interfaces?: readonly string[];
}

/** One announcement the fake "sent". */
export interface FakeAnnouncement {
  readonly address: string;
  readonly interface: string;
  readonly mac: string;
}

export class FakeVipManager implements VipManager {
  readonly lan: FakeLan;
  readonly mac: string;
  /** Every announcement made, oldest first (tests read and may clear it). */
  readonly announcements: FakeAnnouncement[] = [];
  private readonly interfaces: Set<string>;
  /** Held VIPs by `interface/address`, with their cidr. */
  private readonly held = new Map<string, VipConfig>();
  private readonly queue = new KeyedQueue();
  private failure: string | undefined;

  constructor(opts: FakeVipManagerOptions = {}) {
    this.lan = opts.lan ?? new FakeLan();
    this.mac = opts.mac ?? '02:00:00:00:00:01';
    this.interfaces = new Set(opts.interfaces ?? ['eth0']);
  }

  /** Another host (not a FakeVipManager) starts answering for `address`. */
  takenByOther(address: string, mac = '02:00:00:00:00:99'): void {
    this.lan.occupy(address, mac);
  }

  /** From now on `add` resolves reason 'error' and `remove`/`announce` reject with `detail`; undefined heals. */
  failWith(detail: string | undefined): void {
    this.failure = detail;
  }

  /** The VIPs held, as cidr strings, sorted. */
  heldCidrs(): string[] {
    return [...this.held.values()].map((v) => `${v.interface}:${v.cidr}`).sort();
  }

  add(vip: VipConfig): Promise<VipAddResult> {
    return this.queue.run(vipKey(vip), async () => {
      if (this.failure !== undefined) return { ok: false, reason: 'error', detail: this.failure };
      if (!this.interfaces.has(vip.interface)) {
        return { ok: false, reason: 'no-interface', detail: `the interface ${vip.interface} of the virtual IP ${vip.cidr} does not exist on this node` };
      }
      if (this.isHeld(vip)) {
        this.sendAnnouncement(vip);
        return { ok: true };
      }
      const other = this.lan.answering(vip.address).find((m) => m !== this.mac);
      if (other !== undefined) {
        return { ok: false, reason: 'conflict', detail: `${vip.address} is already answered by another host (${other}) on ${vip.interface}; not added`, mac: other };
      }
      this.held.set(vipKey(vip), vip);
      this.lan.occupy(vip.address, this.mac);
      this.sendAnnouncement(vip);
      return { ok: true };
    });
  }

  remove(vip: VipConfig): Promise<void> {
    return this.queue.run(vipKey(vip), async () => {
      this.throwIfFailing('remove', vip);
      if (!this.isHeld(vip)) return;
      this.held.delete(vipKey(vip));
      if (![...this.held.values()].some((v) => v.address === vip.address)) this.lan.release(vip.address, this.mac);
    });
  }

  announce(vip: VipConfig): Promise<void> {
    return this.queue.run(vipKey(vip), async () => {
      this.throwIfFailing('announce', vip);
      if (!this.interfaces.has(vip.interface)) throw new HakitError('VIP', { op: 'announce', vip: vip.cidr, interface: vip.interface, detail: 'the interface does not exist' });
      if (!this.isHeld(vip)) {
        throw new HakitError('VIP', { op: 'announce', vip: vip.cidr, interface: vip.interface, detail: 'this node does not hold it (announcing it would take it from its holder)' });
      }
      this.sendAnnouncement(vip);
    });
  }

  async holds(vip: VipConfig): Promise<boolean> {
    return this.isHeld(vip);
  }

  private isHeld(vip: VipConfig): boolean {
    return this.held.get(vipKey(vip))?.cidr === vip.cidr;
  }

  private sendAnnouncement(vip: VipConfig): void {
    this.announcements.push({ address: vip.address, interface: vip.interface, mac: this.mac });
  }

  private throwIfFailing(op: string, vip: VipConfig): void {
    if (this.failure !== undefined) throw new HakitError('VIP', { op, vip: vip.cidr, interface: vip.interface, detail: this.failure });
  }
}
