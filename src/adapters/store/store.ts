/**
 * The state-store seam: small durable JSON documents (data generations, last role, counters),
 * one store per module, e.g. `<state-dir>/modules/<module>/<name>.json` (DESIGN.md 5: generation
 * ids are persisted with an atomic write + fsync).
 *
 * Promises of every implementation:
 * - `write` resolves only once the value is durable and atomic: after a crash a reader sees
 *   either the previous value or the new one, never a mix. Writes to the same name are applied
 *   in call order.
 * - values are stored as JSON: `read` returns a fresh copy equal to `JSON.parse(JSON.stringify(v))`
 *   of what was written; later changes to the written object are not seen.
 * - a stored document that is not valid JSON makes `read` reject with `HAKIT_E_STATE_CORRUPT`
 *   naming the file, never with a bare SyntaxError.
 * - names are `[A-Za-z0-9][A-Za-z0-9_.-]*` (no slashes, no `..`, not ending in `.tmp`); another
 *   name is a programming error and rejects with `HAKIT_E_INTERNAL`.
 */
import { HakitError } from '../../core/errors.js';

export interface StateStore {
  /** The value last written under `name`, or undefined if there is none. */
  read<T = unknown>(name: string): Promise<T | undefined>;
  /** Stores `value` (JSON-serialisable) durably and atomically under `name`. */
  write(name: string, value: unknown): Promise<void>;
  /** Removes `name` durably; a no-op if it does not exist. */
  remove(name: string): Promise<void>;
  /** The names stored, sorted. */
  list(): Promise<string[]>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Throws HAKIT_E_INTERNAL unless `name` is a valid state name. */
export function checkStateName(name: string): void {
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('..') || name.endsWith('.tmp')) {
    throw new HakitError('INTERNAL', { detail: `invalid state name ${JSON.stringify(name)}` });
  }
}

/** JSON text of a value, or HAKIT_E_INTERNAL if the value has no JSON form (undefined, a function, a cycle). */
export function serializeState(name: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, null, 2);
  } catch (e) {
    throw new HakitError('INTERNAL', { detail: `state ${name} is not JSON-serialisable: ${(e as Error).message}` }, { cause: e });
  }
  if (text === undefined) throw new HakitError('INTERNAL', { detail: `state ${name} is not JSON-serialisable (${typeof value})` });
  return `${text}\n`;
}

/** Parses stored text, turning a torn or corrupt document into HAKIT_E_STATE_CORRUPT naming `file`. */
export function parseState<T>(file: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    const detail = text.length === 0 ? 'the file is empty' : `not valid JSON: ${(e as Error).message}`;
    throw new HakitError('STATE_CORRUPT', { file, detail }, { cause: e });
  }
}
