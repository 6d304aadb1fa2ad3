/**
 * The real heartbeat transport: one UDP socket per heartbeat network, bound to this node's
 * address on that network (default port 7405), so each network's heartbeats leave and arrive
 * on that network only.
 *
 * Not done: DSCP/TOS marking. Node 20's dgram has no setTOS and no setsockopt, so marking
 * heartbeats high priority needs an nftables rule (`udp dport 7405 ip dscp set cs6`) instead.
 */
import dgram from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import { DEFAULT_HEARTBEAT_PORT } from './codec.js';
import { TransportBase, formatAddress, type HeartbeatTransportOptions } from './transport.js';

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

/**
 * dgram resolves the destination of every send, through dns.lookup and a process.nextTick even
 * for an IP literal. Heartbeat addresses are IP literals (parseAddress refuses names), so the
 * answer is the address itself, given at once: the datagram leaves in the same call.
 */
function literal(family: 4 | 6): NonNullable<dgram.SocketOptions['lookup']> {
  return (address, _options, callback) => callback(null, address, family);
}

export class UdpHeartbeatTransport extends TransportBase {
  private readonly sockets = new Map<string, dgram.Socket>();

  private constructor(opts: UdpHeartbeatTransportOptions) {
    super(opts, opts.bind.map((b) => b.network));
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
    if (isIP(b.address) === 0) throw new RangeError(`heartbeat network ${b.network}: bind address ${b.address} is not an IP address`);
    // ipv6Only: a socket bound to :: must not also take the IPv4 datagrams of another network.
    const v6 = isIPv6(b.address);
    const sock = dgram.createSocket(v6 ? { type: 'udp6', reuseAddr: false, ipv6Only: true, lookup: literal(6) } : { type: 'udp4', reuseAddr: false, lookup: literal(4) });
    this.sockets.set(b.network, sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: b.address, port: b.port ?? DEFAULT_HEARTBEAT_PORT, exclusive: true }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    // After bind, socket errors are counted, never fatal (an 'error' without a listener would throw).
    sock.on('error', () => this.sendFailed(b.network));
    sock.on('message', (msg, rinfo) => this.receive(b.network, formatAddress(rinfo.address, rinfo.port), msg));
  }

  /** The bound address and port of each network. */
  bound(): { network: string; address: string; port: number }[] {
    return [...this.sockets].map(([network, s]) => {
      const a = s.address();
      return { network, address: a.address, port: a.port };
    });
  }

  protected transmit(network: string, to: { host: string; port: number }, bytes: Buffer): void {
    const sock = this.sockets.get(network);
    if (!sock) return;
    try {
      // Errors of the send itself (ENETUNREACH, EHOSTUNREACH, EINVAL for a v4/v6 mismatch) come to
      // the callback; a synchronous throw means the socket is already closed.
      sock.send(bytes, to.port, to.host, (err) => {
        if (err) this.sendFailed(network);
      });
    } catch {
      this.sendFailed(network);
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
