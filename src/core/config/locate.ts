/**
 * YAML documents with positions: parse a file keeping its nodes and line counter, and map a
 * value's path back to the line and column where it is written.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, type Document, type Node, type YAMLError } from 'yaml';
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
  const errors = doc.errors.map((e) => {
    const r = explain(e, text, doc, lines);
    return at(r.offset, `invalid YAML: ${r.message}`);
  });
  if (errors.length > 0) return { yaml, data: undefined, errors };
  try {
    return { yaml, data: doc.toJS({ maxAliasCount: 100 }), errors: [] };
  } catch (e) {
    // toJS throws on an alias without an anchor before it: report it where the alias is.
    let error = at(0, `invalid YAML: ${(e as Error).message}`);
    visit(doc, {
      Alias(_, node) {
        if (node.resolve(doc) !== undefined) return undefined;
        error = at(node.range?.[0] ?? 0, `invalid YAML: alias "*${node.source}" has no anchor "&${node.source}" before it`);
        return visit.BREAK;
      },
    });
    return { yaml, data: undefined, errors: [error] };
  }
}

/**
 * The yaml library's error, reworded for users where its own words mislead: an unclosed bracket
 * is reported where it opens (the library reports the line after), a duplicate key names the key
 * and its first line.
 */
function explain(e: YAMLError, text: string, doc: Document.Parsed, lines: LineCounter): { offset: number; message: string } {
  const first = e.message.split('\n')[0] ?? e.message;
  const offset = e.pos[0];
  if (e.code === 'TAB_AS_INDENT') return { offset, message: 'a tab indents this line; indent with spaces' };
  if (e.code === 'MULTIPLE_DOCS') return { offset, message: 'a second document starts here ("---"); a config file holds one mapping' };
  if (e.code === 'DUPLICATE_KEY') {
    let message = 'a key appears twice in one mapping; keep one';
    visit(doc, {
      Map(_, map) {
        const at = map.items.findIndex((p) => (p.key as Node | null)?.range?.[0] === offset);
        if (at < 0) return undefined;
        const name = keyText(map.items[at]!.key);
        const firstPair = map.items.find((p) => keyText(p.key) === name);
        const line = lines.linePos((firstPair?.key as Node | null)?.range?.[0] ?? offset).line;
        message = `key "${name}" appears twice in this mapping (first at line ${line}); keep one`;
        return visit.BREAK;
      },
    });
    return { offset, message };
  }
  const flow = /^Flow (sequence|map) .*end with an? ([\]}])/.exec(first);
  if (flow) {
    const close = flow[2]!;
    const open = close === ']' ? '[' : '{';
    let depth = 0;
    for (let i = Math.min(offset, text.length) - 1; i >= 0; i--) {
      const ch = text[i];
      if (ch === ']' || ch === '}') depth++;
      else if (ch === '[' || ch === '{') {
        if (depth > 0) depth--;
        else if (ch === open) {
          return { offset: i, message: `this "${open}" is never closed; end the ${close === ']' ? 'list' : 'mapping'} with "${close}" on the same line or indent its continuation lines` };
        } else break;
      }
    }
  }
  return { offset, message: first };
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
      // A key written without a value (`lan:`) has an empty value node: point at the key.
      const empty = v === null || (isScalar(v) && v.value === null && v.range !== undefined && v.range !== null && v.range[0] === v.range[1]);
      next = (key && i === path.length - 1) || empty ? k : v;
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
