/**
 * The mirror module's failover core (DESIGN.md 4, 5): pure, driven by the daemon (see types.ts).
 */
export type * from './types.js';
export type { MirrorState, MirrorMsg } from './machine.js';
export { initialState, step, viewOf, stampView, statusOf, validateCommand } from './machine.js';
export { compareGenerations, nextGeneration, HISTORY_MAX } from './generation.js';
export { recordRestart } from './maxloop.js';
