/** Process checks and runners shared by tests. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/**
 * Runs a shell script in a child process, in directory `dir` (it `cd`s there itself: a spawn
 * with its cwd on a FUSE mount this process serves would block in uv_spawn); resolves its
 * stdout, rejects on failure (2 minutes at most).
 */
export function shIn(script: string, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', `cd "$HAKIT_TEST_DIR" || exit 1\n${script}`], { env: { ...process.env, HAKIT_TEST_DIR: dir }, timeout: 120_000, maxBuffer: 1 << 20 }, (err, out, stderr) => {
      if (err) reject(new Error(`sh -c ${JSON.stringify(script)}: ${err.message} ${stderr}`));
      else resolve(out);
    });
  });
}

/** True if `pid` runs (a zombie waiting for its parent counts as ended). */
export async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
