/**
 * Shared logic of the real and the in-memory witness clients: request numbering, retries within
 * the timeout, matching replies to pending requests, and turning replies into answers.
 * Subclasses only move bytes: `transmit` sends one datagram to the witness, and whatever arrives
 * is handed to `receive`.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock/index.js';
import { encodeWitness, decodeWitness, witnessKeys, type WitnessKeys, type WitnessMessage } from './codec.js';
import {
  DEFAULT_WITNESS_ATTEMPTS, DEFAULT_WITNESS_TIMEOUT_MS, type AcquireAnswer, type ReleaseAnswer, type WitnessClient, type WitnessClientCounters,
} from './client.js';

export interface WitnessClientOptions {
  /** The 32-byte cluster key. */
  key: Buffer;
  /** The cluster's name (cluster.yaml `cluster.name`). */
  cluster: string;
  /** This node's name. */
  node: string;
  /** Timers and the monotonic time of `untilMs`/`sentAtMs`. */
  clock: Clock;
  /** Time a request may take, all attempts included (ms; default 1000). */
  timeoutMs?: number;
  /** Datagrams per request, sent at 0, T/n, 2T/n, ... (default 3). */
  attempts?: number;
  /** This client's epoch, 8 bytes; random by default. */
  epoch?: Buffer;
  /** Wall clock at client start, ms since 1970; clock.wallNow() by default. */
  epochStart?: number;
}

type Reply = NonNullable<WitnessMessage['reply']>;

interface Pending {
  module: string;
  type: 'acquire' | 'release';
  /** seq -> send time of that attempt. */
  sent: Map<bigint, number>;
  timers: TimerHandle[];
  finish: (r: { reply: Reply; sentAtMs: number } | { error: 'timeout' | 'closed' }) => void;
}

export abstract class WitnessClientBase implements WitnessClient {
  readonly node: string;
  private readonly keys: WitnessKeys;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly epoch: string;
  private readonly epochStart: number;
  private seq = 0n;
  private readonly pending = new Set<Pending>();
  private readonly counts: WitnessClientCounters = { sent: 0, accepted: 0, dropped: 0 };
  protected closed = false;

  protected constructor(opts: WitnessClientOptions) {
    this.node = opts.node;
    this.keys = witnessKeys(opts.key, opts.cluster);
    this.clock = opts.clock;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_WITNESS_TIMEOUT_MS;
    this.attempts = Math.max(1, Math.floor(opts.attempts ?? DEFAULT_WITNESS_ATTEMPTS));
    const epoch = opts.epoch ?? randomBytes(8);
    if (epoch.length !== 8) throw new RangeError('epoch must be 8 bytes');
    this.epoch = epoch.toString('hex');
    this.epochStart = opts.epochStart ?? Math.floor(opts.clock.wallNow());
  }

  /** Sends one datagram to the witness; must not throw (a failed send is a lost datagram). */
  protected abstract transmit(bytes: Buffer): void;
  /** Releases the medium. */
  protected abstract closeMedium(): Promise<void>;

  async acquire(module: string): Promise<AcquireAnswer> {
    const r = await this.request('acquire', module);
    if ('error' in r) return r;
    const { reply, sentAtMs } = r;
    if (reply.result === 'granted') return { granted: true, untilMs: sentAtMs + reply.ms, leaseMs: reply.ms, sentAtMs };
    if (reply.result === 'held') return { granted: false, holder: reply.holder, remainingMs: reply.ms };
    if (reply.result === 'starting') return { granted: false, holder: null, remainingMs: reply.ms };
    // A reply of the wrong kind for an acquire: treat as no answer (a witness bug, never trusted as a grant).
    return { error: 'timeout' };
  }

  async release(module: string): Promise<ReleaseAnswer> {
    const r = await this.request('release', module);
    if ('error' in r) return r;
    if (r.reply.result === 'released') return { released: true };
    if (r.reply.result === 'not-released') return { released: false, holder: r.reply.holder, remainingMs: r.reply.ms };
    return { error: 'timeout' };
  }

  counters(): WitnessClientCounters {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending]) p.finish({ error: 'closed' });
    await this.closeMedium();
  }

  /** Hands one arrived datagram to the client; drops (and counts) anything that is not a fresh reply. */
  protected receive(data: Buffer): void {
    if (this.closed) return;
    const d = decodeWitness(this.keys, data);
    if (!d.ok || d.value.type !== 'reply' || d.value.reply === undefined || d.value.epoch !== this.epoch || d.value.node !== this.node) {
      this.counts.dropped++;
      return;
    }
    const m = d.value;
    for (const p of this.pending) {
      const sentAtMs = p.sent.get(m.seq);
      if (sentAtMs === undefined) continue;
      if (p.module !== m.module) break;
      const kindOk = p.type === 'acquire' ? ['granted', 'held', 'starting'].includes(m.reply!.result) : ['released', 'not-released'].includes(m.reply!.result);
      if (!kindOk) break;
      this.counts.accepted++;
      p.finish({ reply: m.reply!, sentAtMs });
      return;
    }
    this.counts.dropped++;
  }

  private request(type: 'acquire' | 'release', module: string): Promise<{ reply: Reply; sentAtMs: number } | { error: 'timeout' | 'closed' }> {
    if (this.closed) return Promise.resolve({ error: 'closed' });
    return new Promise((resolve) => {
      const p: Pending = {
        module, type, sent: new Map(), timers: [],
        finish: (r) => {
          if (!this.pending.delete(p)) return;
          for (const t of p.timers) this.clock.clearTimer(t);
          resolve(r);
        },
      };
      this.pending.add(p);
      const send = (): void => {
        if (!this.pending.has(p)) return;
        this.seq += 1n;
        const bytes = encodeWitness(this.keys, { type, epoch: this.epoch, epochStart: this.epochStart, seq: this.seq, module, node: this.node });
        p.sent.set(this.seq, this.clock.now());
        this.counts.sent++;
        this.transmit(bytes);
      };
      const step = this.timeoutMs / this.attempts;
      for (let i = 1; i < this.attempts; i++) p.timers.push(this.clock.setTimer(step * i, send));
      p.timers.push(this.clock.setTimer(this.timeoutMs, () => p.finish({ error: 'timeout' })));
      send();
    });
  }
}
