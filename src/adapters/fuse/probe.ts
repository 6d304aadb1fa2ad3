/**
 * Full resync by comparison (issue 5 part 3): what the secondary answers to a `sync-probe`
 * record, and the block hashes both sides compute. The same code runs on both nodes, so equal
 * bytes give equal answers.
 *
 * - Quick check (`length` 0): the entry's type and, for a regular file, its size, mtime
 *   (milliseconds, rounded), permission bits, owner and link count. The primary compares them
 *   with its own at the same point of the stream (fullsync.ts): same size and mtime (and a single
 *   link on both sides) is taken as same content, as rsync does by default.
 * - Block hashes (`length` > 0): the SHA-256 (base64) of each `block`-byte block of the file's
 *   bytes in [offset, offset + length), the last one short at the end of the file; blocks past
 *   the end have no hash. 1.6 GB/s on the test VM (SHA-NI): a 4 MiB range holds the event loop
 *   for about 3 ms.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

/** Bytes of one compared block: the unit that travels when it differs. */
export const PROBE_BLOCK = 128 * 1024;
/** Bytes of one block-hash probe (one record, one answer of 32 hashes). */
export const PROBE_RANGE = 4 * 1024 * 1024;

export interface ProbeAnswer {
  readonly type: 'file' | 'other' | 'missing';
  readonly size?: number;
  readonly mtimeMs?: number;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly nlink?: number;
  /** Block hashes of the range asked (length > 0). */
  readonly hashes?: readonly string[];
}

const buf = Buffer.alloc(PROBE_BLOCK);

/** The hashes of the blocks of open file `fd` in [offset, min(offset + length, size)). */
export function blockHashes(fd: number, offset: number, length: number, block: number, size: number): string[] {
  const out: string[] = [];
  const end = Math.min(offset + length, size);
  const b = block <= buf.length ? buf : Buffer.alloc(block);
  for (let at = offset; at < end; at += block) {
    const want = Math.min(block, end - at);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(fd, b, got, want - got, at + got);
      if (n === 0) break;
      got += n;
    }
    if (got === 0) break;
    out.push(createHash('sha256').update(b.subarray(0, got)).digest('base64'));
    if (got < want) break;
  }
  return out;
}

/** What this node has at `root + path` now (see the header); synchronous. */
export function probe(root: string, path: string, offset: number, length: number, block: number): ProbeAnswer {
  const p = root + path;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return { type: 'missing' };
  }
  if (!st.isFile()) return { type: 'other' };
  if (length === 0) {
    return { type: 'file', size: st.size, mtimeMs: Math.round(st.mtimeMs), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink };
  }
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return { type: 'missing' };
  }
  try {
    const size = fs.fstatSync(fd).size;
    return { type: 'file', size, hashes: blockHashes(fd, offset, length, Math.max(1, block), size) };
  } finally {
    fs.closeSync(fd);
  }
}
