/**
 * `@hmmkit/mm/notifier`: executable model of `mmu_notifier` and `mmu_interval_notifier`
 * (mm/mmu_notifier.c, include/linux/mmu_notifier.h).
 *
 * The CPU side (address-space operations) calls the invalidation entry points:
 * {@link mmuNotifierInvalidateRangeStart} / {@link mmuNotifierInvalidateRangeStartNonblock} /
 * {@link mmuNotifierInvalidateRangeEnd} around every PTE change of a range, and
 * {@link mmuNotifierRelease} first thing in exit_mmap. Device drivers subscribe with
 * {@link mmuIntervalNotifierInsert} (or the classic {@link mmuNotifierRegister}) and follow the
 * `mmu_interval_read_begin()` / `mmu_interval_read_retry()` protocol.
 *
 * Every model function is a generator (`yield*` it from a sim thread) and names the kernel
 * function it stands for. The `unmerged` namespace holds mailing-list proposals that never
 * merged; nothing in it is part of the kernel's behaviour.
 *
 * @module
 */

export { noNotifierWarnings, notifierInvariants } from './check.js';
export {
  __mmuNotifierArchInvalidateSecondaryTlbs,
  __mmuNotifierRegister,
  EOVERFLOW,
  mmuNotifierClearFlushYoung,
  mmuNotifierClearYoung,
  mmuNotifierGet,
  mmuNotifierGetLocked,
  mmuNotifierPut,
  mmuNotifierRegister,
  mmuNotifierSubscriptionsDestroy,
  mmuNotifierSynchronize,
  mmuNotifierTestYoung,
  mmuNotifierUnregister,
  UINT_MAX,
} from './classic.js';
export { type NotifierDebug, NotifierViolation, notifierDebug } from './debug.js';
export {
  intervalNotifierInTree,
  mmuIntervalCheckRetry,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierInsertLocked,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
} from './interval.js';
export {
  __mmuNotifierInvalidateRangeEnd,
  __mmuNotifierInvalidateRangeStart,
  mmHasNotifiers,
  mmuNotifierArchInvalidateSecondaryTlbs,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRelease,
} from './invalidate.js';
export {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierRangeBlockable,
  mmuNotifierRangeInit,
  mmuNotifierRangeInitOwner,
  mmuNotifyEventValue,
  type RangeStartState,
  ULONG_MAX,
} from './range.js';
export { mmuNotifierSrcu, Srcu } from './srcu.js';
export { MmuNotifierSubscriptions, NotifierListHead, type RegistrationSnapshot } from './subscriptions.js';
export {
  type IntervalNotifierState,
  MmuIntervalNotifier,
  MmuIntervalNotifierFinish,
  type MmuIntervalNotifierOps,
  MmuNotifier,
  type MmuNotifierOps,
} from './types.js';
/** UNMERGED PROPOSALS (never in any kernel): see the module documentation of `variants.ts`. */
export * as unmerged from './variants.js';
