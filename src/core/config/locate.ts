/**
 * YAML documents with positions: parse a file keeping its nodes and line counter, and map a
 * value's path back to the line and column where it is written.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { ConfigIssue } from './types.js';

export type PathSeg = string | number;

export interface YamlFile {
  /** Path relative to the config dir, as shown to users. */
  readonly file: string;
  /** Field shown for problems of the whole file (its base name). */
  readonly base: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

/** `['vip', 0, 'address']` -> `vip[0].address`; the empty path -> the file's base name. */
export function fieldOf(path: readonly PathSeg[], base: string): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out === '' ? base : out;
}

/**
 * Parses one file. Returns the document and its plain data, or the located syntax errors
 * (every error the parser found, plus an unresolvable alias).
 */
export function parseYaml(file: string, text: string): { yaml: YamlFile; data: unknown; errors: ConfigIssue[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const base = file.slice(file.lastIndexOf('/') + 1);
  const yaml: YamlFile = { file, base, doc, lines };
  const at = (offset: number, message: string): ConfigIssue => {
    const p = lines.linePos(offset);
    return { file, line: p.line, column: p.col, field: base, message };
  };
  const errors = doc.errors.map((e) => at(e.pos[0], `invalid YAML: ${e.message.split('\n')[0]}`));
  if (errors.length > 0) return { yaml, data: undefined, errors };
  try {
    return { yaml, data: doc.toJS({ maxAliasCount: 100 }), errors: [] };
  } catch (e) {
    return { yaml, data: undefined, errors: [at(0, `invalid YAML: ${(e as Error).message}`)] };
  }
}

function keyText(k: unknown): string | undefined {
  if (isScalar(k)) return String(k.value);
  return typeof k === 'string' || typeof k === 'number' ? String(k) : undefined;
}

/**
 * Position of the value at `path`; with `key`, of the key naming its last segment. A path that
 * does not exist (a missing key) resolves to the deepest mapping or list that does.
 */
export function locate(y: YamlFile, path: readonly PathSeg[], key = false): { line: number; column: number } {
  let node: Node | null = y.doc.contents;
  let offset = node?.range?.[0] ?? 0;
  for (let i = 0; i < path.length && node; i++) {
    const seg = path[i]!;
    if (isAlias(node)) node = node.resolve(y.doc) ?? null;
    let next: Node | null = null;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (!pair) break;
      const k = pair.key as Node | null;
      const v = pair.value as Node | null;
      next = key && i === path.length - 1 ? k : (v ?? k);
      if (next === null) break;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = (node.items[seg] as Node | undefined) ?? null;
    }
    if (!next) break;
    node = next;
    if (node.range) offset = node.range[0];
  }
  const p = y.lines.linePos(offset);
  return { line: p.line, column: p.col };
}

/** A located issue at `path` of a file. */
export function issueAt(y: YamlFile, path: readonly PathSeg[], message: string, key = false): ConfigIssue {
  const { line, column } = locate(y, path, key);
  return { file: y.file, line, column, field: fieldOf(path, y.base), message };
}
