/**
 * The simulator: one run of a program under a chooser that picks the next thread at every step.
 *
 * A run is stateless: the explorer builds a fresh `Sim`, calls the program's `setup` (which creates
 * objects and spawns threads), and drives it to the end. Everything a model does is a consequence of
 * the choices made here, so the same choices give the same run, byte for byte.
 */
import { Ctx, ctxNames } from './context.js';
import { type HeldLock, type LockClass, Lockdep } from './lockdep.js';
import { SimObject } from './object.js';
import { Access, changesState, Op, OpFlag, type Routine } from './op.js';
import { Thread, type ThreadBody } from './thread.js';
import { type Violation, type ViolationKind, ViolationSignal } from './violation.js';

/** A check run by the simulator: return `false` or a message to fail, anything else to pass. */
export type Check = () => boolean | string | undefined | void;

/** What a program's setup may hand back to the simulator. */
export interface ProgramHooks {
  /** Checked after every step (one check, or named checks). */
  invariant?: Check | Record<string, Check>;
  /** Checked once, when every thread has finished. */
  properties?: Check | Record<string, Check>;
  /** A JSON-able state snapshot recorded in traces when snapshots are on. */
  snapshot?: () => unknown;
  /**
   * The objects whose changes the invariant can observe. Exhaustive exploration (`dfs`) keeps every
   * relative order of changes to visible objects, so the invariant is evaluated in every state it
   * can tell apart; changes to other objects are reordered freely. Default: `'all'` when an
   * invariant is given (sound, but little reduction), `'none'` otherwise. Declare the objects your
   * invariant reads (a list, or a predicate, which also covers objects created during the run) to
   * get the reduction back. Lock acquisitions and releases are never visible: an invariant should
   * read what a lock protects, not the lock.
   */
  visible?: readonly SimObject[] | ((obj: SimObject) => boolean) | 'all' | 'none';
}

/** A program the explorer can run many times: `setup` must build everything afresh each time. */
export interface Program {
  name: string;
  setup(sim: Sim): ProgramHooks | undefined | void;
  /** Per-run simulator options this program needs (e.g. fault injection). */
  options?: Partial<SimOptions>;
}

export interface SimOptions {
  /** Step budget of one run; exceeding it is reported as a possible livelock. */
  maxSteps: number;
  /** Record an event per step (needed for race diagrams; off for speed). */
  trace: boolean;
  /** Record `snapshot()` after every step (only with `trace`). */
  snapshots: boolean;
  /** How many allocations may be made to fail in one run (0: fault injection off). */
  allocFailures: number;
}

export const defaultSimOptions: SimOptions = {
  maxSteps: 10_000,
  trace: false,
  snapshots: false,
  allocFailures: 0,
};

/** Picks what happens next. Strategies implement it; the replay chooser follows a schedule. */
export interface Chooser {
  /** Picks one of the runnable threads (at least two, ascending tid). */
  pick(enabled: readonly Thread[], sim: Sim): Thread;
  /** Picks a value in [0, n) for a data choice (allocation failure, explicit `choose`). */
  value(n: number, label: string, sim: Sim): number;
  /**
   * When true, `pick` is also called when only one thread can run (the choice is not recorded).
   * PCT counts those steps; DPOR keeps a node for every state.
   */
  readonly wantsEveryStep?: boolean;
  /** Called after every step, including steps where only one thread could run. */
  afterStep?(t: Thread, op: Op, enabled: readonly Thread[], sim: Sim): void;
}

/** One recorded step. */
export interface StepEvent {
  step: number;
  tid: number;
  op: Op;
  result: unknown;
  snapshot?: unknown;
}

/** How a run ended. */
export interface RunResult {
  program: string;
  status: 'done' | 'violation' | 'pruned';
  violation?: Violation;
  steps: number;
  /** Every choice made (thread ids where more than one could run, and data choices), in order. */
  choices: number[];
  /** How many leading choices differ from the default policy; the rest can be dropped. */
  significant: number;
  /** Fingerprint of the whole run (threads, objects, results), for determinism checks. */
  hash: number;
  threads: string[];
  events?: StepEvent[];
}

/** Thrown by a chooser to abandon a run that the explorer knows to be redundant. */
export class PruneRun extends Error {
  constructor() {
    super('run pruned');
    this.name = 'PruneRun';
  }
}

/** A schedule that does not fit the program (changed program, or a hand-edited string). */
export class StaleScheduleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StaleScheduleError';
  }
}

/**
 * The default policy: keep running the current thread (no preemption); when it cannot run, or it
 * just executed a spin-loop hint, the next runnable thread in round-robin order. Replays fall back to
 * it when the schedule ends, so printed schedules only keep the choices that differ from it.
 */
export function defaultPick(enabled: readonly Thread[], last: Thread | null, lastRelaxed: boolean): Thread {
  if (last === null) return enabled[0]!;
  if (!lastRelaxed) {
    for (const t of enabled) if (t === last) return t;
  }
  for (const t of enabled) if (t.tid > last.tid) return t;
  const first = enabled[0]!;
  return first === last && enabled.length > 1 ? enabled[1]! : first;
}

const FNV_PRIME = 16777619;

export class Sim {
  readonly objects: SimObject[] = [];
  readonly threads: Thread[] = [];
  readonly lockdep = new Lockdep();
  readonly options: SimOptions;
  /** Index of the step being executed (0-based). */
  step = 0;
  /** The thread whose code is running, or null during setup and checks. */
  current: Thread | null = null;
  /** The thread that ran the previous step. */
  lastThread: Thread | null = null;
  lastRelaxed = false;
  private chooser: Chooser | null = null;
  private readonly choices: number[] = [];
  private significant = 0;
  private hash = 2166136261;
  private events: StepEvent[] | null;
  private allocFailuresLeft: number;
  private hooks: ProgramHooks = {};
  private visibleAll = false;
  private visibleIds: Set<number> | null = null;
  private visiblePredicate: ((obj: SimObject) => boolean) | null = null;

  /**
   * Whether a step of `op` may change what the invariant sees (see {@link ProgramHooks.visible}).
   * The explorer never reorders two visible steps as if they commuted.
   */
  isVisible(op: Op): boolean {
    const a = op.access;
    // Lock operations are never visible: their order is explored through the lock itself, and an
    // invariant should look at what a lock protects, not at the lock.
    if (!changesState(a) || op.obj === null || (a >= Access.Acquire && a <= Access.ReleaseShared))
      return false;
    if (this.visibleAll) return true;
    if (this.visiblePredicate) return this.visiblePredicate(op.obj);
    return this.visibleIds?.has(op.obj.id) === true;
  }

  constructor(options: Partial<SimOptions> = {}) {
    this.options = { ...defaultSimOptions, ...options };
    this.events = this.options.trace ? [] : null;
    this.allocFailuresLeft = this.options.allocFailures;
  }

  /** @internal Called by every object's constructor. */
  register(obj: SimObject): number {
    this.objects.push(obj);
    return this.objects.length - 1;
  }

  /** Starts a thread; it runs its first code when the scheduler first picks it. */
  spawn(name: string, body: ThreadBody): Thread {
    const t = new Thread(this, name, body, this.threads.length);
    this.threads.push(t);
    return t;
  }

  private readonly singletons = new Map<string, unknown>();
  private readonly counters = new Map<string, number>();

  /**
   * The next number of a per-run counter, for naming objects (`anon_vma#3`, `dmirror1`). A
   * module-level counter would keep counting across runs, so a replay would print other names.
   */
  nextId(kind: string): number {
    const n = this.counters.get(kind) ?? 0;
    this.counters.set(kind, n + 1);
    return n;
  }

  /**
   * A per-run singleton (the slab allocator, lockdep's pseudo-locks), created on first use. Creation
   * order is part of the program, so object ids stay deterministic.
   */
  singleton<T>(key: string, make: () => T): T {
    let v = this.singletons.get(key) as T | undefined;
    if (v === undefined) {
      v = make();
      this.singletons.set(key, v);
    }
    return v;
  }

  /** Waits for `t` to finish and returns its result (`kthread_stop`/join). */
  *join(t: Thread): Routine<unknown> {
    return yield new Op('join', t, Access.Join);
  }

  /** Marks `obj` freed: any later operation on it is reported as a use-after-free. */
  free(obj: SimObject): void {
    obj.freed = true;
  }

  /** A pure scheduling point with a note (shown in traces; touches nothing). */
  note(label: string): Op {
    return new Op('note', null, Access.None, 0, undefined, label);
  }

  /** Counts the steps that changed shared state; `cpu_relax()` waits for it to move. */
  changeEpoch = 0;

  /**
   * `cpu_relax()` in a spin or retry loop. A thread's `cpu_relax()` is not runnable until another
   * thread has changed some shared state since its previous `cpu_relax()` (the first one always
   * runs): spinning on something nobody changes is pointless, so the explorer never spends steps on
   * it. Threads that all spin with nothing left to change them are reported as a livelock.
   *
   * (The point of reference is the previous `cpu_relax()` step, not the step that announced this
   * one: that step's footprint is whatever the loop last read, so the changes it was ordered
   * against would not be the ones the wait depends on, and DPOR would miss spin counts.)
   */
  relax(label?: string): Op {
    const src = this.singleton('relax', () => new RelaxPoint(this));
    return new Op('cpu_relax', src, Access.GlobalRead, OpFlag.Relax, undefined, label);
  }

  /**
   * A data choice in [0, n), explored like a scheduling choice. Yield it:
   * `const v = (yield sim.choose(3, 'which page')) as number`.
   */
  choose(n: number, label: string): Op {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`choose: n must be a positive integer, got ${n}`);
    return new Op('choose', this.chooseObj(), Access.None, 0, n, label);
  }

  private chooseObject: SimObject | null = null;
  private chooseObj(): SimObject {
    // Created lazily so programs that never choose keep their object ids unchanged.
    if (!this.chooseObject) this.chooseObject = new ChoiceSource(this);
    return this.chooseObject;
  }

  /**
   * @internal Makes a data choice through the chooser (objects call it from `exec`). With n = 1 no
   * choice is recorded.
   */
  decide(n: number, label: string): number {
    if (n <= 1 || this.inSetupRoutine) return 0;
    const v = this.chooser ? this.chooser.value(n, label, this) : 0;
    if (!Number.isInteger(v) || v < 0 || v >= n) {
      throw new StaleScheduleError(
        `choice ${this.choices.length}: value ${v} is not in [0, ${n}) for '${label}'`,
      );
    }
    this.choices.push(v);
    if (v !== 0) this.significant = this.choices.length;
    return v;
  }

  /** @internal Whether an allocation may be failed now (fault injection budget left). */
  mayFailAlloc(): boolean {
    return this.allocFailuresLeft > 0;
  }

  /** @internal Spends one injected allocation failure. */
  spendAllocFailure(): void {
    this.allocFailuresLeft--;
  }

  /** Stops the run with a violation. Usable from model code, objects and checks. */
  fail(kind: ViolationKind, message: string, extra: { objects?: string[]; details?: string[] } = {}): never {
    const threads = this.current ? [this.current.name] : this.lastThread ? [this.lastThread.name] : [];
    throw new ViolationSignal({
      kind,
      message,
      step: this.step,
      threads,
      objects: extra.objects ?? [],
      ...(extra.details ? { details: extra.details } : {}),
    });
  }

  /** `lockdep_assert_held(lock)` for the running thread. */
  assertHeld(lock: SimObject): void {
    const t = this.current;
    if (t?.held.some((h) => h.instance === lock)) return;
    this.fail('lockdep-assert', `lockdep_assert_held(${lock.name}) failed in ${t?.name ?? 'setup'}`, {
      objects: [lock.name],
    });
  }

  /** `lockdep_assert_not_held(lock)` for the running thread. */
  assertNotHeld(lock: SimObject): void {
    const t = this.current;
    if (!t?.held.some((h) => h.instance === lock)) return;
    this.fail('lockdep-assert', `lockdep_assert_not_held(${lock.name}) failed in ${t.name}`, {
      objects: [lock.name],
    });
  }

  /**
   * `might_sleep()` for the running thread, checked now rather than at the next yield: reports
   * sleeping in atomic context and blocking in a non-blockable section.
   */
  mightSleep(what = 'might_sleep()'): void {
    const t = this.current;
    if (!t) return;
    if (t.ctx[Ctx.Atomic]! > 0) {
      this.fail('sleep-in-atomic', `${t.name}: sleeping function ${what} called in atomic context`);
    }
    if (t.ctx[Ctx.NonBlock]! > 0) {
      this.fail('block-in-nonblockable', `${t.name}: ${what} may block inside a non-blockable section`);
    }
  }

  private inSetupRoutine = false;

  /**
   * Runs `body` to completion right now, during `setup`, as a thread of its own that nothing else
   * interleaves with: for state a scenario needs before its threads start (a registered notifier,
   * populated pages). Every operation must be able to run at once (a setup routine that would
   * block throws); data choices take their first value and are not recorded; context and lockdep
   * rules apply as in any thread. Returns the body's result.
   */
  runNow<R>(body: () => Routine<R>, name = 'setup'): R {
    if (this.current) throw new Error(`runNow('${name}'): only callable from setup, not from a thread`);
    const t = new Thread(this, name, body as ThreadBody, -1);
    this.current = t;
    this.inSetupRoutine = true;
    try {
      t.advance(undefined);
      while (!t.done) {
        const op = t.pending;
        if (op.flags !== 0) this.checkContext(t, op);
        if (op.obj && !op.obj.enabled(op, t)) {
          throw new Error(`setup routine '${name}' would block at ${op.describe()}`);
        }
        const value = op.obj === null ? undefined : op.obj.exec(op, t);
        if (changesState(op.access)) this.changeEpoch++;
        t.advance(value);
      }
      if (t.held.length > 0) {
        this.fail(
          'lock-held-at-exit',
          `setup routine '${name}' finished holding ${t.held.map((l) => l.name).join(', ')}`,
        );
      }
      return t.result as R;
    } finally {
      this.current = null;
      this.inSetupRoutine = false;
    }
  }

  /** Whether the running thread holds `lock` (`lockdep_is_held`). */
  isHeld(lock: SimObject): boolean {
    return !!this.current?.held.some((h) => h.instance === lock);
  }

  /** @internal Lockdep bookkeeping for an acquisition by `t` (locks and pseudo-lock maps). */
  lockAcquired(
    t: Thread,
    cls: LockClass,
    instance: object,
    name: string,
    subclass = 0,
    trylock = false,
  ): void {
    const v = this.lockdep.acquire(t.name, this.step, t.held, cls, name, subclass, trylock);
    if (v) throw new ViolationSignal(v);
    t.held.push({ cls, instance, name, subclass } satisfies HeldLock);
  }

  /** @internal Lockdep bookkeeping for a release; false if `t` did not hold it. */
  lockReleased(t: Thread, instance: object): boolean {
    for (let i = t.held.length - 1; i >= 0; i--) {
      if (t.held[i]!.instance === instance) {
        t.held.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /** Enters a context section for the running thread (`dma_fence_begin_signalling`, a notifier...). */
  enterCtx(c: Ctx): void {
    const t = this.current;
    if (t) t.ctx[c]!++;
  }

  /** Leaves a context section entered with {@link enterCtx}. */
  exitCtx(c: Ctx): void {
    const t = this.current;
    if (!t) return;
    if (t.ctx[c]! <= 0) this.fail('model-error', `${t.name} leaves ${ctxNames[c]} context it is not in`);
    t.ctx[c]!--;
  }

  /** Runs the program once under `chooser`. Never throws for model errors: they become violations. */
  run(program: Program, chooser: Chooser): RunResult {
    this.chooser = chooser;
    let violation: Violation | undefined;
    let pruned = false;
    try {
      this.hooks = program.setup(this) ?? {};
      const visible = this.hooks.visible ?? (this.hooks.invariant ? 'all' : 'none');
      this.visibleAll = visible === 'all';
      if (typeof visible === 'function') this.visiblePredicate = visible;
      else if (typeof visible !== 'string') this.visibleIds = new Set(visible.map((o) => o.id));
      this.loop(chooser);
    } catch (e) {
      if (e instanceof ViolationSignal) violation = e.violation;
      else if (e instanceof PruneRun) pruned = true;
      else if (e instanceof StaleScheduleError) throw e;
      else violation = this.modelError(e);
    }
    const result: RunResult = {
      program: program.name,
      status: pruned ? 'pruned' : violation ? 'violation' : 'done',
      steps: this.step,
      choices: this.choices.slice(),
      significant: this.significant,
      hash: this.hash >>> 0,
      threads: this.threads.map((t) => t.name),
      ...(violation ? { violation } : {}),
      ...(this.events ? { events: this.events } : {}),
    };
    return result;
  }

  private modelError(e: unknown): Violation {
    const err = e instanceof Error ? e : new Error(String(e));
    const where = err.stack?.split('\n').slice(1, 4).join('\n') ?? '';
    return {
      kind: 'model-error',
      message: `model code threw ${err.name}: ${err.message}`,
      step: this.step,
      threads: this.current ? [this.current.name] : [],
      objects: [],
      details: where ? [where] : [],
    };
  }

  private loop(chooser: Chooser): void {
    const enabled: Thread[] = [];
    const threads = this.threads;
    const maxSteps = this.options.maxSteps;
    const invariant = normalizeChecks(this.hooks.invariant);
    for (;;) {
      enabled.length = 0;
      let unfinished = 0;
      for (let i = 0; i < threads.length; i++) {
        const t = threads[i]!;
        if (t.done) continue;
        unfinished++;
        const op = t.pending;
        if (op.obj === null || op.obj.enabled(op, t)) enabled.push(t);
      }
      if (enabled.length === 0) {
        if (unfinished > 0) this.reportStuck();
        break;
      }
      if (this.step >= maxSteps) this.reportLivelock();
      let t: Thread;
      if (enabled.length === 1) {
        t = chooser.wantsEveryStep ? chooser.pick(enabled, this) : enabled[0]!;
        if (t !== enabled[0]) throw new StaleScheduleError(`step ${this.step}: ${t.name} cannot run now`);
      } else {
        t = chooser.pick(enabled, this);
        if (!enabled.includes(t)) throw new StaleScheduleError(`step ${this.step}: ${t.name} cannot run now`);
        this.choices.push(t.tid);
        if (t !== defaultPick(enabled, this.lastThread, this.lastRelaxed))
          this.significant = this.choices.length;
      }
      this.execute(t);
      chooser.afterStep?.(t, this.lastOp!, enabled, this);
      if (invariant) this.runChecks(invariant, 'invariant');
      if (this.events && this.options.snapshots && this.hooks.snapshot) {
        this.events[this.events.length - 1]!.snapshot = this.hooks.snapshot();
      }
      this.step++;
    }
    const props = normalizeChecks(this.hooks.properties);
    if (props) this.runChecks(props, 'property');
  }

  private lastOp: Op | null = null;

  private execute(t: Thread): void {
    const op = t.pending;
    this.current = t;
    this.lastOp = op;
    const obj = op.obj;
    // Recorded before it runs, so a step that fails (use-after-free, bad unlock, ...) is in the trace.
    const event: StepEvent | null = this.events
      ? { step: this.step, tid: t.tid, op, result: undefined }
      : null;
    if (event) this.events!.push(event);
    if (obj?.freed) {
      this.fail('use-after-free', `${t.name}: ${op.describe()} on ${obj.name} after it was freed`, {
        objects: [obj.name],
      });
    }
    const value = obj === null ? undefined : obj.exec(op, t);
    if (changesState(op.access)) {
      this.changeEpoch++;
      t.changes++;
    }
    let h = Math.imul(this.hash ^ t.tid, FNV_PRIME);
    h = Math.imul(h ^ (obj === null ? 0xffff : obj.id), FNV_PRIME);
    if (typeof value === 'number') h = Math.imul(h ^ (value | 0), FNV_PRIME);
    else if (typeof value === 'boolean') h = Math.imul(h ^ (value ? 1 : 2), FNV_PRIME);
    this.hash = h;
    if (event) event.result = value;
    t.advance(value);
    if (t.done) {
      if (t.held.length > 0) {
        this.fail('lock-held-at-exit', `${t.name} finished holding ${t.held.map((l) => l.name).join(', ')}`, {
          objects: t.held.map((l) => l.name),
        });
      }
    } else {
      const flags = t.pending.flags;
      if (flags !== 0) this.checkContext(t, t.pending);
    }
    this.lastThread = t;
    this.lastRelaxed = (op.flags & OpFlag.Relax) !== 0;
    this.current = null;
  }

  /** Context rules checked when an operation is announced (`might_sleep()` fires on the way in). */
  private checkContext(t: Thread, op: Op): void {
    const f = op.flags;
    const what = op.describe();
    const objects = op.obj ? [op.obj.name] : [];
    const fence = t.ctx[Ctx.FenceSignalling]! > 0;
    if (fence && f & OpFlag.FenceWait) {
      this.fail(
        'fence-signalling',
        `${t.name}: ${what} waits for a fence inside a fence-signalling section`,
        {
          objects,
        },
      );
    }
    if (fence && f & OpFlag.ResvLock) {
      this.fail(
        'fence-signalling',
        `${t.name}: ${what} takes a dma_resv lock inside a fence-signalling section`,
        {
          objects,
        },
      );
    }
    if (f & OpFlag.AllocKernel) {
      if (t.ctx[Ctx.Atomic]! > 0) {
        this.fail('sleep-in-atomic', `${t.name}: GFP_KERNEL allocation ${what} in atomic context`, {
          objects,
        });
      }
      for (const c of [Ctx.NonBlock, Ctx.Reclaim, Ctx.FenceSignalling]) {
        if (t.ctx[c]! > 0) {
          this.fail(
            'alloc-in-forbidden-context',
            `${t.name}: GFP_KERNEL allocation ${what} in ${ctxNames[c]} context`,
            {
              objects,
            },
          );
        }
      }
    }
    if (f & OpFlag.MightSleep) {
      if (t.ctx[Ctx.Atomic]! > 0) {
        this.fail('sleep-in-atomic', `${t.name}: sleeping function ${what} called in atomic context`, {
          objects,
        });
      }
      if (t.ctx[Ctx.NonBlock]! > 0) {
        this.fail('block-in-nonblockable', `${t.name}: ${what} may block inside a non-blockable section`, {
          objects,
        });
      }
    }
  }

  private runChecks(checks: [string, Check][], what: string): void {
    for (const [name, check] of checks) {
      const r = check();
      if (r === false || typeof r === 'string') {
        const msg = typeof r === 'string' ? r : `${what} '${name}' does not hold`;
        const text = name && typeof r === 'string' ? `${name}: ${msg}` : msg;
        if (what === 'property') {
          // End-of-run properties belong to no step.
          throw new ViolationSignal({ kind: 'assertion', message: text, step: -1, threads: [], objects: [] });
        }
        this.fail('assertion', text);
      }
    }
  }

  private reportStuck(): never {
    const blocked = this.threads.filter((t) => !t.done);
    const lines = blocked.map((t) => `${t.name} waits: ${t.pending.obj!.waitReason(t.pending, t)}`);
    if (blocked.every((t) => t.pending.flags & OpFlag.Relax)) {
      throw new ViolationSignal({
        kind: 'livelock',
        message: `livelock: ${blocked.map((t) => t.name).join(', ')} spin in cpu_relax() and no other thread is left to change what they wait for`,
        step: this.step,
        threads: blocked.map((t) => t.name),
        objects: [],
        details: lines,
      });
    }
    for (const t of blocked) {
      const obj = t.pending.obj!;
      if (t.waitCond?.()) {
        throw new ViolationSignal({
          kind: 'missed-wakeup',
          message: `missed wake-up: ${t.name} sleeps on ${obj.name} although its condition is true, and no thread is left to wake it`,
          step: this.step,
          threads: blocked.map((b) => b.name),
          objects: [obj.name],
          details: lines,
        });
      }
    }
    throw new ViolationSignal({
      kind: 'deadlock',
      message: `deadlock: ${blocked.map((t) => t.name).join(', ')} cannot make progress`,
      step: this.step,
      threads: blocked.map((t) => t.name),
      objects: [...new Set(blocked.map((t) => t.pending.obj!.name))],
      details: lines,
    });
  }

  private reportLivelock(): never {
    const live = this.threads.filter((t) => !t.done);
    throw new ViolationSignal({
      kind: 'livelock',
      message: `possible livelock: the run exceeded its budget of ${this.options.maxSteps} steps with ${live.map((t) => t.name).join(', ')} unfinished`,
      step: this.step,
      threads: live.map((t) => t.name),
      objects: [],
      details: live.map((t) => `${t.name} at ${t.pending.describe()}`),
    });
  }
}

function normalizeChecks(c: Check | Record<string, Check> | undefined): [string, Check][] | null {
  if (!c) return null;
  if (typeof c === 'function') return [['', c]];
  const entries = Object.entries(c);
  return entries.length ? entries : null;
}

/**
 * The object `cpu_relax()` waits on: runnable once another thread changed shared state after the
 * thread's previous `cpu_relax()`.
 */
class RelaxPoint extends SimObject {
  constructor(sim: Sim) {
    super(sim, 'cpu');
  }
  override enabled(_op: Op, t: Thread): boolean {
    return t.relaxMark < 0 || this.sim.changeEpoch - t.changes > t.relaxMark;
  }
  override exec(_op: Op, t: Thread): unknown {
    // Changes made by the other threads so far: the next cpu_relax() waits for one more.
    t.relaxMark = this.sim.changeEpoch - t.changes;
    return undefined;
  }
  override describe(): string {
    return 'cpu_relax()';
  }
  override waitReason(op: Op): string {
    return `${op.describe()}, no other thread changed anything since its previous cpu_relax()`;
  }
}

/** The object data choices are made on; its exec asks the chooser. */
class ChoiceSource extends SimObject {
  constructor(sim: Sim) {
    super(sim, 'choice');
  }
  override exec(op: Op): unknown {
    return this.sim.decide(op.arg as number, op.label ?? 'choice');
  }
  override describe(op: Op): string {
    return `choose(${op.arg as number})`;
  }
}
