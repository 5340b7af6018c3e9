/**
 * The invalidation entry points the CPU side calls (include/linux/mmu_notifier.h wrappers and
 * their `__mmu_notifier_*` bodies in mm/mmu_notifier.c). Interval subscribers are called before
 * classic ones, at start and at end.
 *
 * @module
 */
import type { Routine } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import {
  __mmuNotifierArchInvalidateSecondaryTlbs,
  mnHlistInvalidateEnd,
  mnHlistInvalidateRangeStart,
  mnHlistRelease,
} from './classic.js';
import { acquireStartMap, mightSleep, misuse, releaseStartMap } from './debug.js';
import { mnItreeInvalidate, mnItreeInvEnd, mnItreeRelease } from './interval.js';
import { MMU_NOTIFIER_RANGE_BLOCKABLE, type MmuNotifierRange, mmuNotifierRangeBlockable } from './range.js';

/** models `mm_has_notifiers()`: a notifier was ever registered on `mm`. */
export function mmHasNotifiers(mm: Mm): boolean {
  return mm.notifierSubscriptions !== null;
}

/**
 * models `__mmu_notifier_invalidate_range_start()`: the interval layer first (an -EAGAIN from it
 * is returned at once, classic subscribers are not called), then the classic subscribers.
 *
 * Kept exactly as the kernel has it: when the interval layer succeeded (its window accounting is
 * now held) and a classic subscriber then fails a non-blockable start, the error is returned
 * without `mn_itree_inv_end()`, and the caller is not allowed to call end. See the README section
 * "The classic-failure window leak".
 */
export function* __mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): Routine<number> {
  const subs = range.mm.notifierSubscriptions!;
  subs.checkAlive('mmu_notifier_invalidate_range_start()');
  if (range.started !== null && range.started !== 'failed') {
    misuse(subs.sim, `invalidate_range_start(${range}) on a range whose previous start was not ended`);
  }
  const snap = yield* subs.head.snapshot('has_itree / hlist_empty');
  if (snap.hasItree) {
    const ret = yield* mnItreeInvalidate(subs, range);
    if (ret) {
      range.started = 'failed';
      return ret;
    }
  }
  range.started = { itree: snap.hasItree, generation: snap.generation };
  if (snap.list.length > 0) {
    const ret = yield* mnHlistInvalidateRangeStart(subs, range);
    // Non-blockable: the caller must not call end, and the interval window (if any) stays
    // accounted: the leak described above. Blockable (a WARN): the caller ignores the error and
    // calls end, so subscribers with an end op see it twice, as in the kernel.
    if (ret && !mmuNotifierRangeBlockable(range)) range.started = 'failed';
    return ret;
  }
  return 0;
}

/** models `__mmu_notifier_invalidate_range_end()`: interval layer first, then classic `end`s. */
export function* __mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): Routine<void> {
  const subs = range.mm.notifierSubscriptions!;
  subs.checkAlive('mmu_notifier_invalidate_range_end()');
  const started = range.started;
  if (started === null) misuse(subs.sim, `invalidate_range_end(${range}) without invalidate_range_start`);
  if (started === 'failed') {
    misuse(
      subs.sim,
      `invalidate_range_end(${range}) after invalidate_range_start_nonblock() returned -EAGAIN`,
    );
  }
  range.started = null;
  if (started === 'no-notifiers') return;
  acquireStartMap(subs.sim);
  if (started.itree) yield* mnItreeInvEnd(subs);
  const snap = yield* subs.head.snapshot('hlist_empty');
  if (snap.list.length > 0) yield* mnHlistInvalidateEnd(subs, range, started.generation);
  releaseStartMap(subs.sim);
}

/**
 * models `mmu_notifier_invalidate_range_start()`: blockable; cannot fail. Must be called where
 * sleeping is allowed; the callbacks run "under" the lockdep map
 * `__mmu_notifier_invalidate_range_start_map`.
 */
export function* mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): Routine<void> {
  const sim = range.mm.sim;
  mightSleep(sim, 'mmu_notifier_invalidate_range_start()');
  acquireStartMap(sim);
  if (mmHasNotifiers(range.mm)) {
    range.flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
    yield* __mmuNotifierInvalidateRangeStart(range);
  } else {
    range.started = 'no-notifiers';
  }
  releaseStartMap(sim);
}

/**
 * models `mmu_notifier_invalidate_range_start_nonblock()` (the OOM reaper's): 0, or -EAGAIN when a
 * subscriber would have to sleep. On -EAGAIN the caller must not touch the PTEs of the range and
 * must not call end.
 */
export function* mmuNotifierInvalidateRangeStartNonblock(range: MmuNotifierRange): Routine<number> {
  const sim = range.mm.sim;
  acquireStartMap(sim);
  let ret = 0;
  if (mmHasNotifiers(range.mm)) {
    range.flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
    ret = yield* __mmuNotifierInvalidateRangeStart(range);
  } else {
    range.started = 'no-notifiers';
  }
  releaseStartMap(sim);
  return ret;
}

/** models `mmu_notifier_invalidate_range_end()`. */
export function* mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): Routine<void> {
  const sim = range.mm.sim;
  if (mmuNotifierRangeBlockable(range)) mightSleep(sim, 'mmu_notifier_invalidate_range_end()');
  if (mmHasNotifiers(range.mm)) yield* __mmuNotifierInvalidateRangeEnd(range);
  else range.started = null;
}

/**
 * models `__mmu_notifier_release()` (via `mmu_notifier_release()`, first thing in exit_mmap):
 * one RELEASE invalidation to the interval subscribers, then `release` to the classic ones, which
 * are unhashed.
 */
export function* mmuNotifierRelease(mm: Mm): Routine<void> {
  const subs = mm.notifierSubscriptions;
  if (!subs) return;
  subs.checkAlive('mmu_notifier_release()');
  const snap = yield* subs.head.snapshot('has_itree / hlist_empty');
  if (snap.hasItree) yield* mnItreeRelease(subs, mm);
  if (snap.list.length > 0) yield* mnHlistRelease(subs, mm);
}

/** models `mmu_notifier_arch_invalidate_secondary_tlbs()`. */
export function* mmuNotifierArchInvalidateSecondaryTlbs(mm: Mm, start: number, end: number): Routine<void> {
  if (mmHasNotifiers(mm)) yield* __mmuNotifierArchInvalidateSecondaryTlbs(mm, start, end);
}
