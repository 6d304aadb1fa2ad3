/** `tcp` checker: up when a TCP connection to host:port is accepted (then closed at once). */
import { connect } from 'node:net';
import type { TcpChecker } from '../../core/config/types.js';
import type { Check, CheckResult } from './probe.js';

export function tcpCheck(cfg: TcpChecker): Check {
  const where = cfg.host.includes(':') ? `[${cfg.host}]:${cfg.port}` : `${cfg.host}:${cfg.port}`;
  return (signal) => new Promise<CheckResult>((resolve) => {
    const sock = connect({ host: cfg.host, port: cfg.port });
    const done = (r: CheckResult): void => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = (): void => done({ ok: false, detail: 'aborted' });
    sock.once('connect', () => done({ ok: true, detail: `connected to ${where}` }));
    sock.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: `cannot connect to ${where}: ${e.code ?? e.message}` }));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
