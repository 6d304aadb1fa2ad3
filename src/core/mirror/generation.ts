/**
 * Data generations (DESIGN.md 5, as DRBD's generation identifiers). Pure helpers.
 */
import type { Generation } from './types.js';

/** The generation id of a replicated module's data before its first write or sync. */
export const NO_DATA = '';

/** At most this many previous ids are kept in `history` (newest first). */
export const HISTORY_MAX = 32;

/**
 * How my data relates to the peer's:
 * - `equal`: same current id, in sync;
 * - `behind`: the peer's history holds my current id (the peer went on without me: I resync from it);
 * - `ahead`: my history holds the peer's current id;
 * - `diverged`: neither (both went on alone, or an admin forced one): an admin must choose.
 */
export function compareGenerations(mine: Generation, peer: Generation): 'equal' | 'behind' | 'ahead' | 'diverged' {
  if (mine.current === peer.current) return 'equal';
  // '' is the generation of replicated data never written nor synced (a first start): behind
  // any data, so the first sync goes from the node that has data (or the elected one).
  if (mine.current === NO_DATA) return 'behind';
  if (peer.current === NO_DATA) return 'ahead';
  if (peer.history.includes(mine.current)) return 'behind';
  if (mine.history.includes(peer.current)) return 'ahead';
  return 'diverged';
}

/**
 * A new generation `id` following `gen`: the old current id goes to the front of the history.
 * `absorb` (ids of a diverged peer, for a forced `prim`) are put into the history too, after the
 * old current id, so that the peer then compares as `behind` and resyncs from this node.
 */
export function nextGeneration(gen: Generation, id: string, absorb: readonly string[] = []): Generation {
  const history: string[] = [];
  for (const h of [gen.current, ...absorb, ...gen.history]) {
    if (h !== id && h !== NO_DATA && !history.includes(h)) history.push(h);
  }
  return { current: id, history: history.slice(0, HISTORY_MAX) };
}
