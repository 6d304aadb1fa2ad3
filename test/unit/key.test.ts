// The cluster key file (DESIGN.md 3 promise 6; docs/security.md "The cluster key"): what
// `hakit cluster keygen` writes is what every node reads back; anything else is refused with
// HAKIT_E_KEY_FILE naming the file; each protocol gets its own subkey.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { KEY_BYTES, KEY_HEADER, deriveKey, generateKey, loadKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { hmacSha256 } from '../../src/adapters/key/hmac.js';
import { HakitError } from '../../src/core/errors.js';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

function refusedNaming(file: string, detail: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof HakitError, `not a HakitError: ${String(e)}`);
    assert.equal(e.code, 'HAKIT_E_KEY_FILE');
    assert.equal(e.details.file, file);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    assert.match(String(e.details.detail), detail);
    return true;
  };
}

describe('cluster key file', () => {
  test('generateKey writes the header and one base64 line that parseKey reads back to the same 32 bytes', () => {
    const bytes = Buffer.from(Array.from({ length: KEY_BYTES }, (_, i) => i * 7));
    const text = generateKey(() => Buffer.from(bytes));
    const lines = text.split('\n');
    assert.equal(lines[0], KEY_HEADER);
    assert.equal(lines[1]?.length, 44);
    assert.equal(lines[2], '');
    assert.deepEqual(parseKey(text), bytes);
    assert.deepEqual(parseKey(text.replace(/\n/g, '\r\n')), bytes, 'a file saved with CRLF line ends');
    assert.deepEqual(parseKey(`\n# my comment\n  ${lines[1]}  \n\n`), bytes, 'comments, blank lines and spaces are ignored');
  });

  test('two generated keys differ (the default random source is used)', () => {
    assert.notDeepEqual(parseKey(generateKey()), parseKey(generateKey()));
  });

  test('a random source giving the wrong length is a programming error', () => {
    assert.throws(() => generateKey(() => Buffer.alloc(16)), RangeError);
  });

  const good = generateKey().split('\n')[1] as string;
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  // The same 32 bytes with one of the 2 unused low bits of the last character set.
  const nonCanonical = `${good.slice(0, 42)}${B64[B64.indexOf(good[42] as string) ^ 1]}=`;
  const bad: [string, string, RegExp][] = [
    ['an empty file', '', /no key line/],
    ['only comments', `${KEY_HEADER}\n# nothing else\n`, /no key line/],
    ['two key lines', `${good}\n${good}\n`, /2 key lines/],
    ['a short key (16 bytes)', Buffer.alloc(16, 1).toString('base64'), /not 32 bytes in base64/],
    ['a long key (48 bytes)', Buffer.alloc(48, 1).toString('base64'), /not 32 bytes in base64/],
    ['hex instead of base64', Buffer.alloc(32, 1).toString('hex'), /not 32 bytes in base64/],
    ['base64url characters', `${good.slice(0, 10)}-_${good.slice(12)}`, /not 32 bytes in base64/],
    ['a non-canonical last character', nonCanonical, /canonical/],
  ];
  for (const [what, text, detail] of bad) {
    test(`parseKey refuses ${what} with HAKIT_E_KEY_FILE naming the file`, () => {
      assert.throws(() => parseKey(text, '/etc/hakit/cluster.key'), refusedNaming('/etc/hakit/cluster.key', detail));
    });
  }

  test('loadKey reads a file, reports loose permissions, refuses a missing file or a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hakit-key-'));
    dirs.push(dir);
    const file = join(dir, 'cluster.key');
    const text = generateKey();
    await writeFile(file, text, { mode: 0o600 });
    await chmod(file, 0o600);
    const tight = await loadKey(file);
    assert.deepEqual(tight.key, parseKey(text));
    assert.equal(tight.mode, 0o600);
    assert.equal(tight.insecurePermissions, false);
    await chmod(file, 0o644);
    const loose = await loadKey(file);
    assert.equal(loose.insecurePermissions, true);
    assert.deepEqual(loose.key, tight.key);
    await assert.rejects(loadKey(join(dir, 'missing.key')), refusedNaming(join(dir, 'missing.key'), /does not exist/));
    await mkdir(join(dir, 'adir'));
    await assert.rejects(loadKey(join(dir, 'adir')), refusedNaming(join(dir, 'adir'), /not a regular file/));
    const broken = join(dir, 'broken.key');
    await writeFile(broken, 'hello\n');
    await assert.rejects(loadKey(broken), refusedNaming(broken, /not 32 bytes/));
  });

  test('deriveKey gives 32 bytes, the same for the same purpose, different per purpose and per cluster key', () => {
    const k1 = parseKey(generateKey());
    const k2 = parseKey(generateKey());
    const hb = deriveKey(k1, 'heartbeat v1');
    assert.equal(hb.length, 32);
    assert.deepEqual(deriveKey(k1, 'heartbeat v1'), hb);
    const others = [deriveKey(k1, 'replication v1'), deriveKey(k1, 'command v1'), deriveKey(k1, 'heartbeat v2'), deriveKey(k2, 'heartbeat v1'), k1];
    for (const o of others) assert.notDeepEqual(o, hb);
    assert.equal(new Set(others.map((o) => o.toString('hex'))).size, others.length);
    assert.throws(() => deriveKey(Buffer.alloc(16), 'heartbeat v1'), RangeError);
  });

  test('deriveKey is HKDF-SHA-256 with an empty salt and info "hakit <purpose>" (RFC 5869, pinned)', () => {
    // Pinned so that a change of derivation, which would split a cluster of mixed versions, is seen.
    const k = Buffer.alloc(32, 0x0b);
    assert.equal(deriveKey(k, 'heartbeat v1').toString('hex'), PINNED_HEARTBEAT_SUBKEY);
  });
});

describe('hmacSha256 (the heartbeat and witness MAC)', () => {
  test('gives the bytes of createHmac for every message length up to its maximum, then past it, for short, block-size and long keys', () => {
    for (const keyLen of [16, 32, 64, 65, 100]) {
      const key = Buffer.from(Array.from({ length: keyLen }, (_, i) => (i * 7 + keyLen) & 0xff));
      const mac = hmacSha256(key, 300);
      for (const len of [0, 1, 55, 56, 63, 64, 65, 119, 120, 200, 299, 300, 301, 1000]) {
        const m = Buffer.from(Array.from({ length: len }, (_, i) => (i * 13 + len) & 0xff));
        assert.equal(mac(m).toString('hex'), createHmac('sha256', key).update(m).digest().toString('hex'), `key ${keyLen} B, message ${len} B`);
      }
    }
  });

  test('a MAC does not depend on the longer message MACed before it (the buffers it reuses)', () => {
    const key = Buffer.alloc(32, 9);
    const mac = hmacSha256(key, 100);
    const short = Buffer.from('abc');
    const want = createHmac('sha256', key).update(short).digest().toString('hex');
    mac(Buffer.alloc(100, 0xee));
    assert.equal(mac(short).toString('hex'), want);
    const first = mac(short);
    mac(Buffer.from('other'));
    assert.equal(first.toString('hex'), want, 'a returned MAC was changed by the next call');
  });
});

// Computed independently of Node (Python hmac: PRK = HMAC(32 zero bytes, key); T1 = HMAC(PRK, info || 0x01)).
const PINNED_HEARTBEAT_SUBKEY = 'ff6fe6844b87a311e6b929833aea50e5614ece5896017aa01e0d7d40c9a2a757';
