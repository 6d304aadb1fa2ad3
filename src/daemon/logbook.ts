/**
 * Structured logs of the daemon (STYLE.md 14): every entry goes to pino (JSON lines on the
 * daemon's stdout, for journald) and to a bounded ring per module, which `hakit log MODULE` reads.
 */
import { pino, type Logger } from 'pino';
import type { LogEntry } from '../core/status.js';

export type Level = LogEntry['level'];

/** Keeps the last `capacity` entries. */
export class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly capacity: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  /** The last `n` items, oldest first. */
  last(n: number): T[] {
    return this.items.slice(Math.max(0, this.items.length - n));
  }
}

export class Logbook {
  private readonly rings = new Map<string, Ring<LogEntry>>();
  readonly pino: Logger;

  /** `destination` is a pino destination (default stdout); `wallNow` stamps the ring entries. */
  constructor(opts: { level?: string; destination?: NodeJS.WritableStream; wallNow?: () => number } = {}) {
    this.pino = pino({ level: opts.level ?? 'info', base: { pid: process.pid } }, opts.destination ?? process.stdout);
    this.wallNow = opts.wallNow ?? (() => Date.now());
  }
  private readonly wallNow: () => number;

  /** Logs for a module (also kept for `hakit log`); `module` null = the node agent itself. */
  log(module: string | null, level: Level, message: string, fields: Record<string, unknown> = {}): void {
    this.pino[level]({ module: module ?? undefined, ...fields }, message);
    if (module === null) return;
    let ring = this.rings.get(module);
    if (!ring) this.rings.set(module, (ring = new Ring<LogEntry>(2000)));
    ring.push({ ...fields, time: this.wallNow(), level, message });
  }

  entries(module: string, lines: number): LogEntry[] {
    return this.rings.get(module)?.last(lines) ?? [];
  }
}
