/**
 * The witness seam (STYLE.md 3): what a node asks the arbitrator witness. Real implementation
 * over UDP (udp-client.ts), in-memory twin (memory.ts), one contract test for both
 * (test/unit/witness.contract.test.ts).
 *
 * Times in results are the client's own monotonic clock (the witness's clock is not comparable):
 * a grant's `untilMs` is the send time of the granted request plus the lease length the witness
 * granted, which is never later than the lease's end at the witness. A holder still must stop
 * writing a safety margin before it (core/witness/lease.ts `demoteDeadline`).
 */

export type AcquireAnswer =
  /** The lease is ours until `untilMs` (client clock); `sentAtMs`: when the granted request left. */
  | { granted: true; untilMs: number; leaseMs: number; sentAtMs: number }
  /**
   * Refused: `holder` holds a live lease for `remainingMs` more, or `holder` is null when the
   * witness is in its quiet period after a start (no grant to anyone for `remainingMs`).
   */
  | { granted: false; holder: string | null; remainingMs: number }
  /** No valid answer within the timeout (witness down, unreachable, or another key). */
  | { error: 'timeout' | 'closed' };

export type ReleaseAnswer =
  | { released: true }
  /** Another node holds the lease: nothing was changed. */
  | { released: false; holder: string; remainingMs: number }
  | { error: 'timeout' | 'closed' };

/** Counters of a client; plain numbers. */
export interface WitnessClientCounters {
  /** Request datagrams sent (retries included). */
  sent: number;
  /** Valid replies matched to a pending request. */
  accepted: number;
  /** Datagrams dropped: failed authentication or framing, or a reply to no pending request (late or replayed). */
  dropped: number;
}

export interface WitnessClient {
  /** This node's name, sent in every request. */
  readonly node: string;
  /**
   * Asks for (or renews) the lease of `module`. Resolves within the client's timeout (plus
   * scheduling), never rejects; retries inside the timeout with a fresh seq each time.
   */
  acquire(module: string): Promise<AcquireAnswer>;
  /** Gives the lease of `module` back (a clean stop or swap); same timing as acquire. */
  release(module: string): Promise<ReleaseAnswer>;
  counters(): WitnessClientCounters;
  /** Stops; pending requests resolve with { error: 'closed' }. */
  close(): Promise<void>;
}

/** Default time a request may take, all retries included (ms). */
export const DEFAULT_WITNESS_TIMEOUT_MS = 1000;
/** Default number of datagrams sent per request, spread evenly over the timeout. */
export const DEFAULT_WITNESS_ATTEMPTS = 3;
