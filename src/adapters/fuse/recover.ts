/**
 * Clearing what a crashed rfs process leaves behind (DESIGN.md 7: a SIGKILLed FUSE process
 * leaves "Transport endpoint is not connected" until `fusermount -uz`).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { HakitError } from '../../core/errors.js';
import { RFS_FSTYPE, fusermount } from './mount.js';

/** Decodes a mountinfo path field (octal escapes such as \040 for a space; bytes are UTF-8). */
function unescapeMountinfo(field: string): string {
  const latin1 = field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/** Mount points of rfs mounts (type fuse.hakit) in this process's mount namespace, in mount order. */
export function rfsMountPoints(mountinfo = readFileSync('/proc/self/mountinfo', 'latin1')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    const mountPoint = line.slice(0, sep).split(' ')[4];
    if (fstype === RFS_FSTYPE && mountPoint !== undefined) out.push(unescapeMountinfo(mountPoint));
  }
  return out;
}

/**
 * Removes every rfs mount on `dir` (lazily, so a stale one whose process died goes at once).
 * Precondition: no live rfs process serves `dir` (the daemon calls it after its child died, or
 * at start before spawning one). Resolves with the number of mounts removed (0: nothing was
 * there); rejects with HAKIT_E_RFS_MOUNT if fusermount fails.
 */
export async function recoverStaleMount(dir: string): Promise<number> {
  const target = resolve(dir);
  let removed = 0;
  // Mounts may be stacked (crash loops): remove them one by one, bounded.
  for (let i = 0; i < 16; i++) {
    if (!rfsMountPoints().includes(target)) return removed;
    const code = await fusermount(['-uz', target]);
    if (code !== 0) throw new HakitError('RFS_MOUNT', { dir: target, detail: `fusermount -uz exited with ${code}` });
    removed++;
  }
  throw new HakitError('RFS_MOUNT', { dir: target, detail: 'still mounted after 16 lazy unmounts' });
}
