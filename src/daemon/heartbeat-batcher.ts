/**
 * One datagram per peer and network per pulse, whatever the number of modules (issue 3's idle
 * cost: a heartbeat's price is mostly per datagram: a send syscall, a MAC, a decode, garbage).
 *
 * Every module's runtime sends its own heartbeats on its pulse (mirror-runtime.ts), and the
 * modules of a node with the same pulse share one timer (`ClockPacer`), so they send in the same
 * turn of the event loop. The batcher holds what is sent during a turn and hands it to the
 * transport at the end of the turn (`defer`, setImmediate by default: after the timers of this
 * turn, before any I/O wait), one call per (network, address) carrying every module's view in
 * order: the transport packs them into as few datagrams as fit.
 *
 * Promises:
 * - A heartbeat leaves within the same event loop iteration it was sent in (no timer, no
 *   added latency beyond the current turn).
 * - Order: per (network, address), views leave in the order they were sent.
 * - Programming errors of one module (an address that is not an IP literal: thrown at `send`,
 *   at once; a view too large for a datagram: at the flush) never cost another module its
 *   heartbeat: a bundle the transport refuses is sent again view by view, and each refused view
 *   is reported to `onError` (the caller logs it).
 * - `close` sends what is pending, then closes the transport.
 */
import type { Clock, TimerHandle } from '../adapters/clock/clock.js';
import { parseAddress, type HeartbeatCounters, type HeartbeatPacket, type HeartbeatTransport, type ReceiveHandler } from '../adapters/udp/transport.js';

export interface HeartbeatBatcherOptions {
  /** Runs `fn` once the current turn of the event loop is done (default setImmediate). */
  defer?: (fn: () => void) => void;
  /** A view the transport refused at the flush, with why. Must not throw. */
  onError?: (network: string, module: string, error: Error) => void;
}

export class HeartbeatBatcher implements HeartbeatTransport {
  private pending = new Map<string, { network: string; to: string; packets: HeartbeatPacket[] }>();
  private scheduled = false;
  private readonly defer: (fn: () => void) => void;
  private readonly onError: NonNullable<HeartbeatBatcherOptions['onError']>;

  constructor(private readonly inner: HeartbeatTransport, opts: HeartbeatBatcherOptions = {}) {
    this.defer = opts.defer ?? ((fn) => { setImmediate(fn); });
    this.onError = opts.onError ?? (() => {});
  }

  send(network: string, toAddress: string, packets: HeartbeatPacket | readonly HeartbeatPacket[]): void {
    const key = `${network}\u0000${toAddress}`;
    let p = this.pending.get(key);
    if (!p) {
      parseAddress(toAddress); // a bad address is the caller's error: thrown now, not at the flush
      p = { network, to: toAddress, packets: [] };
      this.pending.set(key, p);
    }
    if (Array.isArray(packets)) p.packets.push(...(packets as readonly HeartbeatPacket[]));
    else p.packets.push(packets as HeartbeatPacket);
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(() => this.flush());
    }
  }

  /** Hands everything pending to the transport now. */
  flush(): void {
    this.scheduled = false;
    const batches = this.pending;
    this.pending = new Map();
    for (const { network, to, packets } of batches.values()) {
      try {
        this.inner.send(network, to, packets);
      } catch {
        for (const p of packets) {
          try {
            this.inner.send(network, to, p);
          } catch (e) {
            this.onError(network, p.module, e as Error);
          }
        }
      }
    }
  }

  onReceive(handler: ReceiveHandler): () => void {
    return this.inner.onReceive(handler);
  }

  counters(): HeartbeatCounters {
    return this.inner.counters();
  }

  async close(): Promise<void> {
    this.flush();
    await this.inner.close();
  }
}

/** Runs callbacks every `ms` (the modules' pulses). */
export interface Pacer {
  /** Calls `fn` every `ms` from now on until the returned function is called. `fn` must not throw. */
  every(ms: number, fn: () => void): () => void;
}

/**
 * One clock timer per distinct period: every module with the same pulse is called in the same
 * timer callback, in the order they joined, so their heartbeats leave in one turn and share
 * datagrams (HeartbeatBatcher). A module that joins a running period has its first call within
 * one period, not exactly one period later.
 */
export class ClockPacer implements Pacer {
  private readonly groups = new Map<number, { fns: (() => void)[]; timer: TimerHandle | null }>();

  constructor(private readonly clock: Clock) {}

  every(ms: number, fn: () => void): () => void {
    let g = this.groups.get(ms);
    if (!g) {
      g = { fns: [], timer: null };
      this.groups.set(ms, g);
    }
    const group = g;
    const entry = (): void => fn();
    group.fns.push(entry);
    if (group.timer === null) this.arm(ms, group);
    return () => {
      const i = group.fns.indexOf(entry);
      if (i >= 0) group.fns.splice(i, 1);
      if (group.fns.length === 0 && group.timer !== null) {
        this.clock.clearTimer(group.timer);
        group.timer = null;
        this.groups.delete(ms);
      }
    };
  }

  private arm(ms: number, group: { fns: (() => void)[]; timer: TimerHandle | null }): void {
    group.timer = this.clock.setTimer(ms, () => {
      group.timer = null;
      if (group.fns.length === 0) return;
      this.arm(ms, group);
      for (const f of [...group.fns]) f();
    });
  }
}
