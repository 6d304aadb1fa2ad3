/** `module` checker: up while another module on this node is in one of the listed states. */
import type { ModuleChecker } from '../../core/config/types.js';
import type { Check } from './probe.js';

export function moduleCheck(cfg: ModuleChecker, moduleState: (name: string) => string | undefined): Check {
  return () => {
    const state = moduleState(cfg.module);
    if (state === undefined) return Promise.resolve({ ok: false, detail: `module ${cfg.module} does not run on this node` });
    const ok = (cfg.states as readonly string[]).includes(state);
    return Promise.resolve({ ok, detail: ok ? `module ${cfg.module} is ${state}` : `module ${cfg.module} is ${state} (expected ${cfg.states.join(' or ')})` });
  };
}
