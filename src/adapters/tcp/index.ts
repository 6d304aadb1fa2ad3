/**
 * The replication link seam (DESIGN.md 3 promises 2, 6, 8; 5 "Replicated directories",
 * "Peer slow or gone"): an authenticated, pipelined, ordered channel that carries opaque
 * payloads (replication records) from the primary to the secondary and acks from back.
 * Real implementation over TCP (tcp.ts), in-memory twin (memory.ts), one engine (link.ts),
 * wire format (frame.ts). Contract test: test/unit/tcp.contract.test.ts.
 */
export {
  type Conn, type Dial, type ReplicationReceiver, type ReplicationSender, type ReceiverStats, type SenderState, type SenderStats,
  DEFAULT_MAX_IN_FLIGHT, isPeerGone,
} from './link.js';
export { LINK_FAILURES, MAX_PAYLOAD, type LinkFailure } from './frame.js';
export { DEFAULT_REPLICATION_PORT, connectSender, listenReceiver, type TcpReceiverOptions, type TcpSenderOptions } from './tcp.js';
export { MemoryReplicationNetwork, memoryLink, type Direction, type MemoryFaults, type MemoryLinkOptions } from './memory.js';
