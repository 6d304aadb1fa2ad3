// Full resync by comparison (issue 5 part 3): what a secondary answers to `sync-probe` (probe.ts)
// and how the primary collects the answers of one link connection (Answers).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBE_BLOCK, blockHashes, probe } from '../../src/adapters/fuse/probe.js';
import { Answers, decodeReply, encodeReply } from '../../src/adapters/fuse/link-replicator.js';
import type { ReplicationSender } from '../../src/adapters/tcp/link.js';

const root = fs.mkdtempSync(join(tmpdir(), 'hakit-probe-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('probe answers', () => {
  test('the quick check: type, and for a file size, mtime (ms), mode, owner, links', () => {
    fs.writeFileSync(join(root, 'f'), 'hello');
    fs.chmodSync(join(root, 'f'), 0o640);
    fs.utimesSync(join(root, 'f'), 1_700_000_000.1234, 1_700_000_000.5678);
    fs.mkdirSync(join(root, 'd'));
    fs.symlinkSync('f', join(root, 'l'));
    assert.deepEqual(probe(root, '/f', 0, 0, PROBE_BLOCK), { type: 'file', size: 5, mtimeMs: 1_700_000_000_568, mode: 0o640, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, nlink: 1 });
    assert.deepEqual(probe(root, '/d', 0, 0, PROBE_BLOCK), { type: 'other' });
    assert.deepEqual(probe(root, '/l', 0, 0, PROBE_BLOCK), { type: 'other' }, 'a symlink is never followed');
    assert.deepEqual(probe(root, '/nothing', 0, 0, PROBE_BLOCK), { type: 'missing' });
    fs.linkSync(join(root, 'f'), join(root, 'f2'));
    assert.equal(probe(root, '/f', 0, 0, PROBE_BLOCK).nlink, 2);
  });

  test('block hashes: one per block of the range, the last short, none past the end; one changed byte changes one hash', () => {
    const data = Buffer.alloc(2 * PROBE_BLOCK + 100, 7);
    fs.writeFileSync(join(root, 'b'), data);
    const a = probe(root, '/b', 0, 4 * PROBE_BLOCK, PROBE_BLOCK);
    assert.equal(a.hashes?.length, 3);
    assert.equal(a.hashes?.[0], a.hashes?.[1], 'equal blocks, equal hashes');
    assert.notEqual(a.hashes?.[1], a.hashes?.[2], 'the short last block');
    assert.deepEqual(probe(root, '/b', PROBE_BLOCK, PROBE_BLOCK, PROBE_BLOCK).hashes, [a.hashes?.[1]], 'a range from an offset');
    assert.deepEqual(probe(root, '/b', 3 * PROBE_BLOCK, PROBE_BLOCK, PROBE_BLOCK).hashes, [], 'past the end: none');
    data[PROBE_BLOCK + 5] = 8;
    fs.writeFileSync(join(root, 'b'), data);
    const b = probe(root, '/b', 0, 4 * PROBE_BLOCK, PROBE_BLOCK);
    assert.deepEqual([b.hashes?.[0] === a.hashes?.[0], b.hashes?.[1] === a.hashes?.[1], b.hashes?.[2] === a.hashes?.[2]], [true, false, true]);
    const fd = fs.openSync(join(root, 'b'), 'r');
    try {
      assert.deepEqual(blockHashes(fd, 0, 4 * PROBE_BLOCK, PROBE_BLOCK, fs.fstatSync(fd).size), b.hashes, 'the primary computes the same hashes from a descriptor');
    } finally {
      fs.closeSync(fd);
    }
  });
});

/** A sender with just what Answers uses: replies and state changes pushed by the test. */
function fakeSender(): { sender: ReplicationSender; reply(b: Buffer): void; down(why: string): void } {
  const replies = new Set<(b: Buffer) => void>();
  const states = new Set<(s: 'up' | 'down', why: string) => void>();
  const sender = {
    onReply: (fn: (b: Buffer) => void) => { replies.add(fn); return () => { replies.delete(fn); }; },
    onState: (fn: (s: 'up' | 'down', why: string) => void) => { states.add(fn); return () => { states.delete(fn); }; },
  } as unknown as ReplicationSender;
  return { sender, reply: (b) => { for (const f of replies) f(b); }, down: (why) => { for (const f of states) f('down', why); } };
}

describe('Answers (the replies of one link connection)', () => {
  test('an answer is matched by seq, also when it came before the waiter; foreign replies are ignored', async () => {
    const f = fakeSender();
    const a = new Answers(f.sender, 'resync');
    f.reply(encodeReply(7, { type: 'missing' }));
    f.reply(Buffer.from('not json'));
    f.reply(Buffer.from(JSON.stringify({ t: 'other', seq: 8 })));
    const eight = a.wait(8);
    f.reply(encodeReply(8, { type: 'file', size: 3 }));
    assert.deepEqual(await a.wait(7), { type: 'missing' });
    assert.deepEqual(await eight, { type: 'file', size: 3 });
    assert.equal(decodeReply(Buffer.from('{"t":"reply","seq":1,"a":null}')), null, 'an answer is an object');
    a.close();
  });

  test('the link dropping rejects the waiters and later waits, naming what was asked', async () => {
    const f = fakeSender();
    const a = new Answers(f.sender, 'resync');
    const w = a.wait(1);
    f.down('peer closed');
    await assert.rejects(w, (e: Error) => /the link dropped during the resync: peer closed/.test(e.message));
    await assert.rejects(a.wait(2), /dropped during the resync/);
    a.close();
  });

  test('no answer within the timeout rejects; close rejects what waits', async () => {
    const f = fakeSender();
    const a = new Answers(f.sender, 'verify', 20);
    await assert.rejects(a.wait(3), /no verify answer for record 3 within 0.02 s/);
    const b = new Answers(f.sender, 'verify');
    const w = b.wait(4);
    b.close();
    await assert.rejects(w, /the verify ended/);
  });
});
