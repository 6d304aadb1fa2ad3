/**
 * maxloop (DESIGN.md 5, STYLE.md 7): restarts and stopstarts of a module are counted in a sliding
 * window; when `count` of them already happened within the last `windowMs`, the next one stops the
 * module instead (STOP, reason `maxloop`). Pure; times are monotonic milliseconds.
 */
export interface MaxloopParams { readonly count: number; readonly windowMs: number }

/**
 * Records a restart asked for at `now`. Returns the times kept (those within the window, plus
 * `now` when allowed) and whether the restart may go ahead. A refused restart is not recorded.
 */
export function recordRestart(times: readonly number[], now: number, p: MaxloopParams): { times: number[]; allowed: boolean } {
  const kept = times.filter((t) => t > now - p.windowMs);
  if (kept.length >= p.count) return { times: kept, allowed: false };
  return { times: [...kept, now], allowed: true };
}
