/**
 * mremap (mm/mremap.c): shrink, grow in place, or move (`move_vma` → `move_page_tables` under
 * MMU_NOTIFY_UNMAP over the old range; the old range is then unmapped).
 */
import { EFAULT, EINVAL, ENOMEM, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  alignUp,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  pageAligned,
  TASK_SIZE,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import { pteAlloc } from './fault.js';
import { splitHugePmd } from './huge-memory.js';
import type { Mm } from './mm.js';
import { doVmiMunmap, linkVma, splitVma } from './mmap.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import { PMD_NONE } from './pgtable.js';
import { Vma } from './vma.js';

/**
 * `mremap(old, oldLen, newLen, flags, newAddr)`: the (new) address, or -EINVAL (bad flags,
 * unaligned address, zero new length, overlapping fixed ranges), -EFAULT (old range not inside one
 * mapping), -ENOMEM (cannot grow in place and may not move).
 */
export function* mremap(
  mm: Mm,
  oldAddr: number,
  oldLenIn: number,
  newLenIn: number,
  flags: number,
  newAddr = 0,
): Routine<number> {
  if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) return -EINVAL;
  if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return -EINVAL;
  if (!pageAligned(oldAddr) || oldAddr < 0) return -EINVAL;
  const oldLen = alignUp(oldLenIn, PAGE_SIZE);
  const newLen = alignUp(newLenIn, PAGE_SIZE);
  if (newLen === 0 || oldLen === 0) return -EINVAL;
  if (flags & MREMAP_FIXED) {
    if (!pageAligned(newAddr) || newAddr < 0) return -EINVAL;
    if (newLen > TASK_SIZE || newAddr > TASK_SIZE - newLen) return -EINVAL;
    if (newAddr < oldAddr + oldLen && oldAddr < newAddr + newLen) return -EINVAL;
  }
  yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  let ret: number;
  const vma = mm.vmaLookup(oldAddr);
  if (!vma || oldAddr + oldLen > vma.end) {
    ret = -EFAULT;
  } else if (flags & MREMAP_FIXED) {
    yield* doVmiMunmap(mm, newAddr, newAddr + newLen, false);
    let len = oldLen;
    if (newLen < oldLen) {
      yield* doVmiMunmap(mm, oldAddr + newLen, oldAddr + oldLen, false);
      len = newLen;
    }
    ret = yield* moveVma(mm.vmaLookup(oldAddr)!, oldAddr, len, newLen, newAddr);
  } else if (newLen <= oldLen) {
    if (newLen < oldLen) yield* doVmiMunmap(mm, oldAddr + newLen, oldAddr + oldLen, false);
    ret = oldAddr;
  } else if (
    oldAddr + oldLen === vma.end &&
    mm.vmasIn(vma.end, oldAddr + newLen).length === 0 &&
    oldAddr + newLen <= TASK_SIZE
  ) {
    // models vma_expand(): grow in place
    vma.end = oldAddr + newLen;
    ret = oldAddr;
  } else if (flags & MREMAP_MAYMOVE) {
    const to = mm.unmappedArea(newLen, 0);
    ret = to < 0 ? -ENOMEM : yield* moveVma(vma, oldAddr, oldLen, newLen, to);
  } else {
    ret = -ENOMEM;
  }
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return ret;
}

/**
 * models move_vma(): a new VMA at `newAddr` (same pgoff and anon_vma, so the rmap finds the moved
 * pages), the page tables moved, then the old range unmapped.
 */
function* moveVma(
  vma: Vma,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  newAddr: number,
): Routine<number> {
  const mm = vma.mm;
  let v = vma;
  if (oldAddr > v.start) v = yield* splitVma(v, oldAddr);
  if (oldAddr + oldLen < v.end) yield* splitVma(v, oldAddr + oldLen);
  const nv = new Vma(mm, newAddr, newAddr + newLen, v.flags, v.file, v.pgoff, v.anonVma);
  nv.pfnBase = v.pfnBase;
  yield* linkVma(nv, () => mm.insertVma(nv));
  yield* movePageTables(v, oldAddr, nv, newAddr, oldLen);
  yield* doVmiMunmap(mm, oldAddr, oldAddr + oldLen, false);
  return newAddr;
}

/** models move_page_tables(): entries move one by one (huge PMDs whole when aligned). */
function* movePageTables(vma: Vma, oldAddr: number, newVma: Vma, newAddr: number, len: number): Routine {
  const mm = vma.mm;
  const pt = mm.pageTable;
  const range = new MmuNotifierRange({ mm, start: oldAddr, end: oldAddr + len, event: MmuNotifyEvent.UNMAP });
  yield* invalidateRangeStart(range);
  let off = 0;
  while (off < len) {
    const from = oldAddr + off;
    const to = newAddr + off;
    const extent = Math.min(
      alignDown(from, PMD_SIZE) + PMD_SIZE - from,
      alignDown(to, PMD_SIZE) + PMD_SIZE - to,
      len - off,
    );
    const oldPmdSlot = pt.pmdSlot(from);
    let pmd = yield* oldPmdSlot.get('move_pgt_entry');
    if (pmd.kind === 'huge') {
      const newPmdSlot = pt.pmdSlot(to);
      if (extent === PMD_SIZE && (yield* newPmdSlot.get()).kind === 'none') {
        // models move_huge_pmd()
        yield* pt.pmdLock.lock('move_huge_pmd');
        const moved = yield* oldPmdSlot.modify(
          (o) => (o.kind === 'huge' ? PMD_NONE : null),
          'pmdp_huge_get_and_clear',
        );
        if (moved.kind === 'huge') yield* newPmdSlot.set(moved, 'set_pmd_at');
        yield* pt.pmdLock.unlock();
        if (moved.kind === 'huge') {
          off += extent;
          continue;
        }
      } else {
        yield* splitHugePmd(vma, from);
      }
      pmd = yield* oldPmdSlot.get('move_pgt_entry');
    }
    if (pmd.kind === 'table' && [...pmd.table.used()].some((s) => s.addr >= from && s.addr < from + extent)) {
      const newPmdSlot = pt.pmdSlot(to);
      let npmd = yield* newPmdSlot.get('alloc_new_pmd');
      if (npmd.kind === 'huge') {
        yield* splitHugePmd(newVma, to);
        npmd = yield* newPmdSlot.get();
      }
      if (npmd.kind === 'none') {
        yield* pteAlloc(mm, newPmdSlot);
        npmd = yield* newPmdSlot.get();
      }
      if (npmd.kind === 'table') {
        // models move_ptes()
        const oldTable = pmd.table;
        const newTable = npmd.table;
        yield* oldTable.ptl.lock('move_ptes');
        if (newTable !== oldTable) yield* newTable.ptl.lockNested(1, 'move_ptes');
        for (let a = 0; a < extent; a += PAGE_SIZE) {
          const s = oldTable.existingSlot(from + a);
          if (!s || s.entry.kind === 'none') continue;
          const e = yield* s.getAndClear('ptep_get_and_clear');
          yield* newTable.slot(to + a).set(e, 'set_pte_at');
        }
        if (newTable !== oldTable) yield* newTable.ptl.unlock();
        yield* oldTable.ptl.unlock();
      }
    }
    off += extent;
  }
  yield* invalidateRangeEnd(range);
}
