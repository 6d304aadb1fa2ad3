// Contract of the restart-script seam (DESIGN.md 6 "Scripts", STYLE.md 4 and 8, issue 3 item 5):
// the same checks against ProcessScriptRunner running real shell scripts in a temp dir and
// FakeScriptRunner programmed the same way, so the fake the daemon tests and the simulator use
// cannot drift from what real scripts do.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { running } from '../helpers/proc.js';
import {
  FakeScriptRunner, type FakeOutcome, ProcessScriptRunner, SCRIPT_PATH,
  type ScriptName, type ScriptRequest, type ScriptResult, type ScriptRunner,
} from '../../src/adapters/scripts/index.js';

/** What a script does, said once for both runners. */
type Spec =
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string }
  | { kind: 'missing' }
  | { kind: 'not-executable' }
  /** Never ends by itself; starts a background child (same process group) that holds stdout. */
  | { kind: 'hang' }
  /** A stop script that hangs unless its first argument is `force`; then exits `code`. */
  | { kind: 'hang-unless-force'; code: number };

interface Seen {
  argv: string[];
  env: Record<string, string>;
}

interface Harness {
  runner: ScriptRunner;
  logDir: string;
  program(script: ScriptName, spec: Spec): Promise<void>;
  /** Every start of `script` (runs and force reruns), in start order, as the script saw it. */
  seen(script: ScriptName): Promise<Seen[]>;
  /** How many processes `script` started (itself and its children) are still alive. */
  alive(script: ScriptName): Promise<number>;
  /** File names in the log directory, sorted. */
  logNames(): Promise<string[]>;
  readLog(path: string): Promise<string>;
  req(script: ScriptName, over?: Partial<ScriptRequest>): ScriptRequest;
}

const roots: string[] = [];
const pidsToReap: number[] = [];
after(async () => {
  for (const pid of pidsToReap) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

function baseReq(root: string, script: ScriptName, over: Partial<ScriptRequest> = {}): ScriptRequest {
  const moduleDir = join(root, 'modules', 'web');
  return {
    module: 'web', node: 'n1', role: 'prim', script,
    binDir: join(moduleDir, 'bin'), moduleDir,
    args: ['STOP', 'PRIM', 'start'], timeoutMs: 5000, stopTimeoutMs: 5000,
    logDir: join(root, 'logs'), ...over,
  };
}

/** The body of a real script for a spec; every start records its argv and env in `seenDir`. */
function scriptText(spec: Spec, seenDir: string, script: ScriptName): string {
  const record = `rec="ARGS"; for a in "$@"; do rec="$rec|$a"; done
rec="$rec
$(env)
END"
printf '%s\\n' "$rec" >> '${seenDir}/${script}.seen'
`;
  const hang = `sleep 30 & echo $! >> '${seenDir}/${script}.pids'
echo $$ >> '${seenDir}/${script}.pids'
wait
`;
  switch (spec.kind) {
    case 'exit':
      return `#!/bin/sh\n${record}${spec.stdout !== undefined ? `printf '%s\\n' '${spec.stdout}'\n` : ''}${spec.stderr !== undefined ? `printf '%s\\n' '${spec.stderr}' >&2\n` : ''}exit ${spec.code}\n`;
    case 'hang':
    case 'not-executable':
      return `#!/bin/sh\n${record}${hang}`;
    case 'hang-unless-force':
      return `#!/bin/sh\n${record}if [ "$1" = force ]; then exit ${spec.code}; fi\n${hang}`;
    case 'missing':
      return '';
  }
}

function fakeOutcome(spec: Spec): FakeOutcome {
  switch (spec.kind) {
    case 'exit': return { code: spec.code, output: `${spec.stdout !== undefined ? `${spec.stdout}\n` : ''}${spec.stderr !== undefined ? `${spec.stderr}\n` : ''}` };
    case 'missing': return { missing: true };
    case 'not-executable': return { refused: 'not executable' };
    case 'hang': return { hang: true };
    case 'hang-unless-force': return { hang: true, force: { code: spec.code } };
  }
}

const harnesses: Record<string, () => Promise<Harness>> = {
  process: async () => {
    const root = await mkdtemp(join(tmpdir(), 'hakit-scripts-'));
    roots.push(root);
    const seenDir = join(root, 'seen');
    await mkdir(seenDir);
    await mkdir(join(root, 'modules', 'web', 'bin'), { recursive: true });
    const readPids = async (script: ScriptName): Promise<number[]> => {
      const text = await readFile(join(seenDir, `${script}.pids`), 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l !== '').map(Number);
    };
    return {
      runner: new ProcessScriptRunner(),
      logDir: join(root, 'logs'),
      program: async (script, spec) => {
        const file = join(root, 'modules', 'web', 'bin', script);
        await rm(file, { force: true });
        if (spec.kind === 'missing') return;
        await writeFile(file, scriptText(spec, seenDir, script));
        await chmod(file, spec.kind === 'not-executable' ? 0o644 : 0o755);
      },
      seen: async (script) => {
        const text = await readFile(join(seenDir, `${script}.seen`), 'utf8').catch(() => '');
        return text.split('END\n').filter((r) => r !== '').map((r) => {
          const [args = '', ...envLines] = r.split('\n').filter((l) => l !== '');
          const env: Record<string, string> = {};
          for (const l of envLines) env[l.slice(0, l.indexOf('='))] = l.slice(l.indexOf('=') + 1);
          delete env.PWD; // set by the shell itself (dash), not by the runner
          return { argv: args.split('|').slice(1), env };
        });
      },
      alive: async (script) => {
        const pids = await readPids(script);
        pidsToReap.push(...pids);
        let n = 0;
        for (const p of pids) if (await running(p)) n++;
        return n;
      },
      logNames: async () => (await readdir(join(root, 'logs')).catch(() => [] as string[])).sort(),
      readLog: (path) => readFile(path, 'utf8'),
      req: (script, over) => baseReq(root, script, over),
    };
  },
  fake: async () => {
    const root = '/fake/hakit';
    const runner = new FakeScriptRunner();
    return {
      runner,
      logDir: join(root, 'logs'),
      program: async (script, spec) => { runner.program(script, fakeOutcome(spec)); },
      seen: async (script) => runner.processes.filter((p) => p.script === script).map((p) => ({ argv: [...p.argv], env: { ...p.env } })),
      alive: async (script) => runner.hanging(script).length,
      logNames: async () => runner.logNames(join(root, 'logs')),
      readLog: async (path) => {
        const text = runner.files.get(path);
        if (text === undefined) throw new Error(`no log ${path}`);
        return text;
      },
      req: (script, over) => baseReq(root, script, over),
    };
  },
};

/** Polls `cond` (a state the test waits for, not a timing guess) for up to 5 s. */
async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

for (const [kind, make] of Object.entries(harnesses)) {
  describe(`ScriptRunner contract: ${kind}`, () => {
    test('a script that exits 0 is ok; its log holds the arguments, stdout, stderr and the exit', async () => {
      const h = await make();
      await h.program('start_prim', { kind: 'exit', code: 0, stdout: 'app started', stderr: 'a warning' });
      const r = await h.runner.run(h.req('start_prim'));
      assert.equal(r.ok, true);
      assert.equal(r.code, 0);
      assert.equal(r.missing, false);
      assert.equal(r.killed, false);
      assert.equal(r.forced, false);
      assert.equal(r.detail, 'exit 0');
      assert.ok(r.logFile !== null && r.logFile.startsWith(h.logDir + '/') && r.logFile.endsWith('-start_prim.log'), String(r.logFile));
      const log = await h.readLog(r.logFile);
      assert.match(log, /^# hakit: start_prim STOP PRIM start\n# module=web node=n1 role=prim started=\d{4}-/);
      assert.ok(log.includes('app started\n') && log.includes('a warning\n'), log);
      assert.match(log, /# hakit: exit 0 \(\d+ ms\)\n$/);
    });

    test('a non-zero exit is a failure that carries the code', async () => {
      const h = await make();
      await h.program('prestart', { kind: 'exit', code: 3 });
      const r = await h.runner.run(h.req('prestart'));
      assert.equal(r.ok, false);
      assert.equal(r.code, 3);
      assert.equal(r.signal, null);
      assert.equal(r.detail, 'exit 3');
      assert.match(await h.readLog(r.logFile!), /# hakit: exit 3 /);
    });

    test('a missing script is ok: nothing runs and no log is written', async () => {
      const h = await make();
      await h.program('start_both', { kind: 'missing' });
      const r = await h.runner.run(h.req('start_both'));
      assert.deepEqual({ ok: r.ok, missing: r.missing, code: r.code, logFile: r.logFile, killed: r.killed }, { ok: true, missing: true, code: null, logFile: null, killed: false });
      assert.deepEqual(await h.logNames(), []);
    });

    test('the script sees exactly its arguments and a clean environment: PATH, LANG, HAKIT_*, the extra env', async () => {
      const h = await make();
      await h.program('stop_second', { kind: 'exit', code: 0 });
      process.env.HAKIT_TEST_MUST_NOT_LEAK = 'leak';
      try {
        const req = h.req('stop_second', { role: 'second', args: ['SECOND', 'STOP', 'stop'], env: { APP_PORT: '8080', LANG: 'fr_FR.UTF-8' } });
        const r = await h.runner.run(req);
        assert.equal(r.ok, true, r.detail);
        const seen = await h.seen('stop_second');
        assert.equal(seen.length, 1);
        assert.deepEqual(seen[0], {
          argv: ['SECOND', 'STOP', 'stop'],
          env: { PATH: SCRIPT_PATH, LANG: 'fr_FR.UTF-8', HAKIT_MODULE: 'web', HAKIT_NODE: 'n1', HAKIT_ROLE: 'second', HAKIT_MODULE_DIR: req.moduleDir, APP_PORT: '8080' },
        });
      } finally {
        delete process.env.HAKIT_TEST_MUST_NOT_LEAK;
      }
    });

    test('a start script still running at timeoutMs is killed with its whole process group and never rerun', async () => {
      const h = await make();
      await h.program('start_prim', { kind: 'hang' });
      const r = await h.runner.run(h.req('start_prim', { timeoutMs: 200 }));
      assert.equal(r.ok, false);
      assert.equal(r.killed, true);
      assert.equal(r.forced, false);
      assert.equal(r.code, null);
      assert.equal(r.signal, 'SIGTERM');
      assert.equal(r.detail, 'killed after 200ms');
      assert.equal((await h.seen('start_prim')).length, 1, 'a start script is not rerun');
      assert.equal(await h.alive('start_prim'), 0, 'the script and its background child (holding stdout) are gone');
      assert.match(await h.readLog(r.logFile!), /# hakit: killed after 200ms/);
    });

    test('a stop script still running at stopTimeoutMs is rerun with force, then both are killed', async () => {
      const h = await make();
      await h.program('stop_prim', { kind: 'hang' });
      const r = await h.runner.run(h.req('stop_prim', { args: ['PRIM', 'STOP', 'stop'], stopTimeoutMs: 150, timeoutMs: 10_000 }));
      assert.deepEqual({ ok: r.ok, forced: r.forced, killed: r.killed }, { ok: false, forced: true, killed: true });
      assert.equal(r.detail, 'did not end within 150ms, nor with force: killed');
      assert.deepEqual((await h.seen('stop_prim')).map((s) => s.argv), [['PRIM', 'STOP', 'stop'], ['force', 'PRIM', 'STOP', 'stop']]);
      assert.equal(await h.alive('stop_prim'), 0);
      const log = await h.readLog(r.logFile!);
      assert.ok(log.includes('# hakit: rerun with force: stop_prim force PRIM STOP stop\n'), log);
    });

    test('a stop script that ends when forced is ok; the hung first run is killed', async () => {
      const h = await make();
      await h.program('poststop', { kind: 'hang-unless-force', code: 0 });
      const r = await h.runner.run(h.req('poststop', { args: ['STOP', 'STOP', 'stop'], stopTimeoutMs: 150 }));
      assert.deepEqual({ ok: r.ok, forced: r.forced, killed: r.killed, code: r.code }, { ok: true, forced: true, killed: true, code: 0 });
      assert.equal(r.detail, 'did not end within 150ms; rerun with force: exit 0');
      assert.equal(await h.alive('poststop'), 0, 'the hung first run does not linger');
    });

    test('a script that is not executable is refused: nothing runs, no log', async () => {
      const h = await make();
      await h.program('start_second', { kind: 'not-executable' });
      const r = await h.runner.run(h.req('start_second'));
      assert.deepEqual({ ok: r.ok, missing: r.missing, logFile: r.logFile, detail: r.detail }, { ok: false, missing: false, logFile: null, detail: 'not executable' });
      assert.deepEqual(await h.seen('start_second'), []);
    });

    test('logs: the newest 20 runs per script are kept, older ones deleted, other scripts untouched', async () => {
      const h = await make();
      await h.program('start_prim', { kind: 'exit', code: 0 });
      await h.program('stop_prim', { kind: 'exit', code: 1 });
      const stop = await h.runner.run(h.req('stop_prim'));
      const results: ScriptResult[] = [];
      for (let i = 0; i < 22; i++) results.push(await h.runner.run(h.req('start_prim')));
      const names = await h.logNames();
      const base = (p: string | null): string => p!.slice(p!.lastIndexOf('/') + 1);
      assert.deepEqual(names, [...results.slice(2).map((r) => base(r.logFile)), base(stop.logFile)].sort());
      assert.equal(new Set(results.map((r) => r.logFile)).size, 22, 'every run has its own log');
      assert.ok(!names.includes(base(results[0]!.logFile)) && !names.includes(base(results[1]!.logFile)));
    });

    test('aborting the request kills the running script\'s group', async () => {
      const h = await make();
      await h.program('start_prim', { kind: 'hang' });
      const ac = new AbortController();
      const p = h.runner.run(h.req('start_prim', { signal: ac.signal, timeoutMs: 30_000 }));
      await waitFor('the script to start', async () => (await h.alive('start_prim')) > 0);
      ac.abort();
      const r = await p;
      assert.deepEqual({ ok: r.ok, killed: r.killed, detail: r.detail }, { ok: false, killed: true, detail: 'aborted: process group killed' });
      assert.equal(await h.alive('start_prim'), 0);
    });

    test('killAll kills every running script and resolves after their results', async () => {
      const h = await make();
      await h.program('start_prim', { kind: 'hang' });
      await h.program('stop_second', { kind: 'hang' });
      const a = h.runner.run(h.req('start_prim', { timeoutMs: 30_000 }));
      const b = h.runner.run(h.req('stop_second', { stopTimeoutMs: 30_000 }));
      let settled = 0;
      void a.then(() => settled++);
      void b.then(() => settled++);
      await waitFor('both scripts to start', async () => (await h.alive('start_prim')) > 0 && (await h.alive('stop_second')) > 0);
      await h.runner.killAll();
      assert.equal(settled, 2, 'killAll resolved after both runs');
      for (const r of [await a, await b]) assert.equal(r.killed, true);
      assert.equal((await b).forced, false, 'no force rerun after killAll');
      assert.equal(await h.alive('start_prim') + await h.alive('stop_second'), 0);
    });
  });
}
