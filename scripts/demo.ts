/**
 * `npm run demo`: a real 2-node mirror cluster in network namespaces (hosts n1, n2 and a client),
 * a small HTTP application behind the virtual IP 198.18.0.100 that stores records in a directory
 * replicated synchronously (/srv/hakit-demo), then a crash of the primary server (SIGKILL of
 * every process on it) while the client keeps writing. Every record the application acknowledged
 * is then shown on the survivor. Cleans up at the end, also on Ctrl-C.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, TestCluster, VIP, APP_PORT } from '../test/testbed/cluster.js';

const DATA = '/srv/hakit-demo';

function numbers(file: string, field: number): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').map((l) => l.split(' ')[field]).filter((x): x is string => x !== undefined && /^\d+$/.test(x)).map(Number);
}

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const show = (s: string) => process.stdout.write(s.split('\n').map((l) => (l === '' ? l : `   ${l}`)).join('\n'));

async function main(): Promise<number> {
  say('Creating 3 hosts in network namespaces: n1, n2 (cluster nodes) and client');
  const c = await TestCluster.create({
    defaultPrimary: 'n1', mountPaths: [DATA], moduleYaml: `replication:\n  dirs: [ { path: ${DATA} } ]`,
  });
  for (const n of ['n1', 'n2']) writeFileSync(join(c.moduleDir(n), 'app/data-file'), `${DATA}/records.log\n`);
  const cleanup = async () => { await c.dispose(); };
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  try {
    for (const n of ['n1', 'n2']) show(`${n}: lan ${c.tb.host(n).addr('lan')}, hb2 ${c.tb.host(n).addr('hb2')}, config ${c.configDir(n)}\n`);
    say('Starting `hakit daemon` on both nodes and `hakit start web` on each');
    await c.startDaemon('n1');
    await c.startDaemon('n2');
    await c.hakit('n1', ['start', 'web']);
    await c.hakit('n2', ['start', 'web']);
    await c.waitState('n1', 'PRIM', 20_000);
    await c.waitState('n2', 'SECOND', 20_000);
    say('hakit status on n1');
    show((await c.hakit('n1', ['status'])).stdout);
    say(`The client asks http://${VIP}:${APP_PORT}/`);
    show(`${await c.get()}\n`);
    say(`The client writes numbered records through the application (each appended to ${DATA}/records.log and fsynced before the answer)`);
    const acks = join(c.tb.host('client').dir, 'acks');
    writeFileSync(acks, '');
    const writer: ChildProcess = c.tb.host('client').spawn(['/usr/bin/node', join(REPO, 'test/fixtures/apps/chaos-client.mjs'), `http://${VIP}:${APP_PORT}`, acks, '1']);
    await new Promise((r) => setTimeout(r, 1500));
    show(`${numbers(acks, 2).length} records acknowledged so far\n`);

    say('Crash of n1: SIGKILL of every process of the host (daemon and application)');
    const t0 = Date.now();
    await c.crash('n1');
    let answer: string | null = null;
    let fails = 0;
    while (Date.now() - t0 < 20_000) {
      answer = await c.get('client', 300);
      if (answer?.startsWith('n2')) break;
      fails++;
    }
    const outage = Date.now() - t0;
    if (!answer?.startsWith('n2')) throw new Error('n2 did not take over within 20 s');
    show(`client: ${answer}  (served by n2 ${outage} ms after the crash, ${fails} failed requests)\n`);
    await new Promise((r) => setTimeout(r, 1500)); // the client writes to n2 now
    writer.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const acked = numbers(acks, 2);
    const onN2 = new Set(numbers(join(c.tb.host('n2').hostPath(DATA), 'records.log'), 0));
    const missing = acked.filter((x) => !onN2.has(x));
    show(`${acked.length} records acknowledged to the client in all; on n2's copy: ${acked.length - missing.length} of them` +
      `${missing.length === 0 ? ' (none lost)' : `, MISSING ${missing.join(',')}`}\n`);
    if (missing.length > 0) throw new Error('acknowledged records are missing on the survivor');
    say('hakit status on n2');
    show((await c.hakit('n2', ['status'])).stdout);
    say('Bringing n1 back: it rejoins as SECOND (its copy is resynced from n2), then takes its default primary role back');
    await c.startDaemon('n1');
    await c.waitState('n1', 'PRIM', 30_000);
    await c.waitState('n2', 'SECOND', 30_000);
    show((await c.hakit('n1', ['status'])).stdout);
    show(`client: ${await c.get()}\n`);
    say('Done. Removing the namespaces.');
    return 0;
  } finally {
    await cleanup();
  }
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
