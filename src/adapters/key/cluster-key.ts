/**
 * The cluster key (DESIGN.md 3 promise 6): 32 random bytes shared by every node of a cluster.
 *
 * File format (docs/security.md), written by `hakit cluster keygen > cluster.key`:
 *
 *     # hakit cluster key v1: keep secret (mode 0600), copy the same file to every node
 *     <44 characters: the 32 bytes in standard base64, with its one "=" of padding>
 *
 * Lines starting with `#` and blank lines are ignored; exactly one key line must remain.
 * The key is never used directly: each protocol derives its own subkey with HKDF-SHA-256
 * (`deriveKey`), so a heartbeat MAC can never be mistaken for a replication-stream MAC.
 */
import { randomBytes, hkdfSync } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { HakitError } from '../../core/errors.js';

/** Length of a cluster key in bytes. */
export const KEY_BYTES = 32;
/** First line of a key file written by `generateKey`. */
export const KEY_HEADER = '# hakit cluster key v1: keep secret (mode 0600), copy the same file to every node';

const KEY_LINE = /^[A-Za-z0-9+/]{43}=$/;

/** A new key file's text (header line + base64 line + newline); `random` is for tests. */
export function generateKey(random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(KEY_BYTES);
  if (bytes.length !== KEY_BYTES) throw new RangeError(`random source gave ${bytes.length} bytes, want ${KEY_BYTES}`);
  return `${KEY_HEADER}\n${bytes.toString('base64')}\n`;
}

/** Parses a key file's text; throws HakitError KEY_FILE naming `file` when it is not one key. */
export function parseKey(text: string, file = 'cluster.key'): Buffer {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new HakitError('KEY_FILE', { file, detail: 'the file holds no key line' });
  if (lines.length > 1) throw new HakitError('KEY_FILE', { file, detail: `the file holds ${lines.length} key lines, want exactly one` });
  const line = lines[0] as string;
  if (!KEY_LINE.test(line)) {
    throw new HakitError('KEY_FILE', { file, detail: `the key line is not ${KEY_BYTES} bytes in base64 (44 characters ending in "=")` });
  }
  const key = Buffer.from(line, 'base64');
  // The last character carries 2 unused bits: only the canonical spelling is one key.
  if (key.length !== KEY_BYTES || key.toString('base64') !== line) {
    throw new HakitError('KEY_FILE', { file, detail: `the key line is not the canonical base64 of ${KEY_BYTES} bytes (was it edited by hand?)` });
  }
  return key;
}

export interface LoadedKey {
  /** The 32 key bytes. */
  key: Buffer;
  /** True when group or others may read or write the file: the caller should log a warning. */
  insecurePermissions: boolean;
  /** The file's permission bits (e.g. 0o600). */
  mode: number;
}

/**
 * Reads and checks a key file. Refuses (HakitError KEY_FILE) a missing, unreadable, empty,
 * short, long or malformed key; never refuses for permissions, only reports them.
 */
export async function loadKey(path: string): Promise<LoadedKey> {
  let text: string;
  let mode: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new HakitError('KEY_FILE', { file: path, detail: 'it is not a regular file' });
    mode = st.mode & 0o777;
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof HakitError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'the file does not exist' : code === 'EACCES' ? 'permission denied' : String((e as Error).message);
    throw new HakitError('KEY_FILE', { file: path, detail }, { cause: e });
  }
  return { key: parseKey(text, path), insecurePermissions: (mode & 0o077) !== 0, mode };
}

/** A 32-byte subkey for one use of the cluster key (HKDF-SHA-256, `purpose` as info). */
export function deriveKey(clusterKey: Buffer, purpose: string): Buffer {
  if (clusterKey.length !== KEY_BYTES) throw new RangeError(`cluster key is ${clusterKey.length} bytes, want ${KEY_BYTES}`);
  return Buffer.from(hkdfSync('sha256', clusterKey, Buffer.alloc(0), `hakit ${purpose}`, 32));
}
