/**
 * The secondary's side of replication (DESIGN.md 5): records from the primary's LinkReplicator
 * are applied in order to the underlying trees (through RecordApplier), and acknowledged only
 * once applied. A payload is applied only while this node is the primary's SECOND (`accept(true)`,
 * given with its `mount ro`); before that it waits (the primary's calls wait with it, bounded by
 * replication.timeout), so a primary elected at the same moment as this node becomes SECOND
 * does not lose its link. `accept(false)` (this node leaves SECOND) refuses what waits: the link
 * closes and the primary goes ALONE.
 *
 * Asking records: a `verify` or `sync-probe` record is answered with a REPLY frame carrying its
 * seq and what the applier resolved (this copy's fingerprint, verify.ts; what it has, probe.ts).
 *
 * Resync: `expectSync(ms)` (the core's `start-resync`) arms a deadline for the primary's
 * `sync-start`; `onResyncDone(true, generation)` fires when `sync-complete` has been applied,
 * `onResyncDone(false, ...)` when the link drops during a resync or the deadline passes.
 */
import { HakitError } from '../../core/errors.js';
import type { Record } from '../../core/replication/records.js';
import type { ReplicationReceiver } from '../tcp/link.js';
import { decodePayload, encodeReply } from './link-replicator.js';

export interface ApplierLike {
  /** Resolves once applied; for an asking record (`verify`, `sync-probe`), with the answer. */
  apply(rec: Record): Promise<unknown>;
}

export interface ReplicaReceiverOptions {
  readonly receiver: ReplicationReceiver;
  /** One applier per replicated dir, by dir index. */
  readonly appliers: readonly ApplierLike[];
  readonly onResyncDone: (ok: boolean, detail: string, generation: string | null) => void;
  /** Awaited before the first record of a resync is applied (quarantine, the change log turns incomplete). */
  readonly onSyncStart?: (full: boolean) => Promise<void>;
  /** A record replicated outside a resync could not be applied (the link closes; a failed resync ends in onResyncDone). */
  readonly onApplyFailed?: (detail: string) => void;
}

export interface ReplicaReceiverStats {
  readonly accepting: boolean;
  readonly link: 'up' | 'down';
  readonly applied: number;
  readonly bytes: number;
  readonly syncing: string | null;
}

export class ReplicaReceiver {
  private accepting = false;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private syncing: string | null = null;
  private expectTimer: NodeJS.Timeout | null = null;
  private applied = 0;
  private distrust = false;
  private bytes = 0;

  constructor(private readonly opts: ReplicaReceiverOptions) {
    opts.receiver.onPayload((payload) => this.onPayload(payload));
    opts.receiver.onState((s, why) => {
      if (s === 'down' && this.syncing !== null) this.resyncEnded(false, `the link dropped during the resync: ${why}`);
    });
  }

  /** True while this node is SECOND: payloads are applied. False refuses waiting payloads. */
  accept(on: boolean): void {
    this.accepting = on;
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) {
      if (on) x.resolve();
      else x.reject(new HakitError('RFS', { dir: '(replica)', detail: 'this node is not a secondary any more' }));
    }
    if (!on && this.syncing !== null) this.resyncEnded(false, 'this node left the SECOND state');
  }

  /**
   * The core asked for a resync: the primary must start it within `ms`. `distrust`: this copy
   * may have lost writes under kept file times (Persisted.suspect): until the resync ends, the
   * quick checks of its probes are answered without an mtime, so the primary compares blocks.
   */
  expectSync(ms: number, distrust = false): void {
    this.distrust = distrust;
    this.clearExpect();
    this.expectTimer = setTimeout(() => {
      this.expectTimer = null;
      if (this.syncing === null) this.opts.onResyncDone(false, `the primary did not start the resync within ${ms} ms`, null);
    }, ms);
    this.expectTimer.unref();
  }

  stopExpect(): void {
    this.clearExpect();
    this.syncing = null;
  }

  stats(): ReplicaReceiverStats {
    return { accepting: this.accepting, link: this.opts.receiver.state, applied: this.applied, bytes: this.bytes, syncing: this.syncing };
  }

  close(): Promise<void> {
    this.clearExpect();
    this.accept(false);
    return this.opts.receiver.close();
  }

  private clearExpect(): void {
    if (this.expectTimer !== null) clearTimeout(this.expectTimer);
    this.expectTimer = null;
  }

  private resyncEnded(ok: boolean, detail: string): void {
    this.distrust = false;
    const gen = this.syncing;
    this.syncing = null;
    this.clearExpect();
    this.opts.onResyncDone(ok, detail, gen);
  }

  private async onPayload(payload: Buffer): Promise<void> {
    if (!this.accepting) await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    const d = decodePayload(payload);
    if (d.kind === 'bad') throw new HakitError('RFS', { dir: '(replica)', detail: `bad replication payload: ${d.error}` });
    if (d.kind === 'control') {
      if (d.message.t === 'sync-start') {
        this.clearExpect();
        this.syncing = d.message.generation;
        await this.opts.onSyncStart?.(d.message.full);
      } else if (this.syncing === d.message.generation) {
        this.resyncEnded(true, `resync of generation ${d.message.generation} complete`);
      }
      return;
    }
    const a = this.opts.appliers[d.dir];
    if (a === undefined) throw new HakitError('RFS', { dir: '(replica)', detail: `record for replicated dir #${d.dir}, this node has ${this.opts.appliers.length}` });
    let out: unknown;
    try {
      out = await a.apply(d.record);
    } catch (e) {
      if (this.syncing === null) this.opts.onApplyFailed?.((e as Error)?.message ?? String(e));
      throw e;
    }
    if (this.distrust && d.record.op === 'sync-probe' && d.record.length === 0 && typeof out === 'object' && out !== null) {
      const { mtimeMs: _dropped, ...rest } = out as { mtimeMs?: number };
      out = rest;
    }
    if (out !== undefined) this.opts.receiver.reply(encodeReply(d.record.seq, out));
    this.applied++;
    this.bytes += payload.length;
  }
}
