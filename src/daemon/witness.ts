/**
 * `hakit witness --config FILE`: the arbitrator witness on a third host (docs/witness.md). Grants
 * one lease per module to one node at a time (core/witness/lease.ts) over authenticated UDP
 * (adapters/witness). Runs until SIGTERM or SIGINT (or `signal`), then resolves to exit code 0.
 *
 * A restart forgets every lease, and that is safe: for one lease length after its start the
 * witness grants nothing (not even a renewal), and every lease of its previous life ended by
 * then. Logs are pino JSON lines on stdout, as the daemon's: grants, releases, a change of
 * refusal, dropped datagrams (at most one warning per reason per 10 s, with the count).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { formatIssue } from '../core/config/index.js';
import { parseWitnessConfig, type WitnessConfig } from '../core/config/witness.js';
import { HakitError } from '../core/errors.js';
import { realClock, type Clock } from '../adapters/clock/index.js';
import { loadKey } from '../adapters/key/cluster-key.js';
import { formatAddress } from '../adapters/udp/transport.js';
import { WitnessServer, WitnessService, type WitnessDropReason, type WitnessEvent } from '../adapters/witness/index.js';
import { Logbook } from './logbook.js';

export interface WitnessRunOptions {
  /** Path of the witness config file. */
  config: string;
  /** Where config errors go (one `file:line: field: message` per line). */
  err: (s: string) => void;
  /** Log destination (default stdout). */
  logTo?: NodeJS.WritableStream;
  clock?: Clock;
}

/** Reads and validates the config file; prints every error and returns undefined when invalid. */
export function loadWitnessConfig(path: string, err: (s: string) => void): WitnessConfig | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new HakitError('CONFIG', { detail: `cannot read ${path}: ${(e as Error).message}` }, { cause: e });
  }
  const r = parseWitnessConfig(path, dirname(resolve(path)), text);
  if (r.ok) return r.config;
  for (const issue of r.errors) err(`${formatIssue(issue)}\n`);
  err(`hakit: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'} in ${path} [HAKIT_E_CONFIG]\n`);
  return undefined;
}

/** Turns witness events into log lines without flooding: routine renewals and repeats go to debug. */
export function witnessLogger(log: Logbook, now: () => number): (e: WitnessEvent) => void {
  const lastRefusal = new Map<string, string>();
  const drops = new Map<WitnessDropReason, { lastWarn: number; since: number }>();
  return (e) => {
    if (e.kind === 'drop') {
      const d = drops.get(e.reason) ?? { lastWarn: -Infinity, since: 0 };
      d.since++;
      drops.set(e.reason, d);
      if (now() - d.lastWarn >= 10_000) {
        log.log(null, 'warn', `dropped a datagram: ${e.reason}`, { reason: e.reason, from: e.from, count: d.since });
        d.lastWarn = now();
        d.since = 0;
      }
      return;
    }
    const who = `${e.module}\u0000${e.node}`;
    const fields = { module: e.module, node: e.node, from: e.from };
    if (e.kind === 'release') {
      lastRefusal.delete(who);
      if (e.result.released) log.log(null, 'info', e.result.wasHeld ? 'lease released' : 'release of a lease not held', fields);
      else log.log(null, 'info', 'release refused: another node holds the lease', { ...fields, holder: e.result.holder, remainingMs: e.result.remainingMs });
      return;
    }
    const r = e.result;
    if (r.granted) {
      lastRefusal.delete(who);
      log.log(null, r.renewed ? 'debug' : 'info', r.renewed ? 'lease renewed' : 'lease granted', { ...fields, leaseMs: r.leaseMs });
      return;
    }
    const key = r.reason === 'starting' ? 'starting' : `held:${r.holder}`;
    const level = lastRefusal.get(who) === key ? 'debug' : 'info';
    lastRefusal.set(who, key);
    log.log(null, level, r.reason === 'starting' ? 'lease refused: witness just started' : 'lease refused: held by another node',
      { ...fields, holder: r.holder, remainingMs: r.remainingMs });
  };
}

export async function runWitness(opts: WitnessRunOptions, signal?: AbortSignal): Promise<number> {
  const cfg = loadWitnessConfig(opts.config, opts.err);
  if (!cfg) return 1;
  const key = await loadKey(cfg.keyFile);
  const clock = opts.clock ?? realClock;
  const log = new Logbook({ level: process.env.HAKIT_LOG_LEVEL ?? 'info', destination: opts.logTo });
  if (key.insecurePermissions) {
    log.log(null, 'warn', `key file ${cfg.keyFile} can be read by group or others (mode ${key.mode.toString(8).padStart(4, '0')}); run chmod 600 on it`);
  }
  const service = new WitnessService({ key: key.key, cluster: cfg.cluster, leaseMs: cfg.leaseMs, now: () => clock.now(), onEvent: witnessLogger(log, () => clock.now()) });
  let server: WitnessServer;
  try {
    server = await WitnessServer.listen(service, cfg.listen.host, cfg.listen.port);
  } catch (e) {
    throw new HakitError('CONFIG', { detail: `cannot listen on ${formatAddress(cfg.listen.host, cfg.listen.port)}: ${(e as Error).message}` }, { cause: e });
  }
  log.log(null, 'info', 'witness ready', {
    listen: server.address(), cluster: cfg.cluster, leaseMs: cfg.leaseMs, quietMs: cfg.leaseMs,
  });
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    signal?.addEventListener('abort', stop, { once: true });
  });
  await server.close();
  log.log(null, 'info', 'witness stopped', { counters: service.counters() });
  return 0;
}
