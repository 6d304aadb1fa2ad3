/**
 * Leases of the arbitrator witness (DESIGN.md 3 promise 1 "One writer", 5 "Split brain"; issue 6
 * part 4). Pure: time is an input, in milliseconds of the witness's monotonic clock.
 *
 * The witness keeps one lease per (cluster, module). A lease names one holder node and the
 * witness time at which it ends.
 *
 *            acquire by X (free, expired, or X's own)         release by X
 *   FREE ───────────────────────────────────────────► HELD(X) ─────────────► FREE
 *                                                      │  ▲
 *                          acquire by X: until = now+L └──┘  (renew)
 *            acquire by Y ≠ X while now < until: refused (holder X, until - now)
 *
 * Restart rule: a witness forgets its leases when it restarts. For one lease length after its
 * start (the quiet period) it refuses every grant, renewals included: any lease the previous
 * life granted ended at most one lease length after that life's last grant, which was before
 * this start, so after the quiet period no lease of the previous life can still be live and a
 * fresh grant cannot overlap one.
 *
 * Client side (`demoteDeadline`): a holder that fails to renew must stop writing before the
 * witness may grant the lease to another node. The witness's lease starts at the earliest when
 * the request reached it, i.e. after the client sent it; so the client counts from the send time
 * of the request that was granted (not from the reply's receive time, which a slow reply would
 * make late), and stops `margin` before the end.
 */

/** Default lease length of a witness (config `lease`). */
export const DEFAULT_LEASE_MS = 4000;
/** Largest relative rate difference between two clocks the client rule tolerates (1 %). */
export const MAX_CLOCK_DRIFT = 0.01;

export interface Lease {
  readonly holder: string;
  /** Witness time (ms) at which the lease ends; live while now < untilMs. */
  readonly untilMs: number;
}

/** What the witness answers to an acquire or renew. */
export type AcquireResult =
  /** The lease is the caller's for `leaseMs` from now (witness time `untilMs`). `renewed`: it was already the caller's. */
  | { readonly granted: true; readonly leaseMs: number; readonly untilMs: number; readonly renewed: boolean }
  /** Another node holds a live lease for `remainingMs` more. */
  | { readonly granted: false; readonly reason: 'held'; readonly holder: string; readonly remainingMs: number }
  /** The witness is in its quiet period after start; no grant for `remainingMs` more. */
  | { readonly granted: false; readonly reason: 'starting'; readonly holder: null; readonly remainingMs: number };

export type ReleaseResult =
  /** The caller's lease is freed (`wasHeld` false: there was no live lease of the caller; nothing changed). */
  | { readonly released: true; readonly wasHeld: boolean }
  /** Another node holds a live lease: nothing changed. */
  | { readonly released: false; readonly holder: string; readonly remainingMs: number };

export interface LeaseTableOptions {
  /** Length of every lease in ms (> 0). */
  leaseMs: number;
  /** Witness time of this witness's start: grants are refused until startMs + quietMs. */
  startMs: number;
  /** Quiet period after start in ms; default (and the safe minimum) leaseMs. */
  quietMs?: number;
}

function keyOf(cluster: string, module: string): string {
  return `${cluster}\u0000${module}`;
}

/**
 * The witness's table of leases. Every method takes the current witness time; times passed to
 * successive calls must not go back (a monotonic clock).
 */
export class LeaseTable {
  readonly leaseMs: number;
  private readonly quietUntil: number;
  private readonly leases = new Map<string, Lease>();

  constructor(opts: LeaseTableOptions) {
    if (!Number.isFinite(opts.leaseMs) || opts.leaseMs <= 0) throw new RangeError(`lease length must be > 0 ms, got ${opts.leaseMs}`);
    const quiet = opts.quietMs ?? opts.leaseMs;
    if (quiet < opts.leaseMs) throw new RangeError(`quiet period ${quiet} ms is shorter than the lease ${opts.leaseMs} ms: a restart could double-grant`);
    this.leaseMs = opts.leaseMs;
    this.quietUntil = opts.startMs + quiet;
  }

  /** Grants or renews the lease of (cluster, module) to `node`, or refuses (see the diagram). */
  acquire(cluster: string, module: string, node: string, nowMs: number): AcquireResult {
    if (nowMs < this.quietUntil) return { granted: false, reason: 'starting', holder: null, remainingMs: this.quietUntil - nowMs };
    const k = keyOf(cluster, module);
    const cur = this.leases.get(k);
    if (cur && cur.holder !== node && nowMs < cur.untilMs) {
      return { granted: false, reason: 'held', holder: cur.holder, remainingMs: cur.untilMs - nowMs };
    }
    const renewed = cur !== undefined && cur.holder === node && nowMs < cur.untilMs;
    const untilMs = nowMs + this.leaseMs;
    this.leases.set(k, { holder: node, untilMs });
    return { granted: true, leaseMs: this.leaseMs, untilMs, renewed };
  }

  /** Frees the lease when `node` holds it; a live lease of another node is left alone. */
  release(cluster: string, module: string, node: string, nowMs: number): ReleaseResult {
    const k = keyOf(cluster, module);
    const cur = this.leases.get(k);
    if (!cur || nowMs >= cur.untilMs) {
      if (cur) this.leases.delete(k);
      return { released: true, wasHeld: false };
    }
    if (cur.holder !== node) return { released: false, holder: cur.holder, remainingMs: cur.untilMs - nowMs };
    this.leases.delete(k);
    return { released: true, wasHeld: true };
  }

  /** The live lease of (cluster, module) at `nowMs`, if any. */
  holder(cluster: string, module: string, nowMs: number): Lease | undefined {
    const cur = this.leases.get(keyOf(cluster, module));
    return cur && nowMs < cur.untilMs ? cur : undefined;
  }

  /** Witness time at which the quiet period after start ends. */
  get quietUntilMs(): number {
    return this.quietUntil;
  }
}

export interface DemoteRuleInput {
  /** Client monotonic time (ms) at which the granted request was sent. */
  grantSentAtMs: number;
  /** Lease length the witness granted (ms). */
  leaseMs: number;
  /** The module's heartbeat pulse (ms): the demotion is acted on at the latest one pulse late. */
  pulseMs: number;
  /** Tolerated relative clock-rate difference; default MAX_CLOCK_DRIFT (1 %). */
  drift?: number;
}

/**
 * The safety margin of a holder: the pulse (the holder notices a missed renewal at its next
 * tick) plus the clock drift over one lease (the holder's clock may run slower than the
 * witness's). Their sum, so it is at least each of them. Rounded up to a whole ms.
 */
export function safetyMarginMs(leaseMs: number, pulseMs: number, drift: number = MAX_CLOCK_DRIFT): number {
  return Math.ceil(pulseMs + leaseMs * drift);
}

/**
 * The client monotonic time by which a primary that failed to renew must have demoted (stopped
 * the application, dropped the VIP, blocked writes): `grantSentAt + lease - margin`. Throws
 * RangeError when the margin leaves no time (lease too short for the pulse): such a lease can
 * never keep a primary and is a configuration error.
 */
export function demoteDeadline(r: DemoteRuleInput): number {
  const margin = safetyMarginMs(r.leaseMs, r.pulseMs, r.drift);
  if (margin >= r.leaseMs) throw new RangeError(`lease ${r.leaseMs} ms is not longer than its safety margin ${margin} ms (pulse ${r.pulseMs} ms + drift): use a longer lease`);
  return r.grantSentAtMs + r.leaseMs - margin;
}

/** True while a holder may keep writing at client time `nowMs` (strictly before the deadline). */
export function mayKeepWriting(r: DemoteRuleInput, nowMs: number): boolean {
  return nowMs < demoteDeadline(r);
}

/**
 * Takeover rule of the secondary: it may become primary only on a grant, i.e. when the witness
 * itself saw the previous lease expired (or released). The witness refuses while the lease is
 * live, so the secondary simply asks; a refusal or no answer means wait.
 */
export function mayTakeOver(answer: AcquireResult | { error: string }): boolean {
  return 'granted' in answer && answer.granted;
}
