export * from './client.js';
export { WitnessClientBase, type WitnessClientOptions } from './client-base.js';
export { UdpWitnessClient, type UdpWitnessClientOptions } from './udp-client.js';
export { MemoryWitness, MemoryWitnessClient, type MemoryWitnessOptions } from './memory.js';
export { WitnessServer } from './server.js';
export { WitnessService, WITNESS_DROP_REASONS, type WitnessDropReason, type WitnessEvent, type WitnessServiceCounters, type WitnessServiceOptions } from './service.js';
export { DEFAULT_WITNESS_PORT, decodeWitness, encodeWitness, witnessKeys, type WitnessMessage } from './codec.js';
