/**
 * `hakit daemon`: the node agent (src/daemon) behind the control API on a unix socket.
 * Runs until SIGTERM or SIGINT, then stops every module cleanly (stop scripts, VIPs removed,
 * the peer told) and resolves to exit code 0.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { HakitError } from '../core/errors.js';
import { NodeAgent } from '../daemon/agent.js';
import { Logbook } from '../daemon/logbook.js';
import { buildApi } from './server.js';

export interface DaemonOptions {
  configDir: string;
  stateDir: string;
  socket: string;
  node?: string;
}

/** True when something accepts connections on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function runDaemon(opts: DaemonOptions, signal?: AbortSignal): Promise<number> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new HakitError('NOT_ROOT', { what: 'hakit daemon' });
  if (existsSync(opts.socket)) {
    if (await answers(opts.socket)) {
      throw new HakitError('USAGE', { detail: `another daemon already answers on ${opts.socket}; stop it first or pass another --socket` });
    }
    unlinkSync(opts.socket);
  }
  mkdirSync(dirname(opts.socket), { recursive: true, mode: 0o755 });
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const logbook = new Logbook();
  const agent = await NodeAgent.create({ configDir: opts.configDir, stateDir: opts.stateDir, node: opts.node, logbook });
  const app = buildApi(agent);
  try {
    await app.listen({ path: opts.socket });
    chmodSync(opts.socket, 0o600);
  } catch (e) {
    await agent.shutdown();
    throw e;
  }
  logbook.log(null, 'info', `daemon ready on ${opts.socket}`);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
    signal?.addEventListener('abort', done, { once: true });
  });
  logbook.log(null, 'info', 'shutting down: stopping modules');
  await agent.shutdown();
  await app.close();
  logbook.log(null, 'info', 'daemon stopped');
  return 0;
}
