/**
 * Every default of the configuration, in one place (STYLE.md 12), in resolved units
 * (milliseconds, bytes). Defaults that depend on other values are described here and applied
 * in parse.ts: heartbeat.networks = the cluster's networks, a checker's timeout = its interval,
 * a checker's name = its type.
 */
import type { CheckerAction, CheckerType } from './types.js';

export const DEFAULTS = {
  failover: true,
  heartbeat: { pulseMs: 250, timeoutMs: 2_000 },
  replication: { timeoutMs: 3_000, zoneSizeBytes: 1024 * 1024 },
  scripts: { timeoutMs: 5 * 60_000, stopTimeoutMs: 60_000 },
  maxloop: { count: 3, windowMs: 3_600_000 },
  checker: { intervalMs: 2_000, rise: 1, fall: 2 },
  /** What a failing checker does unless `action` says otherwise (splitbrain has no action). */
  checkerAction: {
    process: 'stopstart',
    tcp: 'restart',
    http: 'restart',
    ping: 'wait',
    interface: 'wait',
    vip: 'stopstart',
    custom: 'restart',
    module: 'wait',
  } satisfies Record<Exclude<CheckerType, 'splitbrain'>, CheckerAction>,
  http: { status: 200 },
  process: { min: 1, class: 'prim' as const },
  farm: { ports: [] as readonly number[], protocol: 'tcp' as const },
} as const;
