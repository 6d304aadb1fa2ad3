// Contract of the probe seam (STYLE.md 3, 4, 7; issue 6 items 1-2): the same checks against
// FakeProbe and a real probe (custom, a temp script): up, down, a run that hangs is a failure
// "timed out after X" (and leaves nothing running), an aborted run resolves at once, never a rejection.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeProbe, type Probe, probeFor } from '../../src/adapters/probes/index.js';
import type { CustomChecker } from '../../src/core/config/types.js';

interface Harness {
  up(): Promise<Probe>;
  down(): Promise<Probe>;
  /** A probe whose run never ends by itself, bounded by `timeoutMs`. */
  hang(timeoutMs: number): Promise<Probe>;
  /** True when nothing a hung run started is still running. */
  leftNothing(): Promise<boolean>;
}

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const kinds: Record<string, () => Harness> = {
  fake: () => {
    let hung: FakeProbe | undefined;
    return {
      up: async () => new FakeProbe(1000, { outcome: { ok: true, detail: 'fake up' } }),
      down: async () => new FakeProbe(1000, { outcome: { ok: false, detail: 'fake down' } }),
      hang: async (ms) => (hung = new FakeProbe(ms, { outcome: 'hang' })),
      leftNothing: async () => hung !== undefined && hung.aborted === hung.runs,
    };
  },
  custom: () => {
    let pidFile = '';
    const make = async (body: string, timeoutMs: number): Promise<Probe> => {
      const root = await mkdtemp(join(tmpdir(), 'hakit-probe-'));
      roots.push(root);
      await mkdir(join(root, 'bin'));
      await writeFile(join(root, 'bin', 'check'), `#!/bin/sh\n${body}\n`);
      await chmod(join(root, 'bin', 'check'), 0o755);
      pidFile = join(root, 'pid');
      const cfg: CustomChecker = { type: 'custom', name: 'c', command: 'check', args: [pidFile], intervalMs: timeoutMs, timeoutMs, rise: 1, fall: 1, action: 'restart' };
      return probeFor(cfg, { moduleDir: root, binDir: join(root, 'bin'), node: 'n1', module: 'm', vip: [], moduleState: () => undefined });
    };
    return {
      up: () => make('exit 0', 5000),
      down: () => make('echo broken >&2; exit 1', 5000),
      // The script and a child of it both hang; both must be killed with the group.
      hang: (ms) => make('sleep 300 & echo $! > "$1.child"; echo $$ > "$1"; wait', ms),
      leftNothing: async () => {
        for (const f of [pidFile, `${pidFile}.child`]) {
          const pid = Number(await readFile(f, 'utf8'));
          for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
          if (alive(pid)) return false;
        }
        return true;
      },
    };
  },
};

for (const [name, make] of Object.entries(kinds)) {
  describe(`Probe contract: ${name}`, () => {
    const h = make();
    const never = new AbortController().signal;

    test('a passing check is up with a detail', async () => {
      const r = await (await h.up()).run(never);
      assert.equal(r.ok, true);
      assert.equal(typeof r.detail, 'string');
    });

    test('a failing check is down with a detail saying why', async () => {
      const r = await (await h.down()).run(never);
      assert.equal(r.ok, false);
      assert.ok(r.detail.length > 0);
    });

    test('a check that hangs is a failure "timed out after X", and what it started is gone', async () => {
      const r = await (await h.hang(300)).run(never);
      assert.deepEqual(r, { ok: false, detail: 'timed out after 300ms' });
      assert.equal(await h.leftNothing(), true);
    });

    test('aborting a run (daemon shutdown) resolves it as a failure "aborted"', async () => {
      const p = await h.hang(60_000);
      const ctl = new AbortController();
      const run = p.run(ctl.signal);
      setTimeout(() => ctl.abort(), 100);
      assert.deepEqual(await run, { ok: false, detail: 'aborted' });
      assert.equal(await h.leftNothing(), true);
      const pre = new AbortController();
      pre.abort();
      assert.deepEqual(await (await h.up()).run(pre.signal), { ok: false, detail: 'aborted' });
    });
  });
}
