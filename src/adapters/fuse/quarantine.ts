/**
 * Quarantine (issue 5 part 5, DESIGN.md 3 "divergent data kept"): before a node's copy is
 * overwritten by a full resync, the paths its own change log names — what this node changed
 * while the peer did not get it, e.g. the writes of the side that loses a split brain — are
 * copied to `<state-dir>/modules/<module>/quarantine/<time>/<dir>/<path>`. Nothing there is
 * ever deleted by hakit; `hakit status` shows the last quarantine.
 *
 * What is copied: every path of the log that is a file, symlink or directory on this node now
 * (a directory marked `whole`, i.e. made while apart, with everything below it; a directory
 * whose names changed only by itself, without its entries: those have their own marks). Copies
 * are real copies (`cp -a --reflink=auto`): a hard link would see the resync's live writes.
 * Runs before the first record of the resync is applied.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ChangeSet } from '../../core/replication/changes.js';

export interface QuarantineResult {
  /** The folder of this quarantine (null: nothing to keep). */
  readonly dir: string | null;
  /** Paths copied into it. */
  readonly paths: number;
  /** Paths that could not be copied (with why), for the log. */
  readonly failed: readonly string[];
}

function cp(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('cp', args, { timeout: 600_000 }, (err, _out, stderr) => (err ? reject(new Error(`cp ${args.join(' ')}: ${stderr || err.message}`)) : resolve()));
  });
}

/**
 * Copies what `set` names, for each replicated dir (`roots[i]`, named `names[i]` in the
 * quarantine), into a new folder under `base`. Resolves once everything is copied.
 */
export async function quarantine(set: ChangeSet, roots: readonly string[], names: readonly string[], base: string, now = new Date()): Promise<QuarantineResult> {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const dir = join(base, stamp);
  let paths = 0;
  const failed: string[] = [];
  for (const [i, root] of roots.entries()) {
    const forChild = root.replace(/^\/proc\/self\//, `/proc/${process.pid}/`);
    for (const { path, changes } of set.plan(i)) {
      if (path === '/') continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(root + path);
      } catch {
        continue; // gone here: nothing of this node's to keep
      }
      if (st.isDirectory() && !changes.whole) continue;
      const dest = join(dir, names[i] ?? `dir-${i}`, path);
      try {
        fs.mkdirSync(join(dest, '..'), { recursive: true, mode: 0o700 });
        await cp(['-a', '--reflink=auto', '--', forChild + path, dest]);
        paths++;
      } catch (e) {
        failed.push(`${path}: ${(e as Error).message}`);
      }
    }
  }
  return { dir: paths > 0 || failed.length > 0 ? dir : null, paths, failed };
}
