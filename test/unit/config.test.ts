// Defends DESIGN.md 6 (the configuration format): good configs parse into the typed config with
// units resolved (ms, bytes), defaults applied (src/core/config/defaults.ts), addresses in
// canonical form; and the parser's own helpers (units, IP addresses) keep their contracts.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigDir } from '../../src/adapters/configfs/index.js';
import {
  DEFAULTS, formatDuration, formatSize, parseBandwidth, parseConfig, parseDuration, parseHostPort, parseIp, parseIpPrefix, parseSize,
  type ConfigResult, type HakitConfig, type MirrorModuleConfig, type ModuleConfig,
} from '../../src/core/config/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const good = (name: string) => join(root, 'test', 'fixtures', 'config', 'good', name);

/** Loads a good fixture; fails on errors and on warnings other than the key file's mode (git checks files out 0644). */
function load(name: string): HakitConfig {
  const res: ConfigResult = loadConfigDir(good(name));
  if (!res.ok) assert.fail(`${name} refused:\n${res.errors.map((e) => `${e.file}:${e.line}: ${e.field}: ${e.message}`).join('\n')}`);
  assert.deepEqual(res.warnings.filter((w) => w.field !== 'cluster.key_file'), []);
  return res.config;
}

function mod(c: HakitConfig, name: string): ModuleConfig {
  const m = c.modules.find((x) => x.name === name);
  assert.ok(m, `module ${name}`);
  return m;
}

function mirror(c: HakitConfig, name: string): MirrorModuleConfig {
  const m = mod(c, name);
  assert.equal(m.kind, 'mirror');
  return m as MirrorModuleConfig;
}

const defaultScripts = { timeoutMs: DEFAULTS.scripts.timeoutMs, stopTimeoutMs: DEFAULTS.scripts.stopTimeoutMs };
const defaultMaxloop = { count: DEFAULTS.maxloop.count, windowMs: DEFAULTS.maxloop.windowMs };
const checkerDefaults = { intervalMs: 2000, timeoutMs: 2000, rise: 1, fall: 2 };

describe('good configs', () => {
  test('the DESIGN.md section 6 example: every value typed, units resolved, defaults applied', () => {
    const c = load('design-example');
    assert.deepEqual(c.cluster, {
      name: 'demo',
      keyFile: join(good('design-example'), 'cluster.key'),
      networks: ['lan', 'hb2'],
      nodes: [
        { name: 'n1', addresses: { lan: '198.18.0.1', hb2: '198.19.0.1' } },
        { name: 'n2', addresses: { lan: '198.18.0.2', hb2: '198.19.0.2' } },
      ],
    });
    assert.deepEqual(c.modules, [{
      name: 'app',
      kind: 'mirror',
      nodes: ['n1', 'n2'],
      defaultPrimary: 'n1',
      failover: true,
      heartbeat: { networks: ['lan', 'hb2'], pulseMs: 250, timeoutMs: 2000 },
      vip: [{ address: '198.18.0.100', prefix: 24, family: 4, cidr: '198.18.0.100/24', interface: 'eth0' }],
      scripts: defaultScripts,
      maxloop: defaultMaxloop,
      replication: { dirs: [{ path: '/srv/app/data', exclude: ['*.tmp'] }], timeoutMs: 3000, zoneSizeBytes: 1024 * 1024, resyncBandwidthBytesPerSec: undefined, port: undefined },
      checkers: [
        { type: 'tcp', name: 'app', host: '127.0.0.1', port: 8080, action: 'restart', ...checkerDefaults },
        { type: 'splitbrain', name: 'splitbrain', witnesses: ['198.18.0.254'], arbitrator: undefined, ...checkerDefaults },
      ],
    }]);
  });

  test('a farm module of 3 nodes: farm defaults, no replication, heartbeat networks from cluster.yaml', () => {
    const c = load('farm');
    assert.deepEqual(c.modules, [{
      name: 'web',
      kind: 'farm',
      nodes: ['w1', 'w2', 'w3'],
      failover: true,
      heartbeat: { networks: ['lan'], pulseMs: 250, timeoutMs: 2000 },
      vip: [{ address: '198.18.0.80', prefix: 24, family: 4, cidr: '198.18.0.80/24', interface: 'eth0' }],
      scripts: defaultScripts,
      maxloop: defaultMaxloop,
      farm: { ports: [80, 443], protocol: 'tcp' },
      checkers: [{ type: 'http', name: 'http', url: 'http://127.0.0.1:80/health', status: 200, body: '^ok', action: 'restart', ...checkerDefaults }],
    }]);
  });

  test('IPv6: node addresses and VIPs in canonical RFC 5952 form, bracketed tcp target, "last" as default primary', () => {
    const c = load('ipv6-vip');
    assert.deepEqual(c.cluster.nodes, [{ name: 'a', addresses: { lan6: '2001:2::1' } }, { name: 'b', addresses: { lan6: '2001:2::2' } }]);
    const m = mirror(c, 'app');
    assert.equal(m.defaultPrimary, 'last');
    assert.deepEqual(m.nodes, ['b', 'a']);
    assert.deepEqual(m.vip, [
      { address: '2001:2::100', prefix: 64, family: 6, cidr: '2001:2::100/64', interface: 'eth0' },
      { address: '198.18.0.100', prefix: 24, family: 4, cidr: '198.18.0.100/24', interface: 'eth0' },
    ]);
    assert.deepEqual(m.replication.dirs, [{ path: '/srv/app/data', exclude: [] }]);
    assert.deepEqual(m.checkers.map((x) => x.type === 'tcp' ? [x.host, x.port] : x.type === 'splitbrain' ? x.witnesses : x.type), [
      ['2001:2::fe', '198.18.0.254'], ['2001:2::1', 8080],
    ]);
  });

  test('two mirror modules back each other up (active/active): own primary, VIP, dirs, heartbeat', () => {
    const c = load('active-active');
    const app = mirror(c, 'app');
    const db = mirror(c, 'db');
    assert.deepEqual(c.modules.map((m) => m.name), ['app', 'db']);
    assert.equal(app.defaultPrimary, 'n1');
    assert.equal(db.defaultPrimary, 'n2');
    assert.deepEqual(app.replication.dirs, [{ path: '/srv/app', exclude: ['*.tmp', 'cache/'] }]);
    assert.deepEqual(db.replication.dirs.map((d) => d.path), ['/srv/db', '/var/lib/db']);
    assert.equal(db.replication.timeoutMs, 500);
    assert.deepEqual(app.heartbeat, { networks: ['lan', 'hb2'], pulseMs: 250, timeoutMs: 2000 });
    assert.deepEqual(db.heartbeat, { networks: ['hb2', 'lan'], pulseMs: 100, timeoutMs: 1000 });
    assert.deepEqual(app.checkers[1], { type: 'module', name: 'module', module: 'db', states: ['PRIM', 'ALONE'], action: 'wait', ...checkerDefaults });
  });

  test('every checker type, with explicit values and with defaults', () => {
    const c = load('all-checkers');
    const app = mirror(c, 'app');
    assert.equal(app.failover, false);
    assert.deepEqual(app.scripts, { timeoutMs: 120_000, stopTimeoutMs: 30_000 });
    assert.deepEqual(app.maxloop, { count: 5, windowMs: 3_600_000 });
    assert.equal(app.replication.zoneSizeBytes, 64 * 1024);
    assert.equal(app.replication.resyncBandwidthBytesPerSec, 50 * 1024 * 1024);
    assert.deepEqual(app.checkers, [
      { type: 'tcp', name: 'app', host: 'localhost', port: 8080, action: 'restart', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3 },
      { type: 'http', name: 'http', url: 'https://198.18.0.100/', status: 204, body: undefined, action: 'restart', ...checkerDefaults },
      { type: 'process', name: 'process', match: { by: 'name', name: 'nginx' }, min: 2, max: 8, class: 'both', action: 'stopstart', ...checkerDefaults },
      { type: 'process', name: 'worker', match: { by: 'cmdline', pattern: '^/usr/bin/worker --queue' }, min: 1, max: undefined, class: 'prim', action: 'stopstart', ...checkerDefaults },
      { type: 'process', name: 'pid', match: { by: 'pidfile', path: '/run/app.pid' }, min: 1, max: undefined, class: 'prim', action: 'stop', ...checkerDefaults },
      { type: 'ping', name: 'ping', address: '198.18.0.254', action: 'wait', ...checkerDefaults },
      { type: 'interface', name: 'interface', interface: 'eth0', action: 'none', ...checkerDefaults },
      { type: 'vip', name: 'vip', action: 'stopstart', ...checkerDefaults },
      { type: 'custom', name: 'custom', command: 'check-db', args: ['--fast', '-q'], action: 'restart', ...checkerDefaults },
      { type: 'module', name: 'module', module: 'other', states: ['UP'], action: 'wait', ...checkerDefaults },
      { type: 'splitbrain', name: 'splitbrain', witnesses: ['198.18.0.254', '198.18.0.253'], arbitrator: undefined, intervalMs: 500, timeoutMs: 500, rise: 1, fall: 2 },
    ]);
    assert.deepEqual((mod(c, 'other') as { farm: unknown }).farm, { ports: [], protocol: 'udp' });
  });
});

describe('warnings (the config is valid, the risk is printed)', () => {
  const files = (module: string) => ({
    dir: '/etc/hakit',
    cluster: { path: '/etc/hakit/cluster.yaml', text: 'cluster: { name: c, key_file: cluster.key }\nnetworks: [lan]\nnodes:\n  - { name: n1, addresses: { lan: 198.18.0.1 } }\n  - { name: n2, addresses: { lan: 198.18.0.2 } }\n' },
    modules: [{ name: 'app', path: '/etc/hakit/modules/app/module.yaml', text: module }],
  });

  test('one heartbeat network without a splitbrain checker warns of two primaries', () => {
    const res = parseConfig(files('kind: mirror\nnodes: [n1, n2]\n'), { keyFile: () => ({ kind: 'file', mode: 0o600, size: 32 }) });
    assert.ok(res.ok);
    assert.deepEqual(res.warnings.map((w) => [w.file, w.line, w.field]), [['modules/app/module.yaml', 2, 'nodes']]);
    assert.match(res.warnings[0]!.message, /both nodes become primary/);
  });

  test('a key file readable by others warns with the mode and the fix', () => {
    const res = parseConfig(files('kind: mirror\nnodes: [n1, n2]\ncheckers: [{ type: splitbrain, witnesses: [198.18.0.254] }]\n'),
      { keyFile: () => ({ kind: 'file', mode: 0o644, size: 32 }) });
    assert.ok(res.ok);
    assert.equal(res.warnings.length, 1);
    assert.match(res.warnings[0]!.message, /mode 0644\); run chmod 600/);
  });
});

describe('units', () => {
  test('durations resolve to milliseconds; a unit is required', () => {
    assert.deepEqual([parseDuration('250ms'), parseDuration('2s'), parseDuration('1m'), parseDuration('1h')].map((r) => r.ok && r.value), [250, 2000, 60_000, 3_600_000]);
    for (const bad of ['250', '1.5s', '-1s', '0s', '2 s', '5min', '', 'ms']) assert.equal(parseDuration(bad).ok, false, bad);
    assert.equal(parseDuration(250).ok, false);
  });

  test('sizes are binary and resolve to bytes; decimal units are refused with the binary spelling', () => {
    assert.deepEqual([parseSize('4096B'), parseSize('64KiB'), parseSize('1MiB'), parseSize('1GiB')].map((r) => r.ok && r.value), [4096, 65_536, 1_048_576, 1_073_741_824]);
    const kb = parseSize('64KB');
    assert.ok(!kb.ok);
    assert.match(kb.message, /write 64KiB/);
    assert.deepEqual([parseBandwidth('50MiB'), parseBandwidth('50MiB/s')].map((r) => r.ok && r.value), [52_428_800, 52_428_800]);
  });

  test('a fraction is refused with the exact value in the smaller unit', () => {
    const r = parseDuration('1.5s');
    assert.ok(!r.ok);
    assert.match(r.message, /write 1500ms/);
    const r2 = parseDuration('0.1s');
    assert.ok(!r2.ok);
    assert.match(r2.message, /write 100ms/);
  });

  test('formatting picks the largest exact unit', () => {
    assert.deepEqual([formatDuration(250), formatDuration(2000), formatDuration(300_000), formatDuration(1500)], ['250ms', '2s', '5m', '1500ms']);
    assert.deepEqual([formatSize(1_048_576), formatSize(1000), formatSize(65_536)], ['1MiB', '1000B', '64KiB']);
  });
});

describe('IP addresses', () => {
  test('IPv6 is canonicalized (RFC 5952) so two spellings compare equal', () => {
    const cases: [string, string][] = [
      ['2001:0002:0000:0000:0000:0000:0000:0001', '2001:2::1'], ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1'], ['::', '::'], ['::1', '::1'],
      ['2001:DB8::A', '2001:db8::a'], ['1:0:1:1:1:1:1:1', '1:0:1:1:1:1:1:1'],
    ];
    for (const [text, canon] of cases) {
      const r = parseIp(text);
      assert.ok(r.ok, text);
      assert.equal(r.value.address, canon, text);
    }
  });

  test('bad addresses are refused with the reason', () => {
    const reasons: [string, RegExp][] = [
      ['198.18.0.256', /0 to 255/], ['198.018.0.1', /leading zeros/], ['198.18.0', /4 numbers/], ['2001:2::1::5', /only once/],
      ['2001:2:0:0:0:0:0:0:2', /8 groups/], ['fe80::1%eth0', /zone ids/], ['198.18.0.1/24', /without a prefix/],
    ];
    for (const [text, why] of reasons) {
      const r = parseIp(text);
      assert.ok(!r.ok, text);
      assert.match(r.message, why, text);
    }
  });

  test('prefixes are required and bounded by the family', () => {
    const ok = parseIpPrefix('2001:2:0::100/64');
    assert.ok(ok.ok);
    assert.equal(ok.value.cidr, '2001:2::100/64');
    for (const bad of ['198.18.0.1', '198.18.0.1/33', '198.18.0.1/0', '2001:2::1/129', '198.18.0.1/024']) assert.equal(parseIpPrefix(bad).ok, false, bad);
  });

  test('host:port accepts IPv4, bracketed IPv6 and host names, with ports 1 to 65535', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:8080'), { ok: true, value: { host: '127.0.0.1', port: 8080 } });
    assert.deepEqual(parseHostPort('[2001:2:0::1]:80'), { ok: true, value: { host: '2001:2::1', port: 80 } });
    assert.deepEqual(parseHostPort('db.example:5432'), { ok: true, value: { host: 'db.example', port: 5432 } });
    for (const bad of ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '2001:2::1:80', 'a b:80']) assert.equal(parseHostPort(bad).ok, false, bad);
  });
});
