/**
 * In-memory twin of the rfs process (STYLE.md 3): the same state rules as RfsProcess (mounted
 * or not, mode), no kernel involved. Counts nothing but the mode changes it was asked for.
 */
import { HakitError } from '../../core/errors.js';
import type { RfsMode } from './passthrough.js';
import type { Rfs, RfsStatus } from './rfs.js';

export class FakeRfs implements Rfs {
  private dir: string | null = null;
  private mode: RfsMode = 'rw';
  /** Every mode this rfs was mounted or set in, in order (for daemon tests). */
  readonly modes: RfsMode[] = [];

  mount(dir: string, mode: RfsMode): Promise<void> {
    if (this.dir !== null) return Promise.reject(new HakitError('RFS_MOUNT', { dir, detail: `already mounted on ${this.dir}` }));
    this.dir = dir;
    this.mode = mode;
    this.modes.push(mode);
    return Promise.resolve();
  }

  setMode(mode: RfsMode): Promise<void> {
    if (this.dir === null) return Promise.reject(new HakitError('RFS', { dir: '(none)', detail: 'set-mode while nothing is mounted' }));
    this.mode = mode;
    this.modes.push(mode);
    return Promise.resolve();
  }

  unmount(): Promise<{ lazy: boolean }> {
    this.dir = null;
    return Promise.resolve({ lazy: false });
  }

  stats(): Promise<RfsStatus> {
    return Promise.resolve({ mounted: this.dir !== null, dir: this.dir, mode: this.mode, records: 0, held: 0, ops: {} });
  }
}
