/** Entry point of `hakit daemon`. */
import { HakitError } from '../core/errors.js';

export interface DaemonOptions {
  configDir: string;
  stateDir: string;
  socket: string;
}

export async function runDaemon(_opts: DaemonOptions): Promise<number> {
  throw new HakitError('NOT_IMPLEMENTED', { command: 'daemon' });
}
