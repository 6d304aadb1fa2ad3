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
  if (v === null) return 'no value';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** Why a string that is not a valid value was refused, as a parenthesized hint ('' when none fits). */
function hintFor(text: string, units: Readonly<Record<string, number>>, smallest: string): string {
  const names = Object.keys(units);
  if (/^[0-9]+$/.test(text)) return ' (a bare number has no unit)';
  if (/^-/.test(text)) return ' (it cannot be negative)';
  const frac = /^([0-9]*)\.([0-9]+)\s*([A-Za-z]+)(\/s)?$/.exec(text);
  if (frac && units[frac[3]!] !== undefined) {
    // Exact integer arithmetic: 1.5s = 15 * 1000 / 10 ms.
    const scale = 10 ** frac[2]!.length;
    const scaled = Number(`${frac[1] || '0'}${frac[2]}`) * units[frac[3]!]!;
    const whole = scaled % scale === 0 ? `; write ${scaled / scale}${smallest}` : '';
    return ` (a whole number is needed${whole})`;
  }
  const spaced = /^[0-9]+\s+([A-Za-z]+)/.exec(text);
  if (spaced && units[spaced[1]!] !== undefined) return ' (no space between the number and the unit)';
  const unit = /^[0-9]+([A-Za-z]+)/.exec(text)?.[1];
  if (unit !== undefined) {
    const binary = /^[kmgt]b$/i.exec(unit) && units.KiB !== undefined ? `${unit[0]!.toUpperCase()}iB` : undefined;
    if (binary !== undefined) return ` (sizes are binary: write ${text.replace(unit, binary)})`;
    return ` (unknown unit "${unit}"; the units are ${names.join(', ')})`;
  }
  return '';
}

function parseWithUnits(text: unknown, re: RegExp, units: Readonly<Record<string, number>>, expected: string, smallest: string): UnitResult {
  if (typeof text !== 'string') {
    const hint = typeof text === 'number' ? ' (a bare number has no unit)' : '';
    return { ok: false, message: `${expected}, got ${show(text)}${hint}` };
  }
  const m = re.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) {
    return { ok: false, message: `${expected}, got ${show(text)}${hintFor(text, units, smallest)}` };
  }
  const value = Number(m[1]) * (units[m[2]] ?? Number.NaN);
  if (!Number.isSafeInteger(value)) return { ok: false, message: `${expected}, got ${show(text)} (too large)` };
  if (value <= 0) return { ok: false, message: `${expected}, got ${show(text)} (it must be greater than zero)` };
  return { ok: true, value };
}

/** `250ms`, `2s`, `1m`, `1h` -> milliseconds (a positive integer). A bare number is refused: a unit is required. */
export function parseDuration(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(ms|s|m|h)$/, DURATION_UNITS, DURATION_EXPECTED, 'ms');
}

/** `4096B`, `64KiB`, `1MiB`, `1GiB`, `1TiB` -> bytes (a positive integer). Units are binary (1KiB = 1024B). */
export function parseSize(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(B|KiB|MiB|GiB|TiB)$/, SIZE_UNITS, SIZE_EXPECTED, 'B');
}

/** `50MiB` or `50MiB/s` -> bytes per second. */
export function parseBandwidth(text: unknown): UnitResult {
  return parseWithUnits(text, /^([0-9]+)(B|KiB|MiB|GiB|TiB)(?:\/s)?$/, SIZE_UNITS, BANDWIDTH_EXPECTED, 'B');
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
