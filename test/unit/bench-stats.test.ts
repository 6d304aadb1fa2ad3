// The statistics of npm run bench (issue 7): medians, ratios to the peer measured in the same
// session, and goal judgement, which decide what the report says about hakit vs its peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { higherIsBetter, judge, median, percentile, rows, summarize, type Metric } from '../../bench/stats.js';

test('median of an odd count is the middle value, of an even count the mean of the two middle values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.ok(Number.isNaN(median([])));
});

test('median does not reorder the samples it is given (they are kept in run order for the chart)', () => {
  const xs = [3, 1, 2];
  median(xs);
  assert.deepEqual(xs, [3, 1, 2]);
});

test('summarize gives median, min, max and the run count; no sample gives NaN and 0 runs', () => {
  assert.deepEqual(summarize([2300, 2100, 2500, 2200]), { median: 2250, min: 2100, max: 2500, runs: 4 });
  const none = summarize([]);
  assert.equal(none.runs, 0);
  assert.ok(Number.isNaN(none.median) && Number.isNaN(none.min) && Number.isNaN(none.max));
});

const fo = (samples: number[], extra: Partial<Metric> = {}): Metric => ({
  id: 'failover', figure: 'failover', title: 't', unit: 'ms', samples, peer: 'failover-keepalived',
  goal: { max: 2500, ratioBelow: 1, text: 'g' }, ...extra,
});
const ka = (samples: number[]): Metric => ({ id: 'failover-keepalived', figure: 'failover-keepalived', title: 't', unit: 'ms', samples });

test('the ratio is the median over the median of the peer of the same session', () => {
  const [h, k] = rows([fo([2000, 2200, 2400]), ka([3600, 3500, 4000])]);
  assert.equal(h!.ratio, 2200 / 3600);
  assert.equal(h!.peer, 'failover-keepalived');
  assert.equal(k!.ratio, null, 'a metric without a peer has no ratio');
});

test('no ratio when the peer was not measured in this session (e.g. --only failover) or has no sample', () => {
  assert.equal(rows([fo([2000])])[0]!.ratio, null);
  assert.equal(rows([fo([2000]), ka([])])[0]!.ratio, null);
});

test('failover goal: met when the median is <= 2.5 s and below keepalived, not met otherwise', () => {
  assert.equal(rows([fo([2000, 2400]), ka([3600])])[0]!.goalMet, true);
  assert.equal(rows([fo([2600, 2700]), ka([3600])])[0]!.goalMet, false, 'median above 2.5 s');
  assert.equal(rows([fo([2000]), ka([1900])])[0]!.goalMet, false, 'slower than keepalived');
  assert.equal(rows([fo([2000])])[0]!.goalMet, false, 'a goal on the ratio is not met without the peer');
});

test('a run that produced no sample makes the goal not met, even when the others are fast', () => {
  const r = rows([fo([2000, 2000], { failures: 1 }), ka([3600])])[0]!;
  assert.equal(r.failures, 1);
  assert.equal(r.goalMet, false);
});

test('judge: no goal or no sample gives null (nothing to judge)', () => {
  assert.equal(judge(undefined, summarize([1]), null, 0), null);
  assert.equal(judge({ max: 1, text: 'x' }, summarize([]), null, 0), null);
  assert.equal(judge({ max: 1, text: 'x' }, summarize([0.4, 0.5]), null, 0), true);
  assert.equal(judge({ max: 1, text: 'x' }, summarize([1.5]), null, 0), false);
});

test('rates (MB/s, files/s) are larger-is-better; durations, CPU and memory smaller-is-better', () => {
  assert.equal(higherIsBetter('MB/s'), true);
  assert.equal(higherIsBetter('files/s'), true);
  for (const u of ['ms', '%', 'MiB'] as const) assert.equal(higherIsBetter(u), false, u);
});

// The replicated-writes goals (issue 4): replicated/local throughput at least 0.5, files per
// second at least 1/10 of local.
const seq = (id: string, samples: number[], extra: Partial<Metric> = {}): Metric => ({ id, figure: 'replicated-writes', title: 't', unit: 'MB/s', samples, ...extra });

test('a goal on a rate ratio: met at or above ratioAtLeast, not met below it or without the peer', () => {
  const goal = { ratioAtLeast: 0.5, text: '>= 0.5 x local' };
  const local = seq('seq.local', [400, 420, 380]);
  const met = rows([local, seq('seq.repl', [200, 210, 190], { peer: 'seq.local', goal })])[1]!;
  assert.equal(met.ratio, 0.5);
  assert.equal(met.goalMet, true, 'exactly half the local throughput meets ">= 0.5"');
  assert.equal(rows([local, seq('seq.repl', [60, 55, 70], { peer: 'seq.local', goal })])[1]!.goalMet, false);
  assert.equal(rows([seq('seq.repl', [300], { peer: 'seq.local', goal })])[0]!.goalMet, false, 'no local figure in the session');
});

test('judge: min is a floor on the median', () => {
  assert.equal(judge({ min: 10, text: 'x' }, summarize([9, 11, 12]), null, 0), true);
  assert.equal(judge({ min: 10, text: 'x' }, summarize([9, 9.5, 12]), null, 0), false);
});

test('percentile by nearest rank: p99 of 500 latencies is the 495th smallest, p50 of an odd count the middle one', () => {
  const xs = Array.from({ length: 500 }, (_, i) => 500 - i); // 500 .. 1, not sorted
  assert.equal(percentile(xs, 99), 495);
  assert.equal(percentile(xs, 100), 500);
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile([5], 99), 5);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.deepEqual(xs.slice(0, 2), [500, 499], 'the samples keep their order');
});
