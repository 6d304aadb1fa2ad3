/**
 * The in-memory twin of the UDP heartbeat transport (STYLE.md 3), for unit tests and the
 * deterministic simulator. Datagrams are the real encoded bytes and go through the same receive
 * pipeline as the real transport; only the medium is simulated.
 *
 * Delivery: with `autoDeliver` (default) queued datagrams are delivered on the next macrotask
 * (setImmediate); with `autoDeliver: false` nothing moves until the owner calls `deliverNext`
 * or `deliverAll`, so a simulator decides when (and, with its seeded `random`, what) arrives.
 * Faults apply per link (network, from address, to address) and are drawn from `random`.
 */
import { DEFAULT_HEARTBEAT_PORT } from './codec.js';
import { TransportBase, parseAddress, type HeartbeatTransportOptions } from './transport.js';

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
  network: string;
  to: string;
  from: string;
  bytes: Buffer;
}

function key(network: string, host: string, port: number): string {
  return `${network}|${host}|${port}`;
}

export class MemoryHeartbeatNetwork {
  private readonly endpoints = new Map<string, MemoryHeartbeatTransport>();
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
      if (this.endpoints.has(key(b.network, b.address, b.port))) throw new Error(`address ${b.address}:${b.port} on ${b.network} is in use`);
    }
    const t = new MemoryHeartbeatTransport(opts, this, binds);
    for (const b of binds) this.endpoints.set(key(b.network, b.address, b.port), t);
    return t;
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

  /** Puts raw bytes on the wire as if sent from `fromAddress` (forged or garbage datagrams). */
  inject(network: string, fromAddress: string, toAddress: string, bytes: Buffer): void {
    this.enqueue({ network, from: fromAddress, to: toAddress, bytes: Buffer.from(bytes) });
  }

  /** Datagrams in flight. */
  pending(): number {
    return this.queue.length;
  }

  /** Delivers the oldest datagram in flight; false when none is. */
  deliverNext(): boolean {
    const d = this.queue.shift();
    if (!d) return false;
    const to = parseAddress(d.to, DEFAULT_HEARTBEAT_PORT);
    this.endpoints.get(key(d.network, to.host, to.port))?.arrive(d.network, d.from, d.bytes);
    return true;
  }

  /** Delivers everything in flight (including duplicates); returns how many were delivered. */
  deliverAll(): number {
    let n = 0;
    while (this.deliverNext()) n++;
    return n;
  }

  /** @internal called by transports. */
  carry(network: string, from: string, to: string, bytes: Buffer): void {
    const f = this.faultsFor(network, parseAddress(from, DEFAULT_HEARTBEAT_PORT).host, parseAddress(to, DEFAULT_HEARTBEAT_PORT).host);
    if (f.drop !== undefined && this.random() < f.drop) return;
    const copies = f.duplicate !== undefined && this.random() < f.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const d = { network, from, to, bytes };
      if (f.reorder !== undefined && this.queue.length > 0 && this.random() < f.reorder) {
        this.queue.splice(Math.floor(this.random() * this.queue.length), 0, d);
        this.schedule();
      } else {
        this.enqueue(d);
      }
    }
  }

  /** @internal */
  detach(t: MemoryHeartbeatTransport): void {
    for (const [k, v] of this.endpoints) if (v === t) this.endpoints.delete(k);
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
    super(opts);
  }

  protected hasNetwork(network: string): boolean {
    return this.binds.some((b) => b.network === network);
  }

  protected transmit(network: string, to: { host: string; port: number }, bytes: Buffer): void {
    const b = this.binds.find((x) => x.network === network);
    if (!b) return;
    const fmt = (h: string, p: number): string => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`);
    this.net.carry(network, fmt(b.address, b.port), fmt(to.host, to.port), bytes);
  }

  /** @internal called by the network. */
  arrive(network: string, from: string, bytes: Buffer): void {
    this.receive(network, from, bytes);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.net.detach(this);
  }
}
