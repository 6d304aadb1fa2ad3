// Defends DESIGN.md 3 promise 1 "One writer" and 5 "Split brain" (issue 6 part 4): the
// witness grants a module's lease to one node at a time, refuses with holder and remaining
// time, forgets nothing it granted until expiry, and after a restart grants nothing for one
// lease length. Transcripts in test/unit/witness/leases.txt.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_LEASE_MS, LeaseTable, demoteDeadline, mayKeepWriting, mayTakeOver, safetyMarginMs, type AcquireResult, type ReleaseResult,
} from '../../src/core/witness/lease.js';

const FILE = fileURLToPath(new URL('../../../test/unit/witness/leases.txt', import.meta.url));

function showAcquire(r: AcquireResult): string {
  if (r.granted) return `${r.renewed ? 'renewed' : 'granted'} until=${r.untilMs}`;
  return r.reason === 'starting' ? `refused starting for ${r.remainingMs}` : `refused held by ${r.holder} for ${r.remainingMs}`;
}

function showRelease(r: ReleaseResult): string {
  if (r.released) return r.wasHeld ? 'released' : 'released (not held)';
  return `not released: held by ${r.holder} for ${r.remainingMs}`;
}

interface Block { title: string; lines: { n: number; text: string }[] }

function blocks(text: string): Block[] {
  const out: Block[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('== ')) out.push({ title: line.slice(3), lines: [] });
    else out[out.length - 1]!.lines.push({ n: i + 1, text: line });
  });
  return out;
}

describe('witness leases (transcripts)', () => {
  for (const b of blocks(readFileSync(FILE, 'utf8'))) {
    test(b.title, () => {
      let table: LeaseTable | undefined;
      for (const { n, text } of b.lines) {
        const w = /^witness lease=(\d+) start=(\d+) quiet=(\d+)$/.exec(text);
        if (w) {
          table = new LeaseTable({ leaseMs: Number(w[1]), startMs: Number(w[2]), quietMs: Number(w[3]) });
          continue;
        }
        const m = /^(\d+) (acquire|release) (?:([\w-]+)\/)?([\w-]+) ([\w-]+) -> (.+)$/.exec(text);
        assert.ok(m && table, `leases.txt:${n}: cannot read "${text}"`);
        const [, t, op, cluster, module, node, want] = m;
        const now = Number(t);
        const got = op === 'acquire'
          ? showAcquire(table.acquire(cluster ?? 'demo', module!, node!, now))
          : showRelease(table.release(cluster ?? 'demo', module!, node!, now));
        assert.equal(got, want, `leases.txt:${n}: ${text}`);
      }
    });
  }
});

describe('witness lease table', () => {
  test('the default lease is 4 s and a quiet period shorter than the lease is refused', () => {
    assert.equal(DEFAULT_LEASE_MS, 4000);
    assert.throws(() => new LeaseTable({ leaseMs: 4000, startMs: 0, quietMs: 3999 }), /double-grant/);
    assert.throws(() => new LeaseTable({ leaseMs: 0, startMs: 0 }), RangeError);
    assert.equal(new LeaseTable({ leaseMs: 4000, startMs: 10 }).quietUntilMs, 4010);
  });

  test('holder() shows the live lease only', () => {
    const t = new LeaseTable({ leaseMs: 1000, startMs: 0 });
    t.acquire('demo', 'web', 'n1', 1000);
    assert.deepEqual(t.holder('demo', 'web', 1999), { holder: 'n1', untilMs: 2000 });
    assert.equal(t.holder('demo', 'web', 2000), undefined);
  });
});

describe('client rule: demote before the witness may grant another node', () => {
  test('the margin is the pulse plus 1 % drift of the lease, so at least each of them', () => {
    assert.equal(safetyMarginMs(4000, 250), 290);
    assert.ok(safetyMarginMs(4000, 250) >= 250 && safetyMarginMs(4000, 250) >= 40);
    assert.equal(safetyMarginMs(100_000, 10), 1010);
  });

  test('the deadline counts from the send time of the granted request', () => {
    const r = { grantSentAtMs: 5000, leaseMs: 4000, pulseMs: 250 };
    assert.equal(demoteDeadline(r), 5000 + 4000 - 290);
    assert.equal(mayKeepWriting(r, 8709), true);
    assert.equal(mayKeepWriting(r, 8710), false);
  });

  test('a lease no longer than its margin is refused', () => {
    assert.throws(() => demoteDeadline({ grantSentAtMs: 0, leaseMs: 250, pulseMs: 250 }), /longer lease/);
  });

  // The scenario the rule exists for: the reply is slow, the holder's clock runs 1 % slow; the
  // holder still stops before the witness's lease ends, so the other node's grant comes after.
  for (const delayMs of [0, 700]) {
    test(`reply after ${delayMs} ms, holder clock 1 % slow: the holder stops before the witness frees the lease`, () => {
      const leaseMs = 4000;
      const pulseMs = 250;
      const sentWitnessTime = 10_000; // the request left the client at this witness time
      const table = new LeaseTable({ leaseMs, startMs: 0 });
      const g = table.acquire('demo', 'web', 'n1', sentWitnessTime + delayMs);
      assert.ok(g.granted);
      // Client clock: origin 0 at the send, running 1 % slow compared with the witness.
      const deadlineClient = demoteDeadline({ grantSentAtMs: 0, leaseMs, pulseMs });
      // ... and the demotion is acted on up to one pulse later.
      const stoppedWitness = sentWitnessTime + deadlineClient / (1 - 0.01) + pulseMs;
      assert.ok(stoppedWitness <= g.untilMs, `holder stops at ${stoppedWitness}, lease ends ${g.untilMs}`);
      assert.equal(table.acquire('demo', 'web', 'n2', stoppedWitness).granted, false);
    });
  }

  test('the secondary takes over only on a grant', () => {
    assert.equal(mayTakeOver({ granted: true, leaseMs: 4000, untilMs: 1, renewed: false }), true);
    assert.equal(mayTakeOver({ granted: false, reason: 'held', holder: 'n1', remainingMs: 5 }), false);
    assert.equal(mayTakeOver({ granted: false, reason: 'starting', holder: null, remainingMs: 5 }), false);
    assert.equal(mayTakeOver({ error: 'timeout' }), false);
  });
});
