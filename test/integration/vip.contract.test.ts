// Contract of the VIP seam (STYLE.md 3, 4; issue 3 item 4; promises in src/adapters/vip/vip.ts):
// the same checks against FakeVipManager and against IpVipManager on two hosts `a` and `b` of a
// namespaced LAN (198.18.0.1/24 + 2001:2::1/64 and 198.18.0.2/24 + 2001:2::2/64).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLan, FakeVipManager, IpVipManager, type VipManager } from '../../src/adapters/vip/index.js';
import { isHakitError } from '../../src/core/errors.js';
import { needs } from '../helpers/prereq.js';
import { type Lan, createLan, vipOf } from './vip-lan.js';

interface Harness {
  a: VipManager;
  b: VipManager;
  /** The MAC with which `b` answers on the LAN. */
  bMac(): Promise<string>;
}

interface Kind {
  opts: { skip?: string };
  setup(): Promise<Harness>;
  teardown(): Promise<void>;
}

let lan: Lan | undefined;
const kinds: Record<string, () => Kind> = {
  fake: () => ({
    opts: {},
    async setup() {
      const seg = new FakeLan();
      const b = new FakeVipManager({ lan: seg, mac: '02:00:00:00:00:0b' });
      return { a: new FakeVipManager({ lan: seg, mac: '02:00:00:00:00:0a' }), b, bMac: async () => b.mac };
    },
    async teardown() {},
  }),
  ip: () => ({
    opts: needs('root', 'netns', 'arping'),
    async setup() {
      lan = await createLan(['a', 'b']);
      const { a, b } = lan.hosts;
      assert.ok(a && b);
      return { a: new IpVipManager({ exec: a.exec }), b: new IpVipManager({ exec: b.exec }), bMac: () => b.mac() };
    },
    async teardown() {
      await lan?.dispose();
    },
  }),
};

// Each test uses its own addresses, so one failing test leaves nothing in the way of the next.
let next = 100;
const fresh4 = (prefix = 24) => vipOf(`198.18.0.${next++}`, prefix);
const fresh6 = () => vipOf(`2001:2::${(next++).toString(16)}`, 64);

for (const [name, makeKind] of Object.entries(kinds)) {
  const kind = makeKind();
  describe(`VipManager contract: ${name}`, kind.opts, () => {
    let h: Harness;
    before(async () => { h = await kind.setup(); });
    after(async () => { await kind.teardown(); });

    test('add makes the node hold the VIP; the other node does not', async () => {
      const vip = fresh4();
      assert.equal(await h.a.holds(vip), false);
      assert.deepEqual(await h.a.add(vip), { ok: true });
      assert.equal(await h.a.holds(vip), true);
      assert.equal(await h.b.holds(vip), false);
    });

    test('a /32 VIP works like any other', async () => {
      const vip = fresh4(32);
      assert.deepEqual(await h.a.add(vip), { ok: true });
      assert.equal(await h.a.holds(vip), true);
      assert.equal(await h.a.holds({ ...vip, prefix: 24, cidr: `${vip.address}/24` }), false, 'holds matches the exact prefix');
      await h.a.remove(vip);
      assert.equal(await h.a.holds(vip), false);
    });

    test('add is idempotent: adding a held VIP again succeeds and one remove takes it away', async () => {
      const vip = fresh4();
      assert.deepEqual(await h.a.add(vip), { ok: true });
      assert.deepEqual(await h.a.add(vip), { ok: true }, 'the duplicate check must not find the node itself');
      assert.equal(await h.a.holds(vip), true);
      await h.a.remove(vip);
      assert.equal(await h.a.holds(vip), false);
    });

    test('concurrent adds of one VIP both succeed', async () => {
      const vip = fresh4();
      const [r1, r2] = await Promise.all([h.a.add(vip), h.a.add(vip)]);
      assert.deepEqual([r1, r2], [{ ok: true }, { ok: true }]);
      assert.equal(await h.a.holds(vip), true);
      await h.a.remove(vip);
    });

    test('remove, then remove again, then remove on a missing interface: all fine', async () => {
      const vip = fresh4();
      assert.deepEqual(await h.a.add(vip), { ok: true });
      await h.a.remove(vip);
      assert.equal(await h.a.holds(vip), false);
      await h.a.remove(vip);
      await h.a.remove({ ...vip, interface: 'nosuch0' });
      assert.equal(await h.a.holds(vip), false);
    });

    test('remove takes only the exact cidr: the same address with another prefix is another VIP', async () => {
      const vip = fresh4();
      assert.deepEqual(await h.a.add(vip), { ok: true });
      await h.a.remove({ ...vip, prefix: 32, cidr: `${vip.address}/32` });
      assert.equal(await h.a.holds(vip), true);
      await h.a.remove(vip);
    });

    test('a missing interface gives no-interface with a detail naming it, and nothing is held', async () => {
      const vip = { ...fresh4(), interface: 'nosuch0' };
      const r = await h.a.add(vip);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.reason === 'no-interface', JSON.stringify(r));
      assert.match(r.detail, /nosuch0/);
      assert.match(r.detail, /does not exist/);
      assert.equal(await h.a.holds(vip), false);
    });

    test('conflict: when b holds the VIP, a.add answers conflict with b\'s MAC and a does not hold it', async () => {
      const vip = fresh4();
      assert.deepEqual(await h.b.add(vip), { ok: true });
      const r = await h.a.add(vip);
      assert.ok(!r.ok && r.reason === 'conflict', JSON.stringify(r));
      const mac = await h.bMac();
      assert.equal(r.mac, mac);
      assert.match(r.detail, new RegExp(vip.address.replace(/\./g, '\\.')));
      assert.equal(await h.a.holds(vip), false);
      assert.equal(await h.b.holds(vip), true, 'the holder keeps it');
      // Once b lets go, a can take it: a VIP move.
      await h.b.remove(vip);
      assert.deepEqual(await h.a.add(vip), { ok: true });
      assert.equal(await h.a.holds(vip), true);
      assert.equal(await h.b.holds(vip), false);
      await h.a.remove(vip);
    });

    test('IPv6: add, hold, idempotent add, remove', async () => {
      const vip = fresh6();
      assert.deepEqual(await h.a.add(vip), { ok: true });
      assert.equal(await h.a.holds(vip), true);
      assert.equal(await h.b.holds(vip), false);
      assert.deepEqual(await h.a.add(vip), { ok: true });
      await h.a.remove(vip);
      assert.equal(await h.a.holds(vip), false);
      await h.a.remove(vip);
    });

    test('IPv6 conflict: when b holds the VIP, a.add answers conflict and a does not hold it', async () => {
      const vip = fresh6();
      assert.deepEqual(await h.b.add(vip), { ok: true });
      const r = await h.a.add(vip);
      assert.ok(!r.ok && r.reason === 'conflict', JSON.stringify(r));
      assert.equal(r.mac, await h.bMac());
      assert.equal(await h.a.holds(vip), false);
      await h.b.remove(vip);
      assert.deepEqual(await h.a.add(vip), { ok: true });
      await h.a.remove(vip);
    });

    test('announce of a VIP this node does not hold is refused with HAKIT_E_VIP', async () => {
      const vip = fresh4();
      await assert.rejects(h.a.announce(vip), (e) => isHakitError(e) && e.code === 'HAKIT_E_VIP' && /does not hold/.test(e.message));
      assert.deepEqual(await h.a.add(vip), { ok: true });
      await h.a.announce(vip);
      await h.a.remove(vip);
    });
  });
}
