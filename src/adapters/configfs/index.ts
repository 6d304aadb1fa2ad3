/**
 * The config-dir seam: reads `cluster.yaml` and every `modules/<name>/module.yaml` of a config
 * dir, answers the probes parseConfig asks (the key file), and hands the texts to the pure
 * parser. Unreadable files become located issues, never exceptions.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compareIssues, parseConfig } from '../../core/config/index.js';
import type { ConfigFiles, ConfigIssue, ConfigResult, KeyFileInfo } from '../../core/config/index.js';

function whole(file: string, message: string): ConfigIssue {
  return { file, line: 1, column: 1, field: file.slice(file.lastIndexOf('/') + 1), message };
}

function keyFileInfo(path: string): KeyFileInfo {
  try {
    const st = statSync(path);
    if (!st.isFile()) return { kind: 'not-a-file' };
    return { kind: 'file', mode: st.mode & 0o7777, size: st.size };
  } catch {
    return { kind: 'missing' };
  }
}

/** Reads the texts of a config dir; issues for what cannot be read. */
export function readConfigDir(dir: string): { files?: ConfigFiles; errors: ConfigIssue[] } {
  const root = resolve(dir);
  const errors: ConfigIssue[] = [];
  const clusterPath = join(root, 'cluster.yaml');
  let clusterText: string | undefined;
  try {
    clusterText = readFileSync(clusterPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    errors.push(whole('cluster.yaml', code === 'ENOENT'
      ? 'file not found: the config dir needs a cluster.yaml (see docs/config.md); pass --config-dir DIR or set HAKIT_CONFIG_DIR to the right directory'
      : `cannot read: ${(e as Error).message}`));
  }
  const modules: { name: string; path: string; text: string }[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(join(root, 'modules'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(whole('modules', `cannot read: ${(e as Error).message}`));
  }
  for (const name of names) {
    const path = join(root, 'modules', name, 'module.yaml');
    try {
      modules.push({ name, path, text: readFileSync(path, 'utf8') });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      errors.push(whole(`modules/${name}/module.yaml`, code === 'ENOENT'
        ? 'file not found: every folder under modules/ is a module and needs a module.yaml (remove the folder or add the file)'
        : `cannot read: ${(e as Error).message}`));
    }
  }
  if (clusterText === undefined) return { errors };
  return { files: { dir: root, cluster: { path: clusterPath, text: clusterText }, modules }, errors };
}

/** Reads and validates a config dir: every error of every file at once, sorted (compareIssues). */
export function loadConfigDir(dir: string): ConfigResult {
  const { files, errors } = readConfigDir(dir);
  if (!files) return { ok: false, errors };
  const res = parseConfig(files, { keyFile: keyFileInfo });
  if (errors.length === 0) return res;
  return { ok: false, errors: [...errors, ...(res.ok ? [] : res.errors)].sort(compareIssues) };
}
