/**
 * Prerequisites of tests that need the real system (DEVELOPERS.md: in CI a missing
 * prerequisite is a failure, never a skip; outside CI such tests are skipped with the reason).
 *
 * Usage: `test('...', needs('root', 'netns'), async () => { ... })` or
 *        `describe('...', needs('root', 'fuse'), () => { ... })`.
 */
import { accessSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';

export type Prereq = 'root' | 'netns' | 'fuse' | 'nft' | 'arping';

const TOOLS: Record<Prereq, string[]> = {
  root: [],
  netns: ['ip', 'nsenter', 'unshare'],
  fuse: ['fusermount'],
  nft: ['nft'],
  arping: ['arping'],
};

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns the reasons the prerequisites are not met (empty when all are). */
export function missing(...what: Prereq[]): string[] {
  const out: string[] = [];
  for (const p of what) {
    if (p === 'root' && process.getuid?.() !== 0) out.push('not running as root');
    if (p === 'fuse') {
      try {
        accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
      } catch {
        out.push('/dev/fuse is not usable');
      }
    }
    for (const t of TOOLS[p]) if (!hasCommand(t)) out.push(`command ${t} is missing (run scripts/setup.sh)`);
  }
  return out;
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Test options that skip (outside CI) or fail (in CI) when a prerequisite is missing.
 * In CI this throws at once, so the file fails loudly with the reason.
 */
export function needs(...what: Prereq[]): { skip?: string } {
  const why = missing(...what);
  if (why.length === 0) return {};
  const msg = `needs ${what.join(', ')}: ${why.join('; ')}`;
  if (inCI) throw new Error(`CI prerequisite missing: ${msg}`);
  return { skip: msg };
}
