// replication.resync_bandwidth (issue 5 part 4): the copy of a resync sends at most the cap, on
// the clock seam (FakeClock: fake time, no wall-clock assertion). FullSync walks a plain directory
// here; the records go to a submit that acknowledges at once.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/adapters/clock/fake.js';
import { FullSync } from '../../src/adapters/fuse/fullsync.js';
import type { RecordBody } from '../../src/core/replication/records.js';
import { pseudoRandomBytes } from '../helpers/data.js';

const MiB = 1024 * 1024;
const root = fs.mkdtempSync(join(tmpdir(), 'hakit-cap-'));
for (let i = 0; i < 8; i++) fs.writeFileSync(join(root, `f${i}`), pseudoRandomBytes(MiB, i + 1));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** Runs a full sync of `root` with this cap on a fake clock; the data bytes sent by fake second. */
async function run(maxBytesPerSec?: number): Promise<{ elapsedMs: number; bySecond: number[]; bytes: number }> {
  const clock = new FakeClock();
  const bySecond: number[] = [];
  const submit = (body: RecordBody): Promise<void> => {
    if (body.op === 'write') {
      const s = Math.floor(clock.now() / 1000);
      bySecond[s] = (bySecond[s] ?? 0) + body.data.length;
    }
    return Promise.resolve();
  };
  const fsync = new FullSync({ root, submit, chunkBytes: 256 * 1024, clock, ...(maxBytesPerSec !== undefined ? { maxBytesPerSec } : {}) });
  let done = false;
  const p = fsync.run().finally(() => { done = true; });
  for (let i = 0; i < 100_000 && !done; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(5);
  }
  const r = await p;
  return { elapsedMs: clock.now(), bySecond: [...bySecond].map((b) => b ?? 0), bytes: r.bytes };
}

test('capped at 1 MiB/s, 8 MiB of files take about 8 s of (fake) time, never more than the cap plus one burst in a second', async () => {
  const capped = await run(MiB);
  assert.equal(capped.bytes, 8 * MiB);
  assert.ok(capped.elapsedMs >= 7_000 && capped.elapsedMs <= 9_000, `8 MiB at 1 MiB/s took ${capped.elapsedMs} ms of fake time`);
  const burst = 256 * 1024 + 256;
  for (const [s, b] of capped.bySecond.entries()) assert.ok(b <= MiB + burst, `second ${s}: ${b} bytes`);
});

test('without a cap the copy does not wait; a cap of 0 or below is refused', async () => {
  const free = await run();
  assert.equal(free.bytes, 8 * MiB);
  assert.ok(free.elapsedMs < 1000, `no cap: ${free.elapsedMs} ms of fake time`);
  assert.throws(() => new FullSync({ root, submit: () => Promise.resolve(), maxBytesPerSec: 0 }), RangeError);
});
