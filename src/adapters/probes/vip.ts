/**
 * `vip` checker: up when every VIP of the module is configured on its interface here and, for
 * IPv4, no other host answers ARP for it. The conflict check is an ARP probe from 0.0.0.0
 * (`arping -r -0 -C 1 -c 1 -w T -i IF ADDR`, Habets arping as in src/adapters/vip/ip.ts): this
 * node's own frame is not looped back to it, so any reply comes from another host. Exit 0 = a
 * reply (conflict, stdout holds its MAC), exit 1 with nothing on stderr = no reply.
 * IPv6 VIPs are checked for presence only (no conflict check yet).
 */
import type { VipConfig } from '../../core/config/types.js';
import { type Exec, IpVipManager } from '../vip/index.js';
import { type Check, type CheckResult, seconds } from './probe.js';
import { exitText, runTool } from './tool.js';

/** How long the ARP probe waits for a reply at most (a LAN answers in milliseconds). */
const ARP_WAIT_MS = 1000;

export function vipCheck(vips: readonly VipConfig[], timeoutMs: number, exec: Exec | undefined): Check {
  const manager = new IpVipManager({ ...(exec ? { exec } : {}), commandTimeoutMs: timeoutMs });
  return async (): Promise<CheckResult> => {
    if (vips.length === 0) return { ok: false, detail: 'the module has no virtual IP' };
    const held: string[] = [];
    for (const vip of vips) {
      let holds: boolean;
      try {
        holds = await manager.holds(vip);
      } catch (e) {
        return { ok: false, detail: `cannot inspect ${vip.interface}: ${(e as Error).message}` };
      }
      if (!holds) return { ok: false, detail: `${vip.cidr} is not configured on ${vip.interface}` };
      if (vip.family === 4) {
        const argv = ['arping', '-r', '-0', '-C', '1', '-c', '1', '-w', seconds(Math.min(ARP_WAIT_MS, timeoutMs / 2)), '-i', vip.interface, vip.address];
        const r = await runTool(exec, argv, timeoutMs);
        if ('error' in r) return { ok: false, detail: r.error };
        if (r.code === 0) {
          const mac = /([0-9a-f]{2}(?::[0-9a-f]{2}){5})/i.exec(r.stdout)?.[1]?.toLowerCase();
          return { ok: false, detail: `${vip.address} is also answered by another host${mac === undefined ? '' : ` (${mac})`} on ${vip.interface}` };
        }
        if (r.code !== 1 || r.stderr.trim() !== '') return { ok: false, detail: exitText(argv, r) };
      }
      held.push(vip.cidr);
    }
    return { ok: true, detail: `${held.join(', ')} held here, no other host answers` };
  };
}
