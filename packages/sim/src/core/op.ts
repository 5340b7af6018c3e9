/**
 * Operation descriptors: what a model thread yields at every scheduling point.
 *
 * A thread announces its next operation by yielding an `Op`; the scheduler decides when it runs.
 * When the thread is picked, the operation is performed (`obj.exec`) and the thread's code then runs
 * on, atomically, up to its next `yield`. The announced operation is therefore the footprint of the
 * whole step: code that follows a `yield` must only touch the state that the yielded operation names
 * (or thread-local state). The explorer's partial-order reduction relies on that.
 */
import type { SimObject } from './object.js';

/** How a step touches its object; the explorer derives dependence between steps from it. */
export const Access = {
  /** Touches no shared state: independent of every other step. */
  None: 0,
  Read: 1,
  Write: 2,
  /** Blocking acquisition of an exclusive lock. Never co-enabled with a release of the same lock. */
  Acquire: 3,
  /** Release of an exclusive lock. */
  Release: 4,
  /** Shared (reader) acquisition: commutes with other shared acquisitions and releases. */
  AcquireShared: 5,
  /** Shared (reader) release. */
  ReleaseShared: 6,
  /** Waiting for another thread to finish: ordered after that thread, never a race. */
  Join: 7,
  /**
   * Dependent with every step of every thread. For steps that evaluate an arbitrary condition over
   * shared state (the condition check of `wait_event`), whose footprint cannot be named.
   */
  Global: 8,
  /**
   * Dependent with every step that changes state, on any object: the footprint of `cpu_relax()`,
   * which waits until anything at all has changed.
   */
  GlobalRead: 9,
} as const;

/** Whether a step with this access changes shared state (everything but reads and pure points). */
export function changesState(a: number): boolean {
  return a !== Access.None && a !== Access.Read && a !== Access.Join && a !== Access.GlobalRead;
}
export type Access = (typeof Access)[keyof typeof Access];

/** Properties of an operation checked against the thread's context when it is announced. */
export const OpFlag = {
  /** May sleep (`might_sleep()`): forbidden in atomic and non-blockable context. */
  MightSleep: 1,
  /** A GFP_KERNEL allocation: may enter direct reclaim. */
  AllocKernel: 2,
  /** Waits for a dma_fence. */
  FenceWait: 4,
  /** Takes a dma_resv (ww_mutex) lock. */
  ResvLock: 8,
  /**
   * A spin-loop hint (`cpu_relax()`): it cannot run until another thread changed something since
   * the thread's previous `cpu_relax()`, and the default policies let another thread run next.
   */
  Relax: 16,
} as const;

/** One announced operation. Create them through the primitives; models rarely build one directly. */
export class Op {
  constructor(
    /** Kernel-style verb shown in traces (`mutex_lock`, `READ_ONCE`, `wake_up_all`). */
    readonly kind: string,
    /** The object touched, or null for a pure scheduling point. */
    readonly obj: SimObject | null,
    /** Footprint for dependence (see {@link Access}). */
    readonly access: Access,
    /** Bitmask of {@link OpFlag}. */
    readonly flags: number = 0,
    /** Operation argument (value to write, wait condition, ...), interpreted by the object. */
    readonly arg: unknown = undefined,
    /** Optional note shown beside the operation in traces (what the model is doing and why). */
    readonly label: string | undefined = undefined,
  ) {}

  /** Kernel-like text for traces: `mutex_lock(svmm->mutex)  // label`. */
  describe(): string {
    const base = this.obj ? this.obj.describe(this) : this.kind;
    return this.label ? `${base}  // ${this.label}` : base;
  }
}

/** A model thread body or sub-routine: yields operations, returns R. Use with `yield*`. */
export type Routine<R = void> = Generator<Op, R, unknown>;
