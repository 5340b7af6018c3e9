/**
 * madvise (mm/madvise.c): MADV_DONTNEED (`zap_page_range_single`, MMU_NOTIFY_CLEAR), MADV_FREE
 * (`madvise_free_single_vma`: clean anonymous pages become lazily freeable, MMU_NOTIFY_CLEAR), and
 * MADV_HUGEPAGE / MADV_NOHUGEPAGE (VMA flags only).
 */
import { EINVAL, ENOMEM, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  alignUp,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  PAGE_SIZE,
  PMD_SIZE,
  pageAligned,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_LOCKED,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import { splitHugePmd } from './huge-memory.js';
import { zapPageRangeSingle } from './memory.js';
import type { Mm } from './mm.js';
import { splitVma } from './mmap.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import type { Vma } from './vma.js';

const BEHAVIOURS = new Set([MADV_NORMAL, MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE]);

/**
 * `madvise(start, len, behavior)`: 0, -EINVAL (unaligned start, unknown behaviour, a VMA the
 * advice does not apply to), -ENOMEM (part of the range unmapped; the mapped parts are still
 * advised, as in the kernel).
 */
export function* madvise(mm: Mm, start: number, lenIn: number, behavior: number): Routine<number> {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(lenIn) || !pageAligned(start) || start < 0)
    return -EINVAL;
  if (!BEHAVIOURS.has(behavior)) return -EINVAL;
  if (lenIn < 0) return -EINVAL;
  const len = alignUp(lenIn, PAGE_SIZE);
  const end = start + len;
  if (end < start) return -EINVAL;
  if (end === start) return 0;
  const write = behavior === MADV_HUGEPAGE || behavior === MADV_NOHUGEPAGE;
  if (write) yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  else yield* mm.mmapLock.downRead('mmap_read_lock');
  let error = 0;
  let unmapped = 0;
  const vmas = mm.vmasIn(start, end);
  let tmp = start;
  if (vmas.length === 0) unmapped = -ENOMEM;
  for (const vma of vmas) {
    if (vma.start > tmp) unmapped = -ENOMEM;
    const s = Math.max(start, vma.start);
    const e = Math.min(end, vma.end);
    tmp = e;
    error = yield* madviseVma(vma, s, e, behavior);
    if (error) break;
  }
  if (tmp < end) unmapped = -ENOMEM;
  if (write) yield* mm.mmapLock.upWrite('mmap_write_unlock');
  else yield* mm.mmapLock.upRead('mmap_read_unlock');
  return error || unmapped;
}

/** models madvise_vma_behavior() for one VMA's part `[s, e)`. */
function* madviseVma(vma: Vma, s: number, e: number, behavior: number): Routine<number> {
  switch (behavior) {
    case MADV_DONTNEED:
      // models madvise_dontneed_free() → madvise_dontneed_single_vma()
      if (vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -EINVAL;
      yield* zapPageRangeSingle(vma, s, e - s);
      return 0;
    case MADV_FREE:
      if (vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -EINVAL;
      if (!vma.isAnonymous) return -EINVAL;
      yield* madviseFreeSingleVma(vma, s, e);
      return 0;
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE: {
      // models hugepage_madvise() + madvise_update_vma()
      const set = behavior === MADV_HUGEPAGE ? VM_HUGEPAGE : VM_NOHUGEPAGE;
      const clear = behavior === MADV_HUGEPAGE ? VM_NOHUGEPAGE : VM_HUGEPAGE;
      const newflags = (vma.flags & ~clear) | set;
      if (newflags === vma.flags) return 0;
      let v = vma;
      if (s > v.start) v = yield* splitVma(v, s);
      if (e < v.end) yield* splitVma(v, e);
      v.flags = newflags;
      return 0;
    }
    default:
      return 0;
  }
}

/**
 * models madvise_free_single_vma(): under MMU_NOTIFY_CLEAR, swap entries are freed, and present
 * anonymous pages mapped only here lose their dirty and accessed bits and become lazily freeable
 * (reclaim drops them instead of swapping, unless they are written again).
 */
function* madviseFreeSingleVma(vma: Vma, start: number, end: number): Routine {
  const mm = vma.mm;
  const sys = mm.system;
  const range = new MmuNotifierRange({ mm, start, end, event: MmuNotifyEvent.CLEAR });
  yield* invalidateRangeStart(range);
  for (let pmdAddr = alignDown(start, PMD_SIZE); pmdAddr < end; pmdAddr += PMD_SIZE) {
    const s = Math.max(start, pmdAddr);
    const e = Math.min(end, pmdAddr + PMD_SIZE);
    const pmdSlot = mm.pageTable.pmdSlot(pmdAddr);
    let pmd = yield* pmdSlot.get('madvise_free_pte_range');
    if (pmd.kind === 'huge') {
      // A THP is split rather than lazily freed as a whole (madvise_free_huge_pmd not modelled).
      yield* splitHugePmd(vma, pmdAddr);
      pmd = yield* pmdSlot.get('madvise_free_pte_range');
    }
    if (pmd.kind !== 'table') continue;
    const table = pmd.table;
    yield* table.ptl.lock('madvise_free_pte_range');
    for (let addr = s; addr < e; addr += PAGE_SIZE) {
      const slot = table.existingSlot(addr);
      const old = slot?.entry;
      if (!slot || !old) continue;
      if (old.kind === 'swap') {
        yield* slot.getAndClear('pte_clear');
        mm.rss.swap--;
        yield* sys.swap.update('free_swap_and_cache', (sw) => {
          sw.slots[old.slot]!.count--;
          sw.maybeFree(old.slot);
        });
        continue;
      }
      if (old.kind !== 'present' || old.zero || old.special) continue;
      const folio = sys.mem.folioAt(old.pfn);
      if (!folio?.anon || folio.large) continue;
      const ok = yield* folio.update('folio_mark_lazyfree', (f) => {
        if (f.mapcount[0] !== 1 || f.swapSlot !== null || f.locked) return false;
        f.dirty = false;
        f.lazyfree = true;
        return true;
      });
      if (ok) {
        yield* slot.modify(
          (o) => (o.kind === 'present' ? { ...o, dirty: false, young: false } : null),
          'clear_young_dirty_ptes',
        );
      }
    }
    yield* table.ptl.unlock();
  }
  yield* invalidateRangeEnd(range);
}
