/**
 * The replication seam of the rfs (DESIGN.md 5): every mutating call made through the mount is
 * handed to a Replicator as a numbered record, in number order, before the call returns to the
 * application. The rfs replies to the application only once `submit` has resolved (and its own
 * local apply is done), so a resolved `submit` is the replicator's promise that the record is
 * applied where it has to be (on the secondary, for the TCP replicator of the next step).
 *
 * Contract of every implementation:
 * - `submit` is called with seq 1, 2, 3, ... (no gaps, no repeats) in that order; it may be
 *   called again before earlier promises resolved (pipelining): it must keep the order.
 * - `submit` never rejects for an expected fault (peer slow or gone): it goes ALONE and
 *   resolves. A rejection is a defect and reaches the application as EIO.
 * - a write record's data is lent: it is the kernel's request buffer (libfuse's), valid until
 *   the promise `submit` returned settles (the rfs answers the call only then, and the buffer is
 *   reused after). A replicator reads it before that (LinkReplicator encodes it in `submit`) or
 *   keeps a copy (RecordingReplicator). One copy of every MiB written less (issue 4).
 */
import type { Change } from '../../core/replication/changes.js';
import { type Record, copyBytes } from '../../core/replication/records.js';
import { extend } from '../../core/objects.js';

/** A record to keep past its call's answer: a write's lent data copied, the rest as is. */
export function keptRecord(record: Record): Record {
  return record.op === 'write' ? extend(record, { data: copyBytes(record.data) }) : record;
}

export interface Replicator {
  /**
   * `prepared`: the change handed to `prepare` before this call was made (PassthroughFs passes
   * it always): a replicator that recorded it then must not record it again (a rename is
   * replayed, not idempotent).
   */
  submit(record: Record, prepared?: Change): Promise<void>;
  /**
   * Called before a change is made (the change log's mark must be durable first): null when
   * nothing needs to wait, else the rfs makes the change once the promise resolved (a rejection
   * fails the call with EIO, nothing changed). Optional: without it nothing is logged.
   */
  prepare?(change: Change): Promise<void> | null;
}

/** No peer: every record is acknowledged at once (a module without a secondary, or tests). */
export class LocalOnlyReplicator implements Replicator {
  submitted = 0;
  submit(_record: Record): Promise<void> {
    this.submitted++;
    return Promise.resolve();
  }
}

/**
 * A test fake that keeps every record it is given, in order, and acknowledges at once — or, when
 * `hold` is set, only when `release()` is called (to test that calls wait for the replicator).
 */
export class RecordingReplicator implements Replicator {
  readonly records: Record[] = [];
  hold = false;
  private waiting: (() => void)[] = [];

  submit(record: Record): Promise<void> {
    const last = this.records[this.records.length - 1];
    if (last !== undefined && record.seq !== last.seq + 1) {
      return Promise.reject(new Error(`record ${record.seq} submitted after ${last.seq}`));
    }
    // Kept past the answer: a write's lent data is copied (see the contract above).
    this.records.push(keptRecord(record));
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Acknowledges every record held so far. Returns how many were waiting. */
  release(): number {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
    return w.length;
  }

  /** Number of submitted records not acknowledged yet. */
  get pending(): number {
    return this.waiting.length;
  }
}
