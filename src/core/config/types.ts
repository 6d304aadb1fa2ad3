/**
 * The typed configuration hakit runs on: units resolved (durations in milliseconds, sizes in
 * bytes), defaults applied (see defaults.ts), names cross-checked. Produced only by parseConfig.
 */

export interface NodeConfig {
  readonly name: string;
  /** Heartbeat network name -> canonical IP address of this node on it. */
  readonly addresses: Readonly<Record<string, string>>;
}

export interface ClusterConfig {
  readonly name: string;
  /** Absolute path of the cluster key (key_file resolved against the config dir). */
  readonly keyFile: string;
  /** Heartbeat networks, in order of preference. */
  readonly networks: readonly string[];
  readonly nodes: readonly NodeConfig[];
}

export interface VipConfig {
  /** Canonical address without prefix: `198.18.0.100`, `2001:2::100`. */
  readonly address: string;
  readonly prefix: number;
  readonly family: 4 | 6;
  /** Canonical `address/prefix`. */
  readonly cidr: string;
  readonly interface: string;
}

export interface HeartbeatConfig {
  /** Networks used by this module, in order of preference (default: the cluster's networks). */
  readonly networks: readonly string[];
  readonly pulseMs: number;
  /** The peer is lost after this much silence on all networks. */
  readonly timeoutMs: number;
}

export interface ScriptsConfig {
  readonly timeoutMs: number;
  /** Time a stop script gets before it is run again with `force`, then killed. */
  readonly stopTimeoutMs: number;
}

export interface MaxloopConfig {
  /** At most this many failovers/restarts... */
  readonly count: number;
  /** ...within this window, then the module stops looping and waits for an admin. */
  readonly windowMs: number;
}

export interface ReplicatedDir {
  /** Absolute path in normal form. */
  readonly path: string;
  /** Glob patterns (relative to `path`) not replicated. */
  readonly exclude: readonly string[];
}

export interface ReplicationConfig {
  readonly dirs: readonly ReplicatedDir[];
  /** Without an ack for this long the primary continues ALONE and records changes. */
  readonly timeoutMs: number;
  /** Granularity of the dirty log, bytes. */
  readonly zoneSizeBytes: number;
  /** Resync bandwidth cap in bytes per second; undefined = no cap. */
  readonly resyncBandwidthBytesPerSec: number | undefined;
  /** TCP port of the replication link; undefined = 7406 + index among replicated modules (by name). */
  readonly port: number | undefined;
}

export type CheckerAction = 'restart' | 'stopstart' | 'wait' | 'stop' | 'none';
export type ProcessClass = 'prim' | 'second' | 'both';
export type ModuleState = 'STOP' | 'WAIT' | 'ALONE' | 'PRIM' | 'SECOND' | 'UP';

interface CheckerBase {
  /** Unique within the module (default: the type). */
  readonly name: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Successes in a row before the checker reports up again. */
  readonly rise: number;
  /** Failures in a row before the checker reports down. */
  readonly fall: number;
}

interface ActingChecker extends CheckerBase {
  readonly action: CheckerAction;
}

export interface TcpChecker extends ActingChecker { readonly type: 'tcp'; readonly host: string; readonly port: number }
export interface HttpChecker extends ActingChecker {
  readonly type: 'http';
  readonly url: string;
  readonly status: number;
  /** Regular expression (source) the body must match; undefined = not checked. */
  readonly body: string | undefined;
}
export type ProcessMatch =
  | { readonly by: 'name'; readonly name: string }
  | { readonly by: 'cmdline'; readonly pattern: string }
  | { readonly by: 'pidfile'; readonly path: string };
export interface ProcessChecker extends ActingChecker {
  readonly type: 'process';
  readonly match: ProcessMatch;
  readonly min: number;
  readonly max: number | undefined;
  /** On which role the checker runs. */
  readonly class: ProcessClass;
}
export interface PingChecker extends ActingChecker { readonly type: 'ping'; readonly address: string }
export interface InterfaceChecker extends ActingChecker { readonly type: 'interface'; readonly interface: string }
export interface VipChecker extends ActingChecker { readonly type: 'vip' }
export interface CustomChecker extends ActingChecker {
  readonly type: 'custom';
  /** Absolute, or relative to the module's `bin/` directory. */
  readonly command: string;
  readonly args: readonly string[];
}
export interface ModuleChecker extends ActingChecker {
  readonly type: 'module';
  readonly module: string;
  /** The checker is up while the other module is in one of these states. */
  readonly states: readonly ModuleState[];
}
/** The split-brain witness: no action, its result drives takeover and self-demotion. */
export interface SplitbrainChecker extends CheckerBase {
  readonly type: 'splitbrain';
  /** Ping witnesses (may be empty when an arbitrator is given). */
  readonly witnesses: readonly string[];
  /** The arbitrator witness (`hakit witness`), an IP literal and a port; undefined: none. */
  readonly arbitrator: { readonly host: string; readonly port: number } | undefined;
}

export type CheckerConfig =
  | TcpChecker | HttpChecker | ProcessChecker | PingChecker | InterfaceChecker
  | VipChecker | CustomChecker | ModuleChecker | SplitbrainChecker;
export type CheckerType = CheckerConfig['type'];

interface ModuleBase {
  /** The folder name under `modules/`. */
  readonly name: string;
  readonly nodes: readonly string[];
  readonly failover: boolean;
  readonly heartbeat: HeartbeatConfig;
  readonly vip: readonly VipConfig[];
  readonly scripts: ScriptsConfig;
  readonly maxloop: MaxloopConfig;
  readonly checkers: readonly CheckerConfig[];
}

export interface MirrorModuleConfig extends ModuleBase {
  readonly kind: 'mirror';
  /** A node of the module, `last` (the last primary), or undefined (newest data, then node name). */
  readonly defaultPrimary: string | undefined;
  readonly replication: ReplicationConfig;
}

export interface FarmConfig {
  /** Ports whose traffic is split; empty = all ports. */
  readonly ports: readonly number[];
  readonly protocol: 'tcp' | 'udp';
}

export interface FarmModuleConfig extends ModuleBase {
  readonly kind: 'farm';
  readonly farm: FarmConfig;
}

export type ModuleConfig = MirrorModuleConfig | FarmModuleConfig;

export interface HakitConfig {
  /** The config dir as given to parseConfig. */
  readonly dir: string;
  readonly cluster: ClusterConfig;
  /** Sorted by name. */
  readonly modules: readonly ModuleConfig[];
}

/** One located problem. `file` is relative to the config dir; line and column start at 1. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted path of the value (`vip[0].address`), or the file's name for a whole-file problem. */
  readonly field: string;
  /** What is wrong and what is expected. */
  readonly message: string;
}

/** The texts parseConfig reads; paths may be absolute or relative to `dir`. */
export interface ConfigFiles {
  readonly dir: string;
  readonly cluster: { readonly path: string; readonly text: string };
  readonly modules: readonly { readonly name: string; readonly path: string; readonly text: string }[];
}

export type ConfigResult =
  | { readonly ok: true; readonly config: HakitConfig; readonly warnings: ConfigIssue[] }
  | { readonly ok: false; readonly errors: ConfigIssue[] };

/** What the caller knows about the key file (the core does no I/O). */
export type KeyFileInfo =
  | { readonly kind: 'missing' }
  | { readonly kind: 'not-a-file' }
  | { readonly kind: 'file'; readonly mode: number; readonly size: number };

/** Optional probes of the environment, answered by the caller (configfs adapter). */
export interface ConfigProbes {
  /** Called with the absolute key file path once cluster.key_file is valid. */
  readonly keyFile?: (path: string) => KeyFileInfo;
}
