/**
 * `ping` checker: up when one ICMP echo to the address is answered within the timeout
 * (iputils `ping -n -q -c 1 -W T`; the family follows the address). Also used by `splitbrain`.
 */
import type { PingChecker } from '../../core/config/types.js';
import type { Exec } from '../vip/index.js';
import { type Check, type CheckResult, seconds } from './probe.js';
import { exitText, runTool } from './tool.js';

/** One echo to `address`, waiting for the reply at most 90% of `timeoutMs` (so the answer, not the bound, decides). */
export async function pingOnce(exec: Exec | undefined, address: string, timeoutMs: number): Promise<CheckResult> {
  const argv = ['ping', '-n', '-q', '-c', '1', '-W', seconds(timeoutMs * 0.9), address];
  const r = await runTool(exec, argv, timeoutMs);
  if ('error' in r) return { ok: false, detail: r.error };
  if (r.code === 0) {
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
    return { ok: true, detail: `${address} answers${rtt === undefined ? '' : ` (${rtt} ms)`}` };
  }
  if (r.code === 1) return { ok: false, detail: `no answer from ${address}` };
  return { ok: false, detail: exitText(argv, r) };
}

export function pingCheck(cfg: PingChecker, exec: Exec | undefined): Check {
  return () => pingOnce(exec, cfg.address, cfg.timeoutMs);
}
