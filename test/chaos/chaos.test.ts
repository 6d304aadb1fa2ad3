// A short chaos run (issue 8): 20 rounds of random faults on a real 2-node cluster with
// replication and a checking client (test/chaos/chaos.ts). `npm run chaos -- --rounds N` runs more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.js';
import { runChaos } from './chaos.js';

test('chaos: 20 rounds of faults, no acknowledged record lost, never two writers, copies equal', { ...needs('root', 'netns', 'fuse'), timeout: 600_000 }, async () => {
  const seed = Number(process.env.HAKIT_CHAOS_SEED ?? Date.now() % 100_000);
  const r = await runChaos({ rounds: 20, seed, log: (l) => process.stdout.write(`# ${l}\n`) });
  const summary = `seed ${seed} (replay: npm run chaos -- --rounds 20 --seed ${seed}): ${JSON.stringify({ ...r, lost: r.lost.length })}`;
  assert.equal(r.rounds, 20, summary);
  assert.ok(r.acked > 0, `no record was acknowledged: ${summary}`);
  assert.deepEqual(r.lost, [], `acknowledged records lost: ${summary}`);
  assert.deepEqual(r.dualWriters, [], `two nodes claimed the primary role at once: ${summary}`);
  assert.deepEqual(r.unequalRounds, [], `copies differ after a settled round: ${summary}`);
});
