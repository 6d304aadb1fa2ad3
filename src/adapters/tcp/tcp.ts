/**
 * The real replication link over TCP (node:net). TCP_NODELAY on both ends (frames are written
 * whole, several per write under load, so Nagle only adds latency) and keepalive so a dead
 * idle connection is eventually noticed. Protocol: link.ts; wire format: frame.ts.
 */
import net from 'node:net';
import type { Clock } from '../clock/clock.js';
import { realClock } from '../clock/real.js';
import { LinkReceiver, LinkSender, type Conn, type ReceiverOptions, type ReplicationReceiver, type ReplicationSender, type SenderOptions } from './link.js';

/** Default TCP port of the replication link. */
export const DEFAULT_REPLICATION_PORT = 7406;
/** How long `end()` waits for the peer to close before it destroys the socket, ms. */
const END_GRACE_MS = 1000;

function socketConn(s: net.Socket, clock: Clock): Conn {
  s.setNoDelay(true);
  s.setKeepAlive(true, 1000);
  let why = 'closed';
  s.on('error', (e) => { why = e.message; });
  return {
    write(chunks) {
      if (s.destroyed) return;
      s.cork();
      for (const c of chunks) s.write(c);
      s.uncork();
    },
    onData(fn) { s.on('data', fn); },
    onClose(fn) { s.once('close', () => fn(why)); },
    pause() { s.pause(); },
    resume() { s.resume(); },
    end() {
      if (s.destroyed) return;
      s.end();
      const t = clock.setTimer(END_GRACE_MS, () => s.destroy());
      s.once('close', () => clock.clearTimer(t));
    },
    destroy() { s.destroy(); },
  };
}

/** The link's sender options, plus where the receiver listens; the clock defaults to the real one. */
export interface TcpSenderOptions extends Omit<SenderOptions, 'clock'> {
  host: string;
  port: number;
  clock?: Clock;
}

/** Starts connecting at once; see ReplicationSender for the states. */
export function connectSender(opts: TcpSenderOptions): ReplicationSender {
  const clock = opts.clock ?? realClock;
  return new LinkSender({ ...opts, clock }, (signal) => new Promise<Conn>((resolve, reject) => {
    const s = net.connect({ host: opts.host, port: opts.port });
    const onAbort = (): void => { s.destroy(); reject(new Error('aborted')); };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      s.removeListener('error', reject);
      resolve(socketConn(s, clock));
    });
    s.once('error', reject);
  }));
}

/** The link's receiver options, plus where to listen; the clock defaults to the real one. */
export interface TcpReceiverOptions extends Omit<ReceiverOptions, 'clock'> {
  /** Address to listen on (an IP literal of this node on the replication network). */
  address: string;
  /** Port; 0 picks a free one (read it back from `port`). */
  port: number;
  clock?: Clock;
}

/** Listens; resolves once bound. Rejects with the listen error (EADDRINUSE, EADDRNOTAVAIL). */
export async function listenReceiver(opts: TcpReceiverOptions): Promise<ReplicationReceiver> {
  const clock = opts.clock ?? realClock;
  const link = new LinkReceiver({ ...opts, clock });
  const server = net.createServer((s) => link.accept(socketConn(s, clock)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.address, port: opts.port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return link.listening((server.address() as net.AddressInfo).port, () => new Promise<void>((r) => server.close(() => r())));
}
