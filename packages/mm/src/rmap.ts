/**
 * Reverse mapping (mm/rmap.c): folio mapcount bookkeeping, the rmap walk, and the walkers that
 * replace every mapping of a folio: `try_to_unmap` (reclaim) and `try_to_migrate` (migration and
 * THP split), plus `remove_migration_ptes`.
 */
import type { Routine } from '@hmmkit/sim';
import { alignDown, PAGE_SIZE, PMD_SIZE, VM_EXEC, VM_READ, VM_WRITE } from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import type { Folio } from './folio.js';
import { splitHugePmd } from './huge-memory.js';
import type { Mm } from './mm.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import type { Pte, PteTable } from './pgtable.js';
import type { System } from './system.js';
import { AnonVma, type Vma } from './vma.js';

/** `__anon_vma_prepare()`: gives `vma` an anon_vma before its first anonymous folio. */
export function* anonVmaPrepare(vma: Vma): Routine {
  if (vma.anonVma) return;
  const pt = vma.mm.pageTable;
  yield* pt.pmdLock.lock('anon_vma_prepare');
  if (!vma.anonVma) {
    const av = new AnonVma(vma.mm.sim);
    av.vmas.add(vma);
    vma.anonVma = av;
  }
  yield* pt.pmdLock.unlock('anon_vma_prepare');
}

/**
 * `folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE)` for a freshly allocated folio that
 * no other thread can see yet (so no scheduling point): PTE-mapped (order 0) or PMD-mapped.
 */
export function addNewAnonRmap(folio: Folio, vma: Vma, addr: number, level: 'pte' | 'pmd'): void {
  folio.anon = true;
  folio.anonVma = vma.anonVma;
  folio.index = vma.linearPageIndex(addr);
  folio.anonExclusive.fill(true);
  folio.lazyfree = false;
  if (level === 'pmd') folio.entireMapcount = 1;
  else folio.mapcount[0] = 1;
}

/** `folio_add_anon_rmap_pte()` / `folio_add_file_rmap_pte()` with the mapping's reference. */
export function* folioAddRmapPte(folio: Folio, i: number, exclusive = false, label?: string): Routine {
  yield* folio.update(
    'folio_add_rmap_pte',
    (f) => {
      f.mapcount[i]!++;
      f.refcount++;
      if (exclusive) f.anonExclusive[i] = true;
    },
    label,
  );
}

/**
 * `folio_remove_rmap_pte()` followed by the put of the mapping's reference (zap, COW, unmap): one
 * step, then the free if it was the last reference.
 */
export function* folioRemoveRmapPteAndPut(
  sys: System,
  folio: Folio,
  i: number,
  opts: { dirty?: boolean; clearExclusive?: boolean } = {},
  label?: string,
): Routine {
  const last = yield* folio.update(
    'folio_remove_rmap_pte',
    (f) => {
      if (f.mapcount[i]! <= 0) f.sim.fail('bad-page', `${f.name}: page ${i} mapcount underflow`);
      f.mapcount[i]!--;
      if (opts.dirty) f.dirty = true;
      if (opts.clearExclusive) f.anonExclusive[i] = false;
      if (f.refcount <= 0) f.sim.fail('refcount', `${f.name}: refcount underflow on unmap`);
      f.refcount--;
      return f.refcount === 0;
    },
    label,
  );
  if (last) yield* sys.mem.free(folio, label);
}

/** `folio_remove_rmap_pmd()` + put, for a PMD-mapped THP. */
export function* folioRemoveRmapPmdAndPut(
  sys: System,
  folio: Folio,
  dirty: boolean,
  label?: string,
): Routine {
  const last = yield* folio.update(
    'folio_remove_rmap_pmd',
    (f) => {
      if (f.entireMapcount <= 0) f.sim.fail('bad-page', `${f.name}: entire mapcount underflow`);
      f.entireMapcount--;
      if (dirty) f.dirty = true;
      f.refcount--;
      return f.refcount === 0;
    },
    label,
  );
  if (last) yield* sys.mem.free(folio, label);
}

/**
 * `rmap_walk()`: calls `visit` for every VMA that may map `folio`, holding the anon_vma (or
 * i_mmap) lock for read. `visit` returns false to stop.
 */
export function* rmapWalk(folio: Folio, visit: (vma: Vma) => Routine<boolean>): Routine {
  if (folio.anon) {
    const av = folio.anonVma;
    if (!av) return;
    yield* av.rwsem.downRead('anon_vma_lock_read');
    for (const vma of [...av.vmas]) {
      if (vma.detached) continue;
      if (!(yield* visit(vma))) break;
    }
    yield* av.rwsem.upRead('anon_vma_unlock_read');
  } else if (folio.mapping) {
    const file = folio.mapping;
    yield* file.iMmapRwsem.downRead('i_mmap_lock_read');
    for (const vma of [...file.iMmap]) {
      if (vma.detached) continue;
      if (!(yield* visit(vma))) break;
    }
    yield* file.iMmapRwsem.upRead('i_mmap_unlock_read');
  }
}

/** The (page index, address) pairs of `folio`'s pages that fall inside `vma`. */
export function folioPagesIn(folio: Folio, vma: Vma): { i: number; addr: number }[] {
  const out: { i: number; addr: number }[] = [];
  for (let i = 0; i < folio.nr; i++) {
    const addr = vma.addressOf(folio.index + i);
    if (addr !== null) out.push({ i, addr });
  }
  return out;
}

/** Groups page addresses by the PTE table (2 MiB region) they fall in. */
function byPmd(pages: { i: number; addr: number }[]): Map<number, { i: number; addr: number }[]> {
  const m = new Map<number, { i: number; addr: number }[]>();
  for (const p of pages) {
    const k = alignDown(p.addr, PMD_SIZE);
    let l = m.get(k);
    if (!l) {
      l = [];
      m.set(k, l);
    }
    l.push(p);
  }
  return m;
}

/** How `try_to_unmap_one` / `try_to_migrate_one` replace a mapping. */
export type UnmapMode =
  /** Anonymous reclaim: a swap entry for the folio's swap slot. */
  | 'swap'
  /** Page-cache reclaim: the PTE becomes none. */
  | 'file'
  /** A clean MADV_FREE folio: dropped (the PTE becomes none); aborts if the page was redirtied. */
  | 'discard'
  /** Migration or split: a migration entry. */
  | 'migrate';

/**
 * One VMA of `try_to_unmap()` / `try_to_migrate()`: splits a PMD mapping of the folio first
 * (TTU_SPLIT_HUGE_PMD), then, inside a CLEAR notifier range, replaces each PTE (present or
 * device-exclusive) mapping the folio. Returns false if the walk must stop (pinned page, redirtied
 * lazy-free folio, swap map failure).
 */
export function* unmapFolioInVma(sys: System, folio: Folio, vma: Vma, mode: UnmapMode): Routine<boolean> {
  const pages = folioPagesIn(folio, vma);
  if (pages.length === 0) return true;
  const mm = vma.mm;
  const groups = byPmd(pages);
  for (const [pmdAddr] of groups) {
    const pmd = yield* mm.pageTable.pmdSlot(pmdAddr).get('page_vma_mapped_walk');
    if (pmd.kind === 'huge' && folio.containsPfn(pmd.pfn)) {
      // models split_huge_pmd_address() under TTU_SPLIT_HUGE_PMD
      yield* splitHugePmd(vma, pmdAddr);
    }
  }
  let start = pages[0]!.addr;
  let end = pages[pages.length - 1]!.addr + PAGE_SIZE;
  if (folio.large) {
    start = Math.max(vma.start, alignDown(start, PMD_SIZE));
    end = Math.min(vma.end, alignDown(end - 1, PMD_SIZE) + PMD_SIZE);
  }
  const range = new MmuNotifierRange({ mm, start, end, event: MmuNotifyEvent.CLEAR });
  yield* invalidateRangeStart(range);
  let ok = true;
  for (const [pmdAddr, list] of groups) {
    const pmd = yield* mm.pageTable.pmdSlot(pmdAddr).get('page_vma_mapped_walk');
    if (pmd.kind !== 'table') continue;
    ok = yield* unmapInTable(sys, folio, vma, pmd.table, list, mode);
    if (!ok) break;
  }
  yield* invalidateRangeEnd(range);
  return ok;
}

function* unmapInTable(
  sys: System,
  folio: Folio,
  vma: Vma,
  table: PteTable,
  list: { i: number; addr: number }[],
  mode: UnmapMode,
): Routine<boolean> {
  const mm = vma.mm;
  yield* table.ptl.lock('page_vma_mapped_walk');
  let ok = true;
  for (const { i, addr } of list) {
    const slot = table.existingSlot(addr);
    if (!slot) continue;
    const e = slot.entry;
    const pfn = folio.pfn + i;
    const isPresent = e.kind === 'present' && e.pfn === pfn && !e.zero && !e.special;
    // Old-API device-exclusive entries hold no mapcount, and the rmap walkers of their era did
    // not handle them: they are left alone (the folio then stays mapped or referenced).
    const isExcl = e.kind === 'device-exclusive' && e.pfn === pfn && !e.old;
    // try_to_migrate_one() also turns device-private entries into migration entries.
    const isDevPriv = mode === 'migrate' && e.kind === 'device-private' && e.pfn === pfn;
    if (!isPresent && !isExcl && !isDevPriv) continue;
    const write = isPresent || isDevPriv ? (e as { write: boolean }).write : false;
    const dirty = isPresent ? e.dirty : false;
    const young = isPresent ? e.young : false;
    let next: Pte;
    if (mode === 'migrate') {
      next = { kind: 'migration', pfn, write, young, dirty };
    } else if (mode === 'file') {
      next = { kind: 'none' };
    } else if (mode === 'discard') {
      if (dirty || folio.dirty) {
        // models the redirtied MADV_FREE case: folio_set_swapbacked() and abort the walk
        yield* folio.update('folio_set_swapbacked', (f) => {
          f.lazyfree = false;
        });
        ok = false;
        break;
      }
      next = { kind: 'none' };
    } else {
      const exclusive = folio.anonExclusive[i]!;
      if (exclusive && folio.pincount > 0) {
        // models folio_try_share_anon_rmap_pte() failing on a maybe-pinned page
        ok = false;
        break;
      }
      const slotNr = folio.swapSlot! + i;
      yield* sys.swap.update('swap_duplicate', (s) => {
        s.slots[slotNr]!.count++;
      });
      next = { kind: 'swap', slot: slotNr, exclusive };
    }
    yield* slot.set(next, mode === 'migrate' ? 'try_to_migrate_one' : 'try_to_unmap_one');
    if (mode === 'swap') {
      mm.rss.anon--;
      mm.rss.swap++;
    } else if (mode === 'file') {
      if (vma.file?.shmem) mm.rss.shmem--;
      else mm.rss.file--;
    } else if (mode === 'discard') {
      mm.rss.anon--;
    }
    yield* folioRemoveRmapPteAndPut(sys, folio, i, { dirty, clearExclusive: mode === 'swap' });
  }
  yield* table.ptl.unlock('page_vma_mapped_walk_done');
  return ok;
}

/**
 * `try_to_unmap(folio)` (caller holds the folio lock and a reference). `mode` is 'swap' for an
 * anonymous folio in the swap cache, 'file' for page cache, 'discard' for a clean lazy-free folio.
 * Returns false if it had to stop early.
 */
export function* tryToUnmap(
  sys: System,
  folio: Folio,
  mode: Exclude<UnmapMode, 'migrate'>,
): Routine<boolean> {
  let ok = true;
  yield* rmapWalk(folio, function* (vma) {
    ok = yield* unmapFolioInVma(sys, folio, vma, mode);
    return ok;
  });
  return ok;
}

/** `try_to_migrate(folio)`: every mapping becomes a migration entry (caller holds the lock). */
export function* tryToMigrate(sys: System, folio: Folio): Routine {
  yield* rmapWalk(folio, (vma) => unmapFolioInVma(sys, folio, vma, 'migrate'));
}

/**
 * `remove_migration_ptes(src, dst)`: every migration entry for a page of `src` becomes a present
 * PTE for the page of `dst` with the same index (`dst` may be `src`: failed migration). `pick`
 * maps a source page index to the destination folio and page (used by THP split).
 */
export function* removeMigrationPtes(
  src: Folio,
  dst: Folio,
  pick: (i: number) => { folio: Folio; i: number } = (i) => ({ folio: dst, i }),
): Routine {
  yield* rmapWalk(src, function* (vma) {
    const pages = folioPagesIn(src, vma);
    for (const [pmdAddr, list] of byPmd(pages)) {
      const pmd = yield* vma.mm.pageTable.pmdSlot(pmdAddr).get('page_vma_mapped_walk');
      if (pmd.kind !== 'table') continue;
      const table = pmd.table;
      yield* table.ptl.lock('remove_migration_pte');
      for (const { i, addr } of list) {
        const slot = table.existingSlot(addr);
        const e = slot?.entry;
        if (!slot || e?.kind !== 'migration' || e.pfn !== src.pfn + i) continue;
        const target = pick(i);
        // The new PTE is built from the VMA's protection (vm_page_prot): PROT_NONE stays protnone.
        const writable = e.write && (vma.flags & VM_WRITE) !== 0;
        const accessible = (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
        yield* target.folio.update('folio_add_rmap_pte', (f) => {
          f.mapcount[target.i]!++;
          f.refcount++;
        });
        const pfn = target.folio.pfn + target.i;
        // A device-private destination is mapped by a device-private entry, never a present PTE.
        yield* slot.set(
          target.folio.zone === 'device-private'
            ? { kind: 'device-private', pfn, write: writable }
            : {
                kind: 'present',
                pfn,
                write: writable,
                dirty: e.dirty && writable,
                young: e.young,
                ...(accessible ? {} : { protnone: true }),
              },
          'remove_migration_pte',
        );
      }
      yield* table.ptl.unlock('remove_migration_pte');
    }
    return true;
  });
}

/** Where a present page-table entry of `mm` maps page `i` of `folio` (for tests and checkers). */
export function folioMappings(sys: System, folio: Folio): { mm: Mm; addr: number; level: 'pte' | 'pmd' }[] {
  const out: { mm: Mm; addr: number; level: 'pte' | 'pmd' }[] = [];
  for (const mm of sys.mms) {
    for (const pmdSlot of mm.pageTable.allPmds()) {
      const pmd = pmdSlot.entry;
      if (pmd.kind === 'huge' && folio.containsPfn(pmd.pfn))
        out.push({ mm, addr: pmdSlot.addr, level: 'pmd' });
      if (pmd.kind === 'table') {
        for (const s of pmd.table.used()) {
          const e = s.entry;
          if (
            (e.kind === 'present' || e.kind === 'device-exclusive' || e.kind === 'device-private') &&
            folio.containsPfn(e.pfn)
          ) {
            out.push({ mm, addr: s.addr, level: 'pte' });
          }
        }
      }
    }
  }
  return out;
}
