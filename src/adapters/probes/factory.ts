/** The real probes: probeFor(cfg, ctx) gives the bounded probe of one checker (one file per type). */
import type { CheckerConfig } from '../../core/config/types.js';
import { realClock } from '../clock/index.js';
import { customCheck } from './custom.js';
import { httpCheck } from './http.js';
import { interfaceCheck } from './interface.js';
import { moduleCheck } from './module.js';
import { pingCheck } from './ping.js';
import { type Check, type Probe, type ProbeContext, bounded } from './probe.js';
import { processCheck } from './process.js';
import { splitbrainCheck } from './splitbrain.js';
import { tcpCheck } from './tcp.js';
import { vipCheck } from './vip.js';

/** The probe of `cfg`, each run bounded by `cfg.timeoutMs` on `ctx.clock` (default: real time). */
export function probeFor(cfg: CheckerConfig, ctx: ProbeContext): Probe {
  return bounded(checkFor(cfg, ctx), cfg.timeoutMs, ctx.clock ?? realClock);
}

function checkFor(cfg: CheckerConfig, ctx: ProbeContext): Check {
  switch (cfg.type) {
    case 'tcp': return tcpCheck(cfg);
    case 'http': return httpCheck(cfg);
    case 'ping': return pingCheck(cfg, ctx.exec);
    case 'interface': return interfaceCheck(cfg, ctx.exec);
    case 'vip': return vipCheck(ctx.vip, cfg.timeoutMs, ctx.exec);
    case 'custom': return customCheck(cfg, { ...ctx, checkOwnership: ctx.checkOwnership ?? process.getuid?.() === 0 });
    case 'module': return moduleCheck(cfg, ctx.moduleState);
    case 'process': return processCheck(cfg);
    case 'splitbrain': return splitbrainCheck(cfg, ctx.exec);
  }
}
