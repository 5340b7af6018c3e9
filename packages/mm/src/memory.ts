/**
 * Unmapping (mm/memory.c): `zap_pte_range` and its callers `unmap_page_range`,
 * `unmap_vmas` (munmap, exit: MMU_NOTIFY_UNMAP) and `zap_page_range_single` (madvise, ...:
 * MMU_NOTIFY_CLEAR).
 *
 * Reads of entries happen under the PTL (no scheduling point needed, every writer holds it);
 * each entry that is cleared is a step on that entry.
 */
import type { Routine } from '@hmmkit/sim';
import { alignDown, PAGE_SIZE, PMD_SIZE } from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import { splitHugePmd, zapHugePmd } from './huge-memory.js';
import type { Mm } from './mm.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import type { PteTable } from './pgtable.js';
import { folioPut } from './physmem.js';
import { folioRemoveRmapPteAndPut } from './rmap.js';
import type { Vma } from './vma.js';

/** models zap_pte_range(): clears every entry of `table` in `[start, end)` and drops what it held. */
export function* zapPteRange(vma: Vma, table: PteTable, start: number, end: number): Routine {
  const mm = vma.mm;
  const sys = mm.system;
  yield* table.ptl.lock('zap_pte_range');
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const slot = table.existingSlot(addr);
    if (!slot || slot.entry.kind === 'none') continue;
    const old = yield* slot.getAndClear('ptep_get_and_clear_full');
    switch (old.kind) {
      case 'present': {
        if (old.zero || old.special) break;
        const folio = sys.mem.folioAt(old.pfn)!;
        if (folio.anon) mm.rss.anon--;
        else mm.rss[folio.mapping?.shmem ? 'shmem' : 'file']--;
        yield* folioRemoveRmapPteAndPut(sys, folio, old.pfn - folio.pfn, { dirty: !folio.anon && old.dirty });
        break;
      }
      case 'device-private':
      case 'device-exclusive': {
        const folio = sys.mem.folioAt(old.pfn)!;
        mm.rss.anon--;
        if (old.kind === 'device-exclusive' && old.old) {
          // Old-API entry (v5.14-v6.14): it held a reference but no mapcount; only put it.
          yield* folioPut(sys.mem, folio, 'put_page(device-exclusive)');
        } else {
          yield* folioRemoveRmapPteAndPut(sys, folio, old.pfn - folio.pfn);
        }
        break;
      }
      case 'migration': {
        // A migration entry holds neither a reference nor a mapcount; only the RSS counter.
        const folio = sys.mem.folioAt(old.pfn);
        if (folio && !folio.anon) mm.rss[folio.mapping?.shmem ? 'shmem' : 'file']--;
        else mm.rss.anon--;
        break;
      }
      case 'swap': {
        mm.rss.swap--;
        const slotNr = old.slot;
        yield* sys.swap.update('free_swap_and_cache', (s) => {
          s.slots[slotNr]!.count--;
          s.maybeFree(slotNr);
        });
        break;
      }
      default:
        break;
    }
  }
  yield* table.ptl.unlock('zap_pte_range');
}

/**
 * models unmap_page_range() for one VMA: huge PMDs covered entirely are zapped whole, partly
 * covered ones are split first (`__split_huge_pmd`, its own CLEAR range), PTE tables are zapped.
 */
export function* unmapPageRange(vma: Vma, start: number, end: number): Routine {
  const mm = vma.mm;
  for (let pmdAddr = alignDown(start, PMD_SIZE); pmdAddr < end; pmdAddr += PMD_SIZE) {
    const s = Math.max(start, pmdAddr);
    const e = Math.min(end, pmdAddr + PMD_SIZE);
    const pmdSlot = mm.pageTable.pmdSlot(pmdAddr);
    let pmd = yield* pmdSlot.get('zap_pmd_range');
    if (pmd.kind === 'huge') {
      if (s === pmdAddr && e === pmdAddr + PMD_SIZE && (yield* zapHugePmd(vma, pmdSlot))) continue;
      yield* splitHugePmd(vma, pmdAddr);
      pmd = yield* pmdSlot.get('zap_pmd_range');
    }
    if (pmd.kind === 'table') yield* zapPteRange(vma, pmd.table, s, e);
  }
}

/** models unmap_single_vma(): the part of `[start, end)` inside `vma`. */
export function* unmapSingleVma(vma: Vma, start: number, end: number): Routine {
  const s = Math.max(vma.start, start);
  const e = Math.min(vma.end, end);
  if (s < e) yield* unmapPageRange(vma, s, e);
}

/** models unmap_vmas(): MMU_NOTIFY_UNMAP over `[start, end)`, then every VMA's part of it. */
export function* unmapVmas(mm: Mm, vmas: readonly Vma[], start: number, end: number): Routine {
  const range = new MmuNotifierRange({ mm, start, end, event: MmuNotifyEvent.UNMAP });
  yield* invalidateRangeStart(range);
  for (const vma of vmas) yield* unmapSingleVma(vma, start, end);
  yield* invalidateRangeEnd(range);
}

/** models zap_page_range_single(): MMU_NOTIFY_CLEAR over a range inside one VMA. */
export function* zapPageRangeSingle(vma: Vma, start: number, size: number): Routine {
  const range = new MmuNotifierRange({ mm: vma.mm, start, end: start + size, event: MmuNotifyEvent.CLEAR });
  yield* invalidateRangeStart(range);
  yield* unmapSingleVma(vma, start, start + size);
  yield* invalidateRangeEnd(range);
}
