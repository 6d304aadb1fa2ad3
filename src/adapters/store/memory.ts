/**
 * The in-memory state store for unit tests and the simulator. It keeps the same promises as
 * `FileStateStore` (JSON copies, ordering, corrupt documents reported as HAKIT_E_STATE_CORRUPT).
 *
 * Durability model: a write is atomic and durable when its promise resolves. To simulate a crash
 * and restart, keep the `MemoryDisk` and build a new store on it: the new store sees exactly the
 * writes that had resolved (a write still in flight at the "crash" lands either wholly or not at
 * all, as on a real disk with the rename protocol).
 */
import { type StateStore, checkStateName, parseState, serializeState } from './store.js';

/** The durable contents: name → stored JSON text. Share it between store instances to survive "crashes". */
export type MemoryDisk = Map<string, string>;

export class MemoryStateStore implements StateStore {
  /** Number of completed writes and removes (for tests that check persistence happened). */
  syncs = 0;

  constructor(readonly disk: MemoryDisk = new Map(), private readonly label = 'memory') {}

  async read<T = unknown>(name: string): Promise<T | undefined> {
    checkStateName(name);
    await Promise.resolve();
    const text = this.disk.get(name);
    return text === undefined ? undefined : parseState<T>(this.fileOf(name), text);
  }

  async write(name: string, value: unknown): Promise<void> {
    checkStateName(name);
    const text = serializeState(name, value);
    await Promise.resolve();
    this.disk.set(name, text);
    this.syncs++;
  }

  async remove(name: string): Promise<void> {
    checkStateName(name);
    await Promise.resolve();
    if (this.disk.delete(name)) this.syncs++;
  }

  async list(): Promise<string[]> {
    await Promise.resolve();
    return [...this.disk.keys()].sort();
  }

  /** A file-like name used in error messages. */
  fileOf(name: string): string {
    return `${this.label}:${name}.json`;
  }
}
