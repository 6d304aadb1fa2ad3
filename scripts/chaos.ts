/**
 * `npm run chaos -- [--rounds N] [--seed S] [--faults F1,F2]`: the chaos suite on the testbed (test/chaos/chaos.ts,
 * docs/chaos.md). Prints each round and a JSON report; exit 1 if a promise was broken.
 */
import { parseArgs } from 'node:util';
import { FAULTS, type Fault, runChaos } from '../test/chaos/chaos.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, seed: { type: 'string' }, faults: { type: 'string' } } });
const faults = values.faults === undefined ? undefined : values.faults.split(',').map((f) => f.trim()) as Fault[];
const unknown = (faults ?? []).filter((f) => !(FAULTS as readonly string[]).includes(f));
if (unknown.length > 0) {
  process.stderr.write(`unknown fault ${unknown.join(', ')}; faults: ${FAULTS.join(', ')}\n`);
  process.exit(2);
}
const rounds = Number(values.rounds);
const seed = values.seed === undefined ? Date.now() % 100_000 : Number(values.seed);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(seed) || seed < 0) {
  process.stderr.write('usage: npm run chaos -- [--rounds N (>= 1)] [--seed S (>= 0)] [--faults F1,F2]\n');
  process.exit(2);
}
process.stdout.write(`chaos: ${rounds} rounds, seed ${seed}\n`);
const r = await runChaos({ rounds, seed, ...(faults ? { faults } : {}), log: (l) => process.stdout.write(`${l}\n`) });
process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
const broken = r.lost.length > 0 || r.dualWriters.length > 0 || r.unequalRounds.length > 0 || r.rounds < rounds;
process.stdout.write(broken ? 'chaos: PROMISE BROKEN\n' : `chaos: ${r.rounds} rounds, ${r.acked} records acknowledged, 0 lost, no two writers, copies equal\n`);
process.exit(broken ? 1 : 0);
