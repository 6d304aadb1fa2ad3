/**
 * The promises (DESIGN.md 3) the simulator checks after every step and every change of a node's
 * resources. A broken one throws `Violation`, which ends the run.
 *
 * 1. One writer (3.1): at most one node holds a writer resource (VIP, application, rw mount), as
 *    EXECUTED, not as the state names say. Excused only during a split-brain episode: a running
 *    node's core has gone `heartbeatTimeoutMs` without a heartbeat of its RUNNING peer (every
 *    heartbeat network cut or lossy). Without the witness (not built yet) two primaries are then
 *    the documented outcome (DESIGN.md 5, docs/states.md); the episode ends once no node is
 *    falsely silent, both running nodes are ready with empty executor queues and at most one
 *    writer remains. Episodes are counted; their healing is checked by the liveness check.
 * 2. No stale primary (3.3), with replication only: a node that takes the primary role (a
 *    transition into PRIM/ALONE from another state) must be up to date and not `behind` the
 *    generation of the last peer view it heard in this life, unless the admin forced it (`prim`).
 *    Not checked during a split-brain episode. Being behind what the peer stored WITHOUT ever
 *    telling this node is counted (staleUnknowable), not failed: no core can know it.
 *    Also excused: an episode opened by an admin's `prim` on a node that cannot hear its running
 *    peer, or whose peer is already (becoming) primary unbeknown to it: a forced command is the
 *    admin's risk, as DRBD's --force. (`prim` while the peer is a heard SECOND is finding 4.)
 * 3. Refused commands change nothing (3.7): checked where the command is drawn (run.ts).
 * 4. Split brain (runs with a splitbrain checker, DESIGN.md 5; machine.ts "Split brain"):
 *    - a node cut off from everything (every heartbeat link cut both ways, no path to the
 *      witness) does not hold a read-write mount longer than the bound after the cut: T + the
 *      checker's interval + timeout with ping witnesses, T + the lease with the arbitrator alone
 *      (`isolated-writer`); a `blocked` mount is no writer;
 *    - with the arbitrator, never two read-write mounts, even during a split-brain episode
 *      (`two-writers-arbitrator`): also not when one of them holds no live lease (a primary that
 *      took the role from a heard peer while the witness did not answer it): it holds its writes
 *      once its peer is silent or deaf (machine.ts `peerDeaf`). Such moments are counted in
 *      `arbitratorNoLease` before the run fails.
 *    Two writers with ping witnesses alone stay excused during an episode (residual risk 1: both
 *    nodes reach the witness), counted as before.
 * 5. Data (runs with replication; the model is test/sim/data.ts):
 *    - No acknowledged write lost (3.2, 3.3): when a node starts the application (`start_prim`),
 *      every zone's newest write the application got an answer for is on its copy (that write
 *      or a later one). Excused: a write never covered by an fsync that a power loss took from
 *      every copy holding it, or from both nodes (page cache: the peer acknowledges once applied,
 *      DESIGN.md 3.2 promises disks only for fsync; counted `lostExcusedCrash`). After a forced
 *      `prim`, a split-brain episode or a primary behind what its peer stored unknown to it
 *      (staleUnknowable) (`data.diverged`) the check waits for the end of the run,
 *      where the write must be on the final primary or in a quarantine of either node
 *      ("divergent data kept", counted `keptInQuarantine`); also checked at the end of every run.
 *    - Converged replicas (3.4): when a secondary applies `sync-complete`, its copy equals the
 *      primary's copy at that point of the stream (`replicas-differ`); at the end of the run, the
 *      stream drained, the PRIM's and the SECOND's copies are equal.
 */
import { compareGenerations, type MirrorAction, type MirrorEvent, type MirrorState } from '../../src/core/mirror/index.js';
import { DataWorld, treeText, treesEqual, type Tree } from './data.js';
import { Violation, type SimNode, type World } from './world.js';

const PRIMARY = new Set(['PRIM', 'ALONE']);

// Open data-model findings with a tag (none now: 11, 13, 16 and 17 are fixed).
const DATA_FINDINGS: Readonly<Record<number, string>> = {
};

/** The tags of the known data findings (docs/simulator.md) whose situation arose in this run. */
export function findingTags(data: DataWorld): string {
  return [...data.findings].map(([k, at]) => ` [finding ${k}: ${DATA_FINDINGS[k] ?? ''} at ${at}]`).join('');
}

export class Invariants {
  /** Start of the current split-brain episode, null if none. */
  episode: number | null = null;
  readonly counts = { isolatedChecks: 0, arbitratorNoLease: 0, episodes: 0, dualWritersExcused: 0, staleChecks: 0, staleExcused: 0, forcedPrim: 0, primaryEntries: 0, staleEchoes: 0, staleUnknowable: 0 };

  constructor(private readonly w: World) {
    w.onStep = (n, e, before, actions) => this.afterStep(n, e, before, actions);
    w.onResources = () => this.checkWriters();
    const data = w.data;
    if (data) {
      data.onAppStart = (n) => this.checkAcked(data, n, false);
      data.onResynced = (n, primaryCopy, gen) => this.checkResynced(data, n, primaryCopy, gen);
    }
  }

  /**
   * 5: every acknowledged write is on `n`'s copy, where the application starts (or, `final`, on
   * the primary at the end of the run: then also kept in a quarantine counts after divergence).
   */
  checkAcked(data: DataWorld, n: SimNode, final: boolean): void {
    const mine = data.d(n).cache;
    const nodes = this.w.nodes;
    for (const [path, zones] of data.expect) {
      for (const [z, e] of zones) {
        data.stats.ackedChecks++;
        if (DataWorld.at(mine, path, z) >= e.wid) continue;
        const crashedSince = nodes.filter((x) => data.d(x).lastCrash >= e.ackedAt);
        const held = nodes.some((x) => DataWorld.at(data.d(x).cache, path, z) >= e.wid);
        if (!e.fsynced && crashedSince.length > 0 && (!held || crashedSince.length === nodes.length)) { data.stats.lostExcusedCrash++; continue; }
        // Acknowledged while the peer could not take over with it (alone, or during a resync
        // towards a peer not up to date yet), not fsynced, and lost by a power loss of the node
        // that acknowledged it, which is primary again: as on one server (docs/replication.md).
        if (!e.fsynced && !e.inSync && e.by === n.name && data.d(n).lastCrash >= e.ackedAt) { data.stats.lostExcusedCrash++; continue; }
        // Still on this copy, under the name it had before a rename that its host crash undid
        // (a rename is durable only with an fsync of its directory, not modelled).
        if (crashedSince.includes(n) && DataWorld.holds(mine, e.wid)) { data.stats.lostExcusedCrash++; continue; }
        if (data.diverged) {
          if (!final) continue;
          // The two sides' files went separate ways (a rename on one side moves what the
          // application knew): the write itself, under any name, counts.
          if (nodes.some((x) => data.d(x).quarantines.some((q) => DataWorld.at(q, path, z) >= e.wid || DataWorld.holds(q, e.wid)))) { data.stats.keptInQuarantine++; continue; }
          if (DataWorld.holds(mine, e.wid)) continue;
        }
        // Finding 9 (docs/simulator.md): this copy lost the write in a power loss of its host
        // (page cache) while the peer still holds it, and takes the primary role anyway.
        const f9 = crashedSince.includes(n) && nodes.some((x) => x !== n && DataWorld.at(data.d(x).cache, path, z) >= e.wid) ? ` [finding 9: ${n.name} lost it in a power loss, ${n.peer.name} holds it]` : findingTags(data);
        throw new Violation('acked-write-lost', `${n.name} (${n.label()})${f9} ${final ? 'is primary at the end' : 'starts the application'} without write ${e.wid} (${path} zone ${z}, acknowledged by ${e.by} at ${e.ackedAt}${e.fsynced ? ', fsynced' : ''}): it has ${DataWorld.at(mine, path, z) || 'nothing'} there; copies: ${nodes.map((x) => `${x.name} ${treeText(data.d(x).cache)}`).join('; ')}${data.diverged ? '; quarantines: ' + nodes.map((x) => `${x.name} [${data.d(x).quarantines.map(treeText).join(' | ')}]`).join(' ') : ''}`, this.w.now);
      }
    }
  }

  /** 5: a completed resync leaves the secondary's copy equal to the primary's at the same point of the stream. */
  private checkResynced(data: DataWorld, n: SimNode, primaryCopy: Tree, gen: string): void {
    data.stats.replicaChecks++;
    const mine = data.d(n).cache;
    if (treesEqual(mine, primaryCopy)) return;
    throw new Violation('replicas-differ', `${n.name}${findingTags(data)} completed the resync of ${gen} but its copy differs from ${n.peer.name}'s at sync-complete: ${n.name} ${treeText(mine)}; ${n.peer.name} ${treeText(primaryCopy)}`, this.w.now);
  }

  /** 5, at the end of a run (the stream drained): the PRIM's and the SECOND's copies are equal. */
  checkFinalData(data: DataWorld, prim: SimNode): void {
    this.checkAcked(data, prim, true);
    data.stats.replicaChecks++;
    const a = data.d(prim).cache;
    const b = data.d(prim.peer).cache;
    if (treesEqual(a, b)) return;
    throw new Violation('replicas-differ', `at the end${findingTags(data)}, PRIM ${prim.name} and SECOND ${prim.peer.name} differ: ${prim.name} ${treeText(a)}; ${prim.peer.name} ${treeText(b)}`, this.w.now);
  }

  /**
   * True when `n`'s core has had no heartbeat of its running peer for heartbeatTimeoutMs (the
   * core's own rule, with lastHeard reset at boot), counting from when both were running.
   */
  falselySilent(n: SimNode): boolean {
    const p = n.peer;
    if (!n.up || !p.up) return false;
    const ref = Math.max(n.lastHeard ?? n.upSince, p.upSince);
    return this.w.now - ref >= n.params.heartbeatTimeoutMs;
  }

  private updateEpisode(): void {
    const [a, b] = this.w.nodes;
    if (this.falselySilent(a) || this.falselySilent(b)) {
      if (this.episode === null) {
        this.episode = this.w.now;
        this.counts.episodes++;
        if (this.w.data) this.w.data.diverged = true;
        this.w.trace.note(this.w.now, '--', `split-brain episode starts: ${this.falselySilent(a) ? a.name : b.name} hears nothing from its running peer`);
      }
      return;
    }
    if (this.episode === null) return;
    const settled = (n: SimNode): boolean => !n.up || (n.state.ready && n.queue.length === 0 && !n.busy);
    if (settled(a) && settled(b) && !(a.writer() && b.writer())) {
      this.w.trace.note(this.w.now, '--', `split-brain episode ends (began at ${this.episode})`);
      this.episode = null;
    }
  }

  checkWriters(): void {
    const [a, b] = this.w.nodes;
    this.updateEpisode();
    this.checkSplitBrain();
    if (!(a.writer() && b.writer())) return;
    if (this.episode !== null) { this.counts.dualWritersExcused++; return; }
    const echo = a.staleEcho || b.staleEcho ? ` [${a.staleEcho ? a.name : b.name} decided on a stale echo]` : '';
    throw new Violation('two-writers', `two writers: ${a.name} holds ${a.resources()} (${a.label()}), ${b.name} holds ${b.resources()} (${b.label()})${echo}`, this.w.now);
  }

  private checkSplitBrain(): void {
    const w = this.w;
    const sb = w.sb;
    if (!sb) return;
    for (const n of w.nodes) {
      const since = w.isolatedSince.get(n.name);
      if (since === undefined || n.mount !== 'rw') continue;
      const T = n.params.heartbeatTimeoutMs;
      const bound = sb.witnesses ? T + sb.intervalMs + sb.timeoutMs : T + sb.leaseMs;
      this.counts.isolatedChecks++;
      if (w.now - since > bound) {
        throw new Violation('isolated-writer', `${n.name} (${n.label()}) is cut off from everything since ${since} and still holds a read-write mount after ${w.now - since} ms (bound ${bound} ms)`, w.now);
      }
    }
    const [a, b] = w.nodes;
    if (sb.arbitrator && a.mount === 'rw' && b.mount === 'rw') {
      const noLease = w.nodes.filter((n) => n.state.leaseDeadline === null || w.now >= n.state.leaseDeadline);
      if (noLease.length > 0) this.counts.arbitratorNoLease++;
      throw new Violation('two-writers-arbitrator', `two read-write mounts with the arbitrator: ${a.name} (${a.label()}), ${b.name} (${b.label()}), ${noLease.length > 0 ? `${noLease.map((n) => n.name).join(' and ')} without a live lease` : 'both with a live lease'}`, w.now);
    }
  }

  private afterStep(n: SimNode, e: MirrorEvent, before: MirrorState, actions: readonly MirrorAction[]): void {
    this.scanTransitions(n, e, before, actions);
    this.checkWriters();
  }

  private scanTransitions(n: SimNode, e: MirrorEvent, before: MirrorState, actions: readonly MirrorAction[]): void {
    for (const a of actions) {
      if (a.type !== 'transition') continue;
      if (!PRIMARY.has(a.to)) { n.staleEcho = false; continue; }
      if (PRIMARY.has(a.from)) continue;
      this.counts.primaryEntries++;
      if (n.lastView) {
        const echoed = this.w.echo.get(n.lastView);
        if (echoed !== undefined && echoed !== 0 && echoed !== n.life) {
          n.staleEcho = true;
          this.counts.staleEchoes++;
          this.w.trace.note(this.w.now, n.name, `decides ${a.to} on a peer view that echoes an earlier life of ${n.name} (finding 6)`);
        }
      }
      if (e.type === 'command' && e.command.cmd === 'prim') {
        this.counts.forcedPrim++;
        if (this.w.data) this.w.data.diverged = true;
        // Forcing a node that cannot hear its running peer is the admin's risk (like DRBD --force).
        const p = n.peer;
        const deaf = n.lastHeard === null || this.w.now - n.lastHeard >= n.params.heartbeatTimeoutMs;
        if (p.up && (deaf || PRIMARY.has(p.state.name)) && this.episode === null) {
          this.episode = this.w.now;
          this.counts.episodes++;
          this.w.trace.note(this.w.now, '--', `forced-prim episode starts: ${n.name} forced while it cannot hear its running peer, or while the peer is primary and it does not know yet`);
        }
        continue;
      }
      if (!n.params.hasReplication) continue;
      if (this.episode !== null) { this.counts.staleExcused++; continue; }
      this.counts.staleChecks++;
      // What the node had stored when it decided: a persist earlier in the same step counts
      // (a resync that ends and an election won on the same heartbeat).
      const stored = actions.slice(0, actions.indexOf(a)).filter((x) => x.type === 'persist').pop();
      const mine = stored?.type === 'persist' ? stored.persisted : before.persisted;
      if (!mine.upToDate) {
        throw new Violation('stale-primary', `${n.name} (${a.from}) becomes ${a.to} with data that is not up to date (gen ${mine.generation.current}) without a forced prim`, this.w.now);
      }
      const known = n.lastView?.generation;
      if (known && compareGenerations(mine.generation, known) === 'behind') {
        throw new Violation('stale-primary', `${n.name} (${a.from}) becomes ${a.to} on generation ${mine.generation.current}, behind ${n.peer.name}'s ${known.current} that it last heard (history ${known.history.join(',')}), without a forced prim`, this.w.now);
      }
      // Behind what the peer stored but never told this node (e.g. the peer took over while this
      // node was down, then stopped): no core can know; counted, documented as a limitation.
      const peerDisk = n.peer.disk;
      if (peerDisk && compareGenerations(mine.generation, peerDisk.generation) === 'behind') {
        this.counts.staleUnknowable++;
        // Its writes since are on the peer's disk only: at the end they must be kept (quarantine).
        if (this.w.data) this.w.data.diverged = true;
        this.w.trace.note(this.w.now, n.name, `becomes ${a.to} behind ${n.peer.name}'s stored ${peerDisk.generation.current}, which it never heard of (limitation)`);
      }
    }
  }
}
