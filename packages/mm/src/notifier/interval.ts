/**
 * Interval subscribers (`struct mmu_interval_notifier`): the collision-retry protocol of
 * mm/mmu_notifier.c. The per-mm `invalidate_seq` is even when no interval invalidation window is
 * open and odd while one is; `active_invalidate_ranges` counts invalidations between start and
 * end; the interval tree may only change while the sequence is even, so inserts and removals that
 * arrive while it is odd are deferred to the end of the window.
 *
 * @module
 */
import { EAGAIN, EINVAL, type Routine } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import { __mmuNotifierRegister, EOVERFLOW, mmuNotifierRegister } from './classic.js';
import { enterCallbackCtx, exitCallbackCtx, mightSleep, misuse, touchStartMap, warnOn } from './debug.js';
import { mightLockMmap, mmapAssertWriteLocked, mmdrop, mmgrab } from './mm-helpers.js';
import {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierRangeBlockable,
  ULONG_MAX,
} from './range.js';
import type { MmuNotifierSubscriptions } from './subscriptions.js';
import { type MmuIntervalNotifier, MmuIntervalNotifierFinish, type MmuIntervalNotifierOps } from './types.js';

// ---------------------------------------------------------------------------------------------
// Tree bookkeeping shared with the unmerged variants. Callers hold subscriptions->lock.

/** `interval_tree_insert()` of a subscriber. */
export function itreeInsert(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  sub.node = subs.itree.insert(sub.start, sub.last, sub);
  subs.treeVersion++;
}

/** `interval_tree_remove()` of a subscriber; leaves it `RB_EMPTY_NODE`. */
export function itreeRemove(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  subs.itree.remove(sub.node);
  sub.node = -1;
  subs.treeVersion++;
}

/** `hlist_add_head(&sub->deferred_item, &subscriptions->deferred_list)`. */
export function deferredAdd(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  subs.deferredList.unshift(sub);
  sub.deferred = true;
}

/** `hlist_del(&sub->deferred_item)`. */
export function deferredDel(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  const i = subs.deferredList.indexOf(sub);
  if (i >= 0) subs.deferredList.splice(i, 1);
  sub.deferred = false;
}

// ---------------------------------------------------------------------------------------------
// The invalidation side.

/**
 * models `mn_itree_inv_start_range()`: under the lock, counts the invalidation in and, if a
 * subscriber overlaps `[start, end - 1]`, opens (or joins) the window by making the sequence odd.
 * Returns the first overlapping tree node (-1 if none) and the window's sequence.
 */
export function* mnItreeInvStartRange(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
): Routine<{ node: number; curSeq: number }> {
  yield* subs.lock.lock(`mn_itree_inv_start_range ${range}`);
  subs.activeInvalidateRanges++;
  const node = range.end > range.start ? subs.itree.iterFirst(range.start, range.end - 1) : -1;
  if (node !== -1) subs.invalidateSeq |= 1;
  const curSeq = subs.invalidateSeq;
  yield* subs.lock.unlock();
  return { node, curSeq };
}

/** models `mn_itree_inv_next()`: the next overlapping node; the tree is frozen (sequence odd). */
function mnItreeInvNext(subs: MmuNotifierSubscriptions, node: number, range: MmuNotifierRange): number {
  return subs.itree.iterNext(node, range.start, range.end - 1);
}

/**
 * models `mn_itree_inv_end()`: counts the invalidation out. The last one out of a window makes the
 * sequence even again, applies the deferred inserts and removals, and wakes every sleeper.
 */
export function* mnItreeInvEnd(subs: MmuNotifierSubscriptions): Routine<void> {
  const sim = subs.sim;
  yield* subs.lock.lock('mn_itree_inv_end');
  if (subs.activeInvalidateRanges <= 0) {
    sim.fail('kernel-bug', `mn_itree_inv_end: active_invalidate_ranges underflow (${subs.describe()})`);
  }
  if (--subs.activeInvalidateRanges !== 0 || !subs.isInvalidating()) {
    yield* subs.lock.unlock();
    return;
  }
  subs.invalidateSeq++;
  const released: MmuIntervalNotifier[] = [];
  for (const sub of subs.deferredList) {
    sub.deferred = false;
    if (sub.node === -1) {
      itreeInsert(subs, sub);
    } else {
      itreeRemove(subs, sub);
      // UNMERGED PROPOSAL (b): an update is a removal followed by a re-insertion; a put releases.
      if (sub.pendingUpdate) {
        sub.start = sub.pendingUpdate.start;
        sub.last = sub.pendingUpdate.last;
        sub.pendingUpdate = null;
        itreeInsert(subs, sub);
      } else if (sub.putPending) {
        released.push(sub);
      }
    }
  }
  subs.deferredList = [];
  yield* subs.lock.unlock();
  for (const sub of released) yield* finishPut(sub);
  yield* subs.wq.wakeUpAll('window closed');
}

/** UNMERGED PROPOSAL (b): the end of an asynchronous put: `ops->release()` then `mmdrop()`. */
export function* finishPut(sub: MmuIntervalNotifier): Routine<void> {
  const mm = sub.mm!;
  sub.putPending = false;
  sub.state = 'removed';
  if (sub.ops?.release) yield* sub.ops.release(sub);
  yield* mmdrop(mm);
}

/**
 * Calls one subscriber's first (or only) pass in callback context. Returns whether it succeeded
 * and the finish handle it asked for.
 */
function* callInvalidate(
  sub: MmuIntervalNotifier,
  range: MmuNotifierRange,
  curSeq: number,
): Routine<{ ret: boolean; finish: MmuIntervalNotifierFinish | null }> {
  const sim = sub.sim;
  const ops = sub.ops!;
  const blockable = mmuNotifierRangeBlockable(range);
  enterCallbackCtx(sim, blockable);
  let ret: boolean;
  let finish: MmuIntervalNotifierFinish | null = null;
  if (ops.invalidateStart) {
    const r = yield* ops.invalidateStart(sub, range, curSeq);
    if (r instanceof MmuIntervalNotifierFinish) {
      ret = true;
      finish = r;
      finish.notifier = sub;
    } else {
      ret = r;
    }
  } else {
    ret = yield* ops.invalidate!(sub, range, curSeq);
  }
  exitCallbackCtx(sim, blockable);
  return { ret, finish };
}

/** models `mn_itree_finish_pass()`: the queued second passes, in collection order. */
function* mnItreeFinishPass(finishes: MmuIntervalNotifierFinish[], range: MmuNotifierRange): Routine<void> {
  const blockable = mmuNotifierRangeBlockable(range);
  for (const f of finishes) {
    const sub = f.notifier!;
    enterCallbackCtx(sub.sim, blockable);
    yield* sub.ops!.invalidateFinish!(f);
    exitCallbackCtx(sub.sim, blockable);
  }
}

/**
 * models `mn_itree_invalidate()`: calls every overlapping subscriber with the window's sequence,
 * then the queued finish passes. A subscriber that returns false on a blockable range is a WARN
 * and the walk goes on; on a non-blockable one the walk stops, the finish passes run, the window
 * accounting is undone (the caller will not call end) and -EAGAIN is returned.
 */
export function* mnItreeInvalidate(subs: MmuNotifierSubscriptions, range: MmuNotifierRange): Routine<number> {
  const sim = subs.sim;
  const blockable = mmuNotifierRangeBlockable(range);
  const { node, curSeq } = yield* mnItreeInvStartRange(subs, range);
  const finishes: MmuIntervalNotifierFinish[] = [];
  let err = 0;
  for (let n = node; n !== -1; n = mnItreeInvNext(subs, n, range)) {
    const sub = subs.itree.value(n);
    const { ret, finish } = yield* callInvalidate(sub, range, curSeq);
    if (ret && finish) finishes.push(finish);
    if (!ret) {
      if (warnOn(sim, blockable, `${sub.name}: invalidate returned false on a blockable range ${range}`))
        continue;
      err = -EAGAIN;
      break;
    }
  }
  yield* mnItreeFinishPass(finishes, range);
  if (err) yield* mnItreeInvEnd(subs);
  return err;
}

/**
 * models `mn_itree_release()`: at exit_mmap, every interval subscriber gets one blockable
 * `MMU_NOTIFY_RELEASE` invalidation of `[0, ULONG_MAX)` (a false return is a WARN). Subscribers
 * stay in the tree; their drivers still remove them.
 */
export function* mnItreeRelease(subs: MmuNotifierSubscriptions, mm: Mm): Routine<void> {
  const sim = subs.sim;
  const range = new MmuNotifierRange({
    mm,
    start: 0,
    end: ULONG_MAX,
    event: MmuNotifyEvent.RELEASE,
    flags: MMU_NOTIFIER_RANGE_BLOCKABLE,
  });
  const { node, curSeq } = yield* mnItreeInvStartRange(subs, range);
  const finishes: MmuIntervalNotifierFinish[] = [];
  for (let n = node; n !== -1; n = mnItreeInvNext(subs, n, range)) {
    const sub = subs.itree.value(n);
    const { ret, finish } = yield* callInvalidate(sub, range, curSeq);
    if (ret && finish) finishes.push(finish);
    warnOn(sim, !ret, `${sub.name}: invalidate returned false for MMU_NOTIFY_RELEASE`);
  }
  yield* mnItreeFinishPass(finishes, range);
  yield* mnItreeInvEnd(subs);
}

// ---------------------------------------------------------------------------------------------
// Subscriber API.

/**
 * models `__mmu_interval_notifier_insert()`. Validates before changing anything: -EOVERFLOW for an
 * empty or wrapping interval, -EINVAL (with a WARN) when the mm has no users.
 */
function* __mmuIntervalNotifierInsert(
  sub: MmuIntervalNotifier,
  mm: Mm,
  subs: MmuNotifierSubscriptions,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): Routine<number> {
  const sim = mm.sim;
  if (length === 0 || start + (length - 1) > ULONG_MAX) return -EOVERFLOW;
  if (warnOn(sim, mm.mmUsers <= 0, `mmu_interval_notifier_insert(${sub.name}) with mm_users <= 0`))
    return -EINVAL;
  sub.mm = mm;
  sub.ops = ops;
  sub.node = -1;
  sub.start = start;
  sub.last = start + (length - 1);
  sub.pendingUpdate = null;
  sub.putPending = false;
  yield* mmgrab(mm);
  yield* subs.lock.lock(`insert ${sub}`);
  // Written under the lock: nobody can see the subscriber before the lock is dropped.
  if (subs.activeInvalidateRanges) {
    if (subs.isInvalidating()) {
      // EXCLUSIVE: the tree is frozen; insert when the window closes.
      deferredAdd(subs, sub);
    } else {
      // PARTIAL: a running invalidation may cover the new range, so treat it as colliding.
      subs.invalidateSeq |= 1;
      itreeInsert(subs, sub);
    }
    sub.invalidateSeq.value = subs.invalidateSeq;
  } else {
    warnOn(
      sim,
      subs.isInvalidating(),
      'mmu_interval_notifier_insert: sequence odd with no active invalidation',
    );
    // Odd, different from the current sequence, and far from it in wrap-around terms.
    sub.invalidateSeq.value = subs.invalidateSeq - 1;
    itreeInsert(subs, sub);
  }
  sub.state = 'inserted';
  yield* subs.lock.unlock();
  return 0;
}

function checkInsertable(
  sub: MmuIntervalNotifier,
  mm: Mm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): void {
  const sim = mm.sim;
  if (sub.state === 'inserted' || sub.putPending)
    misuse(sim, `mmu_interval_notifier_insert(${sub.name}): already inserted`);
  if (!ops.invalidate && !ops.invalidateStart)
    misuse(sim, `mmu_interval_notifier_insert(${sub.name}): ops without invalidate`);
  // length may be ULONG_MAX + 1 (2^53, exact in a double): the whole address space.
  if (
    !Number.isSafeInteger(start) ||
    start < 0 ||
    !Number.isInteger(length) ||
    length < 0 ||
    length > 2 ** 53
  ) {
    misuse(sim, `mmu_interval_notifier_insert(${sub.name}): start and length must be unsigned longs`);
  }
}

/**
 * models `mmu_interval_notifier_insert()`: subscribes `sub` to `[start, start + length - 1]` of `mm`.
 * May take `mmap_lock` (to set the mm up for interval subscribers), so the caller must not hold
 * it. On return the subscriber may still be waiting for the current window to close before it is
 * in the tree; use `mmu_interval_read_begin()` before establishing device mappings.
 */
export function* mmuIntervalNotifierInsert(
  sub: MmuIntervalNotifier,
  mm: Mm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): Routine<number> {
  const sim = mm.sim;
  checkInsertable(sub, mm, start, length, ops);
  warnOn(
    sim,
    !!ops.invalidateStart && !ops.invalidateFinish,
    `mmu_interval_notifier_insert(${sub.name}): invalidate_start without invalidate_finish`,
  );
  mightLockMmap(mm);
  let subs = mm.notifierSubscriptions;
  const hasItree = subs ? (yield* subs.head.snapshot('has_itree')).hasItree : false;
  if (!subs || !hasItree) {
    const ret = yield* mmuNotifierRegister(null, mm);
    if (ret) return ret;
    subs = mm.notifierSubscriptions!;
  }
  return yield* __mmuIntervalNotifierInsert(sub, mm, subs, start, length, ops);
}

/** models `mmu_interval_notifier_insert_locked()`: the same, with `mmap_lock` write-held by the caller. */
export function* mmuIntervalNotifierInsertLocked(
  sub: MmuIntervalNotifier,
  mm: Mm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): Routine<number> {
  checkInsertable(sub, mm, start, length, ops);
  mmapAssertWriteLocked(mm, 'mmu_interval_notifier_insert_locked');
  let subs = mm.notifierSubscriptions;
  if (!subs?.hasItree) {
    const ret = yield* __mmuNotifierRegister(null, mm);
    if (ret) return ret;
    subs = mm.notifierSubscriptions!;
  }
  return yield* __mmuIntervalNotifierInsert(sub, mm, subs, start, length, ops);
}

/**
 * The locked half shared by remove and the unmerged put: takes the subscriber out of the tree, or
 * defers that to the end of the open window. Returns the sequence to wait for (0: nothing to wait).
 */
export function* detachIntervalNotifier(sub: MmuIntervalNotifier, who: string): Routine<number> {
  const sim = sub.sim;
  const mm = sub.mm;
  if (sub.state !== 'inserted' || !mm?.notifierSubscriptions || sub.putPending) {
    misuse(sim, `${who}(${sub.name}): not inserted`);
  }
  const subs = mm.notifierSubscriptions;
  subs.checkAlive(`${who}()`);
  let seq = 0;
  yield* subs.lock.lock(`${who} ${sub}`);
  if (subs.isInvalidating()) {
    if (sub.node === -1) {
      // Its insert is still deferred: cancel it, nothing to wait for.
      deferredDel(subs, sub);
    } else {
      // Already queued by an (unmerged) update: it is removed, and no longer re-inserted.
      sub.pendingUpdate = null;
      if (!sub.deferred) deferredAdd(subs, sub);
      seq = subs.invalidateSeq;
    }
  } else {
    if (warnOn(sim, sub.node === -1, `${who}(${sub.name}): not in the interval tree`)) {
      yield* subs.lock.unlock();
      return 0;
    }
    itreeRemove(subs, sub);
  }
  yield* subs.lock.unlock();
  return seq;
}

/**
 * models `mmu_interval_notifier_remove()`: unsubscribes `sub`. If a window is open over the tree,
 * the removal is deferred and this sleeps until the window closed and it was applied. Afterwards
 * no callback for `sub` runs or will run. Must not be called from a callback, nor with a lock a
 * callback takes (both deadlock in the kernel; the model reports them).
 */
export function* mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): Routine<void> {
  const sim = sub.sim;
  mightSleep(sim, 'mmu_interval_notifier_remove()');
  const seq = yield* detachIntervalNotifier(sub, 'mmu_interval_notifier_remove');
  const mm = sub.mm!;
  const subs = mm.notifierSubscriptions!;
  touchStartMap(sim, 'mmu_interval_notifier_remove()');
  if (seq) {
    // mmu_interval_seq_released() reads the sequence under the lock; the condition step is
    // ordered against every other step, which is the same.
    yield* subs.wq.waitEvent(() => subs.invalidateSeq !== seq, `remove ${sub.name}: wait for seq != ${seq}`);
  }
  sub.state = 'removed';
  yield* mmdrop(mm);
}

/**
 * models `mmu_interval_read_begin()`: starts a read-side critical section and returns its
 * sequence (odd). If the subscriber was invalidated by the window that is open now, sleeps until
 * that window closes. Does not loop: `mmu_interval_read_retry()` may already be true on return.
 */
export function* mmuIntervalReadBegin(sub: MmuIntervalNotifier): Routine<number> {
  const sim = sub.sim;
  const subs = sub.mm?.notifierSubscriptions;
  if (sub.state !== 'inserted' || !subs) misuse(sim, `mmu_interval_read_begin(${sub.name}): not inserted`);
  subs.checkAlive('mmu_interval_read_begin()');
  yield* subs.lock.lock(`read_begin ${sub.name}`);
  const seq = yield* sub.invalidateSeq.read('READ_ONCE(interval_sub->invalidate_seq)');
  const isInvalidating = seq === subs.invalidateSeq;
  yield* subs.lock.unlock();
  touchStartMap(sim, 'mmu_interval_read_begin()');
  if (isInvalidating) {
    mightSleep(sim, 'mmu_interval_read_begin()');
    yield* subs.wq.waitEvent(
      () => subs.invalidateSeq !== seq,
      `read_begin ${sub.name}: wait for seq != ${seq}`,
    );
  }
  return seq;
}

/**
 * models `mmu_interval_read_retry()`: true if an invalidation collided with the critical section
 * that began with `seq`. Only meaningful under the driver lock that the invalidate callback holds
 * around `mmu_interval_set_seq()`.
 */
export function* mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): Routine<boolean> {
  const cur = yield* sub.invalidateSeq.read('mmu_interval_read_retry');
  return cur !== seq;
}

/**
 * models `mmu_interval_check_retry()`: the same comparison without the driver lock. True is
 * reliable (a later `read_retry` is true too); false is only a hint.
 */
export function* mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): Routine<boolean> {
  const cur = yield* sub.invalidateSeq.read('mmu_interval_check_retry');
  return cur !== seq;
}

/**
 * models `mmu_interval_set_seq()`: stores the window's sequence (always odd) in the subscriber.
 * Call it from `invalidate`, unconditionally, under the lock `read_retry` is called with.
 */
export function* mmuIntervalSetSeq(sub: MmuIntervalNotifier, curSeq: number): Routine<void> {
  warnOn(sub.sim, (curSeq & 1) === 0, `mmu_interval_set_seq(${sub.name}, ${curSeq}): even sequence`);
  yield* sub.invalidateSeq.write(curSeq, 'mmu_interval_set_seq');
}

/** Whether `sub` is subscribed and in the tree now (tests and checks). */
export function intervalNotifierInTree(sub: MmuIntervalNotifier): boolean {
  return sub.node !== -1;
}
