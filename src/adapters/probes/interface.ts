/**
 * `interface` checker: up when the NIC is administratively up and has carrier (`UP` and
 * `LOWER_UP` in `ip -j link show dev IF`). Read with `ip`, not from /sys/class/net: sysfs shows
 * the namespace it was mounted in, not the network namespace of a process that entered another
 * (`nsenter --net`), and `ip` asks the kernel over netlink in the caller's namespace.
 */
import type { InterfaceChecker } from '../../core/config/types.js';
import type { Exec } from '../vip/index.js';
import type { Check, CheckResult } from './probe.js';
import { exitText, runTool } from './tool.js';

export function interfaceCheck(cfg: InterfaceChecker, exec: Exec | undefined): Check {
  const dev = cfg.interface;
  return async (): Promise<CheckResult> => {
    const argv = ['ip', '-j', 'link', 'show', 'dev', dev];
    const r = await runTool(exec, argv, cfg.timeoutMs);
    if ('error' in r) return { ok: false, detail: r.error };
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/i.test(r.stderr)) return { ok: false, detail: `${dev} does not exist` };
      return { ok: false, detail: exitText(argv, r) };
    }
    let link: { flags?: unknown; operstate?: unknown } | undefined;
    try {
      const parsed = JSON.parse(r.stdout) as unknown;
      link = Array.isArray(parsed) ? (parsed[0] as typeof link) : undefined;
    } catch {
      return { ok: false, detail: `unparsable output of \`ip -j link show dev ${dev}\`` };
    }
    if (link === undefined) return { ok: false, detail: `${dev} does not exist` };
    const flags = Array.isArray(link.flags) ? link.flags.map(String) : [];
    const oper = typeof link.operstate === 'string' ? link.operstate : 'UNKNOWN';
    if (!flags.includes('UP')) return { ok: false, detail: `${dev} is administratively down (operstate ${oper})` };
    if (!flags.includes('LOWER_UP')) return { ok: false, detail: `${dev} has no carrier (operstate ${oper})` };
    return { ok: true, detail: `${dev} is up with carrier (operstate ${oper})` };
  };
}
