/**
 * The in-memory twin of the UDP heartbeat transport (STYLE.md 3), for unit tests and the
 * deterministic simulator. Datagrams are the real encoded bytes and go through the same receive
 * pipeline as the real transport; only the medium is simulated.
 *
 * Delivery: with `autoDeliver` (default) queued datagrams are delivered on the next macrotask
 * (setImmediate); with `autoDeliver: false` nothing moves until the owner calls `deliverNext`
 * or `deliverAll`, so a simulator decides when (and, with its seeded `random`, what) arrives.
 * Faults apply per link (network, from address, to address) and are drawn from `random`.
 *
 * As with real UDP, a datagram goes to whatever endpoint holds the destination address and port,
 * whichever network it was sent on, and is received on the network of that endpoint: a
 * datagram sent on `lan` to a peer's `hb2` address arrives on `hb2` (and is dropped there as
 * `wrong-network`). An address:port can be held by one endpoint only. A datagram to an address
 * nobody holds is silently lost.
 */
import { DEFAULT_HEARTBEAT_PORT } from './codec.js';
import { TransportBase, formatAddress, parseAddress, type HeartbeatTransportOptions } from './transport.js';

export interface MemoryBind {
  network: string;
  address: string;
  port?: number;
}

export interface LinkFaults {
  /** Probability (0..1) that a datagram is lost. 1 = link cut. */
  drop?: number;
  /** Probability (0..1) that a datagram is delivered twice. */
  duplicate?: number;
  /** Probability (0..1) that a datagram is queued at a random earlier place among those pending. */
  reorder?: number;
}

/** Which links a fault rule applies to; an omitted field matches everything. Addresses without port. */
export interface LinkMatch {
  network?: string;
  from?: string;
  to?: string;
}

interface InFlight {
  to: string;
  from: string;
  bytes: Buffer;
}

/** A raw datagram endpoint on the memory network: the twin of a plain dgram socket (tests). */
export interface MemoryRawSocket {
  /** "host:port" of this endpoint. */
  readonly address: string;
  /** Sends raw bytes, as `dgram.Socket.send` would. */
  send(toAddress: string, bytes: Buffer): void;
  /** Called for every datagram that arrives. */
  onMessage(handler: (bytes: Buffer, fromAddress: string) => void): void;
  close(): void;
}

interface Endpoint {
  network: string;
  arrive(network: string, from: string, bytes: Buffer): void;
}

function key(host: string, port: number): string {
  return formatAddress(host, port);
}

export class MemoryHeartbeatNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly rules: { match: LinkMatch; faults: LinkFaults }[] = [];
  private readonly queue: InFlight[] = [];
  private readonly random: () => number;
  private readonly autoDeliver: boolean;
  private scheduled = false;

  constructor(opts: { random?: () => number; autoDeliver?: boolean } = {}) {
    this.random = opts.random ?? Math.random;
    this.autoDeliver = opts.autoDeliver ?? true;
  }

  /** Opens a transport attached to this network at the given addresses. */
  transport(opts: HeartbeatTransportOptions & { bind: readonly MemoryBind[] }): MemoryHeartbeatTransport {
    const binds = opts.bind.map((b) => ({ network: b.network, address: b.address, port: b.port ?? DEFAULT_HEARTBEAT_PORT }));
    for (const b of binds) {
      parseAddress(b.address);
      if (this.endpoints.has(key(b.address, b.port))) throw new Error(`address ${key(b.address, b.port)} is in use (EADDRINUSE)`);
    }
    const t = new MemoryHeartbeatTransport(opts, this, binds);
    for (const b of binds) this.endpoints.set(key(b.address, b.port), { network: b.network, arrive: (n, f, bytes) => t.arrive(n, f, bytes) });
    return t;
  }

  /** Binds a raw endpoint at `address:port` (port default 7405), labelled `network` for fault rules. */
  socket(network: string, address: string, port = DEFAULT_HEARTBEAT_PORT): MemoryRawSocket {
    const k = key(address, port);
    if (this.endpoints.has(k)) throw new Error(`address ${k} is in use (EADDRINUSE)`);
    const handlers: ((bytes: Buffer, from: string) => void)[] = [];
    let open = true;
    const ep: Endpoint = { network, arrive: (_n, from, bytes) => { if (open) for (const h of handlers) h(bytes, from); } };
    this.endpoints.set(k, ep);
    return {
      address: k,
      send: (to, bytes) => { if (open) this.carry(network, k, formatAddress(parseAddress(to).host, parseAddress(to).port), Buffer.from(bytes)); },
      onMessage: (h) => { handlers.push(h); },
      close: () => { open = false; if (this.endpoints.get(k) === ep) this.endpoints.delete(k); },
    };
  }

  /** Adds a fault rule; later rules override earlier ones field by field. */
  setFaults(faults: LinkFaults, match: LinkMatch = {}): void {
    this.rules.push({ match, faults });
  }

  /** Cuts both directions between two addresses on one network. */
  partition(network: string, a: string, b: string): void {
    this.setFaults({ drop: 1 }, { network, from: a, to: b });
    this.setFaults({ drop: 1 }, { network, from: b, to: a });
  }

  /** Removes every fault rule. */
  heal(): void {
    this.rules.length = 0;
  }

  /**
   * Puts raw bytes on the wire as if sent from `fromAddress` (forged or garbage datagrams),
   * bypassing fault rules; `network` is kept for compatibility: delivery follows `toAddress`.
   */
  inject(_network: string, fromAddress: string, toAddress: string, bytes: Buffer): void {
    this.enqueue({ from: fromAddress, to: toAddress, bytes: Buffer.from(bytes) });
  }

  /** Datagrams in flight. */
  pending(): number {
    return this.queue.length;
  }

  /** Delivers the oldest datagram in flight; false when none is. */
  deliverNext(): boolean {
    const d = this.queue.shift();
    if (!d) return false;
    const to = parseAddress(d.to);
    const ep = this.endpoints.get(key(to.host, to.port));
    ep?.arrive(ep.network, d.from, d.bytes);
    return true;
  }

  /** Delivers everything in flight (including duplicates); returns how many were delivered. */
  deliverAll(): number {
    let n = 0;
    while (this.deliverNext()) n++;
    return n;
  }

  /** @internal called by transports: `network` is the sender's (fault rules match on it). */
  carry(network: string, from: string, to: string, bytes: Buffer): void {
    const f = this.faultsFor(network, parseAddress(from).host, parseAddress(to).host);
    if (f.drop !== undefined && this.random() < f.drop) return;
    const copies = f.duplicate !== undefined && this.random() < f.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const d = { from, to, bytes };
      if (f.reorder !== undefined && this.queue.length > 0 && this.random() < f.reorder) {
        this.queue.splice(Math.floor(this.random() * this.queue.length), 0, d);
        this.schedule();
      } else {
        this.enqueue(d);
      }
    }
  }

  /** @internal */
  detach(binds: readonly { address: string; port: number }[]): void {
    for (const b of binds) this.endpoints.delete(key(b.address, b.port));
  }

  private enqueue(d: InFlight): void {
    this.queue.push(d);
    this.schedule();
  }

  private schedule(): void {
    if (!this.autoDeliver || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliverAll();
    });
  }

  private faultsFor(network: string, from: string, to: string): LinkFaults {
    const out: LinkFaults = {};
    for (const r of this.rules) {
      const m = r.match;
      if ((m.network === undefined || m.network === network) && (m.from === undefined || m.from === from) && (m.to === undefined || m.to === to)) {
        Object.assign(out, r.faults);
      }
    }
    return out;
  }
}

export class MemoryHeartbeatTransport extends TransportBase {
  constructor(
    opts: HeartbeatTransportOptions,
    private readonly net: MemoryHeartbeatNetwork,
    private readonly binds: readonly { network: string; address: string; port: number }[],
  ) {
    super(opts, binds.map((b) => b.network));
  }

  protected transmit(network: string, to: { host: string; port: number }, bytes: Buffer): void {
    const b = this.binds.find((x) => x.network === network);
    if (!b) return;
    // Like the kernel: an IPv4 socket cannot send to an IPv6 address and vice versa.
    if (b.address.includes(':') !== to.host.includes(':')) return this.sendFailed(network);
    this.net.carry(network, formatAddress(b.address, b.port), formatAddress(to.host, to.port), bytes);
  }

  /** @internal called by the network. */
  arrive(network: string, from: string, bytes: Buffer): void {
    this.receive(network, from, bytes);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.net.detach(this.binds);
  }
}
