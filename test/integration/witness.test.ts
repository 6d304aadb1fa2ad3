// Defends DESIGN.md 3 promise 1 "One writer" and 6 "Authenticated", 5 "Split brain" (issue 6
// part 4) with the real `hakit witness` process on a third host of the testbed and lease clients
// on two other hosts competing for the same module:
//   - exactly one node holds the lease at any time;
//   - when the holder stops renewing, the other gets it only after the holder's lease ended;
//   - a restarted witness grants nothing for one lease length;
//   - a client with another key gets no answer and the witness counts the forged datagrams.
//
// Times: every process reports CLOCK_MONOTONIC milliseconds (process.hrtime), one clock for
// the whole machine, so a grant seen on n1 and one seen on n2 compare exactly. A node "holds"
// from the moment it receives a grant until the grant's untilMs (the send time of the granted
// request plus the lease); the witness's own lease ends no earlier, which is what makes two
// holders impossible.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { generateKey } from '../../src/adapters/key/cluster-key.js';
import { needs } from '../helpers/prereq.js';
import { Testbed } from '../testbed/index.js';
import { REPO } from '../testbed/cluster.js';

const NODE = process.execPath;
const HAKIT = join(REPO, 'bin/hakit.js');
const LEASE_MS = 1000;
const PERIOD_MS = 150;

const hrNow = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * A lease client on a host: asks for the lease of `module` every PERIOD_MS (a primary renewing,
 * a secondary asking to take over) and prints every answer as a JSON line, times in
 * CLOCK_MONOTONIC ms. argv: dist dir, key file, node, witness address, module, period.
 */
const AGENT = String.raw`
const [dist, keyFile, node, witness, module, period] = process.argv.slice(1);
const { UdpWitnessClient } = await import(dist + '/src/adapters/witness/index.js');
const { loadKey } = await import(dist + '/src/adapters/key/cluster-key.js');
const { realClock } = await import(dist + '/src/adapters/clock/index.js');
const mono = () => Number(process.hrtime.bigint()) / 1e6;
const clock = { now: mono, wallNow: () => Date.now(), setTimer: (ms, fn) => realClock.setTimer(ms, fn), clearTimer: (h) => realClock.clearTimer(h), sleep: (ms, s) => realClock.sleep(ms, s) };
const { key } = await loadKey(keyFile);
const c = await UdpWitnessClient.open({ key, cluster: 'demo', node, witness, clock, timeoutMs: 300 });
console.log(JSON.stringify({ node, ready: true }));
for (;;) {
  const start = mono();
  const a = await c.acquire(module);
  const out = { node, recv: mono() };
  if ('error' in a) out.error = a.error;
  else if (a.granted) Object.assign(out, { granted: true, sent: a.sentAtMs, until: a.untilMs });
  else Object.assign(out, { granted: false, holder: a.holder, remainingMs: a.remainingMs });
  console.log(JSON.stringify(out));
  const wait = Number(period) - (mono() - start);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
`;

interface Answer {
  node: string;
  recv: number;
  granted?: boolean;
  sent?: number;
  until?: number;
  holder?: string | null;
  remainingMs?: number;
  error?: string;
}

interface Agent {
  child: ChildProcess;
  answers: Answer[];
}

/** Polls `cond` every 20 ms until it holds or `ms` pass; returns whether it held. */
async function eventually(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await delay(20);
  }
  return true;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const grants = (a: Agent, from = -Infinity): Answer[] => a.answers.filter((x) => x.granted === true && x.recv >= from);

/** Fails when two different nodes held the lease at the same moment: [recv, until) intervals overlap. */
function assertOneHolder(all: Answer[]): void {
  const held = all.filter((a) => a.granted === true).sort((a, b) => a.recv - b.recv);
  for (let i = 0; i < held.length; i++) {
    for (let j = i + 1; j < held.length; j++) {
      const [x, y] = [held[i]!, held[j]!];
      if (x.node !== y.node && y.recv < x.until!) {
        assert.fail(`two holders: ${x.node} held until ${x.until!.toFixed(1)} and ${y.node} got the lease at ${y.recv.toFixed(1)}`);
      }
    }
  }
}

describe('hakit witness on the testbed', needs('root', 'netns', 'nft'), () => {
  let tb: Testbed;
  let witness: ChildProcess | undefined;
  let witnessLog = '';
  let addr = '';
  let keyFile = '';
  let configFile = '';
  const agents: Agent[] = [];

  function startWitness(): ChildProcess {
    const w = tb.host('wit').spawn([NODE, '--enable-source-maps', HAKIT, 'witness', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    w.stdout!.setEncoding('utf8').on('data', (d: string) => (witnessLog += d));
    w.stderr!.setEncoding('utf8').on('data', (d: string) => (witnessLog += d));
    return w;
  }

  async function startAgent(host: string, key = keyFile): Promise<Agent> {
    const child = tb.host(host).spawn([NODE, '--input-type=module', '-e', AGENT, join(REPO, 'dist'), key, host, addr, 'web', String(PERIOD_MS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const agent: Agent = { child, answers: [] };
    agents.push(agent);
    const lines = createInterface({ input: child.stdout! });
    let ready!: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    lines.on('line', (l) => {
      const a = JSON.parse(l) as Answer & { ready?: boolean };
      if (a.ready) ready();
      else agent.answers.push(a);
    });
    await Promise.race([isReady, exited(child).then(() => { throw new Error(`agent on ${host} exited before it was ready`); })]);
    return agent;
  }

  before(async () => {
    tb = await Testbed.create({ hosts: ['n1', 'n2', 'wit'] });
    const w = tb.host('wit');
    addr = `${w.addr('lan')}:7407`;
    keyFile = join(w.dir, 'cluster.key');
    configFile = join(w.dir, 'witness.yaml');
    writeFileSync(keyFile, generateKey(), { mode: 0o600 });
    writeFileSync(configFile, `listen: ${addr}\nkey_file: cluster.key\ncluster: demo\nlease: ${LEASE_MS}ms\n`);
  });

  after(async () => {
    for (const a of agents) a.child.kill('SIGKILL');
    witness?.kill('SIGKILL');
    await tb?.dispose();
  });

  let holder: Agent;
  let other: Agent;

  test('two nodes compete for one module: exactly one holds it, continuously, and the other is refused with its name', async () => {
    const t0 = hrNow();
    witness = startWitness();
    const [a1, a2] = [await startAgent('n1'), await startAgent('n2')];
    assert.ok(await eventually(() => grants(a1).length + grants(a2).length >= 10, 10_000), `no grants; witness log:\n${witnessLog}`);
    const first = [...grants(a1), ...grants(a2)].sort((x, y) => x.recv - y.recv)[0]!;
    assert.ok(first.recv >= t0 + LEASE_MS, 'the witness granted during its quiet period after start');
    [holder, other] = first.node === 'n1' ? [a1, a2] : [a2, a1];
    assert.equal(grants(other).length, 0, `${other.child.pid}: the other node got a grant`);
    const refusals = other.answers.filter((a) => a.granted === false && a.recv > first.recv);
    assert.ok(refusals.length > 0 && refusals.every((a) => a.holder === first.node && a.remainingMs! > 0 && a.remainingMs! <= LEASE_MS),
      JSON.stringify(refusals.slice(0, 3)));
    // Continuously: every renewal arrived before the previous grant ran out.
    const h = grants(holder);
    for (let i = 1; i < h.length; i++) assert.ok(h[i]!.recv < h[i - 1]!.until!, `the holder's lease lapsed between renewals ${i - 1} and ${i}`);
    assertOneHolder([...a1.answers, ...a2.answers]);
  });

  test('the holder stops renewing: the other gets the lease only after the holder\'s lease ended', async () => {
    holder.child.kill('SIGKILL');
    await exited(holder.child);
    const lastUntil = Math.max(...grants(holder).map((g) => g.until!));
    assert.ok(await eventually(() => grants(other).length > 0, 5 * LEASE_MS), 'the other node never got the lease');
    const taken = grants(other)[0]!;
    assert.ok(taken.recv >= lastUntil, `taken at ${taken.recv.toFixed(1)}, before the old holder's lease ended at ${lastUntil.toFixed(1)}`);
    assert.ok(other.answers.some((a) => a.granted === false && a.holder === holder.answers[0]?.node && a.recv > lastUntil - LEASE_MS),
      'the other node was not refused while the holder\'s last lease was live');
    assertOneHolder(agents.flatMap((a) => a.answers));
  });

  test('a restarted witness grants nothing, not even a renewal, for one lease length', async () => {
    assert.ok(witness);
    witness.kill('SIGTERM');
    await exited(witness);
    assert.equal(witness.exitCode, 0, `the witness did not stop cleanly: ${witnessLog.slice(-500)}`);
    const restartedAt = hrNow();
    witness = startWitness();
    const back = await startAgent(holder === agents[0] ? 'n1' : 'n2');
    assert.ok(await eventually(() => grants(other, restartedAt).length + grants(back, restartedAt).length > 0, 5 * LEASE_MS), 'no grant after the restart');
    const after = [...grants(other, restartedAt), ...grants(back, restartedAt)].sort((x, y) => x.recv - y.recv)[0]!;
    assert.ok(after.recv >= restartedAt + LEASE_MS, `granted ${(after.recv - restartedAt).toFixed(0)} ms after the restart, within one lease length`);
    const quiet = [...other.answers, ...back.answers].filter((a) => a.recv > restartedAt && a.granted === false);
    assert.ok(quiet.length > 0 && quiet.every((a) => a.holder === null || a.recv >= restartedAt + LEASE_MS),
      'the restarted witness did not answer "starting" during its quiet period');
    assertOneHolder(agents.flatMap((a) => a.answers));
  });

  test('a client with another key gets no answer, takes nothing, and the witness counts it', async () => {
    const otherKey = join(tb.host('n1').dir, 'other.key');
    writeFileSync(otherKey, generateKey(), { mode: 0o600 });
    const intruder = await startAgent('n1', otherKey);
    assert.ok(await eventually(() => intruder.answers.length >= 3, 5_000));
    assert.ok(intruder.answers.every((a) => a.error === 'timeout'), JSON.stringify(intruder.answers.slice(0, 3)));
    const warned = witnessLog.split('\n').filter((l) => l.includes('"reason":"bad-mac"'));
    assert.ok(warned.length > 0, 'the witness did not log the forged datagrams');
    assertOneHolder(agents.flatMap((a) => a.answers));
  });
});
