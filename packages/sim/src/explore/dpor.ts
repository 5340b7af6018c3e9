/**
 * Exhaustive exploration with dynamic partial-order reduction: Flanagan and Godefroid's DPOR
 * (POPL 2005) with sleep sets, using the footprints that threads yield. Two steps are dependent
 * when they touch the same object and are not both reads (shared lock operations count as reads),
 * or when one of them is `Global`. A lock release and an acquisition of the same lock are never
 * co-enabled, so they are never reversed. With a preemption bound, backtrack points that would
 * exceed the bound move to the latest earlier point where the switch is not a preemption (Coons,
 * Musuvathi and McKinley, bounded partial-order reduction, OOPSLA 2013).
 *
 * Sleep sets make every complete run a different Mazurkiewicz trace; a run that can only continue
 * with sleeping threads is abandoned ("pruned") as redundant.
 */

import type { Op } from '../core/op.js';
import { Access, changesState } from '../core/op.js';
import { type Chooser, defaultPick, PruneRun, type Sim, StaleScheduleError } from '../core/sim.js';
import type { Thread } from '../core/thread.js';

/** Footprint of an operation: `(objectId + 1) * 16 + access`. */
type Fp = number;
const NO_OBJ = -1;

function fpOf(op: Op): Fp {
  return ((op.obj === null ? NO_OBJ : op.obj.id) + 1) * 16 + op.access;
}
const accOf = (fp: Fp) => fp & 15;
const objOf = (fp: Fp) => (fp >> 4) - 1;

function readLike(a: number): boolean {
  return a === Access.Read || a === Access.AcquireShared || a === Access.ReleaseShared;
}
function acquireLike(a: number): boolean {
  return a === Access.Acquire || a === Access.AcquireShared;
}
function releaseLike(a: number): boolean {
  return a === Access.Release || a === Access.ReleaseShared;
}

/** Whether two footprints may not commute. */
export function dependent(a: Fp, b: Fp): boolean {
  const x = accOf(a);
  const y = accOf(b);
  if (x === Access.None || y === Access.None || x === Access.Join || y === Access.Join) return false;
  if (x === Access.GlobalRead) return changesState(y);
  if (y === Access.GlobalRead) return changesState(x);
  if (x === Access.Global || y === Access.Global) return true;
  if (objOf(a) !== objOf(b)) return false;
  return !(readLike(x) && readLike(y));
}

/** Whether two operations of different threads can both be runnable in one state. */
function coEnabled(a: Fp, b: Fp): boolean {
  if (objOf(a) !== objOf(b)) return true;
  const x = accOf(a);
  const y = accOf(b);
  if ((acquireLike(x) && releaseLike(y)) || (releaseLike(x) && acquireLike(y))) return false;
  return !(x === Access.Release && y === Access.Release);
}

interface ThreadNode {
  kind: 0;
  enabled: number[];
  fps: Fp[];
  chosen: number;
  backtrack: Set<number>;
  done: Set<number>;
  sleep: Map<number, Fp>;
  /** Preemptions in the choices that led here. */
  preemptions: number;
  /** Thread of the previous step (-1 at the start) and whether it had just spun. */
  lastTid: number;
  lastRelaxed: boolean;
}

interface DataNode {
  kind: 1;
  n: number;
  chosen: number;
}

type Node = ThreadNode | DataNode;

/** State kept across the runs of one DPOR exploration. */
export class DporState {
  readonly stack: Node[] = [];

  constructor(readonly preemptionBound: number | undefined) {}

  /** A chooser for the next run (replays the stack's prefix, then explores). */
  newRun(): DporRun {
    return new DporRun(this);
  }

  /**
   * Moves to the next unexplored alternative, deepest first. Returns false when the whole space
   * (under the bound) has been explored.
   */
  advance(): boolean {
    const stack = this.stack;
    while (stack.length > 0) {
      const top = stack.length - 1;
      const node = stack[top]!;
      if (node.kind === 1) {
        if (node.chosen + 1 < node.n) {
          node.chosen++;
          return true;
        }
      } else {
        let next = -1;
        for (const u of node.backtrack) {
          if (u === node.chosen || node.done.has(u) || node.sleep.has(u)) continue;
          if (!this.withinBound(node, u)) continue;
          if (next < 0 || u < next) next = u;
        }
        if (next >= 0) {
          node.done.add(node.chosen);
          node.chosen = next;
          return true;
        }
      }
      stack.pop();
    }
    return false;
  }

  /** @internal Preemptions after choosing `u` at `node`. */
  cost(node: ThreadNode, u: number): number {
    const preempt =
      node.lastTid >= 0 && !node.lastRelaxed && u !== node.lastTid && node.enabled.includes(node.lastTid);
    return node.preemptions + (preempt ? 1 : 0);
  }

  /** @internal */
  withinBound(node: ThreadNode, u: number): boolean {
    return this.preemptionBound === undefined || this.cost(node, u) <= this.preemptionBound;
  }
}

/** One run of a DPOR exploration: a chooser plus the happens-before bookkeeping. */
export class DporRun implements Chooser {
  readonly wantsEveryStep = true;
  private pos = 0;
  /** Per step: thread, its per-thread index (1-based), footprint, stack index of its node. */
  private readonly stepTid: number[] = [];
  private readonly stepLocal: number[] = [];
  private readonly stepFp: Fp[] = [];
  private readonly stepNode: number[] = [];
  /** Vector clock of each thread's latest step. */
  private readonly clocks: number[][] = [];
  private readonly local: number[] = [];
  private readonly objAll = new Map<number, number[]>();
  private readonly objWrite = new Map<number, number[]>();
  private readonly history = new Map<number, number[]>();
  private readonly globalSteps: number[] = [];
  /** Steps that waited for any change (`cpu_relax`). */
  private readonly relaxSteps: number[] = [];
  private allClock: number[] = [];
  private globalClock: number[] = [];
  /** Join of all state-changing steps, and of all `cpu_relax` steps. */
  private changeClock: number[] = [];
  private relaxClock: number[] = [];
  private lastNode = -1;

  constructor(private readonly state: DporState) {}

  pick(enabled: readonly Thread[], sim: Sim): Thread {
    this.registerThreads(sim);
    const stack = this.state.stack;
    let node: ThreadNode;
    if (this.pos < stack.length) {
      const n = stack[this.pos]!;
      if (n.kind !== 0)
        throw new StaleScheduleError(`nondeterministic program: expected a data choice at step ${sim.step}`);
      node = n;
    } else {
      node = this.newNode(enabled, sim);
      stack.push(node);
    }
    this.lastNode = this.pos++;
    const t = enabled.find((e) => e.tid === node.chosen);
    if (!t) {
      throw new StaleScheduleError(
        `nondeterministic program: thread ${node.chosen} was runnable at step ${sim.step} in an earlier run but is not now`,
      );
    }
    return t;
  }

  value(n: number, label: string): number {
    const stack = this.state.stack;
    if (this.pos < stack.length) {
      const node = stack[this.pos++]!;
      if (node.kind !== 1 || node.n !== n) {
        throw new StaleScheduleError(
          `nondeterministic program: choice '${label}' differs from an earlier run`,
        );
      }
      return node.chosen;
    }
    stack.push({ kind: 1, n, chosen: 0 });
    this.pos++;
    return 0;
  }

  private newNode(enabled: readonly Thread[], sim: Sim): ThreadNode {
    const stack = this.state.stack;
    const tids = enabled.map((t) => t.tid);
    const fps = enabled.map((t) => fpOf(t.pending));
    const lastTid = sim.lastThread ? sim.lastThread.tid : -1;
    const sleep = new Map<number, Fp>();
    let preemptions = 0;
    const parent = this.lastNode >= 0 ? (stack[this.lastNode] as ThreadNode) : null;
    if (parent) {
      const chosenFp = parent.fps[parent.enabled.indexOf(parent.chosen)]!;
      for (const [u, fp] of parent.sleep)
        if (u !== parent.chosen && !dependent(fp, chosenFp)) sleep.set(u, fp);
      for (const u of parent.done) {
        const fp = parent.fps[parent.enabled.indexOf(u)]!;
        if (u !== parent.chosen && !dependent(fp, chosenFp)) sleep.set(u, fp);
      }
      preemptions = this.state.cost(parent, parent.chosen);
    }
    const node: ThreadNode = {
      kind: 0,
      enabled: tids,
      fps,
      chosen: -1,
      backtrack: new Set(),
      done: new Set(),
      sleep,
      preemptions,
      lastTid,
      lastRelaxed: sim.lastRelaxed,
    };
    const awake = enabled.filter((t) => !sleep.has(t.tid));
    if (awake.length === 0) throw new PruneRun();
    // Prefer the non-preemptive default; under a bound, never start with a preemption we cannot afford.
    let choice = defaultPick(awake, sim.lastThread, sim.lastRelaxed);
    if (!this.state.withinBound(node, choice.tid)) {
      const fit = awake.find((t) => this.state.withinBound(node, t.tid));
      if (!fit) throw new PruneRun();
      choice = fit;
    }
    node.chosen = choice.tid;
    node.backtrack.add(choice.tid);
    return node;
  }

  private registerThreads(sim: Sim): void {
    const n = sim.threads.length;
    if (this.clocks.length === n) return;
    const prev = this.stepTid.length > 0 ? this.clocks[this.stepTid[this.stepTid.length - 1]!]! : [];
    while (this.clocks.length < n) {
      this.clocks.push(prev.slice());
      this.local.push(0);
    }
  }

  afterStep(t: Thread, op: Op, _enabled: readonly Thread[], sim: Sim): void {
    const p = t.tid;
    const fp = fpOf(op);
    const acc = op.access;
    const obj = objOf(fp);
    const j = this.stepTid.length;
    const c = this.clocks[p]!.slice();
    c[p] = ++this.local[p]!;
    if (acc === Access.Join) {
      join(c, this.clocks[(op.obj as Thread).tid] ?? []);
    } else if (acc === Access.Global) {
      join(c, this.allClock);
    } else if (acc === Access.GlobalRead) {
      join(c, this.changeClock);
    } else if (acc !== Access.None) {
      join(c, (readLike(acc) ? this.objWrite.get(obj) : this.objAll.get(obj)) ?? []);
      join(c, this.globalClock);
    }
    if (changesState(acc)) join(c, this.relaxClock);
    this.clocks[p] = c;
    this.allClock = joined(this.allClock, c);
    if (changesState(acc)) this.changeClock = joined(this.changeClock, c);
    if (acc === Access.GlobalRead) {
      this.relaxClock = joined(this.relaxClock, c);
      this.relaxSteps.push(j);
    } else if (acc === Access.Global) {
      this.globalClock = c;
      this.globalSteps.push(j);
    } else if (acc !== Access.None && acc !== Access.Join) {
      if (readLike(acc)) {
        this.objAll.set(obj, joined(this.objAll.get(obj) ?? [], c));
      } else {
        this.objAll.set(obj, c);
        this.objWrite.set(obj, c);
      }
      const h = this.history.get(obj);
      if (h) h.push(j);
      else this.history.set(obj, [j]);
    }
    this.stepTid.push(p);
    this.stepLocal.push(c[p]!);
    this.stepFp.push(fp);
    this.stepNode.push(this.lastNode);

    // Races: for every thread whose next operation may conflict with this step, find the latest
    // dependent, co-enabled step of another thread that does not happen before it.
    for (const q of sim.threads) {
      if (q.done) continue;
      const qfp = fpOf(q.pending);
      const qacc = accOf(qfp);
      if (qacc === Access.None || qacc === Access.Join) continue;
      const related =
        q.tid === p ||
        acc === Access.Global ||
        qacc === Access.Global ||
        objOf(qfp) === obj ||
        (qacc === Access.GlobalRead && changesState(acc)) ||
        (acc === Access.GlobalRead && changesState(qacc));
      if (!related) continue;
      this.findRace(q.tid, qfp);
    }
  }

  private findRace(q: number, qfp: Fp): void {
    const qclock = this.clocks[q]!;
    const check = (i: number): boolean => {
      const u = this.stepTid[i]!;
      if (u === q) return false;
      const fp = this.stepFp[i]!;
      if (!dependent(fp, qfp) || !coEnabled(fp, qfp)) return false;
      if ((qclock[u] ?? 0) >= this.stepLocal[i]!) return false;
      this.addBacktrack(i, q);
      return true;
    };
    const qacc = accOf(qfp);
    if (qacc === Access.Global || qacc === Access.GlobalRead) {
      for (let i = this.stepTid.length - 1; i >= 0; i--) if (check(i)) return;
      return;
    }
    // Candidates: steps on the same object, Global steps, and (for state changes) cpu_relax steps,
    // visited latest first.
    const lists = [this.history.get(objOf(qfp)) ?? [], this.globalSteps];
    if (changesState(qacc)) lists.push(this.relaxSteps);
    const at = lists.map((l) => l.length - 1);
    for (;;) {
      let best = -1;
      for (let k = 0; k < lists.length; k++) {
        if (at[k]! >= 0 && (best < 0 || lists[k]![at[k]!]! > lists[best]![at[best]!]!)) best = k;
      }
      if (best < 0) return;
      if (check(lists[best]![at[best]!--]!)) return;
    }
  }

  private addBacktrack(i: number, q: number): void {
    const stack = this.state.stack;
    const idx = this.stepNode[i]!;
    const node = stack[idx] as ThreadNode;
    const candidates = node.enabled.includes(q) ? [q] : node.enabled;
    for (const u of candidates) {
      if (node.backtrack.has(u)) continue;
      if (this.state.withinBound(node, u)) {
        node.backtrack.add(u);
        continue;
      }
      // Bounded POR: switch to u at the latest earlier point where that is not a preemption.
      for (let k = idx - 1; k >= 0; k--) {
        const n = stack[k]!;
        if (n.kind !== 0 || !n.enabled.includes(u)) continue;
        if (this.state.withinBound(n, u) && this.state.cost(n, u) === n.preemptions) {
          n.backtrack.add(u);
          break;
        }
      }
    }
  }
}

function join(into: number[], other: readonly number[]): void {
  for (let i = 0; i < other.length; i++) {
    const v = other[i]!;
    if ((into[i] ?? 0) < v) into[i] = v;
  }
}

function joined(a: readonly number[], b: readonly number[]): number[] {
  const out = a.slice();
  join(out, b);
  return out;
}
