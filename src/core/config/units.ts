/**
 * Units of hakit's configuration: durations and sizes are written with a unit and resolved to
 * plain numbers (milliseconds, bytes). Pure; no I/O.
 */

/** Result of parsing one value: the number, or a message saying what was expected. */
export type UnitResult = { ok: true; value: number } | { ok: false; message: string };

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Pattern of a duration: a positive integer and one of `ms`, `s`, `m`, `h` (also in the JSON Schema). */
export const DURATION_PATTERN = '^[0-9]+(ms|s|m|h)$';
/** Pattern of a size: an integer and one of `B`, `KiB`, `MiB`, `GiB`, `TiB`. */
export const SIZE_PATTERN = '^[0-9]+(B|KiB|MiB|GiB|TiB)$';
/** Pattern of a bandwidth: a size, optionally followed by `/s`. */
export const BANDWIDTH_PATTERN = '^[0-9]+(B|KiB|MiB|GiB|TiB)(/s)?$';

export const DURATION_EXPECTED = 'expected a duration with a unit (250ms, 2s, 1m)';
export const SIZE_EXPECTED = 'expected a size with a unit (4096B, 64KiB, 1MiB, 1GiB)';
export const BANDWIDTH_EXPECTED = 'expected a bandwidth as a size per second (50MiB or 50MiB/s)';

/** How a configuration value is shown in messages: strings quoted, other scalars as written. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'nothing (null)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function parseWithUnits(text: unknown, re: RegExp, units: Readonly<Record<string, number>>, expected: string): UnitResult {
  if (typeof text !== 'string') {
    const hint = typeof text === 'number' ? ' (a bare number has no unit)' : '';
    return { ok: false, message: `${expected}, got ${show(text)}${hint}` };
  }
  const m = re.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) {
    const hint = /^[0-9]+$/.test(text) ? ' (a bare number has no unit)' : '';
    return { ok: false, message: `${expected}, got ${show(text)}${hint}` };
  }
  const value = Number(m[1]) * (units[m[2]] ?? Number.NaN);
  if (!Number.isSafeInteger(value)) return { ok: false, message: `${expected}, got ${show(text)} (too large)` };
  if (value <= 0) return { ok: false, message: `${expected} greater than zero, got ${show(text)}` };
  return { ok: true, value };
}

/** `250ms`, `2s`, `1m`, `1h` -> milliseconds (a positive integer). A bare number is refused: a unit is required. */
export function parseDuration(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(ms|s|m|h)$/, DURATION_UNITS, DURATION_EXPECTED);
}

/** `4096B`, `64KiB`, `1MiB`, `1GiB`, `1TiB` -> bytes (a positive integer). Units are binary (1KiB = 1024B). */
export function parseSize(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(B|KiB|MiB|GiB|TiB)$/, SIZE_UNITS, SIZE_EXPECTED);
}

/** `50MiB` or `50MiB/s` -> bytes per second. */
export function parseBandwidth(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(B|KiB|MiB|GiB|TiB)(?:\/s)?$/, SIZE_UNITS, BANDWIDTH_EXPECTED);
}

function formatWithUnits(n: number, units: Readonly<Record<string, number>>): string {
  const sorted = Object.entries(units).sort((a, b) => b[1] - a[1]);
  for (const [unit, factor] of sorted) if (n % factor === 0) return `${n / factor}${unit}`;
  return String(n);
}

/** Milliseconds -> the largest exact unit: 250 -> `250ms`, 2000 -> `2s`, 300000 -> `5m`. */
export function formatDuration(ms: number): string {
  return formatWithUnits(ms, DURATION_UNITS);
}

/** Bytes -> the largest exact binary unit: 1048576 -> `1MiB`, 1000 -> `1000B`. */
export function formatSize(bytes: number): string {
  return formatWithUnits(bytes, SIZE_UNITS);
}
