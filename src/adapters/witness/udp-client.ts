/** The real witness client: one UDP socket, connected to nothing, talking to one witness address. */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { realClock } from '../clock/index.js';
import { parseAddress } from '../udp/transport.js';
import { DEFAULT_WITNESS_PORT } from './codec.js';
import { WitnessClientBase, type WitnessClientOptions } from './client-base.js';

export interface UdpWitnessClientOptions extends Omit<WitnessClientOptions, 'clock'> {
  clock?: WitnessClientOptions['clock'];
  /** The witness: "198.18.0.254", "198.18.0.254:7407", "[2001:2::fe]:7407" (default port 7407). */
  witness: string;
  /** Local address to send from (default: any). */
  bind?: string;
}

export class UdpWitnessClient extends WitnessClientBase {
  private readonly socket: dgram.Socket;
  private readonly to: { host: string; port: number };

  private constructor(opts: UdpWitnessClientOptions, socket: dgram.Socket, to: { host: string; port: number }) {
    super({ ...opts, clock: opts.clock ?? realClock });
    this.socket = socket;
    this.to = to;
    socket.on('message', (msg) => this.receive(msg));
  }

  /** Opens the socket; throws RangeError for a witness address that is not an IP literal. */
  static async open(opts: UdpWitnessClientOptions): Promise<UdpWitnessClient> {
    const to = parseAddress(opts.witness, DEFAULT_WITNESS_PORT);
    const socket = dgram.createSocket(isIP(to.host) === 6 ? 'udp6' : 'udp4');
    // A send to an unreachable address surfaces as an 'error' event: a lost datagram, not a crash.
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: opts.bind, port: 0 }, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    return new UdpWitnessClient(opts, socket, to);
  }

  protected transmit(bytes: Buffer): void {
    try {
      this.socket.send(bytes, this.to.port, this.to.host, () => undefined);
    } catch {
      // socket closed under us: the datagram is lost, the request times out
    }
  }

  protected closeMedium(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
