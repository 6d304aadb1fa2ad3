/**
 * The shapes of the control API, shared by the daemon (producer), the CLI and the console.
 * `StatusReport` is the public `hakit status --json` format of DESIGN.md 6: extend, never rename.
 */
export interface ResyncStatus {
  active: boolean;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  /** The resync running (or the last one) sends only what the change log names (absent: a full copy, or none yet). */
  incremental?: boolean;
  /** While active, on the primary: bytes a second so far, and seconds left at that rate (null: not known yet). */
  bytesPerSec?: number;
  etaSeconds?: number | null;
  /**
   * On a secondary whose last resyncs failed: how many in a row, the last one's error (e.g. its
   * file system is full), and in how many seconds it asks again (0: now). Absent once one completes.
   */
  failures?: number;
  lastError?: string;
  retryInSeconds?: number;
}

export interface ModuleStatus {
  name: string;
  kind: 'mirror' | 'farm';
  state: string;
  ready: boolean;
  reason: string | null;
  peer: { name: string; state: string } | null;
  vip: string[];
  replication: { upToDate: boolean; resync: ResyncStatus } | null;
  [extra: string]: unknown;
}

export interface StatusReport {
  node: string;
  modules: ModuleStatus[];
}

export interface LogEntry {
  time: number;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  [extra: string]: unknown;
}
