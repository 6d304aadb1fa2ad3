/** POSIX path helpers for configuration values (src/core has no node:path). */

/** Result of checking an absolute directory: its normal form, or why it is refused. */
export type PathResult = { ok: true; value: string } | { ok: false; message: string };

/**
 * An absolute directory in normal form: `//` and trailing `/` removed, `.` segments dropped.
 * `..` segments are refused (they would depend on symlinks), and so is `/` itself.
 */
export function normalizeAbsoluteDir(p: string): PathResult {
  if (!p.startsWith('/')) return { ok: false, message: `expected an absolute path (starting with /), got ${JSON.stringify(p)}` };
  const segs = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) return { ok: false, message: `expected a path without ".." segments, got ${JSON.stringify(p)}` };
  if (segs.length === 0) return { ok: false, message: 'the root directory / cannot be replicated; name the application\'s own directories' };
  return { ok: true, value: `/${segs.join('/')}` };
}

/** True when `inner` equals `outer` or lies below it (both in normal form). */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(`${outer}/`);
}

/** `base` joined with `p` unless `p` is absolute; `.` segments and duplicate slashes dropped. */
export function resolvePath(base: string, p: string): string {
  const full = p.startsWith('/') ? p : `${base.replace(/\/+$/, '')}/${p}`;
  const lead = full.startsWith('/') ? '/' : '';
  const out: string[] = [];
  for (const s of full.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (s === '..' && lead) continue;
    else out.push(s);
  }
  return lead + out.join('/') || '.';
}

/** `p` relative to `dir` when it lies below it, else `p` unchanged. */
export function relativeTo(dir: string, p: string): string {
  const d = dir.replace(/\/+$/, '');
  return d !== '' && p.startsWith(`${d}/`) ? p.slice(d.length + 1) : p;
}
