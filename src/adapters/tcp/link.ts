/**
 * The replication link's protocol engine, shared by the real TCP adapter (tcp.ts) and its
 * in-memory twin (memory.ts): they differ only in how a `Conn` (an ordered, reliable byte
 * stream) is made. Wire format and handshake: frame.ts; security argument: docs/security.md.
 *
 * Sender (primary side), states:
 *
 *     connecting --handshake ok--> up --peer gone / bad frame / closed--> down
 *         |                        ^                                        |
 *         +------ failure -------> down --(backoff) reconnect, handshake ok-+
 *
 *   - `send` queues a payload; frames are written in send() order while the unacknowledged bytes
 *     stay under `maxInFlightBytes` (beyond it `send` waits: bounded memory). The receiver acks
 *     cumulatively; a send resolves when its seq is acked.
 *   - Timeout: a pending send (queued or in flight) fails when the link made no progress for
 *     `timeoutMs`: no ack advanced and the connection did not come up since the later of the
 *     oldest pending send's call and the last progress. A slow link that keeps acking is not a
 *     gone peer; a silent one is declared gone `timeoutMs` after it fell silent.
 *   - Down: every pending send rejects with HakitError PEER_GONE, the connection is dropped and
 *     reconnection is attempted with exponential backoff. Nothing is resent: a new connection is
 *     a new session (seq from 1); the caller records what was not acked and resyncs.
 *   - In state 'down' (including while reconnecting) `send` rejects at once: the caller is alone.
 *     In the first 'connecting' it queues (bounded by `timeoutMs` like any pending send).
 *
 * Receiver (secondary side): accepts authenticated connections for one module; the newest
 * authenticated connection replaces an older one. Payloads are handed to the handler one at a
 * time, in seq order (the next call starts after the previous promise settled, across
 * connections too); applied seqs are acked cumulatively, coalesced per event-loop turn. A
 * handler rejection sends BYE and closes the connection (the primary goes ALONE).
 */
import { randomBytes } from 'node:crypto';
import { HakitError } from '../../core/errors.js';
import type { Clock, TimerHandle } from '../clock/clock.js';
import {
  AUTH_BYTES, CHALLENGE_BYTES, ChunkReader, FrameType, FrameVerifier, LINK_FAILURES, MAX_HANDSHAKE, MAX_PAYLOAD, NONCE_BYTES,
  ackPayload, checkAuth, sessionKeys, checkChallenge, decodeHello, encodeAuth, encodeChallenge, encodeFrame, encodeHello, helloLength, linkKeys, payloadParts,
  type LinkFailure, type LinkKeys,
} from './frame.js';

/** An ordered, reliable, bidirectional byte stream (a TCP socket or its in-memory twin). */
export interface Conn {
  /** Queues the buffers, in order, as one write. Never throws; a broken stream reports onClose. */
  write(chunks: readonly Buffer[]): void;
  onData(fn: (b: Buffer) => void): void;
  /** Called once when the stream is closed for any reason (`why` for logs). */
  onClose(fn: (why: string) => void): void;
  /** Stop / restart delivering data to onData (receiver backpressure). */
  pause(): void;
  resume(): void;
  /** Writes what is queued, then closes. */
  end(): void;
  /** Closes at once, dropping unsent data. */
  destroy(): void;
}

/** Opens a stream to the receiver; rejects if it cannot (refused, unreachable, aborted). */
export type Dial = (signal: AbortSignal) => Promise<Conn>;

export type SenderState = 'connecting' | 'up' | 'down';

export interface SenderStats {
  /** DATA frames written. */
  framesSent: number;
  /** Payload bytes of the DATA frames written. */
  bytesSent: number;
  /** DATA frames acknowledged by the receiver. */
  acked: number;
  /** Sends queued or written and not yet acknowledged. */
  inFlight: number;
  /** Payload bytes written and not yet acknowledged. */
  inFlightBytes: number;
  /** Percentiles of write-to-ack time of the last 1024 acked frames, ms (0 when none). */
  ackLatencyMsP50: number;
  ackLatencyMsP99: number;
  /** Times the link came up again after the first time. */
  reconnects: number;
  /** Connections refused or closed for a failed check (handshake proof, MAC, size, seq). */
  authFailures: number;
  /** REPLY frames received from the receiver. */
  repliesReceived: number;
  /** authFailures per reason. */
  failures: Record<LinkFailure, number>;
}

export interface ReceiverStats {
  framesReceived: number;
  bytesReceived: number;
  /** Payloads whose handler resolved. */
  applied: number;
  acksSent: number;
  /** REPLY frames written (ReplicationReceiver.reply). */
  repliesSent: number;
  /** Authenticated connections accepted. */
  sessions: number;
  authFailures: number;
  failures: Record<LinkFailure, number>;
}

export interface ReplicationSender {
  /**
   * Queues one payload (at most MAX_PAYLOAD bytes; given in parts, it is sent as their
   * concatenation, the parts written as they are, not copied: they must stay unchanged until the
   * promise settles, or, aborted by `signal` once written, until the link is closed); resolves
   * when the peer acknowledged it as
   * applied. Many may be in flight at once (pipelined), delivered in the order of the send
   * calls, never reordered. Rejects with HakitError PEER_GONE if the link is down, is closed or
   * the peer is declared gone before the ack; with RangeError for an oversized payload; with
   * the signal's reason when `signal` aborts first (a payload already written may still be
   * applied by the peer: abort stops the waiting, not the delivery).
   */
  send(payload: Buffer | readonly Buffer[], opts?: { signal?: AbortSignal }): Promise<void>;
  readonly state: SenderState;
  /** Called on every change to 'up' or 'down', with a reason for logs; returns an unsubscribe. */
  onState(fn: (s: 'up' | 'down', why: string) => void): () => void;
  stats(): SenderStats;
  /**
   * Called, in order, with every REPLY the receiver wrote on the current connection (see
   * ReplicationReceiver.reply); returns an unsubscribe. Replies of a connection that went down
   * are simply not delivered: request/answer exchanges built on them live within one connection
   * and need their own timeout.
   */
  onReply(fn: (payload: Buffer) => void): () => void;
  /** Rejects pending sends (PEER_GONE, "closed"), stops reconnecting, closes the connection. */
  close(): Promise<void>;
}

export interface ReplicationReceiver {
  /**
   * Sets the handler, called in order for every payload, one at a time; the ack is sent when
   * the returned promise resolves (after the secondary applied the record). A rejection closes
   * the link (the primary goes ALONE). Payloads that arrive before a handler is set wait.
   */
  onPayload(fn: (payload: Buffer, seq: bigint) => Promise<void>): void;
  /**
   * Sends one message (at most MAX_PAYLOAD bytes, else RangeError) back to the sender on the
   * current authenticated connection, authenticated like every frame, after the ACK of every
   * payload applied so far. False (nothing sent) when no sender is connected. No ack, no retry:
   * a reply on a connection that then drops is lost.
   */
  reply(payload: Buffer): boolean;
  /** 'up' while an authenticated sender is connected. */
  readonly state: 'up' | 'down';
  onState(fn: (s: 'up' | 'down', why: string) => void): () => void;
  /** The port it listens on (the bound one when 0 was asked). */
  readonly port: number;
  stats(): ReceiverStats;
  /** Stops listening and closes every connection; resolves when they are closed. */
  close(): Promise<void>;
}

export interface SenderOptions {
  key: Buffer;
  cluster: string;
  /** This node (the primary). */
  node: string;
  /** The receiving node. */
  peer: string;
  module: string;
  /** replication.timeout in ms: how long pending sends wait without progress (also the handshake limit). */
  timeoutMs: number;
  /** Bound of unacknowledged payload bytes before `send` waits (default 64 MiB). */
  maxInFlightBytes?: number;
  /** Reconnect backoff in ms: first delay, doubled up to max (default 100 .. 5000). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  clock: Clock;
  /** Aborting it closes the sender. */
  signal?: AbortSignal;
}

export interface ReceiverOptions {
  key: Buffer;
  cluster: string;
  /** This node (the secondary). */
  node: string;
  module: string;
  /** Nodes allowed to send; default: any node that proves the cluster key. */
  peers?: readonly string[];
  /** Unauthenticated connections are closed after this many ms (default 5000). */
  handshakeTimeoutMs?: number;
  /** Received, not yet applied bytes above which reading pauses (default 64 MiB). */
  maxQueuedBytes?: number;
  clock: Clock;
}

export const DEFAULT_MAX_IN_FLIGHT = 64 * 1024 * 1024;

function zeroFailures(): Record<LinkFailure, number> {
  return Object.fromEntries(LINK_FAILURES.map((f) => [f, 0])) as Record<LinkFailure, number>;
}

function peerGone(module: string, peer: string, detail: string): HakitError {
  return new HakitError('PEER_GONE', { module, peer, detail });
}

/** True for the error `send` rejects with when the peer is gone. */
export function isPeerGone(e: unknown): e is HakitError {
  return e instanceof HakitError && e.code === 'HAKIT_E_PEER_GONE';
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

class Listeners {
  private readonly fns = new Set<(s: 'up' | 'down', why: string) => void>();
  add(fn: (s: 'up' | 'down', why: string) => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  emit(s: 'up' | 'down', why: string): void {
    for (const fn of [...this.fns]) fn(s, why);
  }
}

interface Pending {
  payload: readonly Buffer[] | null;
  size: number;
  calledAt: number;
  sentAt: number;
  seq: bigint;
  settled: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface SenderSession {
  conn: Conn;
  keyOut: Buffer;
  verifier: FrameVerifier;
  reader: ChunkReader;
  nextSeq: bigint;
  lastAck: bigint;
}

const LATENCY_SAMPLES = 1024;

export class LinkSender implements ReplicationSender {
  private st: SenderState = 'connecting';
  private readonly keys: LinkKeys;
  private readonly listeners = new Listeners();
  private readonly replyHandlers = new Set<(payload: Buffer) => void>();
  private readonly queue: Pending[] = [];
  private readonly inflight: Pending[] = [];
  private inflightBytes = 0;
  private session: SenderSession | null = null;
  private conn: Conn | null = null;
  private dialAbort: AbortController | null = null;
  private attemptStart = 0;
  private lastProgress = 0;
  private timer: TimerHandle | null = null;
  private reconnectTimer: TimerHandle | null = null;
  private backoff: number;
  private closed = false;
  private everUp = false;
  private downWhy = 'not connected yet';
  private closedConn: Promise<void> = Promise.resolve();
  private readonly latencies: number[] = [];
  private latencyNext = 0;
  /** The percentiles of `latencies` when `counts.acked` was `acked`. */
  private latencyAt = { acked: 0, p50: 0, p99: 0 };
  private readonly counts = { framesSent: 0, bytesSent: 0, acked: 0, reconnects: 0, authFailures: 0, repliesReceived: 0 };
  private readonly failures = zeroFailures();
  private readonly maxInFlight: number;
  private readonly backoffMin: number;
  private readonly backoffMax: number;

  constructor(private readonly opts: SenderOptions, private readonly dial: Dial) {
    if (!(opts.timeoutMs > 0)) throw new RangeError('replication timeoutMs must be > 0');
    this.keys = linkKeys(opts.key, opts.cluster);
    this.maxInFlight = opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT;
    this.backoffMin = opts.backoffMinMs ?? 100;
    this.backoffMax = opts.backoffMaxMs ?? 5000;
    this.backoff = this.backoffMin;
    if (opts.signal?.aborted) {
      this.closed = true;
      this.st = 'down';
      return;
    }
    opts.signal?.addEventListener('abort', () => void this.close(), { once: true });
    this.connect();
  }

  get state(): SenderState {
    return this.st;
  }

  onState(fn: (s: 'up' | 'down', why: string) => void): () => void {
    return this.listeners.add(fn);
  }

  onReply(fn: (payload: Buffer) => void): () => void {
    this.replyHandlers.add(fn);
    return () => { this.replyHandlers.delete(fn); };
  }

  stats(): SenderStats {
    // The rfs asks every second; an idle link has no new samples: the last sort stands.
    if (this.latencyAt.acked !== this.counts.acked) {
      const sorted = Float64Array.from(this.latencies).sort();
      this.latencyAt = { acked: this.counts.acked, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
    }
    return {
      ...this.counts,
      inFlight: this.queue.length + this.inflight.length,
      inFlightBytes: this.inflightBytes,
      ackLatencyMsP50: this.latencyAt.p50,
      ackLatencyMsP99: this.latencyAt.p99,
      failures: { ...this.failures },
    };
  }

  send(payload: Buffer | readonly Buffer[], o: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) return Promise.reject(peerGone(this.opts.module, this.opts.peer, 'the link is closed'));
    if (this.st === 'down') return Promise.reject(peerGone(this.opts.module, this.opts.peer, this.downWhy));
    const { parts, length: size } = payloadParts(payload);
    if (size > MAX_PAYLOAD) return Promise.reject(new RangeError(`replication payload of ${size} bytes exceeds ${MAX_PAYLOAD}`));
    const signal = o.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const p: Pending = {
        payload: parts, size, calledAt: this.opts.clock.now(), sentAt: 0, seq: 0n, settled: false,
        resolve: () => { if (!p.settled) { p.settled = true; p.cleanup(); resolve(); } },
        reject: (e) => { if (!p.settled) { p.settled = true; p.cleanup(); reject(e); } },
        cleanup: () => {},
      };
      if (signal) {
        const onAbort = (): void => {
          const i = this.queue.indexOf(p);
          if (i >= 0) this.queue.splice(i, 1);
          p.reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        p.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(p);
      this.pump();
      this.armTimer();
    });
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.reconnectTimer) this.opts.clock.clearTimer(this.reconnectTimer);
      this.reconnectTimer = null;
      const s = this.session;
      if (s) s.conn.write(encodeFrame(s.keyOut, FrameType.Bye, s.nextSeq++, Buffer.from('sender closed', 'utf8')));
      this.goDown('the link is closed', null, true);
    }
    await this.closedConn;
  }

  // --- connection ---------------------------------------------------------------------------

  private connect(): void {
    this.attemptStart = this.opts.clock.now();
    const ac = new AbortController();
    this.dialAbort = ac;
    this.armTimer();
    this.dial(ac.signal).then((conn) => {
      if (ac.signal.aborted || this.closed) {
        conn.destroy();
        return;
      }
      this.dialAbort = null;
      this.handshake(conn);
    }, (e: unknown) => {
      if (ac.signal.aborted || this.closed) return;
      this.dialAbort = null;
      this.goDown(`cannot connect: ${(e as Error).message ?? String(e)}`, null);
    });
  }

  private handshake(conn: Conn): void {
    this.conn = conn;
    let closedResolve: () => void = () => {};
    this.closedConn = new Promise<void>((r) => { closedResolve = r; });
    const o = this.opts;
    const hello = encodeHello({ clusterId: this.keys.clusterId, nonce: randomBytes(NONCE_BYTES), module: o.module, from: o.node, to: o.peer });
    const reader = new ChunkReader();
    let session: SenderSession | null = null;
    conn.onClose((why) => {
      closedResolve();
      if (this.conn !== conn) return;
      this.conn = null;
      this.goDown(session ? `connection lost: ${why}` : `connection closed during the handshake (wrong key, cluster, module or node on the peer?): ${why}`, null);
    });
    conn.onData((b) => {
      if (this.conn !== conn) return;
      reader.push(b);
      if (!session) {
        if (reader.available < CHALLENGE_BYTES) return;
        const challenge = Buffer.from(reader.take(CHALLENGE_BYTES));
        const r = checkChallenge(this.keys, hello, challenge);
        if (r !== 'ok') {
          this.goDown(r === 'bad-proof' ? 'the peer does not hold the cluster key' : 'the peer did not answer with a hakit replication handshake', r === 'bad-proof' ? 'bad-proof' : 'bad-handshake');
          return;
        }
        conn.write([encodeAuth(this.keys, hello, challenge)]);
        const { s2r, r2s } = sessionKeys(this.keys, hello, challenge);
        session = { conn, keyOut: s2r, verifier: new FrameVerifier(r2s, [FrameType.Ack, FrameType.Bye, FrameType.Reply]), reader, nextSeq: 1n, lastAck: 0n };
        this.up(session);
      }
      if (this.session === session) this.readFrames(session);
    });
    conn.write([hello]);
  }

  private up(s: SenderSession): void {
    this.session = s;
    this.st = 'up';
    this.lastProgress = this.opts.clock.now();
    this.backoff = this.backoffMin;
    if (this.everUp) this.counts.reconnects++;
    this.everUp = true;
    this.listeners.emit('up', 'connected and authenticated');
    this.pump();
    this.rearm();
  }

  private readFrames(s: SenderSession): void {
    while (this.session === s) {
      const f = s.verifier.next(s.reader);
      if (f === null) return;
      if ('failure' in f) {
        this.goDown(`bad frame from the peer (${f.failure})`, f.failure);
        return;
      }
      if (f.type === FrameType.Bye) {
        this.goDown(`the peer closed the link: ${f.payload.toString('utf8')}`, null);
        return;
      }
      if (f.type === FrameType.Reply) {
        // A copy: the frame's bytes belong to the reader's buffer.
        const msg = Buffer.from(f.payload);
        this.counts.repliesReceived++;
        for (const fn of [...this.replyHandlers]) fn(msg);
        continue;
      }
      if (f.payload.length !== 8) {
        this.goDown('bad frame from the peer (bad-ack)', 'bad-ack');
        return;
      }
      const ack = f.payload.readBigUInt64BE(0);
      if (ack <= s.lastAck || ack >= s.nextSeq) {
        this.goDown(`bad frame from the peer (bad-ack ${ack})`, 'bad-ack');
        return;
      }
      s.lastAck = ack;
      this.onAck(ack);
    }
  }

  private onAck(ack: bigint): void {
    const now = this.opts.clock.now();
    this.lastProgress = now;
    while (this.inflight.length > 0 && (this.inflight[0] as Pending).seq <= ack) {
      const p = this.inflight.shift() as Pending;
      this.inflightBytes -= p.size;
      this.counts.acked++;
      this.latencies[this.latencyNext] = now - p.sentAt;
      this.latencyNext = (this.latencyNext + 1) % LATENCY_SAMPLES;
      p.resolve();
    }
    this.pump();
    this.rearm();
  }

  /** Writes queued payloads while the in-flight bound allows (at least one when nothing is in flight). */
  private pump(): void {
    const s = this.session;
    if (!s || this.st !== 'up') return;
    const out: Buffer[] = [];
    const now = this.opts.clock.now();
    while (this.queue.length > 0) {
      const p = this.queue[0] as Pending;
      if (this.inflight.length > 0 && this.inflightBytes + p.size > this.maxInFlight) break;
      this.queue.shift();
      p.seq = s.nextSeq++;
      p.sentAt = now;
      out.push(...encodeFrame(s.keyOut, FrameType.Data, p.seq, p.payload as readonly Buffer[]));
      p.payload = null;
      this.inflight.push(p);
      this.inflightBytes += p.size;
      this.counts.framesSent++;
      this.counts.bytesSent += p.size;
    }
    if (out.length > 0) s.conn.write(out);
  }

  /**
   * Ends the current connection or attempt: rejects every pending send, state 'down', counts a
   * failure when `failure` is given, and schedules a reconnect unless closed.
   */
  private goDown(why: string, failure: LinkFailure | null, closing = false): void {
    if (failure) {
      this.counts.authFailures++;
      this.failures[failure]++;
    }
    this.dialAbort?.abort();
    this.dialAbort = null;
    const conn = this.conn;
    this.conn = null;
    this.session = null;
    if (conn) {
      if (closing) conn.end();
      else conn.destroy();
    }
    if (this.timer) this.opts.clock.clearTimer(this.timer);
    this.timer = null;
    const err = peerGone(this.opts.module, this.opts.peer, why);
    const pending = [...this.inflight, ...this.queue];
    this.inflight.length = 0;
    this.queue.length = 0;
    this.inflightBytes = 0;
    const was = this.st;
    this.st = 'down';
    this.downWhy = why;
    for (const p of pending) p.reject(err);
    if (was !== 'down') this.listeners.emit('down', why);
    if (!this.closed && !this.reconnectTimer) {
      const delay = this.backoff;
      this.backoff = Math.min(this.backoffMax, this.backoff * 2);
      this.reconnectTimer = this.opts.clock.setTimer(delay, () => {
        this.reconnectTimer = null;
        if (!this.closed) this.connect();
      });
    }
  }

  // --- timeout -------------------------------------------------------------------------------

  /** When the link is to be declared gone, or null when nothing waits on it. */
  private deadline(): number | null {
    const t = this.opts.timeoutMs;
    if (!this.session) return this.dialAbort || this.conn ? this.attemptStart + t : null;
    const oldest = this.inflight[0] ?? this.queue[0];
    if (!oldest) return null;
    return Math.max(oldest.calledAt, this.lastProgress) + t;
  }

  private armTimer(): void {
    if (this.timer) return;
    const d = this.deadline();
    if (d === null) return;
    this.timer = this.opts.clock.setTimer(d - this.opts.clock.now(), () => {
      this.timer = null;
      const dl = this.deadline();
      if (dl === null) return;
      if (this.opts.clock.now() >= dl) {
        const secs = `${this.opts.timeoutMs} ms`;
        this.goDown(this.session ? `no acknowledgement within ${secs}` : `no connection within ${secs}`, null);
      } else {
        this.armTimer();
      }
    });
  }

  /** After progress: the running timer fires early at worst, and re-arms itself then. */
  private rearm(): void {
    this.armTimer();
  }
}

// --- receiver ------------------------------------------------------------------------------

interface Incoming {
  payload: Buffer;
  seq: bigint;
}

class ReceiverSession {
  alive = true;
  readonly queue: Incoming[] = [];
  queuedBytes = 0;
  paused = false;
  applied = 0n;
  ackedSent = 0n;
  ackScheduled = false;
  nextSeq = 1n;
  constructor(readonly conn: Conn, readonly keyOut: Buffer) {}
}

export class LinkReceiver implements Omit<ReplicationReceiver, 'port' | 'close'> {
  private readonly keys: LinkKeys;
  private readonly listeners = new Listeners();
  private handler: ((payload: Buffer, seq: bigint) => Promise<void>) | null = null;
  private current: ReceiverSession | null = null;
  private readonly conns = new Set<Conn>();
  private readonly closedConns = new Set<Promise<void>>();
  /** Settles when the last handler call settled: calls never overlap, across sessions too. */
  private applyTail: Promise<void> = Promise.resolve();
  private applying = false;
  private closed = false;
  private readonly counts = { framesReceived: 0, bytesReceived: 0, applied: 0, acksSent: 0, repliesSent: 0, sessions: 0, authFailures: 0 };
  private readonly failures = zeroFailures();
  private readonly maxQueued: number;

  constructor(private readonly opts: ReceiverOptions) {
    this.keys = linkKeys(opts.key, opts.cluster);
    this.maxQueued = opts.maxQueuedBytes ?? DEFAULT_MAX_IN_FLIGHT;
  }

  get state(): 'up' | 'down' {
    return this.current ? 'up' : 'down';
  }

  onState(fn: (s: 'up' | 'down', why: string) => void): () => void {
    return this.listeners.add(fn);
  }

  onPayload(fn: (payload: Buffer, seq: bigint) => Promise<void>): void {
    this.handler = fn;
    if (this.current) this.process(this.current);
  }

  stats(): ReceiverStats {
    return { ...this.counts, failures: { ...this.failures } };
  }

  reply(payload: Buffer): boolean {
    if (payload.length > MAX_PAYLOAD) throw new RangeError(`replication reply of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
    const s = this.current;
    if (!s || !s.alive || this.closed) return false;
    this.flushAck(s);
    s.conn.write(encodeFrame(s.keyOut, FrameType.Reply, s.nextSeq++, payload));
    this.counts.repliesSent++;
    return true;
  }

  /** Takes a new incoming stream: handshake, then frames. */
  accept(conn: Conn): void {
    if (this.closed) {
      conn.destroy();
      return;
    }
    this.conns.add(conn);
    let closedResolve: () => void = () => {};
    const closedP = new Promise<void>((r) => { closedResolve = r; });
    this.closedConns.add(closedP);
    const o = this.opts;
    const reader = new ChunkReader();
    let phase: 'hello' | 'auth' | 'frames' | 'dead' = 'hello';
    let hello: Buffer | null = null;
    let challenge: Buffer | null = null;
    let session: ReceiverSession | null = null;
    let verifier: FrameVerifier | null = null;
    const timer = o.clock.setTimer(o.handshakeTimeoutMs ?? 5000, () => {
      if (phase === 'hello' || phase === 'auth') refuse('bad-handshake', 'no handshake in time');
    });
    const refuse = (f: LinkFailure | null, why: string): void => {
      if (phase === 'dead') return;
      phase = 'dead';
      if (f) {
        this.counts.authFailures++;
        this.failures[f]++;
      }
      conn.destroy();
      if (session) this.endSession(session, why);
    };
    conn.onClose((why) => {
      o.clock.clearTimer(timer);
      this.conns.delete(conn);
      closedResolve();
      this.closedConns.delete(closedP);
      if (phase !== 'dead') {
        phase = 'dead';
        if (session) this.endSession(session, `connection lost: ${why}`);
      }
    });
    conn.onData((b) => {
      if (phase === 'dead') return;
      reader.push(b);
      if (phase === 'hello') {
        const n = helloLength(reader.peek(Math.min(reader.available, MAX_HANDSHAKE)));
        if (n === -1) return refuse('bad-handshake', 'not a replication handshake');
        if (n === null || reader.available < n) return;
        hello = Buffer.from(reader.take(n));
        const h = decodeHello(hello);
        if (!h) return refuse('bad-handshake', 'malformed hello');
        if (!h.clusterId.equals(this.keys.clusterId)) return refuse('wrong-cluster', 'hello for another cluster');
        if (h.module !== o.module) return refuse('wrong-module', `hello for module ${h.module}`);
        if (h.to !== o.node) return refuse('wrong-node', `hello for node ${h.to}`);
        if (o.peers && !o.peers.includes(h.from)) return refuse('unknown-peer', `hello from ${h.from}`);
        challenge = encodeChallenge(this.keys, hello, randomBytes(NONCE_BYTES));
        conn.write([challenge]);
        phase = 'auth';
      }
      if (phase === 'auth') {
        if (reader.available < AUTH_BYTES) return;
        const r = checkAuth(this.keys, hello as Buffer, challenge as Buffer, Buffer.from(reader.take(AUTH_BYTES)));
        if (r !== 'ok') return refuse(r === 'bad-proof' ? 'bad-proof' : 'bad-handshake', 'handshake proof refused');
        o.clock.clearTimer(timer);
        const { s2r, r2s } = sessionKeys(this.keys, hello as Buffer, challenge as Buffer);
        verifier = new FrameVerifier(s2r, [FrameType.Data, FrameType.Bye]);
        session = new ReceiverSession(conn, r2s);
        phase = 'frames';
        this.startSession(session);
      }
      const s = session as ReceiverSession;
      const v = verifier as FrameVerifier;
      for (;;) {
        const f = v.next(reader);
        if (f === null) break;
        if ('failure' in f) return refuse(f.failure, `bad frame (${f.failure})`);
        if (f.type === FrameType.Bye) {
          phase = 'dead';
          conn.destroy();
          this.endSession(s, `the sender closed the link: ${f.payload.toString('utf8')}`);
          return;
        }
        this.counts.framesReceived++;
        this.counts.bytesReceived += f.payload.length;
        s.queue.push({ payload: f.payload, seq: f.seq });
        s.queuedBytes += f.payload.length;
        if (!s.paused && s.queuedBytes > this.maxQueued) {
          s.paused = true;
          conn.pause();
        }
      }
      this.process(s);
    });
  }

  private startSession(s: ReceiverSession): void {
    const old = this.current;
    this.current = s;
    this.counts.sessions++;
    if (old) {
      old.alive = false;
      old.conn.destroy();
    }
    this.listeners.emit('up', old ? 'a new authenticated connection replaced the old one' : 'sender connected and authenticated');
  }

  private endSession(s: ReceiverSession, why: string): void {
    s.alive = false;
    s.queue.length = 0;
    if (this.current === s) {
      this.current = null;
      this.listeners.emit('down', why);
    }
  }

  /** Applies the session's queued payloads one at a time, in order. */
  private process(s: ReceiverSession): void {
    if (this.applying || !this.handler) return;
    const next = s.queue[0];
    if (!next || !s.alive) return;
    this.applying = true;
    const handler = this.handler;
    this.applyTail = this.applyTail.then(async () => {
      while (s.alive && s.queue.length > 0) {
        const item = s.queue[0] as Incoming;
        try {
          await handler(item.payload, item.seq);
        } catch (e) {
          if (s.alive) {
            this.flushAck(s);
            s.conn.write(encodeFrame(s.keyOut, FrameType.Bye, s.nextSeq++, Buffer.from(`apply failed: ${(e as Error)?.message ?? String(e)}`.slice(0, 1000), 'utf8')));
            s.conn.end();
            this.endSession(s, `the handler refused seq ${item.seq}: ${(e as Error)?.message ?? String(e)}`);
          }
          break;
        }
        if (!s.alive) break;
        s.queue.shift();
        s.queuedBytes -= item.payload.length;
        if (s.paused && s.queuedBytes <= this.maxQueued / 2) {
          s.paused = false;
          s.conn.resume();
        }
        s.applied = item.seq;
        this.counts.applied++;
        this.scheduleAck(s);
      }
    }).finally(() => {
      this.applying = false;
      // A newer session may have queued payloads while this one drained.
      const c = this.current;
      if (c && c.queue.length > 0) this.process(c);
    });
  }

  /** Acks are coalesced: one ACK per event-loop turn carries the highest applied seq. */
  private scheduleAck(s: ReceiverSession): void {
    if (s.ackScheduled) return;
    s.ackScheduled = true;
    setImmediate(() => {
      s.ackScheduled = false;
      if (s.alive) this.flushAck(s);
    });
  }

  /** Acks everything applied and not yet acked (also right before a BYE: applied is applied). */
  private flushAck(s: ReceiverSession): void {
    if (s.applied <= s.ackedSent) return;
    s.ackedSent = s.applied;
    s.conn.write(encodeFrame(s.keyOut, FrameType.Ack, s.nextSeq++, ackPayload(s.applied)));
    this.counts.acksSent++;
  }

  /** Closes every connection; resolves when they are closed. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const s = this.current;
    if (s) {
      this.flushAck(s);
      s.conn.write(encodeFrame(s.keyOut, FrameType.Bye, s.nextSeq++, Buffer.from('receiver closed', 'utf8')));
      s.conn.end();
      this.endSession(s, 'the receiver is closed');
    }
    for (const c of this.conns) if (!s || c !== s.conn) c.destroy();
    await Promise.all([...this.closedConns]);
  }

  /**
   * This receiver as a ReplicationReceiver listening on `port` (TCP or the memory network): its
   * close stops the listener (`stopListening`, awaited once every connection is closed), then
   * closes every connection.
   */
  listening(port: number, stopListening: () => Promise<void> | void): ReplicationReceiver {
    const state = (): 'up' | 'down' => this.state;
    return {
      port,
      get state() { return state(); },
      onPayload: (fn) => this.onPayload(fn),
      reply: (payload) => this.reply(payload),
      onState: (fn) => this.onState(fn),
      stats: () => this.stats(),
      close: async () => {
        const stopped = stopListening();
        await this.closeAll();
        await stopped;
      },
    };
  }
}
