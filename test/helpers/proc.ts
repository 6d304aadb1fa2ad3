/** Process checks shared by tests. */
import { readFile } from 'node:fs/promises';

/** True if `pid` runs (a zombie waiting for its parent counts as ended). */
export async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
