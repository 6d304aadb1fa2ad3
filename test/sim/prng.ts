/**
 * The simulator's only source of randomness (STYLE.md 2, 5): mulberry32, a 32-bit seeded PRNG.
 * Same seed, same sequence, on every machine and Node version.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  (): number;
}

/** A deterministic PRNG (mulberry32) from a 32-bit seed. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Helpers over one Rng; every draw advances the shared sequence. */
export class Random {
  constructor(readonly next: Rng) {}
  /** True with probability p. */
  chance(p: number): boolean { return this.next() < p; }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
  /** 8 hex digits (generation id seeds). */
  hex(): string { return Math.floor(this.next() * 0x1_0000_0000).toString(16).padStart(8, '0'); }
  /** An independent stream derived from this one (so adding draws in one part does not shift another). */
  fork(): Random { return new Random(rng(Math.floor(this.next() * 0x1_0000_0000))); }
}
