/**
 * One table of hakit's error codes (STYLE.md 10).
 *
 * Every error a user can see has a stable code `HAKIT_E_*` and a message that says what to do.
 * Codes never change meaning once released; add new ones at the end of their group. Expected
 * faults of a cluster (peer lost, split brain) are events of the state machine, not errors.
 */

export interface ErrorSpec {
  /** Stable code, printed to users and returned by the API. */
  readonly code: string;
  /** Process exit code the CLI uses when this error ends a command. */
  readonly exit: number;
  /** What went wrong and what to do; `{name}` placeholders are filled from the details. */
  readonly message: string;
}

function spec(code: string, exit: number, message: string): ErrorSpec {
  return { code, exit, message };
}

export const ERRORS = {
  // configuration
  CONFIG: spec('HAKIT_E_CONFIG', 1, 'The configuration is invalid: {detail}. Fix it and run `hakit config check` to see every error.'),
  NODE_UNKNOWN: spec('HAKIT_E_NODE_UNKNOWN', 1, 'Cannot tell which node of the cluster this host is: {detail}.'),
  CONFIG_DIR: spec('HAKIT_E_CONFIG_DIR', 1, 'Cannot read the configuration directory {dir}: {detail}. Pass --config-dir DIR or set HAKIT_CONFIG_DIR to a directory holding cluster.yaml.'),
  KEY_FILE: spec('HAKIT_E_KEY_FILE', 1, 'Cannot use the cluster key {file}: {detail}. Create one with `hakit cluster keygen > {file}` (mode 0600) and copy it to every node.'),
  // command line and API
  USAGE: spec('HAKIT_E_USAGE', 2, '{detail}. Run `hakit --help` for the commands and their flags.'),
  NOT_IMPLEMENTED: spec('HAKIT_E_NOT_IMPLEMENTED', 3, '`hakit {command}` is not implemented yet in this version.'),
  NO_DAEMON: spec('HAKIT_E_NO_DAEMON', 4, 'No hakit daemon answers on {socket}. Start it with `hakit daemon --config-dir DIR`, or pass --socket PATH / set HAKIT_SOCKET.'),
  NO_MODULE: spec('HAKIT_E_NO_MODULE', 5, 'There is no module named {module} on this node. `hakit status` lists the modules.'),
  NO_CHECKER: spec('HAKIT_E_NO_CHECKER', 5, 'Module has no checker named {checker} (its checkers: {known}). `hakit status MODULE` lists them.'),
  BAD_STATE: spec('HAKIT_E_BAD_STATE', 6, 'Cannot {command} module {module} while it is {state}: {detail}.'),
  BAD_REQUEST: spec('HAKIT_E_BAD_REQUEST', 2, 'The request is invalid: {detail}.'),
  // environment and prerequisites
  NOT_ROOT: spec('HAKIT_E_NOT_ROOT', 7, '{what} needs root (network namespaces, virtual IPs, FUSE mounts). Run it as root.'),
  MISSING_TOOL: spec('HAKIT_E_MISSING_TOOL', 7, 'The command `{tool}` is missing. Run `bash scripts/setup.sh` (or install the Debian package {pkg}).'),
  NO_FUSE: spec('HAKIT_E_NO_FUSE', 7, '/dev/fuse is missing or unusable. Load FUSE support or run in a container with --device /dev/fuse.'),
  // cluster operation
  PEER_TIMEOUT: spec('HAKIT_E_PEER_TIMEOUT', 8, 'The peer {peer} did not answer within {timeout}. Check the heartbeat networks and that hakit runs on {peer}.'),
  AUTH: spec('HAKIT_E_AUTH', 8, 'A message from {from} failed authentication and was dropped. Check that every node has the same cluster key.'),
  VIP_CONFLICT: spec('HAKIT_E_VIP_CONFLICT', 9, 'The virtual IP {vip} is already answered by another host ({mac}). Find the host that holds it before starting this module.'),
  SCRIPT: spec('HAKIT_E_SCRIPT', 10, 'The script {script} of module {module} failed ({detail}). Read its log in {log}.'),
  TESTBED: spec('HAKIT_E_TESTBED', 11, 'The testbed could not {action}: {detail}.'),
  INTERNAL: spec('HAKIT_E_INTERNAL', 70, 'Internal error: {detail}. Please report it with the daemon log.'),
  // state files and scripts (issue 3)
  STATE_CORRUPT: spec('HAKIT_E_STATE_CORRUPT', 12, 'The state file {file} is unreadable ({detail}). Move it aside (hakit then treats that state as unknown) or restore it from the peer, and restart the daemon.'),
  STATE_IO: spec('HAKIT_E_STATE_IO', 12, 'Cannot {op} the state file {file}: {detail}. Check that the state directory is on a writable, mounted file system with free space.'),
  SCRIPT_UNSAFE: spec('HAKIT_E_SCRIPT_UNSAFE', 10, 'Refusing to run {file} as root: {detail}. Make the script and its directory owned by root and not writable by group or others (chown root; chmod go-w).'),
  // virtual IPs (issue 3)
  VIP: spec('HAKIT_E_VIP', 9, 'Cannot {op} the virtual IP {vip} on {interface}: {detail}. Check the interface, that hakit runs as root and that `ip`, `arping` and `ping` are installed.'),
  // replication link (issue 4)
  PEER_GONE: spec('HAKIT_E_PEER_GONE', 8, 'The replication peer {peer} of module {module} is gone ({detail}); the change was not acknowledged by it. The module continues alone and the peer is resynced when it returns.'),
  // replicated file system (issue 4)
  RFS_MOUNT: spec('HAKIT_E_RFS_MOUNT', 13, 'Cannot mount or unmount the replicated directory {dir}: {detail}. Check that /dev/fuse is usable, that hakit runs as root and that no other process has a mount there (`fusermount -uz {dir}` clears a stale one).'),
  REPLICA_APPLY: spec('HAKIT_E_REPLICA_APPLY', 13, 'This node could not apply a change replicated by its primary to its copy of {dir}: {detail}. This copy stays behind (it cannot take over) and asks for a resync again every few seconds; fix the cause (free space on the file system of {dir}, permissions, a read-only mount) and the resync completes on its own.'),
  RFS: spec('HAKIT_E_RFS', 13, 'The replicated file system process for {dir} failed: {detail}. Read the daemon log; the module stays stopped until its directory can be mounted.'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERRORS;

/** Fill `{name}` placeholders; unknown placeholders are left visible rather than dropped. */
export function formatMessage(template: string, details: Readonly<Record<string, unknown>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => (key in details ? String(details[key]) : whole));
}

/** An error with a stable code; `details` are machine-readable for the API. */
export class HakitError extends Error {
  readonly code: string;
  readonly exit: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(name: ErrorName, details: Readonly<Record<string, unknown>> = {}, options?: { cause?: unknown }) {
    const s = ERRORS[name];
    super(formatMessage(s.message, details), options);
    this.name = 'HakitError';
    this.code = s.code;
    this.exit = s.exit;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isHakitError(e: unknown): e is HakitError {
  return e instanceof HakitError;
}
