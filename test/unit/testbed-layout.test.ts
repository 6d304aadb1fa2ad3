// Defends DESIGN.md section 7 "The testbed": names carry the run prefix and fit the kernel's
// limits, addresses come from 198.18.0.0/15 and 2001:2::/48 only, each host's view of a shared
// path is its own directory, and fault rules drop exactly the pairs asked for.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HOST_RE, MAX_HOSTS, MAX_NETWORKS, PREFIX_RE, addr4, addr6, backingDir, bridgeName, checkMountPath,
  dropRules, faultTableScript, healScript, hostDir, hostPathOf, hubName, hubPortName, ifname, makePrefix,
  mntnsFile, netnsName, ownerFile, prefixOfNetns, subnet4, subnet6,
} from '../testbed/layout.js';
import { fuseMountPoints } from '../testbed/index.js';

/** A seeded source in [0, 1) (mulberry32), so prefixes are reproducible here. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** IPv4 dotted quad -> 32-bit number. */
function v4(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

describe('testbed layout: names', () => {
  test('prefixes match PREFIX_RE, also at the ends of the random range', () => {
    const r = seeded(7);
    for (let i = 0; i < 1000; i++) assert.match(makePrefix(r), PREFIX_RE);
    assert.equal(makePrefix(() => 0), 'hk0000');
    assert.equal(makePrefix(() => 0.999999), 'hkzzzz');
  });

  test('namespace names carry the prefix and give it back; foreign names give nothing', () => {
    assert.equal(netnsName('hkab12', 'n1'), 'hkab12-n1');
    assert.equal(hubName('hkab12'), 'hkab12-hub');
    assert.equal(prefixOfNetns('hkab12-n1'), 'hkab12');
    assert.equal(prefixOfNetns('hkab12-hub (id: 3)'), 'hkab12');
    assert.equal(prefixOfNetns('vipexp-a'), undefined);
    assert.equal(prefixOfNetns('hkab1-n1'), undefined);
    assert.equal(prefixOfNetns('hkAB12-n1'), undefined);
  });

  test('the longest host name still gives hub ports within the 15-character interface limit', () => {
    const longest = 'a'.repeat(12);
    assert.match(longest, HOST_RE);
    assert.doesNotMatch('a'.repeat(13), HOST_RE);
    for (let k = 0; k < MAX_NETWORKS; k++) assert.ok(hubPortName(longest, k).length <= 15, hubPortName(longest, k));
    assert.equal(hubPortName('n1', 1), 'n1-e1');
    assert.equal(ifname(0), 'eth0');
    assert.equal(ifname(1), 'eth1');
    assert.equal(bridgeName(1), 'br1');
  });

  test('paths: run directory under /run, host directories under /tmp', () => {
    assert.equal(ownerFile('hkab12'), '/run/hakit-testbed/hkab12/owner');
    assert.equal(mntnsFile('hkab12', 'n1'), '/run/hakit-testbed/hkab12/mnt-n1');
    assert.equal(hostDir('hkab12', 'n1'), '/tmp/hakit-testbed/hkab12/n1');
    assert.equal(backingDir('hkab12', 'n1', '/srv/app'), '/tmp/hakit-testbed/hkab12/n1/fs/srv/app');
  });
});

describe('testbed layout: addresses', () => {
  test('host i gets .i; the first networks are lan 198.18.0.0/24 and hb2 198.19.0.0/24', () => {
    assert.equal(addr4(0, 1), '198.18.0.1');
    assert.equal(addr4(1, 2), '198.19.0.2');
    assert.equal(subnet4(0), '198.18.0.0/24');
    assert.equal(subnet4(1), '198.19.0.0/24');
    assert.equal(addr6(0, 1), '2001:2::1');
    assert.equal(addr6(1, 10), '2001:2:0:1::a');
    assert.equal(subnet6(1), '2001:2:0:1::/64');
  });

  test('every address of every network and host lies in 198.18.0.0/15 or 2001:2::/48, none repeats', () => {
    const seen = new Set<string>();
    for (let k = 0; k < MAX_NETWORKS; k++) {
      for (let i = 1; i <= MAX_HOSTS; i++) {
        const a = addr4(k, i);
        assert.equal(v4(a) >>> 17, v4('198.18.0.0') >>> 17, `${a} outside 198.18.0.0/15`);
        assert.ok(v4(a) % 256 !== 0 && v4(a) % 256 !== 255, `${a} is a network or broadcast address`);
        const b = addr6(k, i);
        assert.match(b, /^2001:2:(:|0:[0-9a-f]{1,4}::)[0-9a-f]{1,4}$/, `${b} outside 2001:2::/48`);
        for (const x of [a, b]) {
          assert.ok(!seen.has(x), `${x} repeats`);
          seen.add(x);
        }
      }
    }
  });
});

describe('testbed layout: mount paths', () => {
  test('checkMountPath refuses what would break the host or hide the testbed', () => {
    assert.equal(checkMountPath('/srv/app'), undefined);
    assert.equal(checkMountPath('/var/lib/hakit'), undefined);
    for (const bad of ['srv/app', '/', '/srv//app', '/srv/./app', '/srv/../etc', '/proc/x', '/sys', '/dev/shm', '/run/x', '/srv/a b', '/tmp', '/tmp/hakit-testbed']) {
      assert.notEqual(checkMountPath(bad), undefined, bad);
    }
  });

  test('hostPathOf maps paths under a mount path to the host backing dir, longest match first', () => {
    const mps = ['/srv/app', '/srv/app2', '/var/lib/x'];
    assert.equal(hostPathOf('hkab12', 'n1', mps, '/srv/app'), '/tmp/hakit-testbed/hkab12/n1/fs/srv/app');
    assert.equal(hostPathOf('hkab12', 'n2', mps, '/srv/app/data/f'), '/tmp/hakit-testbed/hkab12/n2/fs/srv/app/data/f');
    assert.equal(hostPathOf('hkab12', 'n1', mps, '/srv/app2/f'), '/tmp/hakit-testbed/hkab12/n1/fs/srv/app2/f');
    assert.equal(hostPathOf('hkab12', 'n1', ['/srv', '/srv/app'], '/srv/app/f'), '/tmp/hakit-testbed/hkab12/n1/fs/srv/app/f');
    assert.equal(hostPathOf('hkab12', 'n1', mps, '/srv/application'), '/srv/application');
    assert.equal(hostPathOf('hkab12', 'n1', mps, '/etc/hosts'), '/etc/hosts');
  });
});

describe('testbed layout: fault rules', () => {
  test('dropRules drops each ordered pair, with numgen only below 100 %', () => {
    const all = dropRules([['n1-e0', 'n2-e0'], ['n2-e0', 'n1-e0']]);
    assert.deepEqual(all.trim().split('\n'), [
      'add rule bridge hakit_faults forward iifname "n1-e0" oifname "n2-e0" drop',
      'add rule bridge hakit_faults forward iifname "n2-e0" oifname "n1-e0" drop',
    ]);
    assert.equal(dropRules([['a-e0', 'b-e0']], 30).trim(), 'add rule bridge hakit_faults forward iifname "a-e0" oifname "b-e0" numgen random mod 100 < 30 drop');
    assert.equal(dropRules([]), '');
    assert.equal(dropRules([['a-e0', 'b-e0']], 100, 'udp').trim(), 'add rule bridge hakit_faults forward iifname "a-e0" oifname "b-e0" meta l4proto udp drop');
    for (const p of [0, 101, 2.5, -1]) assert.throws(() => dropRules([['a-e0', 'b-e0']], p), RangeError);
  });

  test('the fault table hooks bridge forwarding with policy accept, and heal flushes its chain', () => {
    assert.match(faultTableScript(), /table bridge hakit_faults \{[\s\S]*chain forward \{[\s\S]*type filter hook forward priority 0; policy accept;/);
    assert.equal(healScript(), 'flush chain bridge hakit_faults forward\n');
  });

  test('fuseMountPoints finds FUSE mounts (fuse, fuse.*, fuseblk) and decodes spaces', () => {
    const info = [
      '24 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '90 24 0:50 / /srv/app/data rw,nosuid,nodev - fuse.hakit hakit rw,user_id=0,group_id=0',
      '91 24 0:51 / /mnt/a\\040b rw - fuse dev rw',
      '92 24 0:52 / /mnt/blk rw - fuseblk /dev/sdb1 rw',
      '93 24 0:53 / /mnt/fusectl rw - fusectl fusectl rw',
      '',
    ].join('\n');
    assert.deepEqual(fuseMountPoints(info), ['/srv/app/data', '/mnt/a b', '/mnt/blk']);
  });
});
