// The replication link contract (test/unit/tcp.contract.test.ts) again, with the real TCP pair
// inside a network namespace this test creates, on 198.18.0.1 (interface lan0). Then a
// measurement on loopback, reported (t.diagnostic), never asserted: throughput of 1 MiB payloads
// and ack latency of 4 KiB payloads. DESIGN.md 3 promises 2 and 6, 5 "Replicated directories".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { needs } from '../helpers/prereq.js';
import { makePrefix } from '../testbed/layout.js';
import { generateKey, parseKey } from '../../src/adapters/key/cluster-key.js';
import { connectSender, listenReceiver } from '../../src/adapters/tcp/index.js';
import { runTestFileInNetns } from '../helpers/netns.js';

const ns = `${makePrefix(Math.random)}-tcp`;
const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };

describe('replication link contract in a network namespace', needs('root', 'netns'), () => {
  before(() => {
    ip('netns', 'add', ns);
    ip('netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=0');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1');
    ip('-n', ns, 'addr', 'add', '198.18.0.1/24', 'dev', 'lan0');
    ip('-n', ns, 'link', 'set', 'lan0', 'up');
    ip('-n', ns, 'link', 'set', 'lan1', 'up');
  });
  after(() => {
    try { ip('netns', 'del', ns); } catch { /* never created */ }
  });

  test('every contract check passes with real sockets on 198.18.0.1', () => {
    const file = fileURLToPath(new URL('../unit/tcp.contract.test.js', import.meta.url));
    const { status, out, pass, why } = runTestFileInNetns(ns, file, { HAKIT_TEST_TCP_HOST: '198.18.0.1' }, 120_000);
    assert.equal(status, 0, `${why}\n${out}`);
    assert.match(out, /Replication link contract: tcp \(198\.18\.0\.1\)/, 'the tcp harness did not run on the namespace address');
    assert.ok(pass >= 20, `only ${pass} checks passed:\n${out}`);
    assert.match(out, /^# fail 0$/m);
  });
});

describe('replication link on loopback: measured, not asserted', () => {
  test('throughput of 1 MiB payloads, ack latency of 4 KiB payloads', async (t) => {
    const key = parseKey(generateKey());
    const base = { key, cluster: 'demo', module: 'web' };
    const r = await listenReceiver({ ...base, address: '127.0.0.1', port: 0, node: 'n2' });
    const s = connectSender({ ...base, host: '127.0.0.1', port: r.port, node: 'n1', peer: 'n2', timeoutMs: 10_000 });
    try {
      let bytes = 0;
      r.onPayload(async (p) => { bytes += p.length; });
      const mib = Buffer.alloc(1024 * 1024, 7);
      const N = 512;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: N }, () => s.send(mib)));
      const secs = (performance.now() - t0) / 1000;
      assert.equal(bytes, N * mib.length);
      t.diagnostic(`1 MiB payloads, pipelined: ${N} MiB in ${secs.toFixed(2)} s = ${(N / secs).toFixed(0)} MiB/s`);

      const small = Buffer.alloc(4096, 1);
      const lat: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const a = performance.now();
        await s.send(small);
        lat.push(performance.now() - a);
      }
      lat.sort((x, y) => x - y);
      const pct = (p: number): string => (lat[Math.floor(p * lat.length)] as number).toFixed(3);
      t.diagnostic(`4 KiB payloads, one at a time: send-to-ack p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
      const conc: Promise<void>[] = [];
      const t1 = performance.now();
      for (let i = 0; i < 20_000; i++) conc.push(s.send(small));
      await Promise.all(conc);
      const secs2 = (performance.now() - t1) / 1000;
      const st = s.stats();
      t.diagnostic(`4 KiB payloads, 20k pipelined: ${(20_000 / secs2).toFixed(0)} payloads/s; link p50 ${st.ackLatencyMsP50.toFixed(3)} ms, p99 ${st.ackLatencyMsP99.toFixed(3)} ms (last 1024)`);
    } finally {
      await s.close();
      await r.close();
    }
  });
});
