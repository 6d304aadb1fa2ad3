/**
 * The in-memory twin of the witness: a WitnessService on a clock you give (a FakeClock in tests
 * and the simulator) and clients that reach it without sockets. Datagrams still go through the
 * codec, so keys, clusters, replay and matching behave as over UDP.
 *
 * Faults: `down()` (no answer to anyone), `cut(node)` (one node cannot reach the witness),
 * `restart()` (a new life: leases forgotten, quiet period from now).
 */
import type { Clock } from '../clock/index.js';
import { WitnessClientBase, type WitnessClientOptions } from './client-base.js';
import { WitnessService, type WitnessEvent } from './service.js';

export interface MemoryWitnessOptions {
  key: Buffer;
  cluster: string;
  leaseMs: number;
  clock: Clock;
  onEvent?: (e: WitnessEvent) => void;
}

export class MemoryWitness {
  private svc: WitnessService;
  private isDown = false;
  private readonly cuts = new Set<string>();

  constructor(private readonly opts: MemoryWitnessOptions) {
    this.svc = this.newService();
  }

  get service(): WitnessService {
    return this.svc;
  }

  /** A client of this witness; `key`/`cluster` default to the witness's (pass others to test refusals). */
  client(node: string, opts: Partial<Omit<WitnessClientOptions, 'node' | 'clock'>> = {}): MemoryWitnessClient {
    return new MemoryWitnessClient({ key: this.opts.key, cluster: this.opts.cluster, ...opts, node, clock: this.opts.clock }, this);
  }

  down(): void { this.isDown = true; }
  up(): void { this.isDown = false; }
  cut(node: string): void { this.cuts.add(node); }
  heal(node: string): void { this.cuts.delete(node); }
  /** A witness restart: every lease forgotten, no grant for one lease length from now. */
  restart(): void { this.svc = this.newService(); }

  /** @internal Delivers one datagram from `node`; returns the reply, if any reaches it. */
  deliver(node: string, bytes: Buffer): Buffer | undefined {
    if (this.isDown || this.cuts.has(node)) return undefined;
    return this.svc.handle(bytes, `memory:${node}`);
  }

  private newService(): WitnessService {
    return new WitnessService({ key: this.opts.key, cluster: this.opts.cluster, leaseMs: this.opts.leaseMs, now: () => this.opts.clock.now(), onEvent: this.opts.onEvent });
  }
}

export class MemoryWitnessClient extends WitnessClientBase {
  constructor(opts: WitnessClientOptions, private readonly witness: MemoryWitness) {
    super(opts);
  }

  protected transmit(bytes: Buffer): void {
    const reply = this.witness.deliver(this.node, bytes);
    // Asynchronous like a network, so a reply never arrives inside the send call.
    if (reply) queueMicrotask(() => this.receive(reply));
  }

  protected closeMedium(): Promise<void> {
    return Promise.resolve();
  }
}
