/** The shapes of the control API; they live in src/core/status.ts so the daemon can produce them. */
export type * from '../core/status.js';
