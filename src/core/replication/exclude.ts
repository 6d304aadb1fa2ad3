/**
 * `replication.dirs[].exclude` (DESIGN.md 6): paths written on the local node only.
 *
 * Rules (as rsync and .gitignore read them): a pattern without `/` (a trailing one aside) matches
 * a name at any depth (`*.tmp`, `cache`, `cache/`); a pattern with `/` matches the path from the replicated directory's root
 * (`logs/*.log`, `tmp/**`); `*` never crosses `/`, `**` does. A path is excluded when it or one
 * of its parent directories matches. Paths are relative to the replicated directory and start
 * with `/` (as the rfs sees them); patterns may start with `/` or not.
 */
import picomatch from 'picomatch';

export type ExcludeMatcher = (path: string) => boolean;

/** Never excludes anything (no patterns). */
export const NOTHING_EXCLUDED: ExcludeMatcher = () => false;

export function excludeMatcher(patterns: readonly string[]): ExcludeMatcher {
  if (patterns.length === 0) return NOTHING_EXCLUDED;
  const opts = { dot: true };
  // A trailing `/` (`cache/`, as in .gitignore) names a directory: the same as without it here.
  const pats = patterns.map((p) => p.replace(/\/+$/, '')).filter((p) => p !== '');
  const anywhere = pats.filter((p) => !p.includes('/')).map((p) => picomatch(p, opts));
  const rooted = pats.filter((p) => p.includes('/')).map((p) => picomatch(p.replace(/^\/+/, ''), opts));
  return (path: string): boolean => {
    const parts = path.split('/').filter((x) => x !== '');
    for (let i = 1; i <= parts.length; i++) {
      const name = parts[i - 1] as string;
      const rel = parts.slice(0, i).join('/');
      if (anywhere.some((m) => m(name)) || rooted.some((m) => m(rel))) return true;
    }
    return false;
  };
}
