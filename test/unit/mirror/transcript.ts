// Transcripts for the mirror core (STYLE.md 6): events in, transitions and actions out.
//
//   test: name of the test (DESIGN.md 5)
//   params node=n1 peer=n2 default=n1|last|- repl=0|1 failover=1 nets=lan,hb2 timeout=2000 maxloop=3/60000
//   @0 init seed=s [gen=s.1/s.0] [up=1] [en=1] [fo=1] [last=n1] [ctr=2] [unacked] [suspect]
//     persist s.0 up=1 en=0 fo=1 last=-
//   @10 hb * PRIM~ [r=reason] [gen=x.1/x.0] [up=0] [stopping] [swap] [wantSwap] [second] [unacked] [suspect] [last=n2] [sees=N|-]
//   @20 cmd start | stop | restart | stopstart | swap | prim | second [full] | failover on|off
//   @30 done start_prim [fail]      @40 vip-added | vip-failed      @50 checker app down wait
//   @60 shutdown                    @70 resync-done [fail] [gen=x.1]     @80 tick
//   @90 unacked-write               (a write failed after this primary let go)
//   @90 replication-lost            (hb also takes [req=N] [incr]: the peer's resync request number,
//                                    and whether it may be incremental)
//   @95 witness up|down     @96 lease granted [sent=N] [len=4000] | lease refused [holder=n2] | lease error     @97 fenced
//   @98 flushed [N] [fail]  (the answer to `flush N`)
//   params sb=ping|arb|both grace=N  (the splitbrain checker: ping witnesses, arbitrator, both)
//
// Indented lines after an event are exactly the actions it must produce, rendered as:
//   => STATE[~] [reason]  (transition; ~ = transient; the send-heartbeat that follows is implied)
//   heartbeat | persist GEN up= en= fo= last= [unacked] | run SCRIPT ARG1 ARG2 ARG3 | vip add|remove |
//   announce-vip | mount rw|ro|none | resync full|incr | stop-resync | log LEVEL: message |
//   replicate sync|alone | replicate resync full|incr gen=GEN | flush N
// An expected line ending in `...` matches any action line that starts with the rest.
// `hb *` delivers the same view on every network of the module. The peer's generation defaults
// to this node's current one (in sync); the peer's `sees` defaults to this node's current change
// counter (the peer has seen this node as it is now); `sees=-` means silent, a number a stale one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deepFreeze } from '../../helpers/freeze.js';
import type { CheckerAction } from '../../../src/core/config/types.js';
import {
  initialState, step, type MirrorAction, type MirrorEvent, type MirrorParams, type MirrorState, type Persisted, type PeerView,
  type ScriptName, type MirrorCommand, type Generation,
} from '../../../src/core/mirror/index.js';

export interface Section { name: string; line: number; params: MirrorParams; lines: Array<{ n: number; text: string }> }

export function defaultParams(over: Partial<MirrorParams> = {}): MirrorParams {
  return {
    module: 'app', node: 'n1', peer: 'n2', defaultPrimary: undefined, failover: true, pulseMs: 250,
    heartbeatTimeoutMs: 2000, networks: ['lan', 'hb2'], maxloop: { count: 3, windowMs: 60_000 }, hasReplication: false,
    ...over,
  };
}

function kv(words: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of words) {
    const i = w.indexOf('=');
    if (i < 0) m.set(w, '');
    else m.set(w.slice(0, i), w.slice(i + 1));
  }
  return m;
}

function parseGen(s: string): Generation {
  const [current = '', hist = ''] = s.split('/');
  return { current, history: hist === '' ? [] : hist.split(',') };
}

export function renderGen(g: Generation): string {
  return g.history.length ? `${g.current}/${g.history.join(',')}` : g.current;
}

export function render(actions: readonly MirrorAction[]): string[] {
  const out: string[] = [];
  let prevTransition = false;
  for (const a of actions) {
    const wasTransition = prevTransition;
    prevTransition = a.type === 'transition';
    switch (a.type) {
      case 'transition': out.push(`=> ${a.to}${a.ready ? '' : '~'}${a.reason ? ` ${a.reason}` : ''}`); break;
      case 'send-heartbeat': if (!wasTransition) out.push('heartbeat'); break;
      case 'persist': {
        const p = a.persisted;
        out.push(`persist ${renderGen(p.generation)} up=${+p.upToDate} en=${+p.enabled} fo=${+p.failover} last=${p.lastPrimary ?? '-'}${p.unacked === true ? ' unacked' : ''}`);
        break;
      }
      case 'run-script': out.push(`run ${a.script} ${a.args.join(' ')}`); break;
      case 'vip': out.push(`vip ${a.op}`); break;
      case 'announce-vip': out.push('announce-vip'); break;
      case 'mount': out.push(`mount ${a.mode}`); break;
      case 'start-resync': out.push(`resync ${a.full ? 'full' : 'incr'}`); break;
      case 'stop-resync': out.push('stop-resync'); break;
      case 'flush': out.push(`flush ${a.seq}`); break;
      case 'replicate': out.push(a.mode === 'resync' ? `replicate resync ${a.full ? 'full' : 'incr'} gen=${a.generation}` : `replicate ${a.mode}`); break;
      case 'log': out.push(`log ${a.level}: ${a.message}`); break;
      case 'lease': out.push(`lease ${a.op}`); break;
      case 'unfence': out.push('unfence'); break;
    }
  }
  return out;
}

export function parseFile(text: string): Section[] {
  const sections: Section[] = [];
  let cur: Section | null = null;
  text.split('\n').forEach((raw, i) => {
    const n = i + 1;
    const t = raw.replace(/\s+$/, '');
    if (t.trim() === '' || t.trimStart().startsWith('#')) return;
    if (t.startsWith('test:')) {
      cur = { name: t.slice(5).trim(), line: n, params: defaultParams(), lines: [] };
      sections.push(cur);
      return;
    }
    if (!cur) throw new Error(`line ${n}: expected "test:" first`);
    const sec: Section = cur;
    if (t.startsWith('params')) {
      const m = kv(t.split(/\s+/).slice(1));
      const p = { ...sec.params } as { -readonly [K in keyof MirrorParams]: MirrorParams[K] };
      for (const [k, v] of m) {
        if (k === 'node') p.node = v;
        else if (k === 'peer') p.peer = v;
        else if (k === 'default') p.defaultPrimary = v === '-' ? undefined : v;
        else if (k === 'repl') p.hasReplication = v === '1';
        else if (k === 'failover') p.failover = v === '1';
        else if (k === 'nets') p.networks = v.split(',');
        else if (k === 'timeout') p.heartbeatTimeoutMs = Number(v);
        else if (k === 'sb') p.splitBrain = { witnesses: v !== 'arb', arbitrator: v !== 'ping', graceMs: p.splitBrain?.graceMs ?? 1750 };
        else if (k === 'grace') p.splitBrain = { witnesses: p.splitBrain?.witnesses ?? true, arbitrator: p.splitBrain?.arbitrator ?? false, graceMs: Number(v) };
        else if (k === 'maxloop') { const [c = '3', w = '60000'] = v.split('/'); p.maxloop = { count: Number(c), windowMs: Number(w) }; }
        else throw new Error(`line ${n}: unknown param ${k}`);
      }
      sec.params = p;
      return;
    }
    sec.lines.push({ n, text: t });
  });
  return sections;
}

export function parseEvents(text: string, n: number, state: MirrorState, params: MirrorParams): MirrorEvent[] {
  const m = /^@(\d+)\s+(\S+)\s*(.*)$/.exec(text);
  if (!m) throw new Error(`line ${n}: bad event "${text}"`);
  const now = Number(m[1]);
  const kind = m[2] ?? '';
  const words = (m[3] ?? '').split(/\s+/).filter(Boolean);
  switch (kind) {
    case 'tick': return [{ type: 'tick', now }];
    case 'shutdown': return [{ type: 'shutdown', now }];
    case 'vip-failed': return [{ type: 'vip-failed', now, detail: 'address in use' }];
    case 'vip-added': return [{ type: 'vip-added', now }];
    case 'resync-done': {
      const gen = kv(words).get('gen');
      return [{ type: 'resync-done', now, ok: words[0] !== 'fail', detail: words[0] === 'fail' ? 'peer gone' : '', ...(gen !== undefined ? { generation: gen } : {}) }];
    }
    case 'replication-lost': return [{ type: 'replication-lost', now, detail: 'no ack for 3000 ms' }];
    case 'unacked-write': return [{ type: 'unacked-write', now, detail: 'write /db: peer gone' }];
    case 'witness': return [{ type: 'witness', now, reachable: words[0] === 'up' }];
    case 'fenced': return [{ type: 'fenced', now, detail: 'no word from the daemon for 1000 ms' }];
    case 'flushed': return [{ type: 'flushed', now, seq: Number(words[0] ?? 1), ok: words[1] !== 'fail', detail: words[1] === 'fail' ? 'sync: Input/output error' : '' }];
    case 'lease': {
      const o = kv(words.slice(1));
      if (words[0] === 'granted') return [{ type: 'lease', now, granted: true, sentAtMs: Number(o.get('sent') ?? now), leaseMs: Number(o.get('len') ?? 4000) }];
      if (words[0] === 'error') return [{ type: 'lease', now, granted: false, holder: null, error: 'timeout' }];
      return [{ type: 'lease', now, granted: false, holder: o.get('holder') ?? null }];
    }
    case 'done': return [{ type: 'script-done', now, script: (words[0] ?? '') as ScriptName, ok: words[1] !== 'fail', detail: words[1] === 'fail' ? 'exit 1' : 'exit 0' }];
    case 'checker': return [{ type: 'checker', now, name: words[0] ?? '', up: words[1] === 'up', action: (words[2] ?? 'none') as CheckerAction }];
    case 'init': {
      const o = kv(words);
      const seed = o.get('seed') ?? 's';
      const keys = ['gen', 'up', 'en', 'fo', 'last', 'ctr', 'unacked', 'suspect'];
      const persisted: Persisted | null = keys.some((k) => o.has(k)) ? {
        generation: parseGen(o.get('gen') ?? `${seed}.0`), upToDate: (o.get('up') ?? '1') === '1', enabled: o.get('en') === '1',
        failover: (o.get('fo') ?? '1') === '1', lastPrimary: o.get('last') ?? null, idCounter: Number(o.get('ctr') ?? '1'),
        ...(o.has('unacked') ? { unacked: true } : {}),
        ...(o.has('suspect') ? { suspect: true } : {}),
      } : null;
      return [{ type: 'init', now, persisted, idSeed: seed }];
    }
    case 'cmd': {
      const c = words[0] ?? '';
      let command: MirrorCommand;
      if (c === 'failover') command = { cmd: 'failover', on: words[1] === 'on' };
      else if (c === 'second') command = { cmd: 'second', fullsync: words[1] === 'full' };
      else command = { cmd: c } as MirrorCommand;
      return [{ type: 'command', now, command }];
    }
    case 'hb': {
      const net = words[0] ?? '*';
      const st = words[1] ?? '';
      const o = kv(words.slice(2));
      const sees = o.get('sees') ?? String(state.changes);
      const msg: Record<string, unknown> = {
        lastPrimary: o.has('last') ? o.get('last') : null, n, sees: sees === '-' ? null : Number(sees), seesLife: sees === '-' ? null : state.idSeed,
      };
      for (const f of ['swap', 'wantSwap', 'second', 'unacked', 'suspect']) if (o.has(f)) msg[f] = true;
      if (o.has('req')) msg['resyncReq'] = Number(o.get('req'));
      if (o.has('incr')) msg['incremental'] = true;
      const view: PeerView = {
        state: st.replace('~', ''), ready: !st.endsWith('~'), reason: o.get('r') ?? null,
        generation: o.has('gen') ? parseGen(o.get('gen') ?? '') : state.persisted.generation,
        upToDate: (o.get('up') ?? '1') === '1', stopping: o.has('stopping'), msg,
      };
      const nets = net === '*' ? params.networks : [net];
      return nets.map((network) => ({ type: 'heartbeat', now, network, view }));
    }
  }
  throw new Error(`line ${n}: unknown event ${kind}`);
}

/** Runs one section; asserts each event's actions. Returns the final state. */
export function runSection(sec: Section, file: string): MirrorState {
  let state = initialState(sec.params);
  let i = 0;
  while (i < sec.lines.length) {
    const ev = sec.lines[i];
    if (!ev) break;
    if (!ev.text.startsWith('@')) throw new Error(`${file}:${ev.n}: expected an event line (@time ...), got "${ev.text}"`);
    i++;
    const expected: string[] = [];
    while (i < sec.lines.length && !(sec.lines[i]?.text.startsWith('@') ?? true)) {
      expected.push((sec.lines[i]?.text ?? '').trim());
      i++;
    }
    const actions: MirrorAction[] = [];
    for (const e of parseEvents(ev.text, ev.n, state, sec.params)) {
      const r = step(state, e, sec.params);
      // Frozen: a step that changed the state it was given (not its own copy) throws in the next one.
      state = deepFreeze(r.state);
      actions.push(...r.actions);
    }
    const got = render(actions);
    const matched = got.length === expected.length && expected.every((x, k) =>
      x.endsWith('...') ? (got[k] ?? '').startsWith(x.slice(0, -3)) : got[k] === x);
    if (!matched) {
      assert.deepEqual(got, expected, `${file}:${ev.n}: ${ev.text}\n  got:\n    ${got.join('\n    ')}`);
    }
  }
  return state;
}

export function loadTranscripts(file: URL): Section[] {
  return parseFile(readFileSync(file, 'utf8'));
}

/** Draft mode for writing transcripts: prints each event with the actions it produced (review before keeping). */
export function recordSection(sec: Section): string {
  let state = initialState(sec.params);
  const out: string[] = [];
  for (const ev of sec.lines) {
    if (!ev.text.startsWith('@')) continue;
    out.push(ev.text);
    const actions: MirrorAction[] = [];
    for (const e of parseEvents(ev.text, ev.n, state, sec.params)) {
      const r = step(state, e, sec.params);
      state = r.state;
      actions.push(...r.actions);
    }
    for (const l of render(actions)) out.push(`  ${l}`);
  }
  return out.join('\n');
}
