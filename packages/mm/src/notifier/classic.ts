/**
 * Classic (whole-mm) subscribers: registration, get/put, unregistration, and the hlist halves of
 * the invalidation entry points (mm/mmu_notifier.c).
 *
 * @module
 */
import {
  Ctx,
  EAGAIN,
  EINVAL,
  ENOMEM,
  kfree,
  kmalloc,
  LockMaps,
  lockMap,
  type Routine,
  type Sim,
} from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import {
  bugOn,
  enterCallbackCtx,
  exitCallbackCtx,
  mightSleep,
  misuse,
  notifierDebug,
  startMap,
  warnOn,
} from './debug.js';
import { mmapAssertWriteLocked, mmdrop, mmgrab, mmTakeAllLocks } from './mm-helpers.js';
import { type MmuNotifierRange, mmuNotifierRangeBlockable } from './range.js';
import { callSrcu, mmuNotifierSrcu } from './srcu.js';
import { MmuNotifierSubscriptions, SUBSCRIPTIONS_SIZE } from './subscriptions.js';
import type { MmuNotifier, MmuNotifierOps } from './types.js';

/** `EOVERFLOW` (not among @hmmkit/sim's errno constants). */
export const EOVERFLOW = 75;

/** `UINT_MAX`: the limit of `mmu_notifier.users`. */
export const UINT_MAX = 0xffff_ffff;

/** Lockdep priming of `__mmu_notifier_register()` (v5.4+): `fs_reclaim -> start map`. */
function primeRegisterLockdep(sim: Sim): void {
  const t = sim.current;
  if (!t) return;
  const fsReclaim = lockMap(sim, LockMaps.fsReclaim);
  fsReclaim.acquireNow(t);
  startMap(sim).touchNow(t);
  fsReclaim.releaseNow(t);
}

/**
 * models `__mmu_notifier_register()`: the caller holds `mmap_lock` for write and `mm_users > 0`.
 * `sub === null` sets the mm up for interval subscribers (`has_itree`). Returns 0, -EINVAL
 * (a subscriber with both `archInvalidateSecondaryTlbs` and start/end), -ENOMEM, or the error of
 * `mm_take_all_locks()`. On error nothing is changed.
 */
export function* __mmuNotifierRegister(sub: MmuNotifier | null, mm: Mm): Routine<number> {
  const sim = mm.sim;
  mmapAssertWriteLocked(mm, '__mmu_notifier_register');
  bugOn(sim, mm.mmUsers <= 0, '__mmu_notifier_register: mm_users <= 0');
  if (sub?.hashed) misuse(sim, `__mmu_notifier_register(${sub.name}): already registered`);
  if (
    sub &&
    warnOn(
      sim,
      !!sub.ops.archInvalidateSecondaryTlbs && !!(sub.ops.invalidateRangeStart || sub.ops.invalidateRangeEnd),
      `${sub.name}: arch_invalidate_secondary_tlbs together with invalidate_range_start/end`,
    )
  ) {
    return -EINVAL;
  }
  if (notifierDebug(sim).primeLockdepInRegister) primeRegisterLockdep(sim);

  let fresh: MmuNotifierSubscriptions | null = null;
  if (!mm.notifierSubscriptions) {
    // Allocated before mm_take_all_locks(); mmap_lock (write) keeps the pointer stable.
    const buf = yield* kmalloc(sim, SUBSCRIPTIONS_SIZE, 'GFP_KERNEL', 'mmu_notifier_subscriptions');
    if (!buf) return -ENOMEM;
    fresh = new MmuNotifierSubscriptions(mm, buf);
  }
  const { ret, release } = yield* mmTakeAllLocks(mm);
  if (ret) {
    if (fresh?.buf) yield* kfree(fresh.buf);
    return ret;
  }
  // smp_store_release(&mm->notifier_subscriptions, subscriptions)
  if (fresh) mm.notifierSubscriptions = fresh;
  const subs = mm.notifierSubscriptions!;
  if (sub) {
    yield* mmgrab(mm);
    sub.mm = mm;
    sub.users = 1;
    sub.freed = false;
    yield* subs.lock.lock();
    yield* subs.head.update('hlist_add_head_rcu', () => {
      subs.head.list.unshift(sub);
      subs.head.generation++;
      sub.generation = subs.head.generation;
      sub.hashed = true;
    });
    yield* subs.lock.unlock();
  } else {
    yield* subs.head.update('has_itree = true', () => {
      subs.head.hasItree = true;
    });
  }
  yield* release(); // mm_drop_all_locks()
  bugOn(sim, mm.mmUsers <= 0, '__mmu_notifier_register: mm_users dropped to 0 during registration');
  return 0;
}

/** models `mmu_notifier_register()`: takes `mmap_lock` for write around `__mmu_notifier_register()`. */
export function* mmuNotifierRegister(sub: MmuNotifier | null, mm: Mm): Routine<number> {
  mightSleep(mm.sim, 'mmu_notifier_register()');
  yield* mm.mmapLock.downWrite('mmap_write_lock');
  const ret = yield* __mmuNotifierRegister(sub, mm);
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return ret;
}

/** models `find_get_mmu_notifier()`: a registered subscriber with these ops, with a new reference. */
function* findGetMmuNotifier(
  subs: MmuNotifierSubscriptions,
  ops: MmuNotifierOps,
): Routine<MmuNotifier | number | null> {
  yield* subs.lock.lock();
  for (const sub of subs.head.list) {
    if (sub.ops !== ops) continue;
    let ret: MmuNotifier | number;
    if (sub.users !== UINT_MAX) {
      sub.users++;
      ret = sub;
    } else {
      ret = -EOVERFLOW;
    }
    yield* subs.lock.unlock();
    return ret;
  }
  yield* subs.lock.unlock();
  return null;
}

/**
 * models `mmu_notifier_get_locked()`: the caller holds `mmap_lock` for write. Returns the
 * subscriber registered with `ops` (one more user) or a new one from `ops.allocNotifier`, or a
 * negative errno (the kernel's `ERR_PTR`).
 */
export function* mmuNotifierGetLocked(ops: MmuNotifierOps, mm: Mm): Routine<MmuNotifier | number> {
  const sim = mm.sim;
  mmapAssertWriteLocked(mm, 'mmu_notifier_get_locked');
  if (mm.notifierSubscriptions) {
    const found = yield* findGetMmuNotifier(mm.notifierSubscriptions, ops);
    if (found !== null) return found;
  }
  if (!ops.allocNotifier) misuse(sim, 'mmu_notifier_get_locked: ops without alloc_notifier');
  const sub = yield* ops.allocNotifier(mm);
  if (typeof sub === 'number') return sub;
  sub.ops = ops;
  const ret = yield* __mmuNotifierRegister(sub, mm);
  if (ret) {
    if (ops.freeNotifier) yield* ops.freeNotifier(sub);
    sub.freed = true;
    return ret;
  }
  return sub;
}

/** models `mmu_notifier_get()`: `mmu_notifier_get_locked()` under `mmap_write_lock()`. */
export function* mmuNotifierGet(ops: MmuNotifierOps, mm: Mm): Routine<MmuNotifier | number> {
  mightSleep(mm.sim, 'mmu_notifier_get()');
  yield* mm.mmapLock.downWrite('mmap_write_lock');
  const ret = yield* mmuNotifierGetLocked(ops, mm);
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return ret;
}

/**
 * models `mmu_notifier_put()`: drops a reference from `mmu_notifier_get()`. The last one unhashes
 * the subscriber and frees it after an SRCU grace period (`free_notifier`, then `mmdrop`), in a
 * thread of its own. `release` is not called.
 */
export function* mmuNotifierPut(sub: MmuNotifier): Routine<void> {
  const mm = sub.mm;
  if (!mm?.notifierSubscriptions) throw new Error(`mmu_notifier_put(${sub.name}): never registered`);
  const sim = mm.sim;
  const subs = mm.notifierSubscriptions;
  yield* subs.lock.lock();
  if (warnOn(sim, sub.users === 0, `mmu_notifier_put(${sub.name}) with users == 0`) || --sub.users > 0) {
    yield* subs.lock.unlock();
    return;
  }
  yield* subs.head.update('hlist_del_init_rcu', () => {
    unlink(subs, sub);
  });
  yield* subs.lock.unlock();
  callSrcu(sim, `free_notifier ${sub.name}`, function* () {
    if (sub.ops.freeNotifier) yield* sub.ops.freeNotifier(sub);
    sub.freed = true;
    yield* mmdrop(mm);
  });
}

function unlink(subs: MmuNotifierSubscriptions, sub: MmuNotifier): void {
  const i = subs.head.list.indexOf(sub);
  if (i >= 0) subs.head.list.splice(i, 1);
  sub.hashed = false;
}

/**
 * models `mmu_notifier_unregister()`: calls `release` (if still hashed), unhashes, waits for every
 * running callback (`synchronize_srcu`), then drops the mm pin. Afterwards no callback of `sub`
 * runs or will run.
 */
export function* mmuNotifierUnregister(sub: MmuNotifier, mm: Mm): Routine<void> {
  const sim = mm.sim;
  bugOn(sim, mm.mmCount <= 0, 'mmu_notifier_unregister: mm_count <= 0');
  const subs = mm.notifierSubscriptions;
  if (!subs || sub.mm !== mm)
    misuse(sim, `mmu_notifier_unregister(${sub.name}): not registered with this mm`);
  mightSleep(sim, 'mmu_notifier_unregister()');
  const srcu = mmuNotifierSrcu(sim);
  // hlist_unhashed() is a racy read; exit_mmap may unhash concurrently.
  const snap = yield* subs.head.snapshot('hlist_unhashed');
  if (snap.list.includes(sub)) {
    const idx = yield* srcu.readLock();
    if (sub.ops.release) yield* sub.ops.release(sub, mm);
    yield* srcu.readUnlock(idx);
    yield* subs.lock.lock();
    // hlist_del_init_rcu(): __mmu_notifier_release() may already have unhashed it.
    yield* subs.head.update('hlist_del_init_rcu', () => unlink(subs, sub));
    yield* subs.lock.unlock();
  }
  yield* srcu.synchronize('wait for running callbacks');
  bugOn(sim, mm.mmCount <= 0, 'mmu_notifier_unregister: mm_count <= 0');
  yield* mmdrop(mm);
}

/**
 * models `mmu_notifier_synchronize()`: waits for the asynchronous frees queued by
 * `mmu_notifier_put()` (a grace period, then the queued callbacks themselves).
 */
export function* mmuNotifierSynchronize(sim: Sim): Routine<void> {
  const srcu = mmuNotifierSrcu(sim);
  yield* srcu.synchronize('mmu_notifier_synchronize');
  const pending = srcu.callbacks.splice(0);
  for (const t of pending) yield* sim.join(t);
}

/**
 * models `mn_hlist_invalidate_range_start()`: calls every `invalidate_range_start` under SRCU. A
 * failure (legal only as -EAGAIN on a non-blockable range, by a subscriber without an end op) is
 * remembered and the others are still called; then `invalidate_range_end` is called on every
 * subscriber that has one, since the successful ones expect it. Returns the last error.
 */
export function* mnHlistInvalidateRangeStart(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
): Routine<number> {
  const sim = subs.sim;
  const srcu = mmuNotifierSrcu(sim);
  const blockable = mmuNotifierRangeBlockable(range);
  const idx = yield* srcu.readLock();
  const { list } = yield* subs.head.snapshot();
  let ret = 0;
  for (const sub of list) {
    const ops = sub.ops;
    if (!ops.invalidateRangeStart) continue;
    enterCallbackCtx(sim, blockable);
    const r = yield* ops.invalidateRangeStart(sub, range);
    exitCallbackCtx(sim, blockable);
    if (r) {
      warnOn(
        sim,
        blockable || r !== -EAGAIN,
        `${sub.name}: invalidate_range_start failed with ${r} in ${blockable ? '' : 'non-'}blockable context`,
      );
      warnOn(sim, !!ops.invalidateRangeEnd, `${sub.name}: a start that can fail has invalidate_range_end`);
      ret = r;
    }
  }
  if (ret) {
    // Non-blockable here; the kernel calls these without non_block_start(), the model checks them.
    for (const sub of list) {
      if (!sub.ops.invalidateRangeEnd) continue;
      enterCallbackCtx(sim, blockable);
      yield* sub.ops.invalidateRangeEnd(sub, range);
      exitCallbackCtx(sim, blockable);
    }
  }
  yield* srcu.readUnlock(idx);
  return ret;
}

/**
 * models `mn_hlist_invalidate_end()`: calls every `invalidate_range_end` under SRCU (skipping
 * subscribers registered after the range started, which the kernel's `mm_take_all_locks()`
 * excludes).
 */
export function* mnHlistInvalidateEnd(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
  generation: number,
): Routine<void> {
  const sim = subs.sim;
  const srcu = mmuNotifierSrcu(sim);
  const blockable = mmuNotifierRangeBlockable(range);
  const idx = yield* srcu.readLock();
  const { list } = yield* subs.head.snapshot();
  for (const sub of list) {
    if (!sub.ops.invalidateRangeEnd || sub.generation > generation) continue;
    enterCallbackCtx(sim, blockable);
    yield* sub.ops.invalidateRangeEnd(sub, range);
    exitCallbackCtx(sim, blockable);
  }
  yield* srcu.readUnlock(idx);
}

/**
 * models `mn_hlist_release()`: calls every `release` under SRCU, unhashes every subscriber, then
 * waits for a grace period so that a `release` started by a concurrent unregister has returned
 * before exit_mmap frees pages.
 */
export function* mnHlistRelease(subs: MmuNotifierSubscriptions, mm: Mm): Routine<void> {
  const srcu = mmuNotifierSrcu(subs.sim);
  const idx = yield* srcu.readLock();
  const { list } = yield* subs.head.snapshot();
  for (const sub of list) if (sub.ops.release) yield* sub.ops.release(sub, mm);
  yield* subs.lock.lock();
  yield* subs.head.update('hlist_del_init_rcu (all)', () => {
    for (const sub of subs.head.list) sub.hashed = false;
    subs.head.list = [];
  });
  yield* subs.lock.unlock();
  yield* srcu.readUnlock(idx);
  yield* srcu.synchronize('release: wait for a concurrent unregister');
}

/** The shape shared by the aging walks: call `fn` on each subscriber under SRCU, atomically. */
function* hlistWalk(
  mm: Mm,
  fn: (sub: MmuNotifier) => Routine<boolean> | null,
  stopAtTrue: boolean,
): Routine<boolean> {
  const subs = mm.notifierSubscriptions!;
  const sim = mm.sim;
  const srcu = mmuNotifierSrcu(sim);
  const idx = yield* srcu.readLock();
  const { list } = yield* subs.head.snapshot();
  let young = false;
  for (const sub of list) {
    const r = fn(sub);
    if (!r) continue;
    // Called from rmap walks under the page-table lock: the callbacks cannot sleep.
    sim.enterCtx(Ctx.Atomic);
    const y = yield* r;
    sim.exitCtx(Ctx.Atomic);
    if (stopAtTrue) {
      young = y;
      if (y) break;
    } else {
      young = young || y;
    }
  }
  yield* srcu.readUnlock(idx);
  return young;
}

/** models `mmu_notifier_clear_flush_young()`: OR of every subscriber's `clear_flush_young`. */
export function* mmuNotifierClearFlushYoung(mm: Mm, start: number, end: number): Routine<boolean> {
  if (!mm.notifierSubscriptions) return false;
  return yield* hlistWalk(mm, (s) => s.ops.clearFlushYoung?.(s, mm, start, end) ?? null, false);
}

/** models `mmu_notifier_clear_young()`: OR of every subscriber's `clear_young`. */
export function* mmuNotifierClearYoung(mm: Mm, start: number, end: number): Routine<boolean> {
  if (!mm.notifierSubscriptions) return false;
  return yield* hlistWalk(mm, (s) => s.ops.clearYoung?.(s, mm, start, end) ?? null, false);
}

/** models `mmu_notifier_test_young()`: stops at the first subscriber that reports young. */
export function* mmuNotifierTestYoung(mm: Mm, address: number): Routine<boolean> {
  if (!mm.notifierSubscriptions) return false;
  return yield* hlistWalk(mm, (s) => s.ops.testYoung?.(s, mm, address) ?? null, true);
}

/** models `__mmu_notifier_arch_invalidate_secondary_tlbs()`. */
export function* __mmuNotifierArchInvalidateSecondaryTlbs(mm: Mm, start: number, end: number): Routine<void> {
  yield* hlistWalk(
    mm,
    (s) => {
      const op = s.ops.archInvalidateSecondaryTlbs;
      if (!op) return null;
      return (function* () {
        yield* op.call(s.ops, s, mm, start, end);
        return false;
      })();
    },
    false,
  );
}

/**
 * models `__mmu_notifier_subscriptions_destroy()` (via `mmu_notifier_subscriptions_destroy()` from
 * `__mmdrop()`): BUGs if a classic subscriber is still registered, then frees the structure. Any
 * later use of it is reported as a use-after-free.
 */
export function* mmuNotifierSubscriptionsDestroy(mm: Mm): Routine<void> {
  const subs = mm.notifierSubscriptions;
  if (!subs) return;
  bugOn(
    mm.sim,
    subs.head.list.length > 0,
    '__mmu_notifier_subscriptions_destroy: classic subscribers remain',
  );
  subs.destroyed = true;
  if (subs.buf) yield* kfree(subs.buf, 'mmu_notifier_subscriptions');
}
