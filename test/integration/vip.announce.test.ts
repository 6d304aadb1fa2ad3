// Real-only VIP behaviour (issue 3 item 4; DESIGN.md 7 "Virtual IP move"): a client that knows
// the VIP at b's MAC switches to a's MAC within 1 s of a taking the VIP over, without sending
// anything itself; each of the two announcement paths alone is enough for IPv4; removing a VIP
// never takes the node's own address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { type Exec, IpVipManager } from '../../src/adapters/vip/index.js';
import { needs } from '../helpers/prereq.js';
import { type Lan, type LanHost, createLan, vipOf } from './vip-lan.js';

/** Polls c's neighbour entry for `address` (reading it sends nothing) until it shows `mac`, for at most `ms`. */
async function seesWithin(c: LanHost, address: string, mac: string, ms: number): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  let last: string | undefined;
  for (;;) {
    last = (await c.neigh(address))?.lladdr;
    if (last === mac || Date.now() >= deadline) return last;
    await delay(20);
  }
}

/** An Exec that pretends commands matching `drop` succeeded without running them. */
function without(exec: Exec, drop: (argv: readonly string[]) => boolean): Exec {
  return async (argv, opts) => (drop(argv) ? { code: 0, stdout: '', stderr: '' } : exec(argv, opts));
}
const isMacTrick = (argv: readonly string[]): boolean => argv[0] === 'ip' && argv[1] === 'link' && argv[2] === 'set' && argv.includes('address');
const isArpingAnnounce = (argv: readonly string[]): boolean => argv[0] === 'arping' && argv.includes('-U');

describe('VIP move announced to a client (real)', needs('root', 'netns', 'arping'), () => {
  let lan: Lan;
  let a: LanHost;
  let b: LanHost;
  let c: LanHost;
  before(async () => {
    lan = await createLan(['a', 'b', 'c']);
    const h = lan.hosts;
    assert.ok(h.a && h.b && h.c);
    [a, b, c] = [h.a, h.b, h.c];
  });
  after(async () => { await lan?.dispose(); });

  /**
   * b holds `address`, c talks to it (so c's neighbour table has b's MAC), then the VIP moves to a
   * through `aExec`. Returns the MAC c shows within 1 s of a's add, and a's MAC.
   */
  async function move(address: string, prefix: number, aExec: Exec): Promise<{ seen: string | undefined; aMac: string; bMac: string }> {
    const vip = vipOf(address, prefix);
    const mb = new IpVipManager({ exec: b.exec });
    const ma = new IpVipManager({ exec: aExec });
    assert.deepEqual(await mb.add(vip), { ok: true });
    await c.sh('ping', vip.family === 6 ? '-6' : '-4', '-n', '-q', '-c', '1', '-W', '2', address);
    const bMac = await b.mac();
    const aMac = await a.mac();
    assert.equal((await c.neigh(address))?.lladdr, bMac, 'c knows the VIP at b\'s MAC');
    await mb.remove(vip);
    assert.deepEqual(await ma.add(vip), { ok: true });
    const seen = await seesWithin(c, address, aMac, 1000);
    await ma.remove(vip);
    return { seen, aMac, bMac };
  }

  test('IPv4: after the move c has a\'s MAC for the VIP within 1 s', async () => {
    const { seen, aMac, bMac } = await move('198.18.0.200', 24, a.exec);
    assert.notEqual(aMac, bMac);
    assert.equal(seen, aMac);
  });

  test('IPv4: the kernel announcement alone (arp_notify + own MAC) is enough', async () => {
    const { seen, aMac } = await move('198.18.0.201', 24, without(a.exec, isArpingAnnounce));
    assert.equal(seen, aMac);
  });

  test('IPv4: the arping -U -S second shot alone is enough', async () => {
    const { seen, aMac } = await move('198.18.0.202', 24, without(a.exec, isMacTrick));
    assert.equal(seen, aMac);
  });

  test('IPv4: without any announcement c keeps b\'s MAC (so the checks above can fail)', async () => {
    const { seen, bMac } = await move('198.18.0.203', 24, without(a.exec, (argv) => isMacTrick(argv) || isArpingAnnounce(argv)));
    assert.equal(seen, bMac);
  });

  test('IPv6: after the move c has a\'s MAC for the VIP within 1 s', async () => {
    const { seen, aMac } = await move('2001:2::200', 64, a.exec);
    assert.equal(seen, aMac);
  });

  test('removing a VIP that became the primary address of its subnet keeps the node\'s own address', async () => {
    // Make the VIP primary: take a's own address away, add the VIP, put the own address back (it
    // is now secondary). Without promote_secondaries, deleting the primary deletes the secondaries.
    await a.sh('sysctl', '-q', '-w', 'net.ipv4.conf.eth0.promote_secondaries=0');
    const vip = vipOf('198.18.0.210', 24);
    const m = new IpVipManager({ exec: a.exec });
    await a.sh('ip', 'addr', 'del', `${a.addr4}/24`, 'dev', 'eth0');
    try {
      assert.deepEqual(await m.add(vip), { ok: true });
      await a.sh('ip', 'addr', 'add', `${a.addr4}/24`, 'dev', 'eth0');
      await m.remove(vip);
      assert.equal(await m.holds(vip), false);
      const own = await a.sh('ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0');
      assert.match(own, new RegExp(`inet ${a.addr4.replace(/\./g, '\\.')}/24`), 'a keeps its own address');
    } finally {
      await a.sh('ip', 'addr', 'replace', `${a.addr4}/24`, 'dev', 'eth0');
    }
  });
});
