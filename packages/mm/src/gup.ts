/**
 * get_user_pages for one page (mm/gup.c `get_user_page_vma_remote` → `__get_user_pages`): look
 * the page up in the page tables and, if the entry does not allow the access, fault it in
 * (`faultin_page` → `handle_mm_fault`) and look again. The caller holds the mmap_lock (read).
 *
 * What this gives the models built on it (device-exclusive entries, tests): a page of a normal
 * (or device-coherent) folio with a reference, never a device-private page (a device-private
 * entry is not present, so GUP faults it back to system memory through `migrate_to_ram`).
 * FOLL_PIN, FOLL_LONGTERM (and its migration of device-coherent pages) and hugetlb are not
 * modelled.
 */
import { EFAULT, ENOMEM, EOPNOTSUPP, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  PAGE_SIZE,
  PMD_SIZE,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_HUGETLB,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
} from './constants.js';
import { handleMmFault } from './fault.js';
import type { Folio } from './folio.js';
import { splitHugePmd } from './huge-memory.js';
import type { Mm } from './mm.js';
import type { Vma } from './vma.js';

/** `FOLL_WRITE`: the page must be mapped writable (breaks COW). */
export const FOLL_WRITE = 1 << 0;
/** `FOLL_GET`: take a folio reference (the only mode modelled). */
export const FOLL_GET = 1 << 1;
/** `FOLL_SPLIT_PMD`: split a PMD mapping of a THP into PTEs first. */
export const FOLL_SPLIT_PMD = 1 << 9;

/** A page returned by GUP: its folio (referenced), the page index in it, and the VMA. */
export interface GupPage {
  folio: Folio;
  index: number;
  vma: Vma;
}

/** models check_vma_flags(): 0 or -EFAULT / -EOPNOTSUPP. */
function checkVmaFlags(vma: Vma, gupFlags: number): number {
  if (vma.flags & (VM_IO | VM_PFNMAP)) return -EFAULT;
  if (gupFlags & FOLL_SPLIT_PMD && vma.flags & VM_HUGETLB) return -EOPNOTSUPP;
  if (gupFlags & FOLL_WRITE) return vma.flags & VM_WRITE ? 0 : -EFAULT;
  return vma.flags & VM_READ ? 0 : -EFAULT;
}

type Follow = GupPage | 'fault' | 'again' | 'split' | number;

/** models follow_page_mask(): the page at `addr` with a reference, or what to do instead. */
function* followPageMask(vma: Vma, addr: number, gupFlags: number): Routine<Follow> {
  const mm = vma.mm;
  const mem = mm.system.mem;
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const pt = mm.pageTable;
  const pmdSlot = pt.pmdSlot(addr);
  const pmd = yield* pmdSlot.get('follow_pmd_mask');
  if (pmd.kind === 'none') return 'fault';
  if (pmd.kind === 'huge') {
    if (gupFlags & FOLL_SPLIT_PMD) {
      yield* splitHugePmd(vma, addr);
      return 'split';
    }
    yield* pt.pmdLock.lock('follow_huge_pmd');
    const cur = pmdSlot.entry;
    let out: Follow = 'again';
    if (cur.kind === 'huge') {
      if (cur.protnone || (write && !cur.write)) out = 'fault';
      else {
        const folio = mem.folioAt(cur.pfn)!;
        if (yield* folio.tryGet('try_grab_folio')) {
          out = { folio, index: Math.floor((addr - alignDown(addr, PMD_SIZE)) / PAGE_SIZE), vma };
        }
      }
    }
    yield* pt.pmdLock.unlock();
    return out;
  }
  const table = pmd.table;
  yield* table.ptl.lock('follow_page_pte');
  const e = table.peek(addr);
  let out: Follow = 'fault';
  if (e.kind === 'present' && !e.protnone && (!write || e.write)) {
    if (e.zero) {
      out = { folio: mem.zeroFolio, index: 0, vma };
    } else if (e.special) {
      out = -EFAULT; // no struct page (vm_normal_page() is NULL)
    } else {
      const folio = mem.folioAt(e.pfn)!;
      out = (yield* folio.tryGet('try_grab_folio')) ? { folio, index: e.pfn - folio.pfn, vma } : 'again';
    }
  }
  yield* table.ptl.unlock('pte_unmap_unlock');
  return out;
}

/**
 * models get_user_page_vma_remote(mm, addr, gup_flags, &vma): one page, referenced (FOLL_GET), or
 * -EFAULT (no VMA, VMA without the permission, VM_IO/VM_PFNMAP, special pfn, fault error), -ENOMEM
 * (OOM in the fault), -EOPNOTSUPP (FOLL_SPLIT_PMD on hugetlb). The caller holds mmap_lock.
 */
export function* getUserPageVmaRemote(mm: Mm, addr: number, gupFlags: number): Routine<GupPage | number> {
  mm.sim.assertHeld(mm.mmapLock);
  const page = alignDown(addr, PAGE_SIZE);
  const vma = mm.vmaLookup(page);
  if (!vma) return -EFAULT;
  const bad = checkVmaFlags(vma, gupFlags);
  if (bad) return bad;
  const faultFlags = FAULT_FLAG_REMOTE | (gupFlags & FOLL_WRITE ? FAULT_FLAG_WRITE : 0);
  for (;;) {
    const r = yield* followPageMask(vma, page, gupFlags);
    if (typeof r === 'object' || typeof r === 'number') return r;
    if (r === 'split') continue;
    if (r === 'again') {
      yield mm.sim.relax('follow_page_mask retry');
      continue;
    }
    // models faultin_page()
    const ret = yield* handleMmFault(vma, page, faultFlags);
    if (ret & VM_FAULT_OOM) return -ENOMEM;
    if (ret & VM_FAULT_ERROR) return -EFAULT;
    if (ret & VM_FAULT_RETRY) yield mm.sim.relax('faultin_page retry');
  }
}
