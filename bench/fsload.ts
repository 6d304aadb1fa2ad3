/**
 * The write loads of the `replicated-writes` figure, run inside a testbed host (so on that host's
 * mounts) by `node dist/bench/fsload.js MODE PATH COUNT`. Prints one JSON line on stdout; exits 1
 * with the error on stderr on the first failed call. Times are taken around the file system calls
 * only (not the start of node), on the monotonic clock.
 *
 * - `append FILE COUNT`: opens FILE with O_APPEND (created, 0644), then COUNT times: write 4096
 *   bytes, fsync. Prints `{"latenciesMs":[...]}`: each write + fsync, in ms, in order.
 * - `append-pair FILE COUNT OTHER`: the same on FILE and OTHER in lockstep, what a replicated
 *   append waits for when both copies share one disk (the testbed): each step writes 4096 bytes
 *   to both at once, then fsyncs both at once (libuv's thread pool), and takes the time until
 *   both are done. Prints `{"latenciesMs":[...]}`.
 * - `small DIR COUNT`: creates DIR, then COUNT files DIR/f<i>: open (O_CREAT|O_EXCL, 0644), write
 *   4096 bytes, close; no fsync. Prints `{"files":COUNT,"ms":T}`: T the time of the whole loop.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, promises, writeSync } from 'node:fs';
import { join } from 'node:path';

const BLOCK = Buffer.alloc(4096, 0x61);

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function append(file: string, count: number): { latenciesMs: number[] } {
  const fd = openSync(file, 'a', 0o644);
  const latenciesMs: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t = nowMs();
      writeSync(fd, BLOCK);
      fsyncSync(fd);
      latenciesMs.push(nowMs() - t);
    }
  } finally {
    closeSync(fd);
  }
  return { latenciesMs };
}

async function appendPair(file: string, count: number, other: string): Promise<{ latenciesMs: number[] }> {
  const hs = await Promise.all([file, other].map((f) => promises.open(f, 'a', 0o644)));
  const latenciesMs: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t = nowMs();
      await Promise.all(hs.map((h) => h.write(BLOCK)));
      await Promise.all(hs.map((h) => h.sync()));
      latenciesMs.push(nowMs() - t);
    }
  } finally {
    await Promise.all(hs.map((h) => h.close()));
  }
  return { latenciesMs };
}

function small(dir: string, count: number): { files: number; ms: number } {
  mkdirSync(dir, { recursive: true });
  const t = nowMs();
  for (let i = 0; i < count; i++) {
    const fd = openSync(join(dir, `f${i}`), 'wx', 0o644);
    try {
      writeSync(fd, BLOCK);
    } finally {
      closeSync(fd);
    }
  }
  return { files: count, ms: nowMs() - t };
}

const [mode, path, countArg, other] = process.argv.slice(2);
const count = Number(countArg);
if (!(mode === 'append' || mode === 'small' || (mode === 'append-pair' && other)) || !path || !(Number.isInteger(count) && count >= 1)) {
  process.stderr.write('usage: fsload.js append FILE COUNT | append-pair FILE COUNT OTHER | small DIR COUNT\n');
  process.exit(2);
}
try {
  const out = mode === 'append' ? append(path, count) : mode === 'small' ? small(path, count) : await appendPair(path, count, other as string);
  process.stdout.write(`${JSON.stringify(out)}\n`);
} catch (e) {
  process.stderr.write(`fsload ${mode} ${path}: ${(e as Error).message}\n`);
  process.exit(1);
}
