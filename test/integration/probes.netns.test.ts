// The network probes against real hosts (issue 6 item 2): ping, interface, vip and splitbrain,
// run inside hosts `a` (198.18.0.1/24) and `b` (198.18.0.2/24) of a namespaced LAN built for
// this file (test/integration/vip-lan.ts) and removed in after(). Nobody uses 198.18.0.99.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { type ProbeContext, probeFor } from '../../src/adapters/probes/index.js';
import type { CheckerConfig } from '../../src/core/config/types.js';
import { needs } from '../helpers/prereq.js';
import { type Lan, type LanHost, createLan, vipOf } from './vip-lan.js';

const never = new AbortController().signal;
const base = { intervalMs: 2000, timeoutMs: 1000, rise: 1, fall: 1 };
const vip = vipOf('198.18.0.100', 24);

describe('network probes in a namespaced LAN', needs('root', 'netns', 'arping'), () => {
  let lan: Lan;
  let a: LanHost;
  let b: LanHost;
  before(async () => {
    lan = await createLan(['a', 'b']);
    a = lan.hosts.a!;
    b = lan.hosts.b!;
  });
  after(async () => { await lan?.dispose(); });

  const ctx = (): ProbeContext => ({ moduleDir: '/', binDir: '/bin', node: 'a', module: 'app', vip: [vip], moduleState: () => undefined, exec: a.exec });
  const run = (cfg: CheckerConfig) => probeFor(cfg, ctx()).run(never);
  const hub = (...argv: string[]): void => { execFileSync('ip', ['-n', `${lan.prefix}-hub`, ...argv]); };

  test('ping: up when the address answers, down when nobody does', async () => {
    const up = await run({ ...base, type: 'ping', name: 'gw', address: b.addr4, action: 'wait' });
    assert.equal(up.ok, true);
    assert.match(up.detail, /^198\.18\.0\.2 answers \([\d.]+ ms\)$/);
    assert.deepEqual(await run({ ...base, type: 'ping', name: 'gw', address: '198.18.0.99', action: 'wait' }), { ok: false, detail: 'no answer from 198.18.0.99' });
    const v6 = await run({ ...base, type: 'ping', name: 'gw6', address: b.addr6, action: 'wait' });
    assert.equal(v6.ok, true, v6.detail);
  });

  test('interface: up with carrier; down when the cable is out or the NIC is down; a missing NIC says so', async () => {
    const nic = (name = 'eth0'): CheckerConfig => ({ ...base, type: 'interface', name: 'nic', interface: name, action: 'wait' });
    assert.deepEqual(await run(nic()), { ok: true, detail: 'eth0 is up with carrier (operstate UP)' });
    hub('link', 'set', 'a-e0', 'down');
    try {
      // The namespace's own sysfs would show the root namespace; `ip` must see a's eth0 lose carrier.
      assert.deepEqual(await run(nic()), { ok: false, detail: 'eth0 has no carrier (operstate DOWN)' });
    } finally {
      hub('link', 'set', 'a-e0', 'up');
    }
    await a.sh('ip', 'link', 'set', 'eth0', 'down');
    try {
      assert.deepEqual(await run(nic()), { ok: false, detail: 'eth0 is administratively down (operstate DOWN)' });
    } finally {
      await a.sh('ip', 'link', 'set', 'eth0', 'up');
    }
    assert.deepEqual(await run(nic('eth9')), { ok: false, detail: 'eth9 does not exist' });
    assert.equal((await run(nic())).ok, true, 'up again once the link is back');
  });

  test('vip: down when not configured here, up when held alone, down when another host answers for it too', async () => {
    const cfg: CheckerConfig = { ...base, type: 'vip', name: 'vip', action: 'stopstart' };
    assert.deepEqual(await run(cfg), { ok: false, detail: '198.18.0.100/24 is not configured on eth0' });
    await a.sh('ip', 'addr', 'add', vip.cidr, 'dev', 'eth0');
    try {
      assert.deepEqual(await run(cfg), { ok: true, detail: '198.18.0.100/24 held here, no other host answers' });
      await b.sh('ip', 'addr', 'add', vip.cidr, 'dev', 'eth0');
      try {
        assert.deepEqual(await run(cfg), { ok: false, detail: `198.18.0.100 is also answered by another host (${await b.mac()}) on eth0` });
      } finally {
        await b.sh('ip', 'addr', 'del', vip.cidr, 'dev', 'eth0');
      }
      assert.equal((await run(cfg)).ok, true, 'up again once the other host let it go');
    } finally {
      await a.sh('ip', 'addr', 'del', vip.cidr, 'dev', 'eth0');
    }
  });

  test('splitbrain: up when one witness answers, down when none does', async () => {
    const sb = (witnesses: string[]): CheckerConfig => ({ ...base, type: 'splitbrain', name: 'sb', witnesses, arbitrator: undefined });
    assert.deepEqual(await run(sb(['198.18.0.99', b.addr4])), { ok: true, detail: 'witness 198.18.0.2 answers' });
    assert.deepEqual(await run(sb(['198.18.0.99'])), { ok: false, detail: 'no witness answers (no answer from 198.18.0.99)' });
  });
});
