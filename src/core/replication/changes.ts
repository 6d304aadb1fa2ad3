/**
 * The change log's logic (issue 5, DESIGN.md 5 "Resync"): which paths of a replicated directory,
 * and which zones of their files, may differ between this node's tree and the peer's copy. The
 * primary marks every change it makes while the peer does not get it (ALONE, a resync running, a
 * link lost); an incremental resync then sends exactly those paths and zones instead of the tree.
 *
 * A mark says what the resync must do for a path:
 * - `whole`: the entry has a new identity (created, made by a rename or link, or a directory
 *   made while the peer was away): the resync copies it entirely (a directory: its subtree);
 * - `listing`: a directory gained or lost entries: the resync sends its names (the peer removes
 *   the others) and its mode and owner;
 * - `zones`: a regular file kept its identity; zones of `zoneBytes` were written: the resync sends
 *   the file's size, mode, owner and the content of those zones, then its times;
 * - `tail`: the file was truncated: every zone from the one holding the new size to the end is
 *   sent (the peer may still hold old data past a shrink that was then extended);
 * - `meta`: mode, owner, times or extended attributes changed: the resync sends them.
 * Deletions need no mark of their own: the parent's `listing` removes the entry on the peer.
 *
 * Renames and hard links are replayed, not copied: one whose source has been on the peer since
 * the log started (neither it nor an ancestor is marked `whole`) and whose destination's parent
 * is there too is kept as such (`replays(dir)`, in order); for a rename the marks below the
 * source move to the destination; the marks of what the destination named before are dropped.
 * An incremental resync sends these replays first, then the plan. Any other rename (of an entry
 * new since the log started, into a new directory) marks the destination `whole` and both
 * listings; any other link marks both names `whole` (copied in one walk, linked again there).
 *
 * Cost: a mark that adds nothing to what is known (a zone already marked, anything below a path
 * marked `whole`... ) returns no line, so the caller writes (and syncs) nothing for it.
 *
 * Log lines (one per new mark, UTF-8, '\n' terminated; paths may hold spaces and newlines, so the
 * path is JSON-quoted): `<dir> <kind> <zone> <json path>` with kind one of W L Z T M, replays as
 * `<dir> R 0 <json [from, to]>` (rename) and `<dir> H 0 <json [from, to]>` (hard link), applied
 * in order when the log is read back, and state
 * lines `S complete` / `S incomplete` (see ChangeLog in adapters/store/changelog.ts). A torn last
 * line (a crash in the middle of an append) is ignored by `parseLine` (null).
 */

export const DEFAULT_ZONE_BYTES = 1024 * 1024;

export type MarkKind = 'whole' | 'listing' | 'zones' | 'tail' | 'meta';

/** One mark: `zone` for `zones` (a zone index) and `tail` (the first zone of the tail); else 0. */
export interface Mark {
  readonly dir: number;
  readonly kind: MarkKind;
  readonly path: string;
  readonly zone: number;
}

/** What the log knows about one path. */
export interface PathChanges {
  whole: boolean;
  listing: boolean;
  meta: boolean;
  /** Zone indexes written (kept even under `whole`, which makes them moot). */
  readonly zones: Set<number>;
  /** First zone of a truncated tail (Infinity: none). */
  tail: number;
}

/** What a change of the tree touches, known before the change is made. */
export interface Change {
  readonly op: string;
  readonly path: string;
  /** rename and link: the source. */
  readonly from?: string;
  /** write: the range written. */
  readonly offset?: number;
  readonly length?: number;
  /** truncate: the new size. */
  readonly size?: number;
}

const KIND_CODE: Readonly<Record<MarkKind, string>> = { whole: 'W', listing: 'L', zones: 'Z', tail: 'T', meta: 'M' };
const CODE_KIND = new Map(Object.entries(KIND_CODE).map(([k, c]) => [c, k as MarkKind]));

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** The marks a change of dir `dir` needs (pure; zones of `zoneBytes`). */
export function marksOf(dir: number, c: Change, zoneBytes = DEFAULT_ZONE_BYTES): Mark[] {
  const m = (kind: MarkKind, path: string, zone = 0): Mark => ({ dir, kind, path, zone });
  switch (c.op) {
    case 'write': {
      const off = c.offset ?? 0;
      const len = Math.max(1, c.length ?? 0);
      const out: Mark[] = [];
      for (let z = Math.floor(off / zoneBytes); z <= Math.floor((off + len - 1) / zoneBytes); z++) out.push(m('zones', c.path, z));
      return out;
    }
    case 'truncate':
      return [m('tail', c.path, Math.floor((c.size ?? 0) / zoneBytes))];
    case 'create':
    case 'mknod':
    case 'mkdir':
    case 'symlink':
    case 'sync-file':
      return [m('whole', c.path), m('listing', parentOf(c.path))];
    case 'link':
      // Both names copied in one resync: the walk then makes the second one a hard link.
      return [m('whole', c.path), m('whole', c.from ?? c.path), m('listing', parentOf(c.path)), m('listing', parentOf(c.from ?? c.path))];
    case 'rename':
      return [m('whole', c.path), m('listing', parentOf(c.path)), m('listing', parentOf(c.from ?? c.path))];
    case 'unlink':
    case 'rmdir':
      return [m('listing', parentOf(c.path))];
    case 'chmod':
    case 'chown':
    case 'utimens':
    case 'setxattr':
    case 'removexattr':
      return [m('meta', c.path)];
    default:
      // fsync and the sync-* records of a copy change nothing the log must know.
      return [];
  }
}

/** The changes of one record body (the same fields: a record is a Change). */
export function changeOfRecord(body: { readonly op: string; readonly path: string; readonly from?: string; readonly offset?: number; readonly data?: Uint8Array; readonly size?: number }): Change {
  return body.op === 'write' ? { op: 'write', path: body.path, offset: body.offset ?? 0, length: body.data?.length ?? 0 } : body;
}

export function formatMark(mk: Mark): string {
  return `${mk.dir} ${KIND_CODE[mk.kind]} ${mk.zone} ${JSON.stringify(mk.path)}\n`;
}

/** A rename or hard link the resync makes again on the peer. */
export interface Replay {
  readonly op: 'rename' | 'link';
  readonly from: string;
  readonly to: string;
}

/**
 * True when the tree shows every replay done, so that a host crash undid none of them: undone
 * from the last to the first, each finds what it made and not what it removed (a rename: `to`
 * there, `from` not; a link: both there; then the undo is applied to a view of the tree).
 * `exists` tells whether a path is there now. A rename the crash took leaves `from` there (and
 * `to` missing, or its old entry): false, and then every replay of the dir becomes marks (a
 * later replay may build on an undone one). A crash keeps metadata changes in order (the
 * journal), so the undone ones are the last: the walk meets them first. A name made again after
 * a rename, or an entry renamed with its directory, also says false: marks then, a copy more,
 * never a wrong replay.
 */
export function replaysMatchTree(replays: readonly Replay[], exists: (path: string) => boolean): boolean {
  const view = new Map<string, boolean>();
  // Paths only, no subtrees: an entry renamed together with its directory is looked up under
  // its old path and found missing: false (marks, a copy more), never a wrong "done".
  const there = (p: string): boolean => view.get(p) ?? exists(p);
  for (let i = replays.length - 1; i >= 0; i--) {
    const r = replays[i] as Replay;
    if (!there(r.to)) return false;
    if (r.op === 'rename') {
      if (there(r.from)) return false;
      view.set(r.from, true);
      view.set(r.to, false);
    } else {
      if (!there(r.from)) return false;
      view.set(r.to, false);
    }
  }
  return true;
}

export function formatReplay(dir: number, r: Replay): string {
  return `${dir} ${r.op === 'rename' ? 'R' : 'H'} 0 ${JSON.stringify([r.from, r.to])}\n`;
}

export type LogLine =
  | { readonly t: 'mark'; readonly mark: Mark }
  | { readonly t: 'replay'; readonly dir: number; readonly replay: Replay }
  | { readonly t: 'state'; readonly complete: boolean };

/** One line back (without its '\n'); null for a torn or foreign line. */
export function parseLine(line: string): LogLine | null {
  if (line === 'S complete') return { t: 'state', complete: true };
  if (line === 'S incomplete') return { t: 'state', complete: false };
  const r = /^(\d+) ([RH]) 0 (\[.*\])$/.exec(line);
  if (r !== null) {
    let pair: unknown;
    try {
      pair = JSON.parse(r[3] as string);
    } catch {
      return null;
    }
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string' && p.startsWith('/'))) return null;
    return { t: 'replay', dir: Number(r[1]), replay: { op: r[2] === 'R' ? 'rename' : 'link', from: pair[0] as string, to: pair[1] as string } };
  }
  const m = /^(\d+) ([WLZTM]) (\d+) (".*")$/.exec(line);
  if (m === null) return null;
  let path: unknown;
  try {
    path = JSON.parse(m[4] as string);
  } catch {
    return null;
  }
  if (typeof path !== 'string' || !path.startsWith('/')) return null;
  return { t: 'mark', mark: { dir: Number(m[1]), kind: CODE_KIND.get(m[2] as string) as MarkKind, zone: Number(m[3]), path } };
}

/** The marks of a module, by dir and path; `add` says whether a mark is new. */
export class ChangeSet {
  private readonly dirs = new Map<number, Map<string, PathChanges>>();
  private readonly replayLists = new Map<number, Replay[]>();

  /**
   * Records a change (its marks, or a rename to replay); returns the log text it needs (empty
   * when it tells nothing new).
   */
  record(dir: number, c: Change, zoneBytes = DEFAULT_ZONE_BYTES): string {
    if ((c.op === 'rename' || c.op === 'link') && c.from !== undefined && this.canReplay(dir, c.from, c.path)) {
      const r: Replay = { op: c.op, from: c.from, to: c.path };
      this.replay(dir, r);
      return formatReplay(dir, r);
    }
    let text = '';
    for (const mk of marksOf(dir, c, zoneBytes)) if (this.add(mk)) text += formatMark(mk);
    return text;
  }

  /** The renames and links to replay on the peer, in order, before the plan. */
  replays(dir: number): readonly Replay[] {
    return this.replayLists.get(dir) ?? [];
  }

  /** Records a replay (see the file comment): for a rename, the marks move with the entry. */
  replay(dir: number, r: Replay): void {
    const { from, to } = r;
    const d = this.dirs.get(dir);
    if (d !== undefined) {
      for (const p of [...d.keys()]) if (isAtOrBelow(p, to)) d.delete(p);
      if (r.op === 'rename') {
        for (const [p, ch] of [...d.entries()]) {
          if (!isAtOrBelow(p, from)) continue;
          d.delete(p);
          d.set(to + p.slice(from.length), ch);
        }
      }
    }
    let list = this.replayLists.get(dir);
    if (list === undefined) {
      list = [];
      this.replayLists.set(dir, list);
    }
    list.push(r);
  }

  private canReplay(dir: number, from: string, to: string): boolean {
    if (from === to || from === '/' || to === '/' || isAtOrBelow(to, from) || isAtOrBelow(from, to)) return false;
    const d = this.dirs.get(dir);
    if (d === undefined) return true;
    const whole = (p: string): boolean => d.get(p)?.whole === true;
    for (let p = from; ; p = parentOf(p)) {
      if (whole(p)) return false;
      if (p === '/') break;
    }
    for (let p = parentOf(to); ; p = parentOf(p)) {
      if (whole(p)) return false;
      if (p === '/') break;
    }
    return true;
  }

  /** Adds a mark; true when it tells something new (the caller then logs it durably). */
  add(mk: Mark): boolean {
    let d = this.dirs.get(mk.dir);
    if (d === undefined) {
      d = new Map();
      this.dirs.set(mk.dir, d);
    }
    let p = d.get(mk.path);
    if (p === undefined) {
      p = { whole: false, listing: false, meta: false, zones: new Set(), tail: Infinity };
      d.set(mk.path, p);
    }
    switch (mk.kind) {
      case 'whole':
        if (p.whole) return false;
        p.whole = true;
        return true;
      case 'listing':
        if (p.listing || p.whole) return false;
        p.listing = true;
        return true;
      case 'meta':
        if (p.meta || p.whole) return false;
        p.meta = true;
        return true;
      case 'zones':
        if (p.whole || p.zones.has(mk.zone) || mk.zone >= p.tail) return false;
        p.zones.add(mk.zone);
        return true;
      case 'tail':
        if (p.whole || mk.zone >= p.tail) return false;
        p.tail = mk.zone;
        return true;
    }
  }

  /**
   * Turns every replay into marks: both names `whole` and both parents' `listing` (simulator
   * finding 17). A replay is an operation, not a state: after a host crash, the rename or link
   * it names may have been undone on this copy (its mark was durable, the rename was not), and
   * replaying it on the peer would make the copies differ. Marks say what to compare and copy,
   * whatever the tree holds now (a name that is gone is removed by its parent's listing). Costs
   * a copy of what was renamed (a renamed directory: its subtree). `keep` spares the replays of a
   * dir (replaysMatchTree: the tree shows them all done). Returns the replays turned.
   */
  replaysToMarks(keep: (dir: number, replays: readonly Replay[]) => boolean = () => false): number {
    let n = 0;
    for (const [dir, list] of [...this.replayLists]) {
      if (keep(dir, list)) continue;
      this.replayLists.delete(dir);
      for (const r of list) {
        n++;
        for (const path of [r.from, r.to]) {
          this.add({ dir, kind: 'whole', path, zone: 0 });
          this.add({ dir, kind: 'listing', path: parentOf(path), zone: 0 });
        }
      }
    }
    return n;
  }

  /**
   * What this set holds, as log lines that load back into the same set: the replays first (read
   * back into an empty set they move no mark), then every mark.
   */
  text(): string {
    let out = '';
    for (const [dir, list] of this.replayLists) for (const r of list) out += formatReplay(dir, r);
    for (const [dir, d] of this.dirs) {
      for (const [path, ch] of d) {
        const m = (kind: MarkKind, zone = 0): void => { out += formatMark({ dir, kind, path, zone }); };
        if (ch.whole) m('whole');
        if (ch.listing) m('listing');
        if (ch.meta) m('meta');
        for (const z of ch.zones) m('zones', z);
        if (ch.tail !== Infinity) m('tail', ch.tail);
      }
    }
    return out;
  }

  clear(): void {
    this.dirs.clear();
    this.replayLists.clear();
  }

  /** Paths marked (all dirs). */
  get paths(): number {
    let n = 0;
    for (const d of this.dirs.values()) n += d.size;
    return n;
  }

  /**
   * The resync plan of one dir: its marked paths, parents before children (sorted), without
   * the paths below one marked `whole` (its copy covers them).
   */
  plan(dir: number): { readonly path: string; readonly changes: PathChanges }[] {
    const d = this.dirs.get(dir);
    if (d === undefined) return [];
    const out: { path: string; changes: PathChanges }[] = [];
    const wholeRoots = new Set<string>();
    for (const path of [...d.keys()].sort()) {
      if (underAny(path, wholeRoots)) continue;
      const changes = d.get(path) as PathChanges;
      if (changes.whole) wholeRoots.add(path);
      out.push({ path, changes });
    }
    return out;
  }
}

function isAtOrBelow(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** True when a strict ancestor of `path` is in `roots`. */
function underAny(path: string, roots: ReadonlySet<string>): boolean {
  if (roots.size === 0 || path === '/') return false;
  if (roots.has('/')) return true;
  for (let p = parentOf(path); p !== '/'; p = parentOf(p)) if (roots.has(p)) return true;
  return false;
}
