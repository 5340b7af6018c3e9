/**
 * `enum mmu_notifier_event`, `struct mmu_notifier_range` and their helpers
 * (include/linux/mmu_notifier.h).
 *
 * @module
 */
import { ULONG_MAX } from '../constants.js';
import type { Mm } from '../mm.js';

/**
 * `ULONG_MAX` of the model (shared with the address-space model's constants): the largest address,
 * and the end of the RELEASE range. Addresses are JavaScript integers, so the model's unsigned
 * long is 53 bits wide (the interval tree's limit).
 */
export { ULONG_MAX };

/** `enum mmu_notifier_event`: why the CPU page tables of a range change. */
export const MmuNotifyEvent = {
  /** munmap(), or mremap() moving the range. */
  UNMAP: 'MMU_NOTIFY_UNMAP',
  /** PTEs cleared for another reason: madvise, reclaim, page replacement, COW, THP split. */
  CLEAR: 'MMU_NOTIFY_CLEAR',
  /** mprotect(): the new permission follows from the VMA's protection. */
  PROTECTION_VMA: 'MMU_NOTIFY_PROTECTION_VMA',
  /** Per-page permission change (fork write-protect); the CPU PTEs must be re-read. */
  PROTECTION_PAGE: 'MMU_NOTIFY_PROTECTION_PAGE',
  /** Soft-dirty clearing; page and permissions unchanged. */
  SOFT_DIRTY: 'MMU_NOTIFY_SOFT_DIRTY',
  /** The mm is being torn down (interval subscribers only). */
  RELEASE: 'MMU_NOTIFY_RELEASE',
  /** migrate_vma; `owner` is the pgmap owner of the migrating driver. */
  MIGRATE: 'MMU_NOTIFY_MIGRATE',
  /** Conversion of a PTE to a device-exclusive entry; `owner` is the caller's. */
  EXCLUSIVE: 'MMU_NOTIFY_EXCLUSIVE',
} as const;
export type MmuNotifyEvent = (typeof MmuNotifyEvent)[keyof typeof MmuNotifyEvent];

/** The kernel's numeric value of each event (`MMU_NOTIFY_UNMAP` = 0 ... `MMU_NOTIFY_EXCLUSIVE` = 7). */
export const mmuNotifyEventValue: Readonly<Record<MmuNotifyEvent, number>> = {
  MMU_NOTIFY_UNMAP: 0,
  MMU_NOTIFY_CLEAR: 1,
  MMU_NOTIFY_PROTECTION_VMA: 2,
  MMU_NOTIFY_PROTECTION_PAGE: 3,
  MMU_NOTIFY_SOFT_DIRTY: 4,
  MMU_NOTIFY_RELEASE: 5,
  MMU_NOTIFY_MIGRATE: 6,
  MMU_NOTIFY_EXCLUSIVE: 7,
};

/** `MMU_NOTIFIER_RANGE_BLOCKABLE`: the only range flag. */
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

/** What `__mmu_notifier_invalidate_range_start()` saw, so that the matching end does the same. */
export interface RangeStartState {
  /** The interval tree layer was entered (`has_itree`). */
  itree: boolean;
  /** Registration generation at start: classic subscribers registered later get no end. */
  generation: number;
}

/** `struct mmu_notifier_range`: a half-open range `[start, end)` of `mm` about to change. */
export class MmuNotifierRange {
  readonly mm: Mm;
  readonly start: number;
  readonly end: number;
  readonly event: MmuNotifyEvent;
  /** `MMU_NOTIFIER_RANGE_BLOCKABLE` or 0; the start wrappers set or clear it. */
  flags: number;
  readonly owner: unknown;
  /**
   * @internal Where the range is in its start/end pairing: null before start (and after end),
   * `'no-notifiers'` when start found no notifier, `'failed'` after a start that returned -EAGAIN,
   * else what a successful `__mmu_notifier_invalidate_range_start()` saw. The kernel re-reads
   * `has_itree` and the subscriber list at end; that is equivalent because `mm_take_all_locks()`
   * keeps registration out of every start/end pair, which the model does not reproduce for CPU
   * paths that run without `mmap_lock`.
   */
  started: RangeStartState | 'no-notifiers' | 'failed' | null = null;

  constructor(init: {
    mm: Mm;
    start: number;
    end: number;
    event: MmuNotifyEvent;
    flags?: number;
    owner?: unknown;
  }) {
    const { start, end } = init;
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new RangeError(
        `MmuNotifierRange: start must be an integer in [0, ULONG_MAX], got ${String(start)}`,
      );
    }
    if (!Number.isSafeInteger(end) || end < start) {
      throw new RangeError(
        `MmuNotifierRange: end must be an integer in [start, ULONG_MAX], got ${String(end)}`,
      );
    }
    this.mm = init.mm;
    this.start = start;
    this.end = end;
    this.event = init.event;
    this.flags = init.flags ?? MMU_NOTIFIER_RANGE_BLOCKABLE;
    this.owner = init.owner ?? null;
  }

  toString(): string {
    const hex = (n: number) => `0x${n.toString(16)}`;
    return `${this.event}[${hex(this.start)}, ${hex(this.end)})${this.flags & MMU_NOTIFIER_RANGE_BLOCKABLE ? '' : ' nonblock'}`;
  }
}

/** models `mmu_notifier_range_init()` */
export function mmuNotifierRangeInit(
  event: MmuNotifyEvent,
  flags: number,
  mm: Mm,
  start: number,
  end: number,
): MmuNotifierRange {
  return new MmuNotifierRange({ mm, start, end, event, flags });
}

/** models `mmu_notifier_range_init_owner()` */
export function mmuNotifierRangeInitOwner(
  event: MmuNotifyEvent,
  flags: number,
  mm: Mm,
  start: number,
  end: number,
  owner: unknown,
): MmuNotifierRange {
  return new MmuNotifierRange({ mm, start, end, event, flags, owner });
}

/** models `mmu_notifier_range_blockable()` */
export function mmuNotifierRangeBlockable(range: MmuNotifierRange): boolean {
  return (range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
}
