/**
 * The real state store: one JSON file per name in a directory.
 *
 * Write protocol (atomic and durable): write `<name>.json.<pid>.<n>.tmp`, fsync it, rename it over
 * `<name>.json`, fsync the directory. A crash at any point leaves either the old file or the new
 * one; a leftover `.tmp` is never read, and is removed by the first write of this store.
 * One process owns a state directory at a time (the daemon).
 */
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HakitError } from '../../core/errors.js';
import { type StateStore, checkStateName, parseState, serializeState } from './store.js';

const SUFFIX = '.json';

/** The directory of a module's state: `<stateDir>/modules/<module>`. */
export function moduleStateDir(stateDir: string, module: string): string {
  checkStateName(module);
  return join(stateDir, 'modules', module);
}

export class FileStateStore implements StateStore {
  private readonly queues = new Map<string, Promise<void>>();
  private tmpCounter = 0;
  /** The sweep of leftover `.tmp` files, started by the first write; every write awaits it before it makes its own. */
  private sweep: Promise<void> | undefined;

  /** `dir` is created (with its parents) on the first write. */
  constructor(readonly dir: string) {}

  /** The path of the file that holds `name`. */
  fileOf(name: string): string {
    checkStateName(name);
    return join(this.dir, name + SUFFIX);
  }

  async read<T = unknown>(name: string): Promise<T | undefined> {
    const file = this.fileOf(name);
    await this.queues.get(name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError('read', file, e);
    }
    return parseState<T>(file, text);
  }

  write(name: string, value: unknown): Promise<void> {
    const file = this.fileOf(name);
    const text = serializeState(name, value);
    return this.enqueue(name, () => this.writeFile(file, text));
  }

  remove(name: string): Promise<void> {
    const file = this.fileOf(name);
    return this.enqueue(name, async () => {
      try {
        await unlink(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw ioError('remove', file, e);
      }
      await this.syncDir();
    });
  }

  async list(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError('list', this.dir, e);
    }
    return entries
      .filter((f) => f.endsWith(SUFFIX))
      .map((f) => f.slice(0, -SUFFIX.length))
      .filter((n) => { try { checkStateName(n); return true; } catch { return false; } })
      .sort();
  }

  /** Runs `op` after every earlier operation on `name`; a failed op does not block later ones. */
  private enqueue(name: string, op: () => Promise<void>): Promise<void> {
    const prev = this.queues.get(name) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tail = next.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => { if (this.queues.get(name) === tail) this.queues.delete(name); });
    return next;
  }

  private async writeFile(file: string, text: string): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw ioError('write', file, e);
    }
    await (this.sweep ??= this.sweepTmp());
    const tmp = `${file}.${process.pid}.${++this.tmpCounter}.tmp`;
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(text, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw ioError('write', file, e);
    }
    await this.syncDir();
  }

  private async syncDir(): Promise<void> {
    try {
      const dh = await open(this.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (e) {
      throw ioError('sync', this.dir, e);
    }
  }

  /** Removes `.tmp` files left by a crash in the middle of a write (they never hold the current value). */
  private async sweepTmp(): Promise<void> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    await Promise.all(entries.filter((f) => f.endsWith('.tmp')).map((f) => unlink(join(this.dir, f)).catch(() => undefined)));
  }
}

function ioError(op: string, file: string, e: unknown): HakitError {
  return new HakitError('STATE_IO', { op, file, detail: (e as Error).message }, { cause: e });
}
