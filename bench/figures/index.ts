/**
 * The figures of `npm run bench`, in the order they run. To add a figure (the replication and
 * resync figures of issues 4 and 5 come here): write a `Figure` in its own file in this folder
 * (figure.ts is the contract; harness.ts has the probe, /proc readers and waits), give each of its
 * metrics a `peer` (the id of the baseline measured in the same session, e.g. a plain local
 * directory or `rsync -a`) and a `goal`, and append it to FIGURES. The runner, the table, the JSON
 * and the Markdown report need no change.
 */
import { alloc } from './alloc.js';
import { cost } from './cost.js';
import type { Figure } from './figure.js';
import { failover, failoverKeepalived } from './failover.js';
import { replicatedWrites } from './replication.js';
import { resync } from './resync.js';
import { scale } from './scale.js';
import { swap } from './swap.js';

export const FIGURES: readonly Figure[] = [failover, failoverKeepalived, swap, cost, alloc, replicatedWrites, resync, scale];
