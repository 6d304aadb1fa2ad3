/**
 * HMAC-SHA-256 (RFC 2104) for short messages under a fixed key, for the heartbeat path (issue 3's
 * idle CPU): the key's inner and outer blocks are computed once, and each MAC is two one-shot
 * hashes (crypto.hash, Node >= 20.12) over buffers kept for the purpose, instead of a new Hmac
 * object per datagram. Same bytes as createHmac('sha256', key) (test/unit/key.test.ts).
 */
import * as crypto from 'node:crypto';

const BLOCK = 64;
const DIGEST = 32;

type OneShot = (algorithm: string, data: Buffer, encoding: 'buffer') => Buffer;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

/** A MAC function for messages of at most `maxMessage` bytes (longer ones take createHmac's path). */
export function hmacSha256(key: Buffer, maxMessage: number): (message: Buffer) => Buffer {
  if (oneShot === undefined) return (m) => crypto.createHmac('sha256', key).update(m).digest();
  const k = key.length > BLOCK ? crypto.createHash('sha256').update(key).digest() : key;
  const inner = Buffer.alloc(BLOCK + maxMessage);
  const outer = Buffer.alloc(BLOCK + DIGEST);
  for (let i = 0; i < BLOCK; i++) {
    const b = i < k.length ? (k[i] as number) : 0;
    inner[i] = b ^ 0x36;
    outer[i] = b ^ 0x5c;
  }
  return (m) => {
    if (m.length > maxMessage) return crypto.createHmac('sha256', key).update(m).digest();
    m.copy(inner, BLOCK);
    oneShot('sha256', inner.subarray(0, BLOCK + m.length), 'buffer').copy(outer, BLOCK);
    return oneShot('sha256', outer, 'buffer');
  };
}
