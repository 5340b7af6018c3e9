/**
 * `struct mmu_notifier_subscriptions` (private to mm/mmu_notifier.c): the per-mm notifier state.
 *
 * Footprints: `invalidateSeq`, `activeInvalidateRanges`, the interval tree and the deferred list
 * are only touched while `lock` (a spinlock) is held, so the lock's acquire/release steps order
 * every access. The one exception is the interval tree walk of an invalidation, which runs
 * outside the lock while the tree is frozen (sequence odd), as in the kernel. The classic list and
 * `has_itree` are read without the lock (RCU traversal), so they live in {@link NotifierListHead},
 * a sim object whose reads and writes are steps of their own.
 *
 * @module
 */
import { Access, type KBuf, Op, type Routine, type Sim, SimObject, Spinlock, WaitQueue } from '@hmmkit/sim';
import { IntervalTree } from '@hmmkit/sim/interval-tree';
import type { Mm } from '../mm.js';
import type { MmuIntervalNotifier, MmuNotifier } from './types.js';

/** What an RCU reader of the registration state sees. */
export interface RegistrationSnapshot {
  hasItree: boolean;
  /** The classic subscribers, most recently registered first. */
  list: readonly MmuNotifier[];
  generation: number;
}

/**
 * `subscriptions->list` and `has_itree`: registration state read by RCU walkers without the
 * spinlock. Writers hold the spinlock (or `mm_take_all_locks()` for `has_itree`) and change it
 * in a step of their own.
 */
export class NotifierListHead extends SimObject {
  /** Classic subscribers, head first (`hlist_add_head_rcu` puts new ones in front). */
  list: MmuNotifier[] = [];
  /** `has_itree`: set once an interval subscriber was set up; never cleared. */
  hasItree = false;
  /** Bumped by every classic registration. */
  generation = 0;

  /** An RCU walk of the list (`hlist_for_each_entry_srcu`) as one read step: a snapshot. */
  *snapshot(label?: string): Routine<RegistrationSnapshot> {
    return (yield new Op(
      'hlist_for_each_entry_srcu',
      this,
      Access.Read,
      0,
      undefined,
      label,
    )) as RegistrationSnapshot;
  }

  /** A change made under the spinlock: `fn` runs in the step. */
  *update(kind: string, fn: () => void, label?: string): Routine {
    yield new Op(kind, this, Access.Write, 0, fn, label);
  }

  override exec(op: Op): unknown {
    if (op.access === Access.Read) {
      return { hasItree: this.hasItree, list: this.list.slice(), generation: this.generation };
    }
    (op.arg as () => void)();
    return undefined;
  }

  override describe(op: Op): string {
    return `${op.kind}(${this.name})`;
  }
}

/** Size the model charges `kzalloc()` for the structure. */
export const SUBSCRIPTIONS_SIZE = 128;

/** `struct mmu_notifier_subscriptions`. Created by the first registration on an mm. */
export class MmuNotifierSubscriptions {
  readonly sim: Sim;
  /** `lock`: spinlock guarding the sequence, the counter, the tree and the deferred list. */
  readonly lock: Spinlock;
  /** `wq`: woken when an interval invalidation window closes. */
  readonly wq: WaitQueue;
  /** `list` and `has_itree`. */
  readonly head: NotifierListHead;
  /** `invalidate_seq`: starts at 2; odd while an interval invalidation window is open. */
  invalidateSeq = 2;
  /** `active_invalidate_ranges`: invalidations between start and end. */
  activeInvalidateRanges = 0;
  /** `itree`: interval subscribers by `[start, last]`. */
  readonly itree = new IntervalTree<MmuIntervalNotifier>();
  /**
   * `deferred_list`: inserts and removals requested while the tree was frozen. Head first, like
   * `hlist_add_head`; a subscriber not in the tree is a deferred insert, one in it a removal.
   */
  deferredList: MmuIntervalNotifier[] = [];
  /** Model bookkeeping: bumped on every change of the tree's membership (for the invariants). */
  treeVersion = 0;
  /** Freed by `__mmu_notifier_subscriptions_destroy()` (the mm_struct itself is gone). */
  destroyed = false;

  constructor(
    readonly mm: Mm,
    /** The `kzalloc()` block standing for the structure. */
    readonly buf: KBuf | null,
    name = 'mm',
  ) {
    const sim = mm.sim;
    this.sim = sim;
    this.lock = new Spinlock(sim, `${name}->notifier_subscriptions->lock`, {
      lockClass: 'mmu_notifier_subscriptions.lock',
    });
    this.wq = new WaitQueue(sim, `${name}->notifier_subscriptions->wq`);
    this.head = new NotifierListHead(sim, `${name}->notifier_subscriptions->list`);
  }

  /** `has_itree`, read directly (checks and tests; threads use `head.snapshot()`). */
  get hasItree(): boolean {
    return this.head.hasItree;
  }

  /** The classic subscribers, head first (checks and tests). */
  get list(): readonly MmuNotifier[] {
    return this.head.list;
  }

  /** Reports a use of the structure after the mm_struct was destroyed (the kernel's LIST_POISON1). */
  checkAlive(what: string): void {
    if (this.destroyed)
      this.sim.fail('use-after-free', `${what} on the notifier subscriptions of a destroyed mm`);
  }

  /** `mn_itree_is_invalidating()`: the sequence is odd. Caller holds `lock`. */
  isInvalidating(): boolean {
    return (this.invalidateSeq & 1) === 1;
  }

  /** The interval subscribers in the tree, in tree order (checks and tests). */
  intervalSubscribers(): MmuIntervalNotifier[] {
    const out: MmuIntervalNotifier[] = [];
    for (let n = this.itree.firstNode(); n !== -1; n = this.itree.nextNode(n)) out.push(this.itree.value(n));
    return out;
  }

  /** Model state in one line, for reports. */
  describe(): string {
    const state =
      this.activeInvalidateRanges === 0 ? 'IDLE' : this.invalidateSeq & 1 ? 'EXCLUSIVE' : 'PARTIAL';
    return `${state} seq=${this.invalidateSeq} active=${this.activeInvalidateRanges} tree=${this.itree.size} deferred=${this.deferredList.length} classic=${this.head.list.length}`;
  }
}
