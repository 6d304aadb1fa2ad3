/**
 * The real heartbeat transport: one UDP socket per heartbeat network, bound to this node's
 * address on that network (default port 7405), so each network's heartbeats leave and arrive
 * on that network only.
 *
 * Not done: DSCP/TOS marking. Node 20's dgram has no setTOS and no setsockopt, so marking
 * heartbeats high priority needs an nftables rule (`udp dport 7405 ip dscp set cs6`) instead.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { DEFAULT_HEARTBEAT_PORT } from './codec.js';
import { TransportBase, type HeartbeatTransportOptions } from './transport.js';

export interface UdpBind {
  network: string;
  /** This node's address on that network. */
  address: string;
  /** Default 7405; 0 picks a free port (tests), see `bound()`. */
  port?: number;
}

export interface UdpHeartbeatTransportOptions extends HeartbeatTransportOptions {
  bind: readonly UdpBind[];
}

export class UdpHeartbeatTransport extends TransportBase {
  private readonly sockets = new Map<string, dgram.Socket>();

  private constructor(opts: UdpHeartbeatTransportOptions) {
    super(opts);
  }

  /** Opens and binds every socket; rejects (and closes what it opened) if one bind fails. */
  static async open(opts: UdpHeartbeatTransportOptions): Promise<UdpHeartbeatTransport> {
    const t = new UdpHeartbeatTransport(opts);
    try {
      for (const b of opts.bind) await t.bindOne(b);
    } catch (e) {
      await t.close();
      throw e;
    }
    return t;
  }

  private async bindOne(b: UdpBind): Promise<void> {
    if (this.sockets.has(b.network)) throw new Error(`network ${b.network} is bound twice`);
    const sock = dgram.createSocket({ type: isIPv6(b.address) ? 'udp6' : 'udp4', reuseAddr: false });
    this.sockets.set(b.network, sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: b.address, port: b.port ?? DEFAULT_HEARTBEAT_PORT, exclusive: true }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    // After bind, socket errors (e.g. ICMP-reported) are counted, never fatal.
    sock.on('error', () => this.sendFailed());
    sock.on('message', (msg, rinfo) => {
      const from = rinfo.family === 'IPv6' ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`;
      this.receive(b.network, from, msg);
    });
  }

  /** The bound address and port of each network. */
  bound(): { network: string; address: string; port: number }[] {
    return [...this.sockets].map(([network, s]) => {
      const a = s.address();
      return { network, address: a.address, port: a.port };
    });
  }

  protected hasNetwork(network: string): boolean {
    return this.sockets.has(network);
  }

  protected transmit(network: string, to: { host: string; port: number }, bytes: Buffer): void {
    const sock = this.sockets.get(network);
    if (!sock) return;
    try {
      sock.send(bytes, to.port, to.host, (err) => {
        if (err) this.sendFailed();
      });
    } catch {
      this.sendFailed();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((resolve) => {
      try {
        s.close(() => resolve());
      } catch {
        resolve();
      }
    })));
    this.sockets.clear();
  }
}
