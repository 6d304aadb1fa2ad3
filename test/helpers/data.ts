/** Test data shared by tests and the bench. */

/**
 * `n` deterministic pseudo-random bytes for `seed` (a linear congruential generator): no two
 * seeds alike, nothing a compressor or a dedup could shrink. `n` is rounded up to 4 bytes.
 */
export function pseudoRandomBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(Math.ceil(n / 4) * 4);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < b.length; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b.length === n ? b : b.subarray(0, n);
}
