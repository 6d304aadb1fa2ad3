/**
 * The virtual IP seam (issue 3 item 4; DESIGN.md 7 "Virtual IP move"): put a VIP on this node's
 * interface after checking that no other host answers for it, announce it so that clients switch
 * to this node's MAC at once, take it away again.
 *
 * Promises of every implementation:
 * - `add` never adds an address another host answers for: it resolves `{ ok: false, reason:
 *   'conflict' }` and the address is not held afterwards. Adding a VIP this node already holds
 *   skips the check and only announces again.
 * - after `add` resolves `{ ok: false }` the address is held only if it was held before the call.
 * - `remove` takes away exactly `vip.cidr` on `vip.interface`, never another address of the node
 *   (not the node's own address in the same subnet either); "not present" (also: no such
 *   interface) is success.
 * - `announce` of a VIP that is not held rejects with HAKIT_E_VIP (announcing an address one
 *   does not hold would steal it from its holder).
 * - calls for the same address are applied one at a time, in call order.
 */
import type { VipConfig } from '../../core/config/types.js';

export type { VipConfig };

export type VipAddResult =
  | { ok: true }
  | {
    ok: false;
    reason: 'conflict' | 'no-interface' | 'error';
    /** What happened, for logs and the user: names the interface, the address and, for a conflict, the MAC that answered. */
    detail: string;
    /** For a conflict: the MAC address of the host that answered, when known. */
    mac?: string;
  };

export interface VipManager {
  /** Duplicate-address check (another host answers for the address → conflict, not added), then
   *  `ip addr add`, then announce. Idempotent: adding a VIP we already hold just announces again. */
  add(vip: VipConfig): Promise<VipAddResult>;
  /** Removes it if present; never throws for "not present". */
  remove(vip: VipConfig): Promise<void>;
  /** Gratuitous ARP (IPv4) / unsolicited neighbour advertisement (IPv6). */
  announce(vip: VipConfig): Promise<void>;
  /** True when the address is configured on its interface here. */
  holds(vip: VipConfig): Promise<boolean>;
}

/**
 * Runs the operations on one key one at a time, in call order; different keys run side by side.
 * A failed operation does not block the next one.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, op: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tail = next.then(() => undefined, () => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

/** The queue key of a VIP: one address on one interface. */
export function vipKey(vip: VipConfig): string {
  return `${vip.interface}/${vip.address}`;
}
