/**
 * The in-memory twin of the replication link (STYLE.md 3), for unit tests and the simulator.
 * The bytes are the real frames of frame.ts and go through the same engine (link.ts) as over
 * TCP; only the stream is simulated: ordered, reliable, delivered asynchronously (next
 * macrotask, or after `delayMs` on the given clock), until a fault says otherwise.
 *
 * Faults (apply to every connection of the network, both directions):
 *   pause()    bytes stop moving (held, in order): the peer looks silent, as a cut cable would
 *   resume()   held bytes move again, in order
 *   drop()     every open connection is closed at both ends (held bytes are lost), as a reset
 *   delayMs    each chunk is delivered no earlier than this many ms after it was written
 *   transit    optional hook that sees (and may replace) every chunk in transit (tamper, capture)
 */
import type { Clock } from '../clock/clock.js';
import { realClock } from '../clock/real.js';
import { LinkReceiver, LinkSender, type Conn, type ReplicationReceiver, type ReplicationSender, type ReceiverOptions, type SenderOptions } from './link.js';

/** As tcp.ts: how long `end()` waits for the peer to close before it destroys, ms. */
const END_GRACE_MS = 1000;

export type Direction = 'to-listener' | 'to-dialer';

export interface MemoryFaults {
  pause(): void;
  resume(): void;
  drop(): void;
  delayMs: number;
  transit: ((dir: Direction, chunk: Buffer) => Buffer) | null;
}

interface Held {
  bytes: Buffer;
  at: number;
}

class Half implements Conn {
  peer!: Half;
  private readonly inbox: Held[] = [];
  private dataFn: ((b: Buffer) => void) | null = null;
  private closeFns: ((why: string) => void)[] = [];
  private readerPaused = false;
  private timerSet = false;
  closed = false;

  constructor(private readonly net: MemoryReplicationNetwork, private readonly dir: Direction) {}

  write(chunks: readonly Buffer[]): void {
    if (this.closed) return;
    let bytes: Buffer = Buffer.concat(chunks as Buffer[]);
    if (this.net.faults.transit) bytes = this.net.faults.transit(this.peer.dir, bytes);
    this.peer.arrive(bytes);
  }

  private arrive(bytes: Buffer): void {
    if (this.closed) return;
    const last = this.inbox[this.inbox.length - 1];
    const at = Math.max(this.net.clock.now() + this.net.faults.delayMs, last?.at ?? 0);
    this.inbox.push({ bytes, at });
    this.schedule();
  }

  schedule(): void {
    if (this.timerSet || this.closed || this.inbox.length === 0 || this.net.paused || this.readerPaused) return;
    this.timerSet = true;
    const head = this.inbox[0] as Held;
    const wait = head.at - this.net.clock.now();
    const run = (): void => {
      this.timerSet = false;
      this.flush();
    };
    if (wait > 0) this.net.clock.setTimer(wait, run);
    else setImmediate(run);
  }

  closeWhenDrained = false;

  flushOrClose(): void {
    if (this.closeWhenDrained && this.inbox.length === 0) this.net.closePair(this, 'closed by the other end');
  }

  private flush(): void {
    while (!this.closed && !this.net.paused && !this.readerPaused && this.inbox.length > 0) {
      const head = this.inbox[0] as Held;
      if (head.at > this.net.clock.now()) break;
      this.inbox.shift();
      this.dataFn?.(head.bytes);
    }
    this.flushOrClose();
    this.schedule();
  }

  onData(fn: (b: Buffer) => void): void {
    this.dataFn = fn;
  }

  onClose(fn: (why: string) => void): void {
    this.closeFns.push(fn);
  }

  pause(): void {
    this.readerPaused = true;
  }

  resume(): void {
    this.readerPaused = false;
    this.schedule();
  }

  end(): void {
    // Bytes already written sit in the peer's inbox: close once it has drained (as a FIN after
    // the data), or after END_GRACE_MS if the peer never reads them (as tcp.ts does).
    if (this.closed) return;
    this.peer.closeWhenDrained = true;
    this.peer.flushOrClose();
    this.net.clock.setTimer(END_GRACE_MS, () => this.destroy());
  }

  destroy(): void {
    this.net.closePair(this, 'reset');
  }

  /** Closes this half, once; `why` goes to onClose. */
  shut(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox.length = 0;
    const fns = this.closeFns;
    this.closeFns = [];
    setImmediate(() => { for (const fn of fns) fn(why); });
  }
}

/** A set of listeners reachable by "host:port", and the faults of the medium. */
export class MemoryReplicationNetwork {
  readonly clock: Clock;
  paused = false;
  private readonly listeners = new Map<string, (c: Conn) => void>();
  private readonly open = new Set<Half>();
  private nextPort = 40000;
  readonly faults: MemoryFaults;

  constructor(opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? realClock;
    this.faults = {
      pause: () => { this.paused = true; },
      resume: () => {
        this.paused = false;
        for (const h of this.open) h.schedule();
      },
      drop: () => {
        for (const h of [...this.open]) this.closePair(h, 'connection reset (fault)');
      },
      delayMs: 0,
      transit: null,
    };
  }

  /** Registers a listener; returns its port and a function that stops listening. */
  listen(host: string, port: number, accept: (c: Conn) => void): { port: number; close: () => void } {
    const p = port === 0 ? this.nextPort++ : port;
    const key = `${host}:${p}`;
    if (this.listeners.has(key)) throw Object.assign(new Error(`listen EADDRINUSE ${key}`), { code: 'EADDRINUSE' });
    this.listeners.set(key, accept);
    return { port: p, close: () => { this.listeners.delete(key); } };
  }

  /** Opens a stream to a listener; rejects like ECONNREFUSED when nobody listens there. */
  connect(host: string, port: number): Promise<Conn> {
    const accept = this.listeners.get(`${host}:${port}`);
    if (!accept) return Promise.reject(Object.assign(new Error(`connect ECONNREFUSED ${host}:${port}`), { code: 'ECONNREFUSED' }));
    const dialer = new Half(this, 'to-dialer');
    const listener = new Half(this, 'to-listener');
    dialer.peer = listener;
    listener.peer = dialer;
    this.open.add(dialer);
    this.open.add(listener);
    return new Promise((resolve) => setImmediate(() => {
      accept(listener);
      resolve(dialer);
    }));
  }

  closePair(h: Half, why: string): void {
    this.open.delete(h);
    this.open.delete(h.peer);
    h.shut(why);
    h.peer.shut(why);
  }

  /** A sender over this network (same options as connectSender, clock from the network). */
  connectSender(opts: Omit<SenderOptions, 'clock'> & { host: string; port: number }): ReplicationSender {
    return new LinkSender({ ...opts, clock: this.clock }, () => this.connect(opts.host, opts.port));
  }

  /** A receiver over this network; listening as soon as it returns. */
  listenReceiver(opts: Omit<ReceiverOptions, 'clock'> & { address: string; port: number }): ReplicationReceiver {
    const link = new LinkReceiver({ ...opts, clock: this.clock });
    const l = this.listen(opts.address, opts.port, (c) => link.accept(c));
    return link.listening(l.port, () => l.close());
  }
}

export interface MemoryLinkOptions {
  key: Buffer;
  cluster: string;
  module: string;
  /** Primary (sender) and secondary (receiver) node names; default n1, n2. */
  node?: string;
  peer?: string;
  timeoutMs: number;
  maxInFlightBytes?: number;
  clock?: Clock;
  /** A different key for the receiver (tests of a wrong key). */
  receiverKey?: Buffer;
}

/** A connected pair on a fresh memory network: the twin of listenReceiver + connectSender. */
export function memoryLink(opts: MemoryLinkOptions): { sender: ReplicationSender; receiver: ReplicationReceiver; faults: MemoryFaults; network: MemoryReplicationNetwork } {
  const network = new MemoryReplicationNetwork({ clock: opts.clock });
  const node = opts.node ?? 'n1';
  const peer = opts.peer ?? 'n2';
  const receiver = network.listenReceiver({ address: 'mem', port: 0, key: opts.receiverKey ?? opts.key, cluster: opts.cluster, node: peer, module: opts.module });
  const sender = network.connectSender({
    host: 'mem', port: receiver.port, key: opts.key, cluster: opts.cluster, node, peer, module: opts.module, timeoutMs: opts.timeoutMs,
    maxInFlightBytes: opts.maxInFlightBytes,
  });
  return { sender, receiver, faults: network.faults, network };
}
