/**
 * The rfs child process: `node dist/src/adapters/fuse/rfs-main.js [--replicator local|recording]`.
 *
 * Reads requests (RfsRequest, one JSON object per line) on stdin and writes one reply per
 * request (RfsReply) on stdout, plus unsolicited event lines (RfsEvent); logs go to stderr.
 * SIGTERM and SIGINT unmount (lazily if busy) and exit 0. A SIGKILL leaves stale mounts:
 * `recoverStaleMount(dir)`.
 *
 * The end of stdin means the daemon died (it closes the child with SIGTERM otherwise). The
 * child then fences itself: every mount turns read-only (held writes fail: nothing is
 * acknowledged that the peer, which takes over, does not have) and the replication link
 * closes; it unmounts if nothing uses the mounts, else it stays, read-only, until the next
 * daemon removes the mounts, so the application never writes into the bare directories.
 *
 * Self-fencing (RfsConfig.fenceMs; issue 6 part 5): the daemon writes its monotonic clock on a
 * stamp (fd 3, a file on /dev/shm the two processes share; RfsProcess.keepalive) every pulse, or
 * sends an empty line when it has no stamp. If it stalls (SIGSTOP, a frozen event loop) while a
 * mount is read-write, the child blocks every mount by itself once it has heard nothing for
 * fenceMs: writes are held, never acknowledged, so a paused primary never wakes up writing
 * behind a new primary. The child reports `{event: 'fenced'}` before answering the daemon's next
 * line (or, with stamps, once it finds the stamp fresh again at its next check), keeps blocked
 * (even on `mount-all rw`) until `unfence`, and fails the held writes at `mount-all ro|none`.
 *
 * Two ways to use it:
 * - Bare (tests of the file system): `mount {dir, mode}` serves one directory, records go to the
 *   `--replicator` given (local: acknowledged at once; recording: kept for `records`).
 * - A module's rfs (the daemon): `configure` first (module, dirs, replication link endpoints,
 *   key file). It opens every replicated dir before anything is mounted (the secondary applies
 *   records underneath its read-only mounts through those descriptors) and listens for the
 *   primary's link. Then `mount-all rw|ro|none` follows the core's `mount` actions, `replicate`
 *   its `replicate` actions, `expect-sync`/`stop-resync` its `start-resync`/`stop-resync`.
 */
import * as fs from 'node:fs';
import { createInterface } from 'node:readline';
import { HakitError } from '../../core/errors.js';
import { excludeMatcher } from '../../core/replication/exclude.js';
import { openFileChangeLog } from '../store/changelog.js';
import { quarantine } from './quarantine.js';
import type { Record } from '../../core/replication/records.js';
import { loadKey } from '../key/cluster-key.js';
import { connectSender, listenReceiver } from '../tcp/tcp.js';
import { RecordApplier } from './applier.js';
import { FullSync } from './fullsync.js';
import { LinkReplicator } from './link-replicator.js';
import { type InPlaceMount, fusermount, mountInPlace } from './mount.js';
import { rfsMountPoints } from './recover.js';
import { PassthroughFs, RFS_MODES, type RfsMode } from './passthrough.js';
import { ReplicaReceiver } from './replica-receiver.js';
import { LocalOnlyReplicator, RecordingReplicator, type Replicator } from './replicator.js';
import { STAMP_BYTES, type RfsConfig, type RfsEvent, type RfsReply, type RfsRequest } from './rfs.js';

const recording = process.argv.includes('--replicator') && process.argv[process.argv.indexOf('--replicator') + 1] === 'recording';
const bareReplicator: Replicator = recording ? new RecordingReplicator() : new LocalOnlyReplicator();

// Modes of created files come from the application (the kernel applied its umask already).
process.umask(0);

interface Module {
  readonly config: RfsConfig;
  readonly rootFds: readonly number[];
  readonly link: LinkReplicator;
  readonly replica: ReplicaReceiver;
  readonly appliers: readonly RecordApplier[];
}

let mod: Module | undefined;
/** The last quarantine made before a full resync (status). */
let lastQuarantine: { dir: string; paths: number; at: number } | null = null;
const mounted = new Map<number, { mount: InPlaceMount; fs: PassthroughFs }>();
let busy = false;
let exiting = false;
/**
 * Self-fencing: when the daemon was last heard (monotonic ms: CLOCK_MONOTONIC, the clock of the
 * daemon's stamp), why the child fenced (null: not), and whether it said so.
 */
const monoMs = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;
let lastDaemon = monoMs();
/**
 * The daemon's keepalive stamp (RfsProcess.keepalive): fd 3 when the daemon passed one, read
 * only when the fence deadline comes. Two equal reads in a row: a read that met a write half
 * way is not taken.
 */
const STAMP_FD = 3;
let stampFd: number | null = (() => {
  try {
    return fs.fstatSync(STAMP_FD).isFile() ? STAMP_FD : null;
  } catch {
    return null;
  }
})();
const stampBuf = Buffer.alloc(2 * STAMP_BYTES);

/** When the daemon was last heard: its last line or its stamp, whichever is newer (monotonic ms). */
function daemonHeard(): number {
  if (stampFd === null) return lastDaemon;
  try {
    for (let i = 0; i < 4; i++) {
      if (fs.readSync(stampFd, stampBuf, 0, STAMP_BYTES, 0) !== STAMP_BYTES) return lastDaemon;
      fs.readSync(stampFd, stampBuf, STAMP_BYTES, STAMP_BYTES, 0);
      if (stampBuf.readBigInt64LE(0) === stampBuf.readBigInt64LE(STAMP_BYTES)) return Math.max(lastDaemon, Number(stampBuf.readBigInt64LE(0) / 1000n) / 1000);
    }
  } catch {
    stampFd = null;
  }
  return lastDaemon;
}
let fenced: string | null = null;
let fenceReported = false;
let fenceTimer: NodeJS.Timeout | null = null;

function send(reply: RfsReply | RfsEvent): void {
  process.stdout.write(JSON.stringify(reply) + '\n');
}

function checkMode(mode: unknown): RfsMode {
  if (typeof mode !== 'string' || !(RFS_MODES as readonly string[]).includes(mode)) {
    throw new HakitError('BAD_REQUEST', { detail: `mode must be one of ${RFS_MODES.join(', ')}, not ${JSON.stringify(mode)}` });
  }
  return mode as RfsMode;
}

function recordJson(r: Record): unknown {
  if (r.op === 'write') return { ...r, data: Buffer.from(r.data).toString('base64') };
  if (r.op === 'setxattr') return { ...r, value: Buffer.from(r.value).toString('base64') };
  return r;
}

async function configure(c: RfsConfig): Promise<void> {
  if (mod !== undefined) throw new HakitError('BAD_REQUEST', { detail: 'this rfs process is configured already' });
  if (mounted.size > 0) throw new HakitError('BAD_REQUEST', { detail: 'configure comes before any mount' });
  const key = (await loadKey(c.keyFile)).key;
  const fds: number[] = [];
  try {
    for (const d of c.dirs) {
      try {
        fds.push(fs.openSync(d.path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
      } catch (e) {
        throw new HakitError('RFS_MOUNT', { dir: d.path, detail: (e as Error).message }, { cause: e });
      }
    }
    const roots = fds.map((fd) => `/proc/self/fd/${fd}`);
    const appliers = roots.map((root, i) => new RecordApplier({ root, name: c.dirs[i]?.path ?? root }));
    const receiver = await listenReceiver({
      key, cluster: c.cluster, node: c.node, module: c.module, peers: [c.peer], address: c.listen.address, port: c.listen.port,
    });
    // The change log: on a node receiving a resync it is incomplete until the copy is done.
    const changeLog = c.changeLog !== undefined ? openFileChangeLog(c.changeLog) : undefined;
    const replica = new ReplicaReceiver({
      receiver, appliers,
      onSyncStart: async (full) => {
        if (changeLog === undefined) return;
        // A full copy overwrites this node's changes: keep them first (quarantine.ts).
        if (full && changeLog.set.paths > 0 && c.quarantineDir !== undefined) {
          const q = await quarantine(changeLog.set, roots, c.dirs.map((d) => d.path.replace(/^\/+/, '').replace(/\//g, '_') || 'root'), c.quarantineDir);
          if (q.dir !== null) {
            lastQuarantine = { dir: q.dir, paths: q.paths, at: Date.now() };
            send({ event: 'quarantined', dir: q.dir, paths: q.paths, failed: q.failed });
          }
        }
        await changeLog.reset(false);
      },
      onApplyFailed: (detail) => send({ event: 'apply-failed', detail }),
      onResyncDone: (ok, detail, generation) => {
        const done = ok && changeLog !== undefined ? changeLog.reset(true) : Promise.resolve();
        void done.catch(() => undefined).then(() => send({ event: 'resync-done', ok, detail, generation }));
      },
    });
    const link = new LinkReplicator({
      roots,
      excluded: c.dirs.map((d) => excludeMatcher(d.exclude)),
      connect: () => connectSender({
        key, cluster: c.cluster, node: c.node, peer: c.peer, module: c.module, timeoutMs: c.timeoutMs,
        host: c.peerAddress.address, port: c.peerAddress.port,
      }),
      makeWalker: (o) => new FullSync(c.resyncBytesPerSec !== undefined ? { ...o, maxBytesPerSec: c.resyncBytesPerSec } : o),
      ...(changeLog !== undefined ? { changeLog } : {}),
      ...(c.zoneBytes !== undefined ? { zoneBytes: c.zoneBytes } : {}),
      onLost: (detail) => send({ event: 'replication-lost', detail }),
      onUnacked: (detail) => send({ event: 'unacked-write', detail }),
      onResyncServed: (ok, detail) => send({ event: 'resync-served', ok, detail }),
    });
    mod = { config: c, rootFds: fds, link, replica, appliers };
    const bound = c.fenceMs;
    if (bound !== undefined && bound > 0) armFence(bound);
    pushStats();
    setInterval(pushStats, 1000).unref();
  } catch (e) {
    for (const fd of fds) fs.closeSync(fd);
    throw e;
  }
}

/**
 * One timer at the moment the daemon's silence would reach `bound` (the last line + bound): the
 * mounts block then, not a polling period later, and an idle child wakes about once per bound
 * instead of 8 times (issue 3's idle CPU). Lines that came meanwhile move the deadline on.
 */
function armFence(bound: number, quiet = monoMs() - daemonHeard()): void {
  fenceTimer = setTimeout(() => {
    // The stamp is read once a check: the same silence decides the fence and the next deadline.
    const q = monoMs() - daemonHeard();
    fenceIfSilent(bound, q);
    if (!exiting) armFence(bound, q);
  }, quiet < bound ? bound - quiet : bound);
  fenceTimer.unref();
}

/** Blocks every read-write mount when the daemon has been silent (`quiet` ms) for `bound` ms (see the file comment). */
function fenceIfSilent(bound: number, quiet: number): void {
  if (exiting) return;
  if (fenced !== null) {
    // Keepalives by stamp bring no line: a daemon heard again is told now (as a line would).
    if (!fenceReported && quiet < bound) {
      fenceReported = true;
      send({ event: 'fenced', detail: fenced });
    }
    return;
  }
  if (quiet < bound) return;
  const rw = [...mounted.values()].filter((m) => m.fs.mode === 'rw');
  if (rw.length === 0) return;
  fenced = `no word from the daemon for ${Math.round(quiet)} ms (fencing bound ${bound} ms)`;
  fenceReported = false;
  for (const m of rw) m.fs.setMode('blocked');
  process.stderr.write(`rfs: ${fenced}: writes held (self-fenced)\n`);
}

async function mountOne(index: number, dir: string, mode: RfsMode): Promise<void> {
  const replicator = mod ? mod.link.forDir(index) : bareReplicator;
  const numberer = mod?.link.numberer;
  let pfs: PassthroughFs | undefined;
  const mount = await mountInPlace(dir, (rootFd) => (pfs = new PassthroughFs({ rootFd, replicator, mode, ...(numberer ? { numberer } : {}) })));
  mounted.set(index, { mount, fs: pfs as unknown as PassthroughFs });
}

/** `mount-all`: the module's dirs in `mode` (mounting those not mounted yet), or none. */
async function mountAll(mode: RfsMode | 'none'): Promise<void> {
  const m = mod;
  if (m === undefined) throw new HakitError('BAD_REQUEST', { detail: 'mount-all needs configure first' });
  if (mode !== 'rw') m.link.failHeld('this node left the primary role');
  if (mode !== 'ro') m.replica.accept(false);
  if (mode === 'ro' || mode === 'none') fenced = null;
  // A fenced child stays blocked until the daemon lifts the fence explicitly (`unfence`).
  if (mode === 'rw' && fenced !== null) mode = 'blocked';
  if (mode === 'none') {
    await unmountAll();
  } else {
    const added: number[] = [];
    try {
      for (const [i, d] of m.config.dirs.entries()) {
        const cur = mounted.get(i);
        if (cur !== undefined) cur.fs.setMode(mode);
        else {
          await mountOne(i, d.path, mode);
          added.push(i);
        }
      }
    } catch (e) {
      // Nothing half-applied: the dirs mounted by this request are unmounted again.
      for (const i of added) {
        await mounted.get(i)?.mount.unmount().catch(() => undefined);
        mounted.delete(i);
      }
      throw e;
    }
  }
  if (mode === 'ro') m.replica.accept(true);
}

function stats(): unknown {
  const first = mounted.values().next().value as { mount: InPlaceMount; fs: PassthroughFs } | undefined;
  const base = first?.fs.stats() ?? { mode: 'rw', records: 0, held: 0, ops: {} };
  return {
    ...base,
    mounted: first !== undefined,
    dir: first?.mount.dir ?? null,
    dirs: [...mounted.entries()].map(([i, x]) => ({ index: i, dir: x.mount.dir, mode: x.fs.mode, records: x.fs.stats().records })),
    ...(mod ? { replication: { primary: mod.link.stats(), secondary: mod.replica.stats(), quarantine: lastQuarantine } } : {}),
  };
}

let lastStats = '';

/** The `stats` event, when the status changed since the last one sent (RfsEvent `stats`). */
function pushStats(): void {
  const j = JSON.stringify(stats());
  if (j === lastStats || exiting) return;
  lastStats = j;
  process.stdout.write(`{"event":"stats","stats":${j}}\n`);
}

/**
 * `flush-paths`: the /proc paths of the descriptors opened before the mounts (the module's, else
 * those of the mounts made one by one), which lead below the FUSE mounts. The daemon runs
 * `sync -f` on them (RfsProcess.flush): this process never forks (see RfsRequest `flush-paths`).
 */
function flushPaths(): string[] {
  const fds = mod ? [...mod.rootFds] : [...mounted.values()].map((m) => m.mount.rootFd);
  return fds.map((fd) => `/proc/${process.pid}/fd/${fd}`);
}

async function handle(req: RfsRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'configure':
      return configure(req.config);
    case 'mount': {
      const mode = checkMode(req.mode);
      if (busy) throw new HakitError('RFS_MOUNT', { dir: req.dir, detail: 'a mount is in progress' });
      const index = mod ? mod.config.dirs.findIndex((d) => d.path === req.dir) : mounted.size > 0 ? -2 : 0;
      if (index === -2 || mounted.has(index)) throw new HakitError('RFS_MOUNT', { dir: req.dir, detail: 'this rfs process already serves a mount' });
      if (index < 0) throw new HakitError('RFS_MOUNT', { dir: req.dir, detail: 'not a replicated dir of this module' });
      busy = true;
      try {
        await mountOne(index, req.dir, mode);
      } finally {
        busy = false;
      }
      return undefined;
    }
    case 'mount-all': {
      const mode = req.mode === 'none' ? 'none' : checkMode(req.mode);
      if (busy) throw new HakitError('RFS_MOUNT', { dir: '(all)', detail: 'a mount is in progress' });
      busy = true;
      try {
        await mountAll(mode);
      } finally {
        busy = false;
      }
      return undefined;
    }
    case 'set-mode': {
      const mode = checkMode(req.mode);
      if (mounted.size === 0) throw new HakitError('RFS', { dir: '(none)', detail: 'set-mode while nothing is mounted' });
      for (const m of mounted.values()) m.fs.setMode(mode);
      return undefined;
    }
    case 'replicate': {
      const link = mod?.link;
      if (link === undefined) throw new HakitError('BAD_REQUEST', { detail: 'replicate needs configure first' });
      if (req.mode === 'sync') await link.setSync();
      else if (req.mode === 'alone') await link.setAlone();
      else if (req.mode === 'resync' && typeof req.generation === 'string') link.startResync(req.generation, req.full !== false);
      else throw new HakitError('BAD_REQUEST', { detail: `replicate mode must be sync, alone or resync (with a generation), not ${JSON.stringify(req.mode)}` });
      return undefined;
    }
    case 'expect-sync':
      if (mod === undefined) throw new HakitError('BAD_REQUEST', { detail: 'expect-sync needs configure first' });
      mod.replica.expectSync(req.ms, req.distrust === true);
      return undefined;
    case 'stop-resync':
      mod?.replica.stopExpect();
      return undefined;
    case 'flush-paths':
      return flushPaths();
    case 'verify':
      if (mod === undefined) throw new HakitError('BAD_REQUEST', { detail: 'verify needs configure first' });
      return mod.link.verify();
    case 'keepalive':
      return undefined;
    case 'unfence':
      if (fenced !== null) {
        fenced = null;
        for (const m of mounted.values()) if (m.fs.mode === 'blocked') m.fs.setMode('rw');
        process.stderr.write('rfs: self-fence lifted by the daemon\n');
      }
      return undefined;
    case 'unmount':
      return unmountAll();
    case 'stats':
      return stats();
    case 'records':
      if (!(bareReplicator instanceof RecordingReplicator)) throw new HakitError('BAD_REQUEST', { detail: 'records needs --replicator recording' });
      return bareReplicator.records.map(recordJson);
    default:
      throw new HakitError('BAD_REQUEST', { detail: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}` });
  }
}

async function unmountAll(): Promise<{ lazy: boolean }> {
  let lazy = false;
  for (const [i, m] of [...mounted.entries()]) {
    // Calls held by `blocked` fail with EROFS rather than wait for a mount that goes away.
    m.fs.setMode('ro');
    const res = await m.mount.unmount();
    lazy ||= res.lazy;
    mounted.delete(i);
  }
  return { lazy };
}

async function shutdown(why: string): Promise<void> {
  if (exiting) return;
  exiting = true;
  if (fenceTimer !== null) clearTimeout(fenceTimer);
  try {
    mod?.link.failHeld('the rfs is stopping');
    await unmountAll();
    await mod?.replica.close();
    process.exit(0);
  } catch (e) {
    process.stderr.write(`rfs: unmount at ${why} failed: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  lastDaemon = monoMs();
  if (fenced !== null && !fenceReported) {
    fenceReported = true;
    send({ event: 'fenced', detail: fenced });
  }
  if (line.trim() === '') return;
  let req: RfsRequest;
  try {
    req = JSON.parse(line) as RfsRequest;
  } catch {
    send({ id: -1, ok: false, error: { code: 'HAKIT_E_BAD_REQUEST', message: 'not a JSON line' } });
    return;
  }
  handle(req).then(
    (result) => send(result === undefined ? { id: req.id, ok: true } : { id: req.id, ok: true, result }),
    (e: unknown) => {
      const err = e instanceof HakitError ? e : new HakitError('INTERNAL', { detail: (e as Error).message });
      send({ id: req.id, ok: false, error: { code: err.code, message: err.message } });
    },
  );
});
rl.on('close', () => void fence());

/** The daemon is gone: read-only, link closed, then leave as soon as the mounts can go. */
async function fence(): Promise<void> {
  if (exiting) return;
  process.stderr.write('rfs: the daemon is gone: mounts are read-only from now on\n');
  mod?.link.failHeld('the daemon is gone');
  mod?.replica.accept(false);
  for (const m of mounted.values()) m.fs.setMode('ro');
  await mod?.replica.close().catch(() => undefined);
  const dirs = [...mounted.values()].map((m) => m.mount.dir);
  // A busy mount (open files, a cwd) cannot go without being lazy: keep serving it read-only
  // until the next daemon removes it (recoverStaleMount), then leave.
  if (dirs.length > 0 && (await Promise.all(dirs.map((d) => fusermount(['-u', d])))).every((c) => c === 0)) process.exit(0);
  if (dirs.length === 0) process.exit(0);
  setInterval(() => {
    const left = rfsMountPoints();
    if (!dirs.some((d) => left.includes(d))) process.exit(0);
  }, 1000);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
