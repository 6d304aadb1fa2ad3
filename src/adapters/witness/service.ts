/**
 * The witness's request handling, shared by the UDP server (server.ts) and the in-memory twin
 * (memory.ts), so the fake differs from the real witness only in the medium.
 *
 * Receive pipeline, in order; a datagram failing a step is dropped (no reply) and counted under
 * that step's reason:
 *   too-large, malformed, bad-version, wrong-cluster, bad-mac   (codec.ts)
 *   not-a-request   an authenticated reply sent to the witness
 *   replay          for the requesting node: a seq not above the last one of its epoch, an epoch
 *                   it already replaced, or an epoch started before (epochStart) its current one
 * Then the lease table (core/witness/lease.ts) answers and the reply echoes the request's epoch,
 * seq, module and node.
 */
import { LeaseTable, type AcquireResult, type ReleaseResult } from '../../core/witness/lease.js';
import { decodeWitness, encodeWitness, witnessKeys, type WitnessDecodeFailure, type WitnessKeys, type WitnessMessage, type WitnessReplyBody } from './codec.js';

export type WitnessDropReason = WitnessDecodeFailure | 'not-a-request' | 'replay';
export const WITNESS_DROP_REASONS: readonly WitnessDropReason[] = ['too-large', 'malformed', 'bad-version', 'wrong-cluster', 'bad-mac', 'not-a-request', 'replay'];

/** Invariant: received = answered + sum(dropped). */
export interface WitnessServiceCounters {
  received: number;
  answered: number;
  dropped: Record<WitnessDropReason, number>;
}

/** What happened to one datagram, for logs (the runner decides what to log at which level). */
export type WitnessEvent =
  | { kind: 'acquire'; module: string; node: string; from: string; result: AcquireResult }
  | { kind: 'release'; module: string; node: string; from: string; result: ReleaseResult }
  | { kind: 'drop'; from: string; reason: WitnessDropReason };

export interface WitnessServiceOptions {
  /** The 32-byte cluster key. */
  key: Buffer;
  /** The cluster's name: requests of other clusters are dropped (wrong-cluster). */
  cluster: string;
  /** Lease length in ms. */
  leaseMs: number;
  /** Monotonic clock in ms. The witness's start (quiet period origin) is now() at construction. */
  now: () => number;
  /** Called for every datagram handled; must not throw. */
  onEvent?: (e: WitnessEvent) => void;
}

interface ClientEpochs {
  epoch: string;
  epochStart: number;
  lastSeq: bigint;
  retired: string[];
}
const RETIRED_KEEP = 16;

export class WitnessService {
  readonly cluster: string;
  readonly table: LeaseTable;
  private readonly keys: WitnessKeys;
  private readonly now: () => number;
  private readonly onEvent: WitnessServiceOptions['onEvent'];
  private readonly clients = new Map<string, ClientEpochs>();
  private readonly counts: WitnessServiceCounters = {
    received: 0, answered: 0, dropped: Object.fromEntries(WITNESS_DROP_REASONS.map((r) => [r, 0])) as Record<WitnessDropReason, number>,
  };

  constructor(opts: WitnessServiceOptions) {
    this.cluster = opts.cluster;
    this.keys = witnessKeys(opts.key, opts.cluster);
    this.now = opts.now;
    this.onEvent = opts.onEvent;
    this.table = new LeaseTable({ leaseMs: opts.leaseMs, startMs: opts.now() });
  }

  /** Handles one datagram from `from` ("host:port", not authenticated); returns the reply or undefined (dropped). */
  handle(data: Buffer, from: string): Buffer | undefined {
    this.counts.received++;
    const d = decodeWitness(this.keys, data);
    if (!d.ok) return this.drop(from, d.reason);
    const m = d.value;
    if (m.type === 'reply') return this.drop(from, 'not-a-request');
    if (!this.fresh(m)) return this.drop(from, 'replay');
    const now = this.now();
    let reply: WitnessReplyBody;
    if (m.type === 'acquire') {
      const r = this.table.acquire(this.cluster, m.module, m.node, now);
      reply = r.granted ? { result: 'granted', ms: r.leaseMs, holder: '' } : { result: r.reason, ms: r.remainingMs, holder: r.holder ?? '' };
      this.onEvent?.({ kind: 'acquire', module: m.module, node: m.node, from, result: r });
    } else {
      const r = this.table.release(this.cluster, m.module, m.node, now);
      reply = r.released ? { result: 'released', ms: 0, holder: '' } : { result: 'not-released', ms: r.remainingMs, holder: r.holder };
      this.onEvent?.({ kind: 'release', module: m.module, node: m.node, from, result: r });
    }
    this.counts.answered++;
    return encodeWitness(this.keys, { ...m, type: 'reply', reply });
  }

  /** A copy of the counters. */
  counters(): WitnessServiceCounters {
    return { received: this.counts.received, answered: this.counts.answered, dropped: { ...this.counts.dropped } };
  }

  private drop(from: string, reason: WitnessDropReason): undefined {
    this.counts.dropped[reason]++;
    this.onEvent?.({ kind: 'drop', from, reason });
    return undefined;
  }

  /** Replay check of an authenticated request; records it when fresh. */
  private fresh(m: WitnessMessage): boolean {
    const c = this.clients.get(m.node);
    if (!c) {
      this.clients.set(m.node, { epoch: m.epoch, epochStart: m.epochStart, lastSeq: m.seq, retired: [] });
      return true;
    }
    if (m.epoch === c.epoch) {
      if (m.seq <= c.lastSeq) return false;
      c.lastSeq = m.seq;
      return true;
    }
    if (c.retired.includes(m.epoch) || m.epochStart < c.epochStart) return false;
    c.retired.push(c.epoch);
    if (c.retired.length > RETIRED_KEEP) c.retired.shift();
    c.epoch = m.epoch;
    c.epochStart = m.epochStart;
    c.lastSeq = m.seq;
    return true;
  }
}
