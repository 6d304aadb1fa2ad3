// The VIP adapter without root (issue 3 item 4): IpVipManager's reading of the tools' exit
// statuses and outputs, driven by a scripted Exec that models one interface; FakeVipManager's
// extras; KeyedQueue ordering. The same behaviour on a real LAN: test/integration/vip.*.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Exec, type ExecResult, FakeLan, FakeVipManager, IpVipManager, KeyedQueue } from '../../src/adapters/vip/index.js';
import type { VipConfig } from '../../src/core/config/types.js';
import { isHakitError } from '../../src/core/errors.js';

const MAC = '02:18:00:00:00:0a';
const OTHER = '02:18:00:00:00:0b';
const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const vip4: VipConfig = { address: '198.18.0.100', prefix: 24, family: 4, cidr: '198.18.0.100/24', interface: 'eth0' };
const vip6: VipConfig = { address: '2001:2::100', prefix: 64, family: 6, cidr: '2001:2::100/64', interface: 'eth0' };

/**
 * A model of one host with one interface for the commands IpVipManager runs. `answer` decides
 * what the duplicate-check and announce tools return; `calls` records every argv.
 */
function host(opts: { ifname?: string; answer?: (argv: readonly string[]) => ExecResult | undefined } = {}) {
  const ifname = opts.ifname ?? 'eth0';
  const addrs: { family: string; local: string; prefixlen: number }[] = [{ family: 'inet', local: '198.18.0.1', prefixlen: 24 }];
  const calls: string[][] = [];
  const exec: Exec = async (argv) => {
    calls.push([...argv]);
    const custom = opts.answer?.(argv);
    if (custom) return custom;
    const line = argv.join(' ');
    const dev = argv[argv.indexOf('dev') + 1];
    if (argv[0] === 'ip' && dev !== undefined && dev !== ifname) return { code: 1, stdout: '', stderr: `Device "${dev}" does not exist.\n` };
    if (line.startsWith('ip -j addr show dev')) return ok(JSON.stringify([{ ifindex: 2, ifname, address: MAC, addr_info: addrs }]));
    if (line.startsWith('ip addr add')) {
      const [local, len] = (argv[3] ?? '').split('/');
      addrs.push({ family: local?.includes(':') ? 'inet6' : 'inet', local: local ?? '', prefixlen: Number(len) });
      return ok();
    }
    if (line.startsWith('ip addr del')) {
      const i = addrs.findIndex((a) => `${a.local}/${a.prefixlen}` === argv[3]);
      if (i < 0) return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Cannot assign requested address\n' };
      addrs.splice(i, 1);
      return ok();
    }
    if (argv[0] === 'arping' && argv.includes('-0')) return { code: 1, stdout: '', stderr: '' }; // nobody answers
    if (argv[0] === 'arping' && argv.includes('-U')) return { code: 1, stdout: '', stderr: '' }; // unsolicited: no reply
    if (argv[0] === 'ping') return { code: 1, stdout: '', stderr: '' };
    if (line.startsWith('ip -6 -j neigh show')) return ok(JSON.stringify([{ dst: vip6.address, state: ['INCOMPLETE'] }]));
    return ok();
  };
  const has = (cidr: string) => addrs.some((a) => `${a.local}/${a.prefixlen}` === cidr);
  return { exec, calls, has, ran: (prefix: string) => calls.filter((c) => c.join(' ').startsWith(prefix)) };
}

describe('IpVipManager with a scripted host', () => {
  test('IPv4 add: ARP probe from 0.0.0.0 (Habets arping flags), ip addr add, then announce', async () => {
    const h = host();
    assert.deepEqual(await new IpVipManager({ exec: h.exec, dadTimeoutMs: 400 }).add(vip4), { ok: true });
    assert.ok(h.has('198.18.0.100/24'));
    const lines = h.calls.map((c) => c.join(' '));
    const probe = lines.findIndex((l) => l.startsWith('arping -r -0 -C 1 -c 2 -W 0.200 -w 0.400 -i eth0 198.18.0.100'));
    const add = lines.indexOf('ip addr add 198.18.0.100/24 dev eth0');
    const notify = lines.indexOf('sysctl -q -w net/ipv4/conf/eth0/arp_notify=1');
    const trick = lines.indexOf(`ip link set dev eth0 address ${MAC}`);
    const garp = lines.indexOf('arping -q -U -S 198.18.0.100 -c 1 -w 0 -i eth0 198.18.0.100');
    assert.ok(probe >= 0 && probe < add && add < notify && notify < trick && trick < garp, lines.join('\n'));
  });

  test('arping exit 0 means another host answered: conflict with its MAC, nothing added', async () => {
    const h = host({ answer: (argv) => (argv[0] === 'arping' && argv.includes('-0') ? ok(`${OTHER}\n`) : undefined) });
    const r = await new IpVipManager({ exec: h.exec }).add(vip4);
    assert.deepEqual(r, { ok: false, reason: 'conflict', mac: OTHER, detail: `198.18.0.100 is already answered by another host (${OTHER}) on eth0; not added` });
    assert.equal(h.has('198.18.0.100/24'), false);
    assert.equal(h.ran('ip addr add').length, 0);
  });

  test('arping exit 1 with an error on stderr is an error, not "free"', async () => {
    const h = host({ answer: (argv) => (argv[0] === 'arping' ? { code: 1, stdout: '', stderr: 'arping: libnet_init(LIBNET_LINK, eth0): permission denied\n' } : undefined) });
    const r = await new IpVipManager({ exec: h.exec }).add(vip4);
    assert.ok(!r.ok && r.reason === 'error', JSON.stringify(r));
    assert.match(r.detail, /HAKIT_E_VIP/);
    assert.match(r.detail, /permission denied/);
    assert.equal(h.has('198.18.0.100/24'), false);
  });

  test('a failed announcement rolls the add back: ok:false leaves the VIP not held', async () => {
    const h = host({ answer: (argv) => (argv[0] === 'ip' && argv[1] === 'link' ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted\n' } : undefined) });
    const m = new IpVipManager({ exec: h.exec });
    const r = await m.add(vip4);
    assert.ok(!r.ok && r.reason === 'error' && /Operation not permitted/.test(r.detail), JSON.stringify(r));
    assert.equal(h.has('198.18.0.100/24'), false);
    assert.equal(await m.holds(vip4), false);
  });

  test('a held VIP is announced again without a duplicate check', async () => {
    const h = host();
    const m = new IpVipManager({ exec: h.exec });
    await m.add(vip4);
    h.calls.length = 0;
    assert.deepEqual(await m.add(vip4), { ok: true });
    assert.equal(h.ran('arping -r -0').length, 0);
    assert.equal(h.ran('ip link set dev eth0 address').length, 1);
    assert.equal(h.ran('sysctl').length, 0, 'the sysctls are set once per interface');
  });

  test('a dotted interface name keeps its dots in the sysctl key', async () => {
    const h = host({ ifname: 'eth0.100' });
    assert.deepEqual(await new IpVipManager({ exec: h.exec }).add({ ...vip4, interface: 'eth0.100' }), { ok: true });
    assert.ok(h.ran('sysctl -q -w net/ipv4/conf/eth0.100/arp_notify=1').length === 1, h.calls.map((c) => c.join(' ')).join('\n'));
  });

  test('a missing tool makes add answer error naming the package, and holds reject with HAKIT_E_MISSING_TOOL', async () => {
    const exec: Exec = async () => { throw Object.assign(new Error('spawn ip ENOENT'), { code: 'ENOENT' }); };
    const m = new IpVipManager({ exec });
    const r = await m.add(vip4);
    assert.ok(!r.ok && r.reason === 'error' && /HAKIT_E_MISSING_TOOL/.test(r.detail) && /iproute2/.test(r.detail), JSON.stringify(r));
    await assert.rejects(m.holds(vip4), (e) => isHakitError(e) && e.code === 'HAKIT_E_MISSING_TOOL');
  });

  test('IPv6 add: neighbour entry flushed, one ping as the probe, added with nodad, ndisc_notify set', async () => {
    const h = host();
    assert.deepEqual(await new IpVipManager({ exec: h.exec }).add(vip6), { ok: true });
    const lines = h.calls.map((c) => c.join(' '));
    const flush = lines.indexOf('ip -6 neigh flush to 2001:2::100 dev eth0');
    const ping = lines.indexOf('ping -6 -n -q -c 1 -W 0.200 -I eth0 2001:2::100');
    const add = lines.indexOf('ip addr add 2001:2::100/64 dev eth0 nodad');
    assert.ok(flush >= 0 && flush < ping && ping < add, lines.join('\n'));
    assert.ok(lines.includes('sysctl -q -w net/ipv6/conf/eth0/ndisc_notify=1'));
    assert.equal(h.ran('arping').length, 0, 'no arping for IPv6');
  });

  test('IPv6: a host that drops echo requests but answered the solicitation is a conflict', async () => {
    const h = host({ answer: (argv) => (argv.join(' ').startsWith('ip -6 -j neigh show') ? ok(JSON.stringify([{ dst: vip6.address, lladdr: OTHER, state: ['REACHABLE'] }])) : undefined) });
    const r = await new IpVipManager({ exec: h.exec }).add(vip6);
    assert.deepEqual(r, { ok: false, reason: 'conflict', mac: OTHER, detail: `2001:2::100 is already answered by another host (${OTHER}) on eth0; not added` });
  });

  test('IPv6: no route to the VIP (ping exit 2) is an error that says what to configure', async () => {
    const h = host({ answer: (argv) => (argv[0] === 'ping' ? { code: 2, stdout: '', stderr: 'ping: connect: Network is unreachable\n' } : undefined) });
    const r = await new IpVipManager({ exec: h.exec }).add(vip6);
    assert.ok(!r.ok && r.reason === 'error', JSON.stringify(r));
    assert.match(r.detail, /Network is unreachable/);
    assert.match(r.detail, /address in the VIP's prefix/);
    assert.equal(h.has('2001:2::100/64'), false);
  });

  test('remove sets promote_secondaries first and deletes only the exact cidr', async () => {
    const h = host();
    const m = new IpVipManager({ exec: h.exec });
    await m.add(vip4);
    await m.remove(vip4);
    assert.equal(h.has('198.18.0.100/24'), false);
    assert.ok(h.has('198.18.0.1/24'));
    assert.equal(h.ran('ip addr del').length, 1);
    assert.deepEqual(h.ran('ip addr del')[0], ['ip', 'addr', 'del', '198.18.0.100/24', 'dev', 'eth0']);
    assert.equal(h.ran('sysctl -q -w net/ipv4/conf/eth0/promote_secondaries=1').length, 1);
  });
});

describe('FakeVipManager extras', () => {
  test('an address taken by a host outside hakit is a conflict; the holder\'s MAC is reported', async () => {
    const m = new FakeVipManager();
    m.takenByOther(vip4.address, OTHER);
    const r = await m.add(vip4);
    assert.ok(!r.ok && r.reason === 'conflict' && r.mac === OTHER, JSON.stringify(r));
    m.lan.release(vip4.address, OTHER);
    assert.deepEqual(await m.add(vip4), { ok: true });
  });

  test('announcements are recorded, and a move between two nodes changes who answers', async () => {
    const lan = new FakeLan();
    const a = new FakeVipManager({ lan, mac: '02:00:00:00:00:0a' });
    const b = new FakeVipManager({ lan, mac: '02:00:00:00:00:0b' });
    await b.add(vip4);
    assert.deepEqual(lan.answering(vip4.address), ['02:00:00:00:00:0b']);
    await b.remove(vip4);
    await a.add(vip4);
    await a.announce(vip4);
    assert.deepEqual(lan.answering(vip4.address), ['02:00:00:00:00:0a']);
    assert.deepEqual(a.announcements, [
      { address: vip4.address, interface: 'eth0', mac: '02:00:00:00:00:0a' },
      { address: vip4.address, interface: 'eth0', mac: '02:00:00:00:00:0a' },
    ]);
    assert.deepEqual(a.heldCidrs(), ['eth0:198.18.0.100/24']);
  });

  test('failWith makes add answer error and remove/announce reject, until healed', async () => {
    const m = new FakeVipManager();
    await m.add(vip4);
    m.failWith('RTNETLINK answers: Operation not permitted');
    assert.deepEqual(await m.add(vip6), { ok: false, reason: 'error', detail: 'RTNETLINK answers: Operation not permitted' });
    await assert.rejects(m.remove(vip4), (e) => isHakitError(e) && e.code === 'HAKIT_E_VIP');
    await assert.rejects(m.announce(vip4), (e) => isHakitError(e) && e.code === 'HAKIT_E_VIP');
    m.failWith(undefined);
    await m.remove(vip4);
    assert.equal(await m.holds(vip4), false);
  });
});

test('KeyedQueue runs one key in call order, survives a failure, and lets other keys pass', async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => { release = r; });
  const first = q.run('k', async () => { await gate; log.push('k1'); });
  const failing = q.run('k', async () => { log.push('k2'); throw new Error('boom'); });
  const third = q.run('k', async () => { log.push('k3'); });
  await q.run('other', async () => { log.push('o1'); });
  assert.deepEqual(log, ['o1'], 'another key is not held up by a busy one');
  release();
  await first;
  await assert.rejects(failing, /boom/);
  await third;
  assert.deepEqual(log, ['o1', 'k1', 'k2', 'k3']);
});
