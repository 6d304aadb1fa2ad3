/**
 * `splitbrain` checker probe: up when at least one witness answers a ping (DESIGN.md 5). All
 * witnesses are pinged at once. What the result means (takeover allowed, self-demotion) is
 * decided by the mirror core, not here.
 */
import type { SplitbrainChecker } from '../../core/config/types.js';
import type { Exec } from '../vip/index.js';
import type { Check, CheckResult } from './probe.js';
import { pingOnce } from './ping.js';

export function splitbrainCheck(cfg: SplitbrainChecker, exec: Exec | undefined): Check {
  return async (): Promise<CheckResult> => {
    const results = await Promise.all(cfg.witnesses.map((w) => pingOnce(exec, w, cfg.timeoutMs)));
    const up = cfg.witnesses.filter((_, i) => results[i]?.ok === true);
    if (up.length > 0) return { ok: true, detail: `witness ${up.join(', ')} answers` };
    return { ok: false, detail: `no witness answers (${results.map((r) => r.detail).join('; ')})` };
  };
}
