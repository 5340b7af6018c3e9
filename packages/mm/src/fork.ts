/**
 * fork's address-space copy (kernel/fork.c `dup_mm` → `dup_mmap`, mm/memory.c
 * `copy_page_range`): every VMA is duplicated; for copy-on-write mappings the parent's range is
 * write-protected under MMU_NOTIFY_PROTECTION_PAGE and anonymous pages become shared
 * (not exclusive) between parent and child.
 *
 * The child is not visible to any other thread until fork returns, so its entries are written
 * without scheduling points (its locks are still taken, in the kernel's order).
 */
import { ENOMEM, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PMD_SIZE,
  VM_DONTCOPY,
  VM_MIXEDMAP,
  VM_PFNMAP,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import { pteAlloc, restoreExclusivePte } from './fault.js';
import { type Mm, MmapLock } from './mm.js';
import { linkVma, mmput } from './mmap.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import { type PmdSlot, type Pte, type PteTable, pteSame } from './pgtable.js';
import { Vma } from './vma.js';

/**
 * `fork()`'s mm half: a new mm with copies of the parent's VMAs and page tables, or -ENOMEM
 * (e.g. a device-exclusive entry whose folio is locked: copy_pte_range bails out with -EBUSY).
 */
export function* fork(parent: Mm): Routine<Mm | number> {
  const sys = parent.system;
  const child = sys.createMm(`${parent.name}.child${sys.mms.length}`);
  yield* parent.mmapLock.downWrite('mmap_write_lock_killable');
  const childLock = child.mmapLock;
  if (childLock instanceof MmapLock) yield* childLock.downWriteNested(1, 'mmap_write_lock_nested');
  else yield* childLock.downWrite('mmap_write_lock');
  let ret = 0;
  for (const vma of [...parent.vmas]) {
    if (vma.flags & VM_DONTCOPY) continue;
    // models vm_area_dup() + anon_vma_fork(): the child VMA joins the parent's anon_vma.
    const nv = new Vma(child, vma.start, vma.end, vma.flags, vma.file, vma.pgoff, vma.anonVma);
    nv.pfnBase = vma.pfnBase;
    yield* linkVma(nv, () => child.insertVma(nv));
    if (!vmaNeedsCopy(vma)) continue;
    ret = yield* copyPageRange(nv, vma);
    if (ret < 0) break;
  }
  yield* childLock.upWrite('mmap_write_unlock');
  yield* parent.mmapLock.upWrite('mmap_write_unlock');
  if (ret < 0) {
    // The half-built child is torn down (dup_mmap's error path, then mmput of the new mm).
    yield* mmput(child);
    return -ENOMEM;
  }
  return child;
}

/** models vma_needs_copy(): only VMAs with anonymous pages or raw pfn mappings copy entries. */
function vmaNeedsCopy(src: Vma): boolean {
  return (src.flags & (VM_PFNMAP | VM_MIXEDMAP)) !== 0 || src.anonVma !== null;
}

/** models copy_page_range(): 0 or a negative errno. */
export function* copyPageRange(dst: Vma, src: Vma): Routine<number> {
  const srcMm = src.mm;
  const isCow = src.isCow;
  let range: MmuNotifierRange | null = null;
  if (isCow) {
    range = new MmuNotifierRange({
      mm: srcMm,
      start: src.start,
      end: src.end,
      event: MmuNotifyEvent.PROTECTION_PAGE,
    });
    yield* invalidateRangeStart(range);
  }
  let ret = 0;
  for (let pmdAddr = alignDown(src.start, PMD_SIZE); pmdAddr < src.end && ret === 0; pmdAddr += PMD_SIZE) {
    const s = Math.max(src.start, pmdAddr);
    const e = Math.min(src.end, pmdAddr + PMD_SIZE);
    const srcPmd = srcMm.pageTable.pmdSlot(pmdAddr);
    const dstPmd = dst.mm.pageTable.pmdSlot(pmdAddr);
    const pmd = yield* srcPmd.get('copy_pmd_range');
    if (pmd.kind === 'huge' && (yield* copyHugePmd(dst, src, dstPmd, srcPmd))) continue;
    const again = srcPmd.entry;
    if (again.kind !== 'table') continue;
    if (dstPmd.entry.kind === 'none') yield* pteAlloc(dst.mm, dstPmd);
    const dstTable = (dstPmd.entry as { table: PteTable }).table;
    ret = yield* copyPteRange(dst, src, dstTable, again.table, s, e);
  }
  if (range) yield* invalidateRangeEnd(range);
  return ret;
}

/** models copy_huge_pmd(): both PMDs map the THP, write-protected for COW. False: fall back. */
function* copyHugePmd(dst: Vma, src: Vma, dstPmd: PmdSlot, srcPmd: PmdSlot): Routine<boolean> {
  const sys = src.mm.system;
  yield* dst.mm.pageTable.pmdLock.lock('pmd_lock(dst)');
  yield* src.mm.pageTable.pmdLock.lockNested(1, 'pmd_lock_nested(src)');
  const pmd = srcPmd.entry;
  let done = false;
  if (pmd.kind === 'huge') {
    const folio = sys.mem.folioAt(pmd.pfn)!;
    yield* folio.update('folio_try_dup_anon_rmap_pmd', (f) => {
      f.refcount++;
      f.entireMapcount++;
      f.anonExclusive.fill(false);
    });
    if (src.isCow && pmd.write) {
      yield* srcPmd.modify((o) => (o.kind === 'huge' ? { ...o, write: false } : null), 'pmdp_set_wrprotect');
    }
    dstPmd.entry = { ...pmd, write: src.isCow ? false : pmd.write, young: false };
    dst.mm.rss.anon += HPAGE_PMD_NR;
    done = true;
  }
  yield* src.mm.pageTable.pmdLock.unlock();
  yield* dst.mm.pageTable.pmdLock.unlock();
  return done;
}

/** models copy_pte_range() with copy_present_ptes() and copy_nonpresent_pte(). */
function* copyPteRange(
  dst: Vma,
  src: Vma,
  dstTable: PteTable,
  srcTable: PteTable,
  start: number,
  end: number,
): Routine<number> {
  const sys = src.mm.system;
  const dstMm = dst.mm;
  const isCow = src.isCow;
  yield* dstTable.ptl.lock('copy_pte_range(dst)');
  yield* srcTable.ptl.lockNested(1, 'copy_pte_range(src)');
  let ret = 0;
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const slot = srcTable.existingSlot(addr);
    if (!slot) continue;
    let e: Pte = slot.entry;
    if (e.kind === 'none') continue;
    if (e.kind === 'device-exclusive') {
      // models try_restore_exclusive_pte(): restore the parent's PTE if the folio lock is free.
      const folio = sys.mem.folioAt(e.pfn)!;
      if (!(yield* folio.trylock('folio_trylock'))) {
        ret = -ENOMEM;
        break;
      }
      const cur = e;
      const restored: Pte = yield* restoreExclusivePte(src, folio, cur);
      yield* slot.modify((o) => (pteSame(o, cur) ? restored : null), 'restore_exclusive_pte');
      yield* folio.unlock();
      e = restored;
    }
    let child: Pte;
    switch (e.kind) {
      case 'present': {
        child = e;
        if (!e.zero && !e.special) {
          const folio = sys.mem.folioAt(e.pfn)!;
          const i = e.pfn - folio.pfn;
          // models folio_try_dup_anon_rmap_pte() / folio_dup_file_rmap_pte()
          yield* folio.update('folio_dup_rmap_pte', (f) => {
            f.refcount++;
            f.mapcount[i]!++;
            if (f.anon) f.anonExclusive[i] = false;
          });
          if (folio.anon) dstMm.rss.anon++;
          else dstMm.rss[folio.mapping?.shmem ? 'shmem' : 'file']++;
        }
        if (isCow && e.write) {
          yield* slot.modify(
            (o) => (o.kind === 'present' ? { ...o, write: false } : null),
            'ptep_set_wrprotect',
          );
          child = { ...e, write: false };
        }
        child = { ...child, young: false, ...(src.isShared ? { dirty: false } : {}) } as Pte;
        break;
      }
      case 'swap': {
        const slotNr = e.slot;
        yield* sys.swap.update('swap_duplicate', (s) => {
          s.slots[slotNr]!.count++;
        });
        if (e.exclusive)
          yield* slot.modify(
            (o) => (o.kind === 'swap' ? { ...o, exclusive: false } : null),
            'pte_swp_clear_exclusive',
          );
        child = { kind: 'swap', slot: e.slot, exclusive: false };
        dstMm.rss.swap++;
        break;
      }
      case 'migration': {
        if (e.write && isCow) {
          yield* slot.modify(
            (o) => (o.kind === 'migration' ? { ...o, write: false } : null),
            'make_readable_migration_entry',
          );
        }
        if (isCow) {
          // A writable or readable-exclusive migration entry becomes a plain readable one: the
          // page is no longer exclusive once it is restored (the model keeps PageAnonExclusive on
          // the folio during migration instead of in the entry).
          const mf = sys.mem.folioAt(e.pfn);
          const mi = mf ? e.pfn - mf.pfn : 0;
          if (mf?.anon && mf.anonExclusive[mi]) {
            yield* mf.update('make_readable_migration_entry', (f) => {
              f.anonExclusive[mi] = false;
            });
          }
        }
        child = { ...e, write: isCow ? false : e.write };
        const f = sys.mem.folioAt(e.pfn);
        if (f && !f.anon) dstMm.rss[f.mapping?.shmem ? 'shmem' : 'file']++;
        else dstMm.rss.anon++;
        break;
      }
      case 'device-private': {
        const folio = sys.mem.folioAt(e.pfn)!;
        const i = e.pfn - folio.pfn;
        yield* folio.update('folio_try_dup_anon_rmap_pte', (f) => {
          f.refcount++;
          f.mapcount[i]!++;
          f.anonExclusive[i] = false;
        });
        if (e.write && isCow) {
          yield* slot.modify(
            (o) => (o.kind === 'device-private' ? { ...o, write: false } : null),
            'make_readable_device_private_entry',
          );
        }
        child = { ...e, write: isCow ? false : e.write };
        dstMm.rss.anon++;
        break;
      }
      default:
        continue;
    }
    dstTable.slot(addr).entry = child;
  }
  yield* srcTable.ptl.unlock();
  yield* dstTable.ptl.unlock();
  return ret;
}
