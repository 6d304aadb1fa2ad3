/**
 * The rfs child process: `node dist/src/adapters/fuse/rfs-main.js [--replicator local|recording]`.
 *
 * Reads requests (RfsRequest, one JSON object per line) on stdin and writes one reply per
 * request (RfsReply) on stdout; logs go to stderr. SIGTERM, SIGINT or the end of stdin unmount
 * (lazily if busy) and exit 0. A SIGKILL leaves a stale mount: `recoverStaleMount(dir)`.
 */
import { createInterface } from 'node:readline';
import { HakitError } from '../../core/errors.js';
import type { Record } from '../../core/replication/records.js';
import { type InPlaceMount, mountInPlace } from './mount.js';
import { PassthroughFs, RFS_MODES, type RfsMode } from './passthrough.js';
import { LocalOnlyReplicator, RecordingReplicator, type Replicator } from './replicator.js';
import type { RfsReply, RfsRequest } from './rfs.js';

const recording = process.argv.includes('--replicator') && process.argv[process.argv.indexOf('--replicator') + 1] === 'recording';
const replicator: Replicator = recording ? new RecordingReplicator() : new LocalOnlyReplicator();

// Modes of created files come from the application (the kernel applied its umask already).
process.umask(0);

let mounted: { mount: InPlaceMount; fs: PassthroughFs } | undefined;
let mounting = false;
let exiting = false;

function send(reply: RfsReply): void {
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

async function handle(req: RfsRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'mount': {
      const mode = checkMode(req.mode);
      if (mounted !== undefined || mounting) throw new HakitError('RFS_MOUNT', { dir: req.dir, detail: 'this rfs process already serves a mount' });
      mounting = true;
      try {
        let pfs: PassthroughFs | undefined;
        const mount = await mountInPlace(req.dir, (rootFd) => (pfs = new PassthroughFs({ rootFd, replicator, mode })));
        mounted = { mount, fs: pfs as unknown as PassthroughFs };
      } finally {
        mounting = false;
      }
      return undefined;
    }
    case 'set-mode': {
      const mode = checkMode(req.mode);
      if (mounted === undefined) throw new HakitError('RFS', { dir: '(none)', detail: 'set-mode while nothing is mounted' });
      mounted.fs.setMode(mode);
      return undefined;
    }
    case 'unmount':
      return unmount();
    case 'stats': {
      const base = mounted?.fs.stats() ?? { mode: 'rw', records: 0, held: 0, ops: {} };
      return { ...base, mounted: mounted !== undefined, dir: mounted?.mount.dir ?? null };
    }
    case 'records':
      if (!(replicator instanceof RecordingReplicator)) throw new HakitError('BAD_REQUEST', { detail: 'records needs --replicator recording' });
      return replicator.records.map(recordJson);
    default:
      throw new HakitError('BAD_REQUEST', { detail: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}` });
  }
}

async function unmount(): Promise<{ lazy: boolean }> {
  const m = mounted;
  if (m === undefined) return { lazy: false };
  // Calls held by `blocked` fail with EROFS rather than wait for a mount that goes away.
  m.fs.setMode('ro');
  const res = await m.mount.unmount();
  mounted = undefined;
  return res;
}

async function shutdown(why: string): Promise<void> {
  if (exiting) return;
  exiting = true;
  try {
    await unmount();
    process.exit(0);
  } catch (e) {
    process.stderr.write(`rfs: unmount at ${why} failed: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
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
rl.on('close', () => void shutdown('end of stdin'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
