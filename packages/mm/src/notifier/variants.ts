/**
 * UNMERGED PROPOSALS. Nothing in this module exists in any Linux kernel. These are opt-in models of
 * interfaces discussed on linux-mm / dri-devel that never merged, kept so that the races they were
 * meant to close (or open) can be explored next to the real protocol. Import them through the
 * `unmerged` namespace (`import { unmerged } from '@hmmkit/mm/notifier'`) so every call site says
 * what it is. Nothing here changes the behaviour of the merged API unless these functions are
 * called.
 *
 * (a) A lock embedded in the interval subscription, with lock/unlock helpers and an
 *     `update_seq` that asserts it is held: the driver lock that `mmu_interval_read_retry()` and
 *     `mmu_interval_set_seq()` depend on, moved into the core so that lockdep can check the rule.
 *
 * (b) `mmu_interval_notifier_update()`, `_find()` and `_put()` with an `ops->release()` callback
 *     (after Ralph Campbell's series of 2019-2020, v5/v6 "mm/mmu_notifier: ..."; review asked for
 *     an in-kernel user and it was dropped): subscriptions that can be changed or released from
 *     inside an `invalidate()` callback without sleeping. Changes are never made to the tree while
 *     a walker may be iterating it: with the tree "read-locked" by an open window (sequence odd)
 *     they are queued on the deferred list and applied as one batch, under the lock, by the last
 *     `mn_itree_inv_end()` (an update is a removal plus a re-insertion at the new range); with no
 *     window open they are applied at once under the lock. The munmap-hole case: a callback for
 *     an UNMAP of the middle of a subscription shrinks it to the left part with `update` and
 *     subscribes the right part with `insertSafe`; both land in the tree together.
 *
 * @module
 */
import { EINVAL, Mutex, type Routine } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import { EOVERFLOW } from './classic.js';
import { misuse, warnOn } from './debug.js';
import {
  deferredAdd,
  detachIntervalNotifier,
  finishPut,
  itreeInsert,
  itreeRemove,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
} from './interval.js';
import { mmgrab } from './mm-helpers.js';
import { ULONG_MAX } from './range.js';
import type { MmuIntervalNotifier, MmuIntervalNotifierOps } from './types.js';

// ---------------------------------------------------------------------------------------------
// (a) Embedded lock.

/**
 * UNMERGED PROPOSAL (a): gives `sub` its own lock (`sub->lock`), the one `invalidate` must hold
 * around the sequence update and the read side around `read_retry`. All instances share one
 * lockdep class unless `lockClass` says otherwise.
 */
export function mmuIntervalNotifierInitLock(
  sub: MmuIntervalNotifier,
  options: { lockClass?: string } = {},
): Mutex {
  if (!sub.lock) {
    sub.lock = new Mutex(sub.sim, `${sub.name}->lock`, {
      lockClass: options.lockClass ?? 'mmu_interval_notifier.lock',
    });
  }
  return sub.lock;
}

function lockOf(sub: MmuIntervalNotifier, who: string): Mutex {
  if (!sub.lock)
    misuse(sub.sim, `${who}(${sub.name}): no embedded lock (call mmuIntervalNotifierInitLock first)`);
  return sub.lock;
}

/** UNMERGED PROPOSAL (a): `mmu_interval_notifier_lock()`. */
export function* mmuIntervalNotifierLock(sub: MmuIntervalNotifier): Routine<void> {
  yield* lockOf(sub, 'mmu_interval_notifier_lock').lock();
}

/** UNMERGED PROPOSAL (a): `mmu_interval_notifier_trylock()`, for non-blockable callbacks. */
export function* mmuIntervalNotifierTrylock(sub: MmuIntervalNotifier): Routine<boolean> {
  return yield* lockOf(sub, 'mmu_interval_notifier_trylock').trylock();
}

/** UNMERGED PROPOSAL (a): `mmu_interval_notifier_unlock()`. */
export function* mmuIntervalNotifierUnlock(sub: MmuIntervalNotifier): Routine<void> {
  yield* lockOf(sub, 'mmu_interval_notifier_unlock').unlock();
}

/**
 * UNMERGED PROPOSAL (a): `mmu_interval_update_seq()`, the `set_seq` of this variant: asserts
 * (`lockdep_assert_held`) that the embedded lock is held, then stores the sequence.
 */
export function* mmuIntervalUpdateSeq(sub: MmuIntervalNotifier, curSeq: number): Routine<void> {
  sub.sim.assertHeld(lockOf(sub, 'mmu_interval_update_seq'));
  yield* mmuIntervalSetSeq(sub, curSeq);
}

/** UNMERGED PROPOSAL (a): `read_retry` that asserts the embedded lock is held. */
export function* mmuIntervalReadRetryLocked(sub: MmuIntervalNotifier, seq: number): Routine<boolean> {
  sub.sim.assertHeld(lockOf(sub, 'mmu_interval_read_retry'));
  return yield* mmuIntervalReadRetry(sub, seq);
}

// ---------------------------------------------------------------------------------------------
// (b) update / find / put with release, and insert_safe.

/**
 * UNMERGED PROPOSAL (b): `mmu_interval_notifier_update()`: moves `sub` to `[start, last]`. Safe to
 * call from `invalidate()`: with a window open the change is queued and lands when it closes;
 * otherwise it is made now. Like insert, it only takes effect for the read side through
 * `mmu_interval_read_begin()`.
 */
export function* mmuIntervalNotifierUpdate(
  sub: MmuIntervalNotifier,
  start: number,
  last: number,
): Routine<void> {
  const sim = sub.sim;
  const subs = sub.mm?.notifierSubscriptions;
  if (sub.state !== 'inserted' || !subs || sub.putPending) {
    misuse(sim, `mmu_interval_notifier_update(${sub.name}): not inserted`);
  }
  if (
    warnOn(
      sim,
      !(
        Number.isSafeInteger(start) &&
        Number.isSafeInteger(last) &&
        start >= 0 &&
        start < last &&
        last <= ULONG_MAX
      ),
      `mmu_interval_notifier_update(${sub.name}, ${start}, ${last}): bad range`,
    )
  ) {
    return;
  }
  yield* subs.lock.lock(`update ${sub.name}`);
  if (subs.isInvalidating()) {
    if (sub.node === -1) {
      // Its insert is still deferred: change the range it will be inserted with.
      sub.start = start;
      sub.last = last;
    } else {
      if (!sub.deferred) deferredAdd(subs, sub);
      sub.pendingUpdate = { start, last };
    }
  } else {
    warnOn(sim, sub.node === -1, `mmu_interval_notifier_update(${sub.name}): not in the interval tree`);
    if (sub.node !== -1) itreeRemove(subs, sub);
    sub.start = start;
    sub.last = last;
    itreeInsert(subs, sub);
  }
  yield* subs.lock.unlock();
}

/**
 * UNMERGED PROPOSAL (b): `mmu_interval_notifier_find()`: the first subscriber in the tree with
 * these ops that overlaps `[start, last]`, or null. Subscribers whose insert is still deferred
 * are not found.
 */
export function* mmuIntervalNotifierFind(
  mm: Mm,
  ops: MmuIntervalNotifierOps,
  start: number,
  last: number,
): Routine<MmuIntervalNotifier | null> {
  const subs = mm.notifierSubscriptions;
  if (!subs) return null;
  yield* subs.lock.lock('mmu_interval_notifier_find');
  let found: MmuIntervalNotifier | null = null;
  for (let n = subs.itree.iterFirst(start, last); n !== -1; n = subs.itree.iterNext(n, start, last)) {
    const sub = subs.itree.value(n);
    if (sub.ops === ops && !sub.putPending) {
      found = sub;
      break;
    }
  }
  yield* subs.lock.unlock();
  return found;
}

/**
 * UNMERGED PROPOSAL (b): `mmu_interval_notifier_put()`: asynchronous remove, safe from
 * `invalidate()`. Does not sleep; `ops.release(sub)` runs (and the mm pin is dropped) once no
 * callback can run any more: now if no window is open, else when the window closes. Callbacks
 * may still be running on other threads when this returns.
 */
export function* mmuIntervalNotifierPut(sub: MmuIntervalNotifier): Routine<void> {
  const sim = sub.sim;
  if (!sub.ops?.release) misuse(sim, `mmu_interval_notifier_put(${sub.name}): ops without release`);
  const seq = yield* detachIntervalNotifier(sub, 'mmu_interval_notifier_put');
  if (seq) {
    sub.putPending = true;
    return;
  }
  yield* finishPut(sub);
}

/**
 * UNMERGED PROPOSAL (b): `mmu_interval_notifier_insert_safe()`: insert that is safe from
 * `invalidate()` (it neither takes `mmap_lock` nor registers; the mm must already be set up for
 * interval subscribers, else -EINVAL).
 */
export function* mmuIntervalNotifierInsertSafe(
  sub: MmuIntervalNotifier,
  mm: Mm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): Routine<number> {
  const sim = mm.sim;
  const subs = mm.notifierSubscriptions;
  if (!subs?.hasItree) return -EINVAL;
  if (sub.state === 'inserted' || sub.putPending)
    misuse(sim, `mmu_interval_notifier_insert_safe(${sub.name}): already inserted`);
  if (!ops.invalidate && !ops.invalidateStart)
    misuse(sim, `mmu_interval_notifier_insert_safe(${sub.name}): ops without invalidate`);
  if (length === 0 || !Number.isSafeInteger(start) || start < 0 || start + (length - 1) > ULONG_MAX)
    return -EOVERFLOW;
  if (warnOn(sim, mm.mmUsers <= 0, `mmu_interval_notifier_insert_safe(${sub.name}) with mm_users <= 0`))
    return -EINVAL;
  sub.mm = mm;
  sub.ops = ops;
  sub.node = -1;
  sub.start = start;
  sub.last = start + (length - 1);
  sub.pendingUpdate = null;
  sub.putPending = false;
  yield* mmgrab(mm);
  yield* subs.lock.lock(`insert_safe ${sub}`);
  if (subs.activeInvalidateRanges) {
    if (subs.isInvalidating()) deferredAdd(subs, sub);
    else {
      subs.invalidateSeq |= 1;
      itreeInsert(subs, sub);
    }
    sub.invalidateSeq.value = subs.invalidateSeq;
  } else {
    sub.invalidateSeq.value = subs.invalidateSeq - 1;
    itreeInsert(subs, sub);
  }
  sub.state = 'inserted';
  yield* subs.lock.unlock();
  return 0;
}
