/**
 * Subscriber structures: `struct mmu_notifier` with `struct mmu_notifier_ops`, and
 * `struct mmu_interval_notifier` with `struct mmu_interval_notifier_ops`
 * (include/linux/mmu_notifier.h).
 *
 * Callbacks are generator functions so that they can take locks and sleep at scheduling points,
 * like the drivers they model: `*invalidate(sub, range, curSeq) { yield* lock.lock(); ... }`.
 *
 * @module
 */
import { type Mutex, type Routine, type Sim, Var } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import type { MmuNotifierRange } from './range.js';

/**
 * `struct mmu_notifier_ops`: the callbacks of a classic (whole-mm) subscriber. All are optional.
 * A subscriber provides either `invalidateRangeStart`/`invalidateRangeEnd` or
 * `archInvalidateSecondaryTlbs`, never both (registration fails with -EINVAL).
 */
export interface MmuNotifierOps {
  /**
   * The mm is going away (`exit_mmap`) or the subscriber is being unregistered. Tear down every
   * secondary mapping and create no more. May run twice, concurrently (exit vs unregister).
   */
  release?(sub: MmuNotifier, mm: Mm): Routine<void>;
  /** Test-and-clear the accessed bit of secondary mappings in `[start, end)`, with a flush. */
  clearFlushYoung?(sub: MmuNotifier, mm: Mm, start: number, end: number): Routine<boolean>;
  /** Same as {@link clearFlushYoung} without the flush. */
  clearYoung?(sub: MmuNotifier, mm: Mm, start: number, end: number): Routine<boolean>;
  /** Whether a secondary mapping of `address` was accessed. */
  testYoung?(sub: MmuNotifier, mm: Mm, address: number): Routine<boolean>;
  /**
   * Before the CPU PTEs of `range` change. 0, or -EAGAIN only when the range is not blockable. A
   * subscriber whose start can fail must not have `invalidateRangeEnd`.
   */
  invalidateRangeStart?(sub: MmuNotifier, range: MmuNotifierRange): Routine<number>;
  /** After the change; paired with a successful start. */
  invalidateRangeEnd?(sub: MmuNotifier, range: MmuNotifierRange): Routine<void>;
  /** For TLBs that share the CPU page tables; called under the page-table lock, cannot sleep. */
  archInvalidateSecondaryTlbs?(sub: MmuNotifier, mm: Mm, start: number, end: number): Routine<void>;
  /** `mmu_notifier_get()`: allocate a subscriber for `mm`, or return a negative errno. */
  allocNotifier?(mm: Mm): Routine<MmuNotifier | number>;
  /** Last `mmu_notifier_put()`: free the subscriber (from an SRCU callback, cannot sleep). */
  freeNotifier?(sub: MmuNotifier): Routine<void>;
}

/** `struct mmu_notifier`: a classic subscriber. */
export class MmuNotifier {
  /** The mm it is registered with (set by registration; kept after unregistration). */
  mm: Mm | null = null;
  /** `users`: references taken by `mmu_notifier_get()`; protected by `subscriptions->lock`. */
  users = 0;
  /** `!hlist_unhashed(&sub->hlist)`: on the mm's list. */
  hashed = false;
  /** Set once `free_notifier` ran (after the last put). */
  freed = false;
  /** @internal Registration generation (see `RangeStartState`). */
  generation = 0;

  constructor(
    /** Name in traces and reports. */
    readonly name: string,
    /** The callbacks; `mmu_notifier_get()` sets them on allocated subscribers. */
    public ops: MmuNotifierOps = {},
  ) {}
}

/**
 * `struct mmu_interval_notifier_finish`: the handle a two-pass subscriber's `invalidateStart`
 * returns to ask for a finish pass. Embed driver data in a subclass, or use `data`.
 */
export class MmuIntervalNotifierFinish {
  /** Set by the core when it queues the finish pass. */
  notifier: MmuIntervalNotifier | null = null;
  constructor(readonly data?: unknown) {}
}

/** `struct mmu_interval_notifier_ops`. Provide `invalidate`, or `invalidateStart` + `invalidateFinish`. */
export interface MmuIntervalNotifierOps {
  /**
   * The CPU PTEs overlapping the subscription are about to change. Take the driver lock, call
   * `mmu_interval_set_seq(sub, curSeq)`, tear down the device mappings of the overlap, return
   * true. Return false only if the range is not blockable and sleeping would be needed.
   */
  invalidate?(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): Routine<boolean>;
  /**
   * Two-pass variant (commit 7aba71dbc416): the first pass. Return false (would block), true (all
   * done), or a finish handle: true, and run `invalidateFinish(handle)` once every subscriber's
   * first pass is done, still before the CPU PTEs change.
   */
  invalidateStart?(
    sub: MmuIntervalNotifier,
    range: MmuNotifierRange,
    curSeq: number,
  ): Routine<boolean | MmuIntervalNotifierFinish>;
  /** Two-pass variant: the second pass for a handle returned by `invalidateStart`. */
  invalidateFinish?(finish: MmuIntervalNotifierFinish): Routine<void>;
  /**
   * UNMERGED PROPOSAL (Ralph Campbell's 2020 "mmu interval notifier" series, not in any kernel):
   * called once an asynchronous `mmu_interval_notifier_put()` has taken effect; no callback runs
   * afterwards. Only used by the `unmerged` variant functions.
   */
  release?(sub: MmuIntervalNotifier): Routine<void>;
}

/** Where an interval subscriber is in its life. */
export type IntervalNotifierState = 'idle' | 'inserted' | 'removed';

/** `struct mmu_interval_notifier`: a subscription to `[start, last]` of one mm. */
export class MmuIntervalNotifier {
  /**
   * `invalidate_seq`: odd once inserted. Written by `mmu_interval_set_seq()` (under the driver
   * lock) and read by `mmu_interval_read_retry()`, so it is a shared variable with footprints.
   */
  readonly invalidateSeq: Var<number>;
  mm: Mm | null = null;
  ops: MmuIntervalNotifierOps | null = null;
  /** `interval_tree.start` / `.last` (inclusive). */
  start = 0;
  last = 0;
  /** Node id in the mm's interval tree; -1 is `RB_EMPTY_NODE` (not in the tree). */
  node = -1;
  /** On the mm's `deferred_list`. */
  deferred = false;
  state: IntervalNotifierState = 'idle';
  /** UNMERGED PROPOSAL (a): the lock embedded in the subscription, see `unmerged`. */
  lock: Mutex | null = null;
  /** UNMERGED PROPOSAL (b): an update queued while the tree was frozen. */
  pendingUpdate: { start: number; last: number } | null = null;
  /** UNMERGED PROPOSAL (b): an asynchronous put is pending; `ops.release` runs when it lands. */
  putPending = false;

  constructor(
    readonly sim: Sim,
    /** Name in traces and reports. */
    readonly name: string,
  ) {
    this.invalidateSeq = new Var(sim, `${name}->invalidate_seq`, 0);
  }

  toString(): string {
    return `${this.name}[0x${this.start.toString(16)}, 0x${this.last.toString(16)}]`;
  }
}
