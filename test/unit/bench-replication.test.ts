// What the replicated-writes figure reads from dd and ping (issue 7 item 2): the MB/s and round
// trips it reports come from these lines, so a misread would put a wrong figure in the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fioCommand, parseDd, parseFio, parsePing } from '../../bench/figures/replication.js';

test('parseDd reads bytes and seconds of dd\'s transfer line (C locale), after the record counts', () => {
  const out = '256+0 records in\n256+0 records out\n268435456 bytes (268 MB, 256 MiB) copied, 1.23456 s, 217 MB/s\n';
  assert.deepEqual(parseDd(out), { bytes: 268435456, seconds: 1.23456 });
  assert.deepEqual(parseDd('0+0 records in\n0+0 records out\n0 bytes copied, 0.00113376 s, 0.0 kB/s\n'), { bytes: 0, seconds: 0.00113376 });
  assert.deepEqual(parseDd('1 bytes copied, 1.5e-05 s, 66.7 kB/s\n'), { bytes: 1, seconds: 1.5e-5 });
});

test('parseDd throws, quoting dd, when there is no transfer line (dd failed or another locale)', () => {
  assert.throws(() => parseDd('dd: failed to open \'/srv/x\': Read-only file system\n'), /Read-only file system/);
  assert.throws(() => parseDd('268435456 Bytes (268 MB, 256 MiB) kopiert, 1,2 s, 217 MB/s\n'), /no transfer line/);
});

test('parsePing reads every reply\'s round trip in ms and nothing from the summary lines', () => {
  const out = [
    'PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.',
    '64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.034 ms',
    '64 bytes from 198.18.0.2: icmp_seq=2 ttl=64 time=0.056 ms',
    '64 bytes from 198.18.0.2: icmp_seq=3 ttl=64 time=120 ms',
    '', '--- 198.18.0.2 ping statistics ---',
    '3 packets transmitted, 3 received, 0% packet loss, time 104ms',
    'rtt min/avg/max/mdev = 0.034/40.030/120/56.5 ms',
  ].join('\n');
  assert.deepEqual(parsePing(out), [0.034, 0.056, 120]);
  assert.deepEqual(parsePing('2 packets transmitted, 0 received, 100% packet loss'), []);
});

test('parseFio reads the writes a second of the jobs together, after any line fio prints before its JSON', () => {
  const report = { jobs: [{ jobname: 'randmix', error: 0, write: { iops: 2173.4, total_ios: 2180, bw: 8693 } }] };
  assert.equal(parseFio(`randmix: Laying out IO files (4 files / total 16MiB)\n${JSON.stringify(report)}\n`), 2173.4);
  assert.throws(() => parseFio('fio: pid=1, err=30/file:filesetup.c:240, func=open, error=Read-only file system'), /no JSON report.*Read-only/);
  assert.throws(() => parseFio(JSON.stringify({ jobs: [{ error: 5, write: { iops: 10, total_ios: 3 } }] })), /fio job error 5/);
  assert.throws(() => parseFio(JSON.stringify({ jobs: [{ error: 0, write: { iops: 0, total_ios: 0 } }] })), /wrote nothing/);
});

test('the fio command writes 4 KiB at random offsets with 4 writers and fsyncs, for the figure\'s time', () => {
  const cmd = fioCommand('/srv/x/rand', { seqMiB: 1, appends: 1, smallFiles: 1, pings: 1, randSeconds: 7, randFileMiB: 3 }).join(' ');
  for (const want of ['--directory=/srv/x/rand', '--rw=randwrite', '--bs=4k', '--numjobs=4', '--fsync=32', '--runtime=7', '--size=3M', '--output-format=json']) {
    assert.ok(cmd.includes(want), `${want} in ${cmd}`);
  }
});
