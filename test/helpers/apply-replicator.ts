/**
 * A Replicator for tests that plays the secondary in the same process: each record is applied
 * through a RecordApplier to a second directory, in seq order and one at a time, and `submit`
 * resolves once it is applied (the "live" path of DESIGN.md 5 without the TCP link). Full-sync
 * bodies are numbered by the same numberer (`submitBody`), so live and copy records share one
 * stream as they do in the rfs.
 */
import type { RecordBody, Record } from '../../src/core/replication/records.js';
import { RecordNumberer } from '../../src/core/replication/records.js';
import { type Replicator, keptRecord } from '../../src/adapters/fuse/replicator.js';
import { RecordApplier } from '../../src/adapters/fuse/applier.js';

export class ApplyingReplicator implements Replicator {
  readonly numberer = new RecordNumberer();
  readonly applier: RecordApplier;
  /** Called for every live record (what LinkReplicator does for a running FullSync). */
  onLive: ((body: RecordBody) => void) | null = null;
  /** Records applied, in order (kept only when `keep` is set). */
  readonly seen: Record[] = [];
  keep = false;
  private chain: Promise<void> = Promise.resolve();
  private last = 0;
  /** The first record that failed to apply (later records are refused too: the stream broke). */
  failure: Error | null = null;

  constructor(secondaryRoot: string) {
    this.applier = new RecordApplier({ root: secondaryRoot });
  }

  submit(rec: Record): Promise<void> {
    this.onLive?.(rec);
    return this.enqueue(rec);
  }

  /** Numbers `body` and applies it in stream order (the FullSync `submit`). */
  submitBody = (body: RecordBody): Promise<void> => this.enqueue(this.numberer.number(body));

  private enqueue(rec: Record): Promise<void> {
    if (rec.seq !== this.last + 1) return Promise.reject(new Error(`record ${rec.seq} after ${this.last}`));
    this.last = rec.seq;
    // A write's data is lent until the promise settles (replicator.ts): kept records get a copy.
    if (this.keep) this.seen.push(keptRecord(rec));
    const p = this.chain.then(() => {
      if (this.failure !== null) throw this.failure;
      return this.applier.apply(rec).then(() => undefined, (e: unknown) => {
        this.failure ??= e as Error;
        throw e;
      });
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Resolves when every record submitted so far is applied. */
  settled(): Promise<void> {
    return this.chain;
  }
}
