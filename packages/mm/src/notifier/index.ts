/**
 * PLACEHOLDER (see subscriptions.ts): the notifier API the CPU operations call. The notifier
 * engineer replaces the bodies and keeps these signatures.
 */
import type { Routine } from '@hmmkit/sim';
import type { Mm } from '../mm.js';

/** `enum mmu_notifier_event`. */
export const MmuNotifyEvent = {
  UNMAP: 'MMU_NOTIFY_UNMAP',
  CLEAR: 'MMU_NOTIFY_CLEAR',
  PROTECTION_VMA: 'MMU_NOTIFY_PROTECTION_VMA',
  PROTECTION_PAGE: 'MMU_NOTIFY_PROTECTION_PAGE',
  SOFT_DIRTY: 'MMU_NOTIFY_SOFT_DIRTY',
  RELEASE: 'MMU_NOTIFY_RELEASE',
  MIGRATE: 'MMU_NOTIFY_MIGRATE',
  EXCLUSIVE: 'MMU_NOTIFY_EXCLUSIVE',
} as const;
export type MmuNotifyEvent = (typeof MmuNotifyEvent)[keyof typeof MmuNotifyEvent];

/** `MMU_NOTIFIER_RANGE_BLOCKABLE`. */
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

/** `struct mmu_notifier_range` (half-open [start, end)). */
export class MmuNotifierRange {
  readonly mm: Mm;
  readonly start: number;
  readonly end: number;
  readonly event: MmuNotifyEvent;
  flags: number;
  readonly owner: unknown;
  constructor(init: { mm: Mm; start: number; end: number; event: MmuNotifyEvent; flags?: number; owner?: unknown }) {
    this.mm = init.mm;
    this.start = init.start;
    this.end = init.end;
    this.event = init.event;
    this.flags = init.flags ?? MMU_NOTIFIER_RANGE_BLOCKABLE;
    this.owner = init.owner ?? null;
  }
}

/** `mmu_notifier_invalidate_range_start()`: blockable; never fails. */
export function* mmuNotifierInvalidateRangeStart(_range: MmuNotifierRange): Routine<void> {}

/** `mmu_notifier_invalidate_range_start_nonblock()`: 0 or -EAGAIN. */
export function* mmuNotifierInvalidateRangeStartNonblock(_range: MmuNotifierRange): Routine<number> {
  return 0;
}

/** `mmu_notifier_invalidate_range_end()`. */
export function* mmuNotifierInvalidateRangeEnd(_range: MmuNotifierRange): Routine<void> {}

/** `mmu_notifier_release()` (`__mmu_notifier_release`), called first thing in exit_mmap. */
export function* mmuNotifierRelease(_mm: Mm): Routine<void> {}

/** `mmu_notifier_arch_invalidate_secondary_tlbs()`. */
export function* mmuNotifierArchInvalidateSecondaryTlbs(_mm: Mm, _start: number, _end: number): Routine<void> {}

/** `mm_has_notifiers()`. */
export function mmHasNotifiers(mm: Mm): boolean {
  return mm.notifierSubscriptions !== null;
}
