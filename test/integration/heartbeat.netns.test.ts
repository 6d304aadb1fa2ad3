// The heartbeat contract (test/unit/heartbeat.contract.test.ts) again, with the real UDP
// transport inside a network namespace this test creates: nodes on 198.18.0.0/24 (lan, on
// interface lan0) and 198.19.0.0/24 (hb2, on hb0) and no route anywhere else, so a send to
// 198.18.1.9 is refused by the kernel (ENETUNREACH) and must be counted, not thrown.
// DESIGN.md 3 promise 6, 5 "Heartbeats". Traffic never leaves the namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { needs } from '../helpers/prereq.js';
import { makePrefix } from '../testbed/layout.js';
import { runTestFileInNetns } from '../helpers/netns.js';

const ns = `${makePrefix(Math.random)}-hb`;
const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };

describe('heartbeat transport contract in a network namespace', needs('root', 'netns'), () => {
  before(() => {
    ip('netns', 'add', ns);
    ip('netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=0');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // One veth pair per network, both ends inside (this kernel has no dummy interfaces).
    for (const [dev, net] of [['lan', '198.18.0'], ['hb', '198.19.0']] as const) {
      ip('-n', ns, 'link', 'add', `${dev}0`, 'type', 'veth', 'peer', 'name', `${dev}1`);
      for (const host of [1, 2, 3]) ip('-n', ns, 'addr', 'add', `${net}.${host}/24`, 'dev', `${dev}0`);
      ip('-n', ns, 'link', 'set', `${dev}0`, 'up');
      ip('-n', ns, 'link', 'set', `${dev}1`, 'up');
    }
  });
  after(() => {
    try { ip('netns', 'del', ns); } catch { /* never created */ }
  });

  test('every contract check passes with real sockets on 198.18.0.0/24 and 198.19.0.0/24', () => {
    const file = fileURLToPath(new URL('../unit/heartbeat.contract.test.js', import.meta.url));
    const { status, out, pass, why } = runTestFileInNetns(ns, file, { HAKIT_TEST_HB_NET: 'netns' }, 60_000);
    assert.equal(status, 0, `${why}\n${out}`);
    assert.match(out, /Heartbeat transport contract: udp \(network namespace\)/, 'the udp harness did not run in namespace mode');
    assert.ok(pass >= 20, `only ${pass} checks passed:\n${out}`);
    assert.match(out, /^# fail 0$/m);
    assert.match(out, /^# skipped 0$/m);
  });
});
