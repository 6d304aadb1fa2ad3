/** Running `ip`, `ping` and `arping` for probes through the VIP adapter's Exec seam. */
import { type Exec, type ExecResult, EXIT_TIMEOUT, execFileBounded, showArgv } from '../vip/index.js';

const PACKAGES: Record<string, string> = { ip: 'iproute2', ping: 'iputils-ping', arping: 'arping' };

/**
 * Runs argv with `exec` (default execFileBounded), killed after `timeoutMs`. Resolves with the
 * result, or with `{ error }` saying what is wrong when the command could not start or was killed.
 */
export async function runTool(exec: Exec | undefined, argv: readonly string[], timeoutMs: number): Promise<ExecResult | { error: string }> {
  let r: ExecResult;
  try {
    r = await (exec ?? execFileBounded)(argv, { timeoutMs });
  } catch (e) {
    const tool = argv[0] ?? '';
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { error: `${tool} is not installed (Debian package ${PACKAGES[tool] ?? tool})` };
    return { error: `\`${showArgv(argv)}\` could not start: ${(e as Error).message}` };
  }
  if (r.code === EXIT_TIMEOUT) return { error: `\`${showArgv(argv)}\` was killed after ${timeoutMs} ms` };
  return r;
}

/** The failure text of an unexpected exit. */
export function exitText(argv: readonly string[], r: ExecResult): string {
  return `\`${showArgv(argv)}\` exited with ${r.code}: ${r.stderr.trim() || r.stdout.trim() || '(no output)'}`;
}
