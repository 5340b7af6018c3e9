/**
 * Transparent huge pages (mm/huge_memory.c): PMD-mapped anonymous THP faults, the write-protect
 * fault on a huge PMD, `__split_huge_pmd` (PMD → 512 PTEs), `zap_huge_pmd`, `change_huge_pmd`,
 * and `split_folio` (one order-9 folio → 512 order-0 folios).
 *
 * Not modelled: the huge zero page (a read fault allocates a THP), khugepaged collapse, PMD
 * migration entries (migration splits first), file and shmem THPs.
 */
import { EAGAIN, EINVAL, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  PAGE_SIZE,
  PMD_SIZE,
  VM_FAULT_FALLBACK,
  VM_FAULT_SIGBUS,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_WRITE,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import type { VmFault } from './fault.js';
import type { Folio } from './folio.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import { type HugePmd, PMD_NONE, type PmdSlot, PteTable, pmdSame } from './pgtable.js';
import { folioPut } from './physmem.js';
import {
  addNewAnonRmap,
  anonVmaPrepare,
  folioRemoveRmapPmdAndPut,
  removeMigrationPtes,
  tryToMigrate,
} from './rmap.js';
import type { System } from './system.js';
import type { Vma } from './vma.js';

/** `thp_vma_allowable_order()` + `thp_vma_suitable_order()` for a PMD THP at `addr`. */
export function thpEligible(vma: Vma, addr: number): boolean {
  const sys = vma.mm.system;
  if (!vma.isAnonymous || vma.isShared) return false;
  if (vma.flags & VM_NOHUGEPAGE) return false;
  if (sys.thp === 'never' || (sys.thp === 'madvise' && !(vma.flags & VM_HUGEPAGE))) return false;
  const haddr = alignDown(addr, PMD_SIZE);
  return haddr >= vma.start && haddr + PMD_SIZE <= vma.end;
}

/** models do_huge_pmd_anonymous_page(): VM_FAULT_FALLBACK sends the fault to the PTE level. */
export function* doHugePmdAnonymousPage(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const sys = mm.system;
  const haddr = alignDown(vmf.address, PMD_SIZE);
  yield* anonVmaPrepare(vma);
  const folio = yield* sys.mem.alloc(HPAGE_PMD_ORDER, 'vma_alloc_anon_folio_pmd');
  if (!folio) return VM_FAULT_FALLBACK;
  const pmdSlot = vmf.pmdSlot;
  yield* mm.pageTable.pmdLock.lock('pmd_lock');
  const cur = yield* pmdSlot.get();
  if (cur.kind !== 'none') {
    yield* mm.pageTable.pmdLock.unlock();
    yield* folioPut(sys.mem, folio);
    return cur.kind === 'table' ? VM_FAULT_FALLBACK : 0;
  }
  if (yield* mm.unstable.read('check_stable_address_space')) {
    yield* mm.pageTable.pmdLock.unlock();
    yield* folioPut(sys.mem, folio);
    return VM_FAULT_SIGBUS;
  }
  addNewAnonRmap(folio, vma, haddr, 'pmd');
  const write = (vma.flags & VM_WRITE) !== 0;
  yield* pmdSlot.set({ kind: 'huge', pfn: folio.pfn, write, dirty: true, young: true }, 'set_pmd_at');
  mm.rss.anon += HPAGE_PMD_NR;
  yield* mm.pageTable.pmdLock.unlock();
  return 0;
}

/**
 * models do_huge_pmd_wp_page(): reuse an exclusive THP, otherwise split the PMD and let the fault
 * retry at the PTE level (VM_FAULT_FALLBACK), where the COW happens page by page.
 */
export function* doHugePmdWpPage(vmf: VmFault, orig: HugePmd): Routine<number> {
  const mm = vmf.vma.mm;
  const folio = mm.system.mem.folioAt(orig.pfn);
  yield* mm.pageTable.pmdLock.lock('pmd_lock');
  const cur = vmf.pmdSlot.entry;
  if (!pmdSame(cur, orig) || !folio) {
    yield* mm.pageTable.pmdLock.unlock();
    return 0;
  }
  const reuse = yield* folio.inspect(
    'PageAnonExclusive',
    (f) => f.anon && (f.anonExclusive[0]! || (f.refcount === 1 && f.swapSlot === null)),
  );
  if (reuse) {
    yield* vmf.pmdSlot.modify(
      (o) => (o.kind === 'huge' ? { ...o, write: true, dirty: true, young: true } : null),
      'wp_huge_pmd_reuse',
    );
    if (!folio.anonExclusive[0]) {
      yield* folio.update('SetPageAnonExclusive', (f) => {
        f.anonExclusive.fill(true);
      });
    }
    yield* mm.pageTable.pmdLock.unlock();
    return 0;
  }
  yield* mm.pageTable.pmdLock.unlock();
  yield* splitHugePmd(vmf.vma, alignDown(vmf.address, PMD_SIZE));
  return VM_FAULT_FALLBACK;
}

/**
 * `__split_huge_pmd()`: replaces a huge PMD by a PTE table mapping the same 512 pages with the
 * same permissions, inside a CLEAR notifier range over the PMD. The folio stays large.
 */
export function* splitHugePmd(vma: Vma, addr: number): Routine {
  const mm = vma.mm;
  const haddr = alignDown(addr, PMD_SIZE);
  const range = new MmuNotifierRange({
    mm,
    start: haddr,
    end: haddr + PMD_SIZE,
    event: MmuNotifyEvent.CLEAR,
  });
  yield* invalidateRangeStart(range);
  yield* splitHugePmdLocked(vma, mm.pageTable.pmdSlot(haddr));
  yield* invalidateRangeEnd(range);
}

/** The body of `__split_huge_pmd_locked()` (takes and drops the PMD lock itself). */
function* splitHugePmdLocked(vma: Vma, pmdSlot: PmdSlot): Routine {
  const mm = vma.mm;
  yield* mm.pageTable.pmdLock.lock('pmd_lock');
  const pmd = pmdSlot.entry;
  if (pmd.kind === 'huge') {
    const folio = mm.system.mem.folioAt(pmd.pfn)!;
    // The new table is private until set_pmd_at publishes it: fill it without scheduling points.
    const table = new PteTable(mm.sim, mm, pmdSlot.addr);
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      table.slot(pmdSlot.addr + i * PAGE_SIZE).entry = {
        kind: 'present',
        pfn: pmd.pfn + i,
        write: pmd.write,
        dirty: pmd.dirty,
        young: pmd.young,
        ...(pmd.protnone ? { protnone: true } : {}),
      };
    }
    yield* folio.update('__split_huge_pmd_locked', (f) => {
      f.entireMapcount--;
      for (let i = 0; i < f.nr; i++) f.mapcount[i]!++;
      f.refcount += HPAGE_PMD_NR - 1;
    });
    yield* pmdSlot.set({ kind: 'table', table }, 'pmd_populate');
  }
  yield* mm.pageTable.pmdLock.unlock();
}

/** `zap_huge_pmd()`: true if a huge PMD was removed (the caller falls back to PTEs otherwise). */
export function* zapHugePmd(vma: Vma, pmdSlot: PmdSlot): Routine<boolean> {
  const mm = vma.mm;
  yield* mm.pageTable.pmdLock.lock('pmd_lock');
  const old = yield* pmdSlot.modify(
    (o) => (o.kind === 'huge' ? PMD_NONE : null),
    'pmdp_huge_get_and_clear_full',
  );
  if (old.kind === 'huge') {
    const folio = mm.system.mem.folioAt(old.pfn)!;
    mm.rss.anon -= HPAGE_PMD_NR;
    yield* folioRemoveRmapPmdAndPut(mm.system, folio, old.dirty);
  }
  yield* mm.pageTable.pmdLock.unlock();
  return old.kind === 'huge';
}

/**
 * `split_folio()`: splits a locked, referenced, anonymous PMD-sized folio into order-0 folios.
 * Every mapping is first replaced by a migration entry (PMD mappings are split), the reference
 * count is frozen (it must be the caller's reference only), the pfns move to the new folios and the
 * migration entries are removed again. Returns the new folios (the caller's lock and reference move
 * to part `keep`), or -EAGAIN / -EINVAL.
 */
export function* splitFolio(sys: System, folio: Folio, keep = 0): Routine<Folio[] | number> {
  if (!folio.large) return [folio];
  if (!folio.anon || folio.swapSlot !== null) return -EINVAL;
  yield* tryToMigrate(sys, folio);
  const frozen = yield* folio.update('folio_ref_freeze', (f) => {
    if (f.mapped || f.refcount !== 1) return false;
    f.refcount = 0;
    return true;
  });
  if (!frozen) {
    yield* removeMigrationPtes(folio, folio);
    return -EAGAIN;
  }
  const t = sys.sim.current;
  const parts = yield* sys.mem.update('__split_unmapped_folio', (mem) => {
    const out: Folio[] = [];
    for (let i = 0; i < folio.nr; i++) {
      const p = mem.newFolioForSplit(folio.pfn + i, 0, folio.zone, folio.pgmap);
      p.refcount = i === keep ? 1 : 0;
      p.anon = true;
      p.anonVma = folio.anonVma;
      p.index = folio.index + i;
      p.anonExclusive[0] = folio.anonExclusive[i]!;
      p.dirty = folio.dirty;
      p.data[0] = folio.data[i]!;
      // Every part stays locked until its migration entries are gone, like the kernel's tails.
      p.locked = true;
      p.lockedBy = t;
      out.push(p);
    }
    mem.transferPfns(folio, out);
    return out;
  });
  yield* removeMigrationPtes(folio, parts[0]!, (i) => ({ folio: parts[i]!, i: 0 }));
  for (let i = 0; i < parts.length; i++) {
    if (i === keep) continue;
    const p = parts[i]!;
    yield* p.unlock('split: unlock tail');
    const unused = yield* p.inspect('folio_ref_count', (f) => f.refcount === 0);
    if (unused) yield* sys.mem.free(p, 'split: free unmapped part');
  }
  return parts;
}
