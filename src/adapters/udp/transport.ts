/**
 * The heartbeat seam (STYLE.md 3): an interface, its real implementation over UDP
 * (udp-transport.ts) and an in-memory twin (memory-transport.ts). Both share this file's
 * sending and receiving logic, so the fake differs from the real one only in the medium.
 *
 * Receive pipeline, in order; a datagram that fails a step is dropped and counted under that
 * step's reason (docs/security.md):
 *   too-large, malformed, bad-version, wrong-cluster, bad-mac  (codec.ts)
 *   wrong-network   the authenticated network name is not the network it arrived on
 *   unknown-module  no module of that name is configured here
 *   unknown-node    the sender is not a node of that module
 *   replay          seq <= the last seq seen from (module, node, epoch) on that network, or an
 *                   epoch that was already replaced, or an older epoch while the current one is alive
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import {
  DEFAULT_HEARTBEAT_PORT, codecKeys, decodeDatagram, encodeDatagrams, type CodecKeys, type ViewCache, type Decoded, type DecodeFailure, type HeartbeatView,
} from './codec.js';

export type { HeartbeatView } from './codec.js';

/** What the caller gives `send`; the transport adds node, network, epoch and seq. */
export interface HeartbeatPacket {
  module: string;
  view: HeartbeatView;
}

/** An accepted heartbeat: authenticated, from a configured node, fresh. */
export type DecodedHeartbeat = Decoded;

export type DropReason = DecodeFailure | 'wrong-network' | 'unknown-module' | 'unknown-node' | 'replay';
export const DROP_REASONS: readonly DropReason[] = [
  'too-large', 'malformed', 'bad-version', 'wrong-cluster', 'bad-mac', 'wrong-network', 'unknown-module', 'unknown-node', 'replay',
];

/**
 * Counts of one network, or of all networks together. Plain numbers: JSON as they are.
 * A heartbeat is one module's view on one network; a datagram carries the heartbeats of every
 * module sent together (codec.ts). A datagram refused before its views are read (a codec reason)
 * counts as one heartbeat.
 */
export interface HeartbeatCounts {
  /** Heartbeats handed to the network. */
  sent: number;
  /** Datagrams handed to the network (that carried `sent`). */
  datagramsSent: number;
  /** Datagram sends the operating system refused (network down, no route); never thrown. */
  sendErrors: number;
  /** Heartbeats that arrived, accepted or not. */
  received: number;
  /** Datagrams that arrived, accepted or not. */
  datagramsReceived: number;
  /** Heartbeats delivered to the handlers. */
  accepted: number;
  /** Heartbeats dropped, per reason; every reason of DROP_REASONS is present (0 when none). */
  dropped: Record<DropReason, number>;
}

/**
 * What `counters()` returns: the totals (the fields of HeartbeatCounts) and the same counts per
 * bound network, so `hakit status` can show that one heartbeat network drops or fails while the
 * other works. Invariant: received = accepted + sum(dropped), per network and in total.
 */
export interface HeartbeatCounters extends HeartbeatCounts {
  networks: Record<string, HeartbeatCounts>;
}

function zeroCounts(): HeartbeatCounts {
  return { sent: 0, datagramsSent: 0, sendErrors: 0, received: 0, datagramsReceived: 0, accepted: 0, dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number> };
}

function copyCounts(c: HeartbeatCounts): HeartbeatCounts {
  return { ...c, dropped: { ...c.dropped } };
}

/**
 * Called synchronously for every accepted heartbeat, in the receive path: must be quick and must
 * not throw (an exception would escape into the socket's event loop turn, i.e. crash the daemon).
 * `fromAddress` is the datagram's source ("198.18.0.1:7405", "[2001:2::1]:7405"); it is not
 * authenticated, the node name in `decoded` is.
 */
export type ReceiveHandler = (network: string, fromAddress: string, decoded: DecodedHeartbeat) => void;

export interface HeartbeatTransport {
  /**
   * Sends heartbeats on `network` to `toAddress` ("198.18.0.2", "198.18.0.2:7405",
   * "2001:2::2" or "[2001:2::2]:7405"; the default port is 7405): one packet, or several (the
   * views of several modules) in as few datagrams as fit MAX_DATAGRAM, in order. Never blocks
   * and never throws for network faults (they are counted, or the datagram is silently lost as
   * UDP may); throws for programming errors, sending nothing: a network this transport was not
   * opened with, an address that is not an IP literal with an optional port, or a packet larger
   * than MAX_DATAGRAM alone. After close() it does nothing.
   */
  send(network: string, toAddress: string, packets: HeartbeatPacket | readonly HeartbeatPacket[]): void;
  /** Adds a handler for accepted heartbeats; returns a function that removes it. */
  onReceive(handler: ReceiveHandler): () => void;
  /** A snapshot (a copy, safe to keep) of the counters since the transport was opened. */
  counters(): HeartbeatCounters;
  /** Releases the sockets (their ports can be bound again once it resolves); sends after close are ignored, nothing is received. */
  close(): Promise<void>;
}

export interface HeartbeatTransportOptions {
  /** The 32-byte cluster key (key/cluster-key.ts). */
  key: Buffer;
  /** The cluster's name (cluster.yaml `cluster.name`); clusters with other names are dropped. */
  cluster: string;
  /** This node's name, sent in every datagram. */
  node: string;
  /** Module name -> nodes allowed to send heartbeats for it. Changeable with setMembers. */
  members: Readonly<Record<string, readonly string[]>>;
  /** This daemon's boot id, 8 bytes; random by default. Share one per daemon. */
  epoch?: Buffer;
  /** Wall clock at daemon start, ms since 1970; Date.now() by default. */
  epochStart?: number;
  /** Monotonic clock in ms, for epoch liveness; performance.now() by default. */
  now?: () => number;
  /**
   * A new epoch older (by epochStart) than the current one is refused while the current one
   * was heard within this many ms (default 2000, the default peer timeout): it is a replay.
   */
  epochSilenceMs?: number;
  /** Called for every dropped datagram (for rate-limited logging). Must not throw. */
  onDrop?: (network: string, fromAddress: string, reason: DropReason) => void;
}

interface PeerEpochs {
  epoch: string;
  epochStart: number;
  lastHeard: number;
  seq: Map<string, bigint>;
  retired: string[];
}
const RETIRED_KEEP = 16;
/**
 * Heartbeat addresses parsed already (default port; a config has a handful): the batcher and the
 * transport parse the same peers on every pulse. Frozen: shared by every caller. Bounded.
 */
const parsed = new Map<string, Readonly<{ host: string; port: number }>>();
const PARSED_MAX = 256;

/**
 * Parses "a.b.c.d", "a.b.c.d:port", "v6", "[v6]" or "[v6]:port" (a bare IPv6 address has no
 * port). Host names are refused: resolving them would put DNS in the timing path.
 * Throws RangeError for anything else, or a port outside 1..65535.
 */
export function parseAddress(s: string, defaultPort: number = DEFAULT_HEARTBEAT_PORT): Readonly<{ host: string; port: number }> {
  const known = defaultPort === DEFAULT_HEARTBEAT_PORT ? parsed.get(s) : undefined;
  if (known !== undefined) return known;
  let host = s;
  let port = defaultPort;
  const m6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  const m4 = /^([0-9.]+):(\d{1,5})$/.exec(s);
  if (m6) {
    host = m6[1] as string;
    if (m6[2] !== undefined) port = Number(m6[2]);
    if (isIP(host) !== 6) throw new RangeError(`heartbeat address ${s}: not an IPv6 address in brackets`);
  } else if (m4) {
    host = m4[1] as string;
    port = Number(m4[2]);
    if (isIP(host) !== 4) throw new RangeError(`heartbeat address ${s}: not an IPv4 address`);
  } else if (isIP(s) === 0) {
    throw new RangeError(`heartbeat address ${s}: want an IP address, optionally with :port ([v6]:port)`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`heartbeat address ${s}: port must be 1..65535`);
  const a = Object.freeze({ host, port });
  if (defaultPort === DEFAULT_HEARTBEAT_PORT) {
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(s, a);
  }
  return a;
}

/** "host:port", with IPv6 hosts in brackets: the form `fromAddress` takes. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Shared logic of real and fake transports; subclasses move bytes. */
export abstract class TransportBase implements HeartbeatTransport {
  private readonly keys: CodecKeys;
  private readonly node: string;
  private readonly epoch: string;
  private readonly epochStart: number;
  private readonly now: () => number;
  private readonly epochSilenceMs: number;
  private readonly onDrop: HeartbeatTransportOptions['onDrop'];
  private members: Map<string, Set<string>>;
  private seq = 0n;
  private readonly handlers = new Set<ReceiveHandler>();
  private readonly peers = new Map<string, PeerEpochs>();
  /** Parsed views by sender and module (codec.ts ViewCache): one entry per peer module. */
  private readonly views: ViewCache = new Map();
  protected closed = false;
  private readonly total: HeartbeatCounts = zeroCounts();
  private readonly perNetwork = new Map<string, HeartbeatCounts>();

  /** `networks`: the heartbeat networks this transport sends and receives on. */
  protected constructor(opts: HeartbeatTransportOptions, private readonly networks: readonly string[]) {
    this.keys = codecKeys(opts.key, opts.cluster);
    this.node = opts.node;
    const epoch = opts.epoch ?? randomBytes(8);
    if (epoch.length !== 8) throw new RangeError('epoch must be 8 bytes');
    this.epoch = epoch.toString('hex');
    this.epochStart = opts.epochStart ?? Date.now();
    this.now = opts.now ?? (() => performance.now());
    this.epochSilenceMs = opts.epochSilenceMs ?? 2000;
    this.onDrop = opts.onDrop;
    this.members = toMembers(opts.members);
    for (const n of networks) this.perNetwork.set(n, zeroCounts());
  }

  /** Moves one datagram; never throws; errors are reported through `sendFailed(network)`. */
  protected abstract transmit(network: string, to: { host: string; port: number }, bytes: Buffer): void;
  abstract close(): Promise<void>;

  /** Replaces the module -> nodes table (config reload); keeps replay state of known senders. */
  setMembers(members: Readonly<Record<string, readonly string[]>>): void {
    this.members = toMembers(members);
  }

  send(network: string, toAddress: string, packets: HeartbeatPacket | readonly HeartbeatPacket[]): void {
    if (this.closed) return;
    const counts = this.perNetwork.get(network);
    if (counts === undefined) throw new Error(`heartbeat transport is not bound to network ${network}`);
    const to = parseAddress(toAddress);
    const list = Array.isArray(packets) ? packets as readonly HeartbeatPacket[] : [packets as HeartbeatPacket];
    if (list.length === 0) return;
    // One counter for every network and peer: each (module, network) sub-sequence a receiver
    // checks is then strictly increasing too. Seqs are taken only once every datagram is known to fit.
    const datagrams = encodeDatagrams(this.keys, { network, node: this.node, epoch: this.epoch, epochStart: this.epochStart }, list, () => ++this.seq);
    this.total.sent += list.length;
    counts.sent += list.length;
    this.total.datagramsSent += datagrams.length;
    counts.datagramsSent += datagrams.length;
    for (const bytes of datagrams) this.transmit(network, to, bytes);
  }

  /** Counts a send the operating system refused on `network`. */
  protected sendFailed(network: string): void {
    this.total.sendErrors++;
    const c = this.perNetwork.get(network);
    if (c) c.sendErrors++;
  }

  onReceive(handler: ReceiveHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  counters(): HeartbeatCounters {
    return { ...copyCounts(this.total), networks: Object.fromEntries([...this.perNetwork].map(([n, c]) => [n, copyCounts(c)])) };
  }

  /**
   * Runs the receive pipeline on one datagram that arrived on `network` (one of `networks`):
   * the datagram is authenticated once, then each module view in it is checked and delivered
   * on its own, in the datagram's order.
   */
  protected receive(network: string, fromAddress: string, bytes: Buffer): void {
    if (this.closed) return;
    const counts = this.perNetwork.get(network);
    if (counts === undefined) return;
    this.total.datagramsReceived++;
    counts.datagramsReceived++;
    const r = decodeDatagram(this.keys, bytes, this.views);
    const n = r.ok ? r.value.views.length : 1;
    this.total.received += n;
    counts.received += n;
    if (!r.ok) return this.drop(counts, network, fromAddress, r.reason);
    const h = r.value;
    for (const v of h.views) {
      // Fields by name, not `{ ...header, module, view }`: V8 copies that on a slow path (core/objects.ts), per heartbeat.
      const d: Decoded = { network: h.network, node: h.node, epoch: h.epoch, epochStart: h.epochStart, seq: h.seq, module: v.module, view: v.view };
      const reason = this.check(network, d);
      if (reason !== null) {
        this.drop(counts, network, fromAddress, reason);
        continue;
      }
      this.total.accepted++;
      counts.accepted++;
      for (const h of this.handlers) h(network, fromAddress, d);
    }
  }

  private drop(counts: HeartbeatCounts, network: string, fromAddress: string, reason: DropReason): void {
    this.total.dropped[reason]++;
    counts.dropped[reason]++;
    this.onDrop?.(network, fromAddress, reason);
  }

  /** Membership and freshness of an authenticated datagram; updates replay state when accepted. */
  private check(network: string, d: Decoded): DropReason | null {
    if (d.network !== network) return 'wrong-network';
    const nodes = this.members.get(d.module);
    if (!nodes) return 'unknown-module';
    if (!nodes.has(d.node)) return 'unknown-node';
    const id = `${d.module}\u0000${d.node}`;
    const now = this.now();
    const p = this.peers.get(id);
    if (p === undefined) {
      this.peers.set(id, { epoch: d.epoch, epochStart: d.epochStart, lastHeard: now, seq: new Map([[network, d.seq]]), retired: [] });
      return null;
    }
    if (d.epoch === p.epoch) {
      const last = p.seq.get(network);
      if (last !== undefined && d.seq <= last) return 'replay';
      p.seq.set(network, d.seq);
      p.lastHeard = now;
      return null;
    }
    if (p.retired.includes(d.epoch)) return 'replay';
    if (d.epochStart <= p.epochStart && now - p.lastHeard <= this.epochSilenceMs) return 'replay';
    p.retired.push(p.epoch);
    if (p.retired.length > RETIRED_KEEP) p.retired.shift();
    p.epoch = d.epoch;
    p.epochStart = d.epochStart;
    p.lastHeard = now;
    p.seq = new Map([[network, d.seq]]);
    return null;
  }
}

function toMembers(m: Readonly<Record<string, readonly string[]>>): Map<string, Set<string>> {
  return new Map(Object.entries(m).map(([k, v]) => [k, new Set(v)]));
}
