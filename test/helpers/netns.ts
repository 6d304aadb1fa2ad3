/** Running a compiled test file again inside a network namespace (contract suites on real addresses). */
import { spawnSync } from 'node:child_process';

export interface NestedRun {
  status: number | null;
  /** stdout and stderr together, for messages. */
  out: string;
  /** The child's `# pass N` count (0 when absent). */
  pass: number;
  /** One line for an assertion message: exit status, signal, spawn error. */
  why: string;
}

/**
 * Runs `node --test file` in the network namespace `ns` (nsenter, not `ip netns exec`) with
 * extra environment, bounded by `timeoutMs`.
 */
export function runTestFileInNetns(ns: string, file: string, env: Record<string, string>, timeoutMs: number): NestedRun {
  // Without NODE_TEST_CONTEXT, or the child thinks it is nested in this runner and runs nothing.
  const { NODE_TEST_CONTEXT: _, ...base } = process.env;
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '--enable-source-maps', '--test', file], {
    env: { ...base, ...env }, encoding: 'utf8', timeout: timeoutMs,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  return { status: r.status, out, pass: Number(/^# pass (\d+)$/m.exec(out)?.[1] ?? 0), why: `exit ${r.status} signal ${r.signal} ${r.error?.message ?? ''}` };
}
