/**
 * Freezes `x` and everything it holds (parts frozen already are skipped: states share them).
 * The mirror core's states are frozen as they come out of `step`, so a step that changed the
 * state it was given, instead of its own copy, throws (ES modules are strict) where it did so.
 */
export function deepFreeze<T>(x: T): T {
  if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}
