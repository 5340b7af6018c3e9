/**
 * Exhaustive exploration with dynamic partial-order reduction: source-DPOR with sleep sets
 * (Abdulla, Aronis, Jonsson and Sagonas, "Optimal dynamic partial order reduction", POPL 2014),
 * using the footprints that threads yield.
 *
 * Two steps are dependent when they touch the same object and are not both reads (shared lock
 * operations count as reads), when one of them is `Global`, or when one is `GlobalRead`
 * (`cpu_relax`, which waits for any change) and the other changes state. After every step e' the
 * run looks for its races: the earlier steps e of other threads that e' depends on directly
 * (dependent, may be co-enabled, and not ordered before e' through any other step). For each race it
 * computes v = notdep(e).e' (the steps after e that do not depend on e, then e') and makes sure one
 * of the threads that can start v (its initials) is explored at the state before e. A lock release
 * and an acquisition of the same lock are never co-enabled, so they are never reversed; instead an
 * acquisition races with the previous acquisition of the lock (the release between them is skipped
 * when looking for the immediate predecessor). Threads left blocked at the end of a run (a
 * deadlock) have their pending operation analysed the same way.
 *
 * Sleep sets make every complete run a different Mazurkiewicz trace; a run that can only continue
 * with sleeping threads is abandoned ("pruned") as redundant. With a preemption bound, backtrack
 * points that would exceed the bound move to the latest earlier point where the switch is not a
 * preemption (Coons, Musuvathi and McKinley, bounded partial-order reduction, OOPSLA 2013). A bounded
 * search is a bug-finding heuristic: it keeps the sleep sets, which can also skip runs within the
 * bound, and it is reported as exhaustive only if the bound never cut a choice.
 *
 * (The first version was Flanagan and Godefroid's DPOR, POPL 2005. Combined with sleep sets and with
 * steps that touch nothing, such as a thread's start, it missed traces: a thread asleep at a node
 * blocked the exploration that would have discovered the backtrack point another thread needed.)
 */
import type { Op } from '../core/op.js';
import { Access, changesState } from '../core/op.js';
import {
  type Chooser,
  defaultPick,
  PruneRun,
  type RunResult,
  type Sim,
  StaleScheduleError,
} from '../core/sim.js';
import type { Thread } from '../core/thread.js';

// Access kinds as local constants: this file is the explorer's hot loop.
const ACQUIRE = Access.Acquire;
const ACQUIRE_SHARED = Access.AcquireShared;
const GLOBAL = Access.Global;
const GLOBAL_READ = Access.GlobalRead;
const JOIN = Access.Join;
const NONE = Access.None;
const READ = Access.Read;
const RELEASE = Access.Release;
const RELEASE_SHARED = Access.ReleaseShared;

/**
 * Footprint of an operation: `(objectId + 1) * 32 + visible * 16 + access`, where `visible` marks a
 * state change the program's invariant can observe (see `ProgramHooks.visible`).
 */
type Fp = number;
const NO_OBJ = -1;
const VISIBLE = 16;

/** The footprint `dependent()` compares; `sim` decides visibility (none without one). */
export function footprint(op: Op, sim: Sim | null = null): Fp {
  return fpOf(op, sim);
}

function fpOf(op: Op, sim: Sim | null): Fp {
  const vis = sim?.isVisible(op) ? VISIBLE : 0;
  return ((op.obj === null ? NO_OBJ : op.obj.id) + 1) * 32 + vis + op.access;
}
const accOf = (fp: Fp) => fp & 15;
const isVisible = (fp: Fp) => (fp & VISIBLE) !== 0;
const objOf = (fp: Fp) => Math.floor(fp / 32) - 1;

function readLike(a: number): boolean {
  return a === READ || a === ACQUIRE_SHARED || a === RELEASE_SHARED;
}
function acquireLike(a: number): boolean {
  return a === ACQUIRE || a === ACQUIRE_SHARED;
}
function releaseLike(a: number): boolean {
  return a === RELEASE || a === RELEASE_SHARED;
}

/** Whether two footprints may not commute. */
export function dependent(a: Fp, b: Fp): boolean {
  const x = accOf(a);
  const y = accOf(b);
  if (x === NONE || y === NONE || x === JOIN || y === JOIN) return false;
  if (x === GLOBAL_READ) return changesState(y);
  if (y === GLOBAL_READ) return changesState(x);
  if (x === GLOBAL || y === GLOBAL) return true;
  // Two changes the invariant can observe never commute: the states between them differ.
  if (isVisible(a) && isVisible(b)) return true;
  if (objOf(a) !== objOf(b)) return false;
  return !(readLike(x) && readLike(y));
}

/** Whether two operations of different threads can both be runnable in one state. */
function coEnabled(a: Fp, b: Fp): boolean {
  if (objOf(a) !== objOf(b)) return true;
  const x = accOf(a);
  const y = accOf(b);
  if ((acquireLike(x) && releaseLike(y)) || (releaseLike(x) && acquireLike(y))) return false;
  return !(x === RELEASE && y === RELEASE);
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
  /** Whether the preemption bound ever excluded a choice (then the space was not fully covered). */
  boundHit = false;

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

  /** @internal Whether choosing `u` at `node` stays within the bound (records when it does not). */
  withinBound(node: ThreadNode, u: number): boolean {
    if (this.fits(node, u)) return true;
    this.boundHit = true;
    return false;
  }

  /** @internal The same question, without recording anything. */
  fits(node: ThreadNode, u: number): boolean {
    return this.preemptionBound === undefined || this.cost(node, u) <= this.preemptionBound;
  }
}

/** One run of a DPOR exploration: a chooser plus the happens-before bookkeeping. */
export class DporRun implements Chooser {
  readonly wantsEveryStep = true;
  private pos = 0;
  /** Per step: thread, footprint, vector clock, stack index of its node. */
  private readonly stepTid: number[] = [];
  private readonly stepFp: Fp[] = [];
  private readonly stepClock: number[][] = [];
  private readonly stepNode: number[] = [];
  /** Per thread: the indices of its steps. */
  private readonly threadSteps: number[][] = [];
  /** Vector clock of each thread's latest step. */
  private readonly clocks: number[][] = [];
  private readonly local: number[] = [];
  /** Per object: join of the clocks of every step on it since (and including) its last write. */
  private readonly objAll = new Map<number, number[]>();
  /** Per object: clock of its last write. */
  private readonly objWrite = new Map<number, number[]>();
  /** Per object: the steps that touched it. */
  private readonly history = new Map<number, number[]>();
  /** Steps with a `Global` footprint, `cpu_relax` steps, and every step that touches shared state. */
  private readonly globalSteps: number[] = [];
  private readonly relaxSteps: number[] = [];
  private readonly accessSteps: number[] = [];
  private allClock: number[] = [];
  private globalClock: number[] = [];
  /** Join of all state-changing steps, and of all `cpu_relax` steps. */
  private changeClock: number[] = [];
  private relaxClock: number[] = [];
  /** Steps that changed an object the invariant observes, and the join of their clocks. */
  private readonly visibleSteps: number[] = [];
  private visibleClock: number[] = [];
  private lastNode = -1;
  private sim: Sim | null = null;

  constructor(private readonly state: DporState) {}

  pick(enabled: readonly Thread[], sim: Sim): Thread {
    this.sim = sim;
    this.registerThreads(sim);
    const stack = this.state.stack;
    let node: ThreadNode;
    if (this.pos < stack.length) {
      const n = stack[this.pos]!;
      if (n.kind !== 0) {
        throw new StaleScheduleError(`nondeterministic program: expected a data choice at step ${sim.step}`);
      }
      // Re-running a recorded prefix must meet the same threads with the same next operations.
      if (!sameState(n, enabled, sim)) {
        throw new StaleScheduleError(
          `nondeterministic program: at step ${sim.step} the runnable threads and their operations differ from an earlier run with the same choices (now: ${enabled.map((t) => `${t.name}: ${t.pending.describe()}`).join('; ')})`,
        );
      }
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
    const fps = enabled.map((t) => fpOf(t.pending, sim));
    const lastTid = sim.lastThread ? sim.lastThread.tid : -1;
    const sleep = new Map<number, Fp>();
    let preemptions = 0;
    const parent = this.lastNode >= 0 ? (stack[this.lastNode] as ThreadNode) : null;
    if (parent) {
      preemptions = this.state.cost(parent, parent.chosen);
      const chosenFp = parent.fps[parent.enabled.indexOf(parent.chosen)]!;
      for (const [u, fp] of parent.sleep)
        if (u !== parent.chosen && !dependent(fp, chosenFp)) sleep.set(u, fp);
      for (const u of parent.done) {
        const fp = parent.fps[parent.enabled.indexOf(u)]!;
        if (u !== parent.chosen && !dependent(fp, chosenFp)) sleep.set(u, fp);
      }
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
      const fit = awake.find((t) => this.state.fits(node, t.tid));
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
    // Threads spawned by a step are ordered after it (and everything before it).
    const prev = this.stepTid.length > 0 ? this.clocks[this.stepTid[this.stepTid.length - 1]!]! : [];
    while (this.clocks.length < n) {
      this.clocks.push(prev.slice());
      this.local.push(0);
      this.threadSteps.push([]);
    }
  }

  /** The vector clock `op` by thread `p` gets when it runs now (nothing is recorded). */
  private clockFor(p: number, op: Op, visible: boolean): number[] {
    const acc = op.access;
    const c = this.clocks[p]!.slice();
    c[p] = this.local[p]! + 1;
    if (acc === JOIN) {
      join(c, this.clocks[(op.obj as Thread).tid] ?? []);
    } else if (acc === GLOBAL) {
      join(c, this.allClock);
    } else if (acc === GLOBAL_READ) {
      join(c, this.changeClock);
    } else if (acc !== NONE) {
      const obj = op.obj === null ? NO_OBJ : op.obj.id;
      join(c, (readLike(acc) ? this.objWrite.get(obj) : this.objAll.get(obj)) ?? []);
      join(c, this.globalClock);
    }
    if (changesState(acc)) join(c, this.relaxClock);
    if (visible) join(c, this.visibleClock);
    return c;
  }

  afterStep(t: Thread, op: Op, _enabled: readonly Thread[], sim: Sim): void {
    this.sim = sim;
    const p = t.tid;
    const fp = fpOf(op, sim);
    const acc = op.access;
    const obj = objOf(fp);
    const j = this.stepTid.length;
    const before = this.clocks[p]!;
    const c = this.clockFor(p, op, isVisible(fp));
    this.local[p] = c[p]!;
    this.clocks[p] = c;
    this.allClock = joined(this.allClock, c);
    this.stepTid.push(p);
    this.stepFp.push(fp);
    this.stepClock.push(c);
    this.stepNode.push(this.lastNode);
    this.threadSteps[p]!.push(j);

    if (acc === NONE || acc === JOIN) return;
    this.findRaces(p, fp, c, before, j);

    this.accessSteps.push(j);
    if (changesState(acc)) this.changeClock = joined(this.changeClock, c);
    if (isVisible(fp)) {
      this.visibleClock = joined(this.visibleClock, c);
      this.visibleSteps.push(j);
    }
    if (acc === GLOBAL_READ) {
      this.relaxClock = joined(this.relaxClock, c);
      this.relaxSteps.push(j);
    } else if (acc === GLOBAL) {
      this.globalClock = c;
      this.globalSteps.push(j);
    } else {
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
  }

  /**
   * Called once the run has ended: threads still blocked (deadlock) never executed their pending
   * operation, so its races are analysed as if it ran now.
   */
  finish(result: RunResult): void {
    const sim = this.sim;
    if (!sim || result.status === 'done') return;
    for (const t of sim.threads) {
      if (t.done) continue;
      const op = t.pending;
      const acc = op.access;
      if (acc === NONE || acc === JOIN) continue;
      const blocked = op.obj !== null && !op.obj.enabled(op, t);
      if (!blocked && result.status !== 'violation') continue;
      const fp = fpOf(op, sim);
      this.findRaces(
        t.tid,
        fp,
        this.clockFor(t.tid, op, isVisible(fp)),
        this.clocks[t.tid]!,
        this.stepTid.length,
      );
    }
  }

  /**
   * Finds the races of the step (or pending operation) `fp` of thread `q`, whose clock is `clock`
   * and whose thread's clock before it is `before`; `end` is its index (steps before it only).
   */
  private findRaces(q: number, fp: Fp, clock: number[], before: number[], end: number): void {
    // M: what is already ordered before the new step through its own thread or through a race
    // found later in the run; an earlier candidate ordered before M is not an immediate race.
    const m = before.slice();
    let sinceCheck = 0;
    /** Visits candidate step i; returns true once M covers every earlier step: nothing more to find. */
    const visit = (i: number): boolean => {
      if (++sinceCheck >= 64 && this.covered(m, q, i)) return true;
      const u = this.stepTid[i]!;
      if (u === q) return false;
      const fpi = this.stepFp[i]!;
      if (!dependent(fpi, fp) || !coEnabled(fpi, fp)) return false;
      const ci = this.stepClock[i]!;
      if ((m[u] ?? 0) >= ci[u]!) return false;
      this.reverse(i, q, clock, end);
      join(m, ci);
      sinceCheck = 64;
      return false;
    };
    const acc = accOf(fp);
    if (acc === GLOBAL || acc === GLOBAL_READ) {
      const all = this.accessSteps;
      for (let a = all.length - 1; a >= 0; a--) if (all[a]! < end && visit(all[a]!)) return;
      return;
    }
    // Candidates: steps on the same object, Global steps, and (for state changes) cpu_relax steps,
    // visited latest first.
    const lists = [this.history.get(objOf(fp)) ?? [], this.globalSteps];
    if (changesState(acc)) lists.push(this.relaxSteps);
    if (isVisible(fp)) lists.push(this.visibleSteps);
    const at = lists.map((l) => l.length - 1);
    for (;;) {
      let best = -1;
      for (let k = 0; k < lists.length; k++) {
        if (at[k]! >= 0 && (best < 0 || lists[k]![at[k]!]! > lists[best]![at[best]!]!)) best = k;
      }
      if (best < 0) return;
      const i = lists[best]![at[best]!--]!;
      if (i < end && visit(i)) return;
    }
  }

  /** Whether clock `m` covers every step of every thread but `q` up to (including) step `i`. */
  private covered(m: readonly number[], q: number, i: number): boolean {
    for (let r = 0; r < this.threadSteps.length; r++) {
      if (r === q) continue;
      const steps = this.threadSteps[r]!;
      // Steps of r at indices <= i: their local indices are 1..count.
      let lo = 0;
      let hi = steps.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (steps[mid]! <= i) lo = mid + 1;
        else hi = mid;
      }
      if ((m[r] ?? 0) < lo) return false;
    }
    return true;
  }

  /**
   * Race between step `i` and a later step of thread `q` with clock `clock` at index `end`: make sure
   * an initial of v = notdep(i).q is explored at the state before step `i`.
   */
  private reverse(i: number, q: number, clock: number[], end: number): void {
    const node = this.state.stack[this.stepNode[i]!] as ThreadNode;
    const eu = this.stepTid[i]!;
    const el = this.stepClock[i]![eu]!;
    // First step in v of every thread seen so far (its own local index), and the initials found.
    const first = new Map<number, number>();
    const initials: number[] = [];
    const consider = (r: number, c: readonly number[]) => {
      if (first.has(r)) return;
      let initial = true;
      for (const [s, ls] of first) {
        if ((c[s] ?? 0) >= ls) {
          initial = false;
          break;
        }
      }
      first.set(r, c[r]!);
      if (initial) initials.push(r);
    };
    for (let k = i + 1; k < end; k++) {
      const c = this.stepClock[k]!;
      if ((c[eu] ?? 0) >= el) continue; // happens after step i: not in v
      consider(this.stepTid[k]!, c);
    }
    consider(q, clock);
    // Already covered if an initial is explored (or asleep: explored elsewhere) at that node.
    for (const r of initials) if (node.backtrack.has(r) || node.sleep.has(r)) return;
    // Initials not runnable at that node are steps that step i enabled: such a race cannot be reversed.
    const runnable = initials.filter((r) => node.enabled.includes(r));
    if (runnable.length === 0) return;
    const pick =
      runnable.find((r) => r === q && this.state.fits(node, r)) ??
      runnable.find((r) => this.state.fits(node, r)) ??
      (runnable.includes(q) ? q : runnable[0]!);
    this.addBacktrack(this.stepNode[i]!, pick);
  }

  private addBacktrack(idx: number, u: number): void {
    const stack = this.state.stack;
    const node = stack[idx] as ThreadNode;
    if (node.backtrack.has(u)) return;
    if (this.state.withinBound(node, u)) {
      node.backtrack.add(u);
      return;
    }
    // Bounded POR: switch to u at the latest earlier point where that is not a preemption.
    for (let k = idx - 1; k >= 0; k--) {
      const n = stack[k]!;
      if (n.kind !== 0 || !n.enabled.includes(u)) continue;
      if (this.state.fits(n, u) && this.state.cost(n, u) === n.preemptions) {
        n.backtrack.add(u);
        break;
      }
    }
  }
}

function sameState(node: ThreadNode, enabled: readonly Thread[], sim: Sim): boolean {
  if (node.enabled.length !== enabled.length) return false;
  for (let i = 0; i < enabled.length; i++) {
    const t = enabled[i]!;
    if (node.enabled[i] !== t.tid || node.fps[i] !== fpOf(t.pending, sim)) return false;
  }
  return true;
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
