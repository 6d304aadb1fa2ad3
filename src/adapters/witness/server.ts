/** The witness's UDP socket: every datagram goes to a WitnessService, its reply back to the sender. */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { formatAddress } from '../udp/transport.js';
import type { WitnessService } from './service.js';

export class WitnessServer {
  private constructor(private readonly socket: dgram.Socket, readonly service: WitnessService) {}

  /** Binds host:port (port 0: any free port) and starts answering. Rejects when the bind fails. */
  static async listen(service: WitnessService, host: string, port: number): Promise<WitnessServer> {
    const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    socket.on('error', () => undefined);
    const server = new WitnessServer(socket, service);
    socket.on('message', (msg, rinfo) => {
      const reply = service.handle(msg, formatAddress(rinfo.address, rinfo.port));
      if (reply) socket.send(reply, rinfo.port, rinfo.address, () => undefined);
    });
    return server;
  }

  /** The bound address as "host:port". */
  address(): string {
    const a = this.socket.address();
    return formatAddress(a.address, a.port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
