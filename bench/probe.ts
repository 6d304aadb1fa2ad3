/**
 * The bench client: runs on the client host and asks HOST:PORT over and over, each attempt a new
 * TCP connection with a short deadline, so that a takeover is seen within about one deadline.
 *
 *   node probe.js HOST PORT [TIMEOUT_MS=100] [LOOPS=2] [GAP_MS=20]
 *
 * Prints one line per successful request: `ok <t> <server>`, where <t> is the time the answer was
 * complete in ms of the system monotonic clock (process.hrtime, CLOCK_MONOTONIC: the same clock in
 * every process and namespace of the machine) and <server> the first word of the body (the node
 * name the demo app answers with). LOOPS loops run side by side, started TIMEOUT_MS/LOOPS apart,
 * each waiting GAP_MS between attempts. Exits when its stdin closes (the bench runner is gone).
 */
import { connect } from 'node:net';

const [host, portArg, timeoutArg, loopsArg, gapArg] = process.argv.slice(2);
if (!host || !portArg) {
  process.stderr.write('usage: probe.js HOST PORT [TIMEOUT_MS] [LOOPS] [GAP_MS]\n');
  process.exit(2);
}
const port = Number(portArg);
const timeoutMs = Number(timeoutArg ?? 100);
const loops = Number(loopsArg ?? 2);
const gapMs = Number(gapArg ?? 20);

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** One HTTP/1.0 GET on a new connection; the server's name, or null on any failure or timeout. */
function attempt(): Promise<string | null> {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (v: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = connect({ host, port });
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    sock.on('data', (d: string) => (data += d));
    sock.on('error', () => finish(null));
    sock.on('end', () => {
      const m = /^HTTP\/1\.[01] 200 [^]*?\r\n\r\n(\S+)/.exec(data);
      finish(m ? m[1]! : null);
    });
  });
}

async function loop(): Promise<void> {
  for (;;) {
    const server = await attempt();
    if (server !== null) process.stdout.write(`ok ${nowMs().toFixed(3)} ${server}\n`);
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (let i = 0; i < loops; i++) setTimeout(() => void loop(), (i * timeoutMs) / loops);
