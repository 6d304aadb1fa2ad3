/**
 * The write loads of the `replicated-writes` figure, run inside a testbed host (so on that host's
 * mounts) by `node dist/bench/fsload.js MODE PATH COUNT`. Prints one JSON line on stdout; exits 1
 * with the error on stderr on the first failed call. Times are taken around the file system calls
 * only (not the start of node), on the monotonic clock.
 *
 * - `append FILE COUNT`: opens FILE with O_APPEND (created, 0644), then COUNT times: write 4096
 *   bytes, fsync. Prints `{"latenciesMs":[...]}`: each write + fsync, in ms, in order.
 * - `small DIR COUNT`: creates DIR, then COUNT files DIR/f<i>: open (O_CREAT|O_EXCL, 0644), write
 *   4096 bytes, close; no fsync. Prints `{"files":COUNT,"ms":T}`: T the time of the whole loop.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
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

const [mode, path, countArg] = process.argv.slice(2);
const count = Number(countArg);
if ((mode !== 'append' && mode !== 'small') || !path || !(Number.isInteger(count) && count >= 1)) {
  process.stderr.write('usage: fsload.js append FILE COUNT | small DIR COUNT\n');
  process.exit(2);
}
try {
  process.stdout.write(`${JSON.stringify(mode === 'append' ? append(path, count) : small(path, count))}\n`);
} catch (e) {
  process.stderr.write(`fsload ${mode} ${path}: ${(e as Error).message}\n`);
  process.exit(1);
}
