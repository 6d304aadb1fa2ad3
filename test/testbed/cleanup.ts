/**
 * Removal of testbed runs: the one cleanup procedure used by `dispose()`, by the exit hook of a
 * process that forgot to dispose, and by `sweep()` for runs whose owner died.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { HakitError } from '../../src/core/errors.js';
import { DIR_ROOT, LOCK_FILE, MOUNTPOINTS_FILE, PREFIX_RE, RUN_ROOT, ownerFile, prefixOfNetns } from './layout.js';
import { execCommand, processStartTime } from './run.js';

/**
 * Shell script, argument $1 = run prefix. Kills every process in the run's namespaces (repeating
 * while processes fork, at most 50 rounds), deletes the namespaces (hub, bridges and veths go with
 * them), lazily unmounts the run directory (and the mount namespace files on it) and whatever is
 * mounted under the host directories (size-limited backing file systems), removes the run
 * and host directories, then (under LOCK_FILE) the mount-point directories runs created on the root
 * file system that no remaining run lists in its mountpaths file. Exits 1, naming what is left, when something could not be removed.
 */
const CLEANUP_SH = String.raw`
P="$1"; R="${RUN_ROOT}/$P"; D="${DIR_ROOT}/$P"
list_ns() { ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 { print $1 }'; }
i=0
while [ "$i" -lt 50 ]; do
  pids=$(for ns in $(list_ns); do ip netns pids "$ns" 2>/dev/null; done)
  [ -z "$pids" ] && break
  kill -9 $pids 2>/dev/null
  i=$((i + 1)); sleep 0.02
done
list_ns | sed 's/^/netns del /' | ip -force -b - >/dev/null 2>&1
for r in "$R" "$D"; do
  j=0
  while [ "$j" -lt 10 ] && awk -v r="$r" '$5 == r || index($5, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; do
    umount -l "$r" 2>/dev/null || awk -v r="$r" 'index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | xargs -r -n1 umount -l 2>/dev/null
    j=$((j + 1))
  done
done
rm -rf "$R" "$D" 2>/dev/null
# Remove the mount-point directories runs created that no remaining run uses (deepest first).
if [ -f "${MOUNTPOINTS_FILE}" ]; then
  flock -w 20 "${LOCK_FILE}" sh -c '
    used=$(cat "$1"/hk*/mountpaths 2>/dev/null)
    awk "{ print length(\$0), \$0 }" "$2" | sort -rn | cut -d" " -f2- | while read -r m; do
      if printf "%s\n" "$used" | awk -v m="$m" "\$0 == m || index(\$0, m \"/\") == 1 { f = 1 } END { exit !f }"; then
        echo "$m"
      else
        rmdir "$m" 2>/dev/null
      fi
    done > "$2.new"
    mv "$2.new" "$2"' sh "${RUN_ROOT}" "${MOUNTPOINTS_FILE}"
fi
left="$(list_ns | tr '\n' ' ')"
[ -e "$R" ] && left="$left $R"
[ -e "$D" ] && left="$left $D"
[ -n "$pids" ] && left="$left processes: $pids"
if [ -n "$(echo $left)" ]; then echo "left behind: $left" >&2; exit 1; fi
exit 0
`;

/** Removes everything of run `prefix`. Rejects with HakitError('TESTBED') naming what is left. */
export async function cleanupRun(prefix: string, timeoutMs = 20_000): Promise<void> {
  if (!PREFIX_RE.test(prefix)) throw new HakitError('TESTBED', { action: 'clean up', detail: `bad prefix ${JSON.stringify(prefix)}` });
  const r = await execCommand(`clean up run ${prefix}`, ['sh', '-c', CLEANUP_SH, 'sh', prefix], { timeoutMs });
  if (r.code !== 0) throw new HakitError('TESTBED', { action: `clean up run ${prefix}`, detail: r.stderr.trim() || `exit code ${r.code}` });
}

/** Synchronous cleanup for the process exit hook; best effort, never throws. */
export function cleanupRunSync(prefix: string): void {
  try {
    execFileSync('sh', ['-c', CLEANUP_SH, 'sh', prefix], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    // The next sweep() removes what is left.
  }
}

/** The owner marker's content for this process: `<pid> <start time in clock ticks>`. */
export function ownerMarker(): string {
  return `${process.pid} ${processStartTime(process.pid) ?? '?'}\n`;
}

/** True when the process that wrote the marker of run `prefix` is still running (same pid and start time). */
export function ownerAlive(prefix: string): boolean {
  let text: string;
  try {
    text = readFileSync(ownerFile(prefix), 'utf8');
  } catch {
    return false;
  }
  const [pid, start] = text.trim().split(/\s+/);
  if (!pid || !/^\d+$/.test(pid)) return false;
  const now = processStartTime(Number(pid));
  if (now === undefined) return false;
  return start === undefined || start === '?' || start === now;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Every prefix that has a run directory, a host directory or a namespace on this machine. */
async function knownPrefixes(): Promise<Set<string>> {
  const found = new Set<string>();
  for (const d of [...listDir(RUN_ROOT), ...listDir(DIR_ROOT)]) if (PREFIX_RE.test(d)) found.add(d);
  const r = await execCommand('list namespaces', ['ip', 'netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const p = prefixOfNetns(line.split(' ')[0] ?? '');
    if (p) found.add(p);
  }
  return found;
}

/**
 * Removes the leftovers of earlier runs whose owner process is dead (namespaces, processes in
 * them, mounts, directories). Never touches a run whose owner is alive. A prefix with namespaces or
 * directories but no owner marker counts as dead only when its run directory is absent or has been
 * without a marker for more than 10 s (a run being created writes its marker first).
 * Resolves with the prefixes removed; rejects when one could not be removed completely.
 */
export async function sweep(): Promise<string[]> {
  const removed: string[] = [];
  const failures: string[] = [];
  for (const prefix of [...(await knownPrefixes())].sort()) {
    if (ownerAlive(prefix)) continue;
    if (!existsSync(ownerFile(prefix)) && existsSync(`${RUN_ROOT}/${prefix}`) && youngerThan(`${RUN_ROOT}/${prefix}`, 10_000)) continue;
    try {
      await cleanupRun(prefix);
      removed.push(prefix);
    } catch (e) {
      failures.push(e instanceof Error ? e.message : String(e));
    }
  }
  if (failures.length > 0) throw new HakitError('TESTBED', { action: 'sweep old runs', detail: failures.join('; ') });
  return removed;
}

function youngerThan(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < ms;
  } catch {
    return false;
  }
}
