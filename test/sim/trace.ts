/**
 * The simulator's trace: what each node's core received and did, and what the world did to it
 * (faults, script ends, resource changes), with simulated times in ms. Kept as a ring of the last
 * `size` entries (formatted only when printed, so a passing run costs little), or complete for a
 * replay (`npm run sim -- --seed S`).
 */
import type { MirrorAction, MirrorEvent, MirrorState } from '../../src/core/mirror/index.js';

type Entry =
  | { readonly t: number; readonly node: string; readonly text: string }
  | { readonly t: number; readonly node: string; readonly e: MirrorEvent; readonly before: MirrorState; readonly after: MirrorState; readonly actions: readonly MirrorAction[] };

export class Trace {
  private buf: Entry[] = [];
  private start = 0;

  /** size: entries kept (Infinity keeps all). */
  constructor(readonly size: number) {}

  private push(e: Entry): void {
    if (this.buf.length < this.size) { this.buf.push(e); return; }
    this.buf[this.start] = e;
    this.start = (this.start + 1) % this.buf.length;
  }

  note(t: number, node: string, text: string): void { this.push({ t, node, text }); }

  /** A core step; ticks and heartbeats that changed nothing are left out. */
  step(t: number, node: string, e: MirrorEvent, before: MirrorState, after: MirrorState, actions: readonly MirrorAction[]): void {
    if ((e.type === 'tick' || e.type === 'heartbeat') && actions.length === 0) return;
    this.push({ t, node, e, before, after, actions });
  }

  entries(): readonly Entry[] { return [...this.buf.slice(this.start), ...this.buf.slice(0, this.start)]; }

  /** The trace as lines: `   time node  event  BEFORE -> AFTER  | actions`. */
  lines(): string[] {
    return this.entries().map((x) => `${String(x.t).padStart(7)} ${x.node.padEnd(3)} ${'text' in x ? x.text : formatStep(x.e, x.before, x.after, x.actions)}`);
  }
}

export function label(s: MirrorState): string {
  return `${s.name}${s.ready ? '' : '~'}${s.reason ? `(${s.reason})` : ''}`;
}

function formatEvent(e: MirrorEvent): string {
  switch (e.type) {
    case 'init': return `init ${e.persisted ? `gen=${e.persisted.generation.current} up=${+e.persisted.upToDate} en=${+e.persisted.enabled} fo=${+e.persisted.failover} last=${e.persisted.lastPrimary ?? '-'}` : 'empty store'}`;
    case 'tick': return 'tick';
    case 'heartbeat': {
      const v = e.view;
      const m = (typeof v.msg === 'object' && v.msg !== null ? v.msg : {}) as Record<string, unknown>;
      const flags = [v.stopping ? 'stopping' : '', m['swap'] ? 'swap' : '', m['wantSwap'] ? 'wantSwap' : '', m['second'] ? 'second' : ''].filter(Boolean).join(',');
      return `hb/${e.network} peer=${v.state}${v.ready ? '' : '~'}${v.reason ? `(${v.reason})` : ''} gen=${v.generation.current} up=${+v.upToDate} n=${String(m['n'])} sees=${String(m['sees'])}${flags ? ` ${flags}` : ''}`;
    }
    case 'command': return `COMMAND ${e.command.cmd}${e.command.cmd === 'failover' ? (e.command.on ? ' on' : ' off') : ''}${e.command.cmd === 'second' && e.command.fullsync ? ' --fullsync' : ''}`;
    case 'script-done': return `script-done ${e.script} ${e.ok ? 'ok' : `FAILED (${e.detail})`}`;
    case 'vip-failed': return `vip-failed (${e.detail})`;
    case 'vip-added': return 'vip-added';
    case 'checker': return `checker ${e.name} ${e.up ? 'up' : 'down'} (${e.action})`;
    case 'shutdown': return 'shutdown';
    case 'resync-done': return `resync-done ${e.ok ? 'ok' : `FAILED (${e.detail})`}`;
    case 'replication-lost': return `replication-lost (${e.detail})`;
    case 'unacked-write': return `unacked-write (${e.detail})`;
    case 'rfs-failed': return `rfs-failed (${e.detail})`;
    case 'witness': return `witness ${e.reachable ? 'reachable' : 'UNREACHABLE'}`;
    case 'lease': return e.granted ? `lease granted (sent ${e.sentAtMs}, ${e.leaseMs} ms)` : `lease refused (${e.error ?? e.holder ?? 'quiet'})`;
    case 'fenced': return `fenced (${e.detail})`;
    case 'flushed': return `flushed #${e.seq}${e.ok ? '' : ` FAILED (${e.detail})`}`;
  }
}

function formatAction(a: MirrorAction): string | null {
  switch (a.type) {
    case 'persist': return `persist(gen=${a.persisted.generation.current} up=${+a.persisted.upToDate} en=${+a.persisted.enabled} last=${a.persisted.lastPrimary ?? '-'})`;
    case 'run-script': return `run ${a.script} ${a.args.join(' ')}`;
    case 'vip': return `vip ${a.op}`;
    case 'announce-vip': return 'announce-vip';
    case 'mount': return `mount ${a.mode}`;
    case 'start-resync': return `resync ${a.full ? 'full' : 'incr'}`;
    case 'stop-resync': return 'stop-resync';
    case 'flush': return `flush #${a.seq}`;
    case 'replicate': return `replicate ${a.mode}`;
    case 'lease': return `lease ${a.op}`;
    case 'unfence': return 'unfence';
    case 'send-heartbeat': return null;
    case 'transition': return null;
    case 'log': return a.level === 'info' ? null : `${a.level}: ${a.message}`;
  }
}

function formatStep(e: MirrorEvent, before: MirrorState, after: MirrorState, actions: readonly MirrorAction[]): string {
  const acts = actions.map(formatAction).filter((x): x is string => x !== null);
  const change = label(before) === label(after) ? label(after) : `${label(before)} -> ${label(after)}`;
  return `${formatEvent(e)}  [${change}]${acts.length ? `  | ${acts.join('; ')}` : ''}`;
}
