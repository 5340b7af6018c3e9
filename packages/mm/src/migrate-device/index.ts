/**
 * `@hmmkit/mm/migrate`: migration to and from device memory (mm/migrate_device.c,
 * include/linux/migrate.h, include/linux/memremap.h), with the v6.19 THP additions.
 *
 * The driver's side of a migration, under `mmap_lock` (read) for the whole sequence:
 *
 * ```ts
 * const args: MigrateVma = { vma, start, end, src: [], dst: [], cpages: 0, npages: 0,
 *   pgmapOwner: myDevice, flags: MIGRATE_VMA_SELECT_SYSTEM, faultPage: null };
 * if (yield* migrateVmaSetup(args)) return -EINVAL;     // collect + unmap: migration entries
 * for (let i = 0; i < args.npages; i++) {                // allocate, lock and copy
 *   if (!(args.src[i]! & MIGRATE_PFN_MIGRATE)) continue;
 *   const d = yield* allocDevicePage(mem, pgmap);
 *   if (d) args.dst[i] = migratePfn(d.pfn);             // leaving 0 declines the page
 * }
 * yield* migrateVmaPages(args);                          // struct page metadata moves
 * yield* migrateVmaFinalize(args);                       // new entries (or the old ones back)
 * ```
 *
 * Best effort throughout: a page that cannot be locked (trylock), is pinned or has unexpected
 * references, is file-backed when going to device memory, or whose hole was filled by a racing CPU
 * fault, silently keeps its old mapping (its `src` entry loses MIGRATE_PFN_MIGRATE).
 *
 * Device-private memory is a `Pgmap` of type 'device-private' (`mem.addPgmap(type, owner, n, ops)`):
 * its pages are only ever mapped by device-private entries, a CPU fault on one calls the pgmap's
 * `migrateToRam(vmf)` with the page locked and referenced, which migrates it back with
 * `faultPage` set (see fault.ts).
 *
 * @module
 */
import { EINVAL, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PMD_SIZE,
  VM_HUGETLB,
  VM_SPECIAL,
  VM_WRITE,
} from '../constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from '../events.js';
import { pteAlloc } from '../fault.js';
import type { Folio, Pgmap } from '../folio.js';
import { splitFolio } from '../huge-memory.js';
import { MmuNotifierRange, MmuNotifyEvent } from '../notifier/index.js';
import { type Pte, PteTable } from '../pgtable.js';
import { currentPhysMem, folioPut, type PhysMem, ZERO_PFN } from '../physmem.js';
import { anonVmaPrepare, removeMigrationPtes, tryToMigrate } from '../rmap.js';
import type { System } from '../system.js';
import type { Vma } from '../vma.js';

/** `MIGRATE_PFN_VALID`: the entry holds a pfn. */
export const MIGRATE_PFN_VALID = 1 << 0;
/** `MIGRATE_PFN_MIGRATE`: the page is selected for (or, after migrate_vma_pages, was) migrated. */
export const MIGRATE_PFN_MIGRATE = 1 << 1;
/** `MIGRATE_PFN_WRITE`: the source was mapped writable / the destination should be. */
export const MIGRATE_PFN_WRITE = 1 << 3;
/** `MIGRATE_PFN_COMPOUND` (v6.19): the entry stands for a whole PMD-sized folio (or hole). */
export const MIGRATE_PFN_COMPOUND = 1 << 4;
/** `MIGRATE_PFN_SHIFT`: the pfn sits above the flag bits. */
export const MIGRATE_PFN_SHIFT = 6;

/** `MIGRATE_VMA_SELECT_SYSTEM`: migrate system-memory pages (and holes, zero pages). */
export const MIGRATE_VMA_SELECT_SYSTEM = 1 << 0;
/** `MIGRATE_VMA_SELECT_DEVICE_PRIVATE`: migrate device-private pages of `pgmapOwner`. */
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1;
/** `MIGRATE_VMA_SELECT_DEVICE_COHERENT`: migrate device-coherent pages of `pgmapOwner`. */
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2;
/** `MIGRATE_VMA_SELECT_COMPOUND` (v6.19): collect PMD-sized THPs and holes whole. */
export const MIGRATE_VMA_SELECT_COMPOUND = 1 << 3;

const FLAG_SPAN = 1 << MIGRATE_PFN_SHIFT;

/** `migrate_pfn(pfn)`: `(pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID`. */
export function migratePfn(pfn: number): number {
  return pfn * FLAG_SPAN + MIGRATE_PFN_VALID;
}

/** The pfn of a migrate entry (`migrate_pfn_to_page()` without the VALID check). */
export function migratePfnToPfn(v: number): number {
  return Math.floor(v / FLAG_SPAN);
}

/** Whether migrate entry `v` has flag `f` (arithmetic: entries may exceed 32 bits). */
function has(v: number, f: number): boolean {
  return ((v % FLAG_SPAN) & f) !== 0;
}

function withFlag(v: number, f: number): number {
  return has(v, f) ? v : v + f;
}

function without(v: number, f: number): number {
  let out = v;
  for (let bit = 1; bit < FLAG_SPAN; bit <<= 1) if (f & bit && has(out, bit)) out -= bit;
  return out;
}

/** `struct migrate_vma`. */
export interface MigrateVma {
  vma: Vma;
  /** Page-aligned `[start, end)` inside `vma`; `end` is reset to what was collected. */
  start: number;
  end: number;
  /** One entry per page (filled by setup; do not modify). */
  src: number[];
  /** One entry per page (filled by the driver between setup and pages). */
  dst: number[];
  /** Entries selected for migration (MIGRATE set), including holes. */
  cpages: number;
  /** Entries collected. */
  npages: number;
  /** Selects the device pages to migrate, and is the owner of the MMU_NOTIFY_MIGRATE ranges. */
  pgmapOwner: unknown;
  /** `MIGRATE_VMA_SELECT_*`. */
  flags: number;
  /** From `migrate_to_ram`: the faulting device-private page, locked by the fault path. */
  faultPage: Folio | null;
}

/** The folio of a migrate entry, or null if it has no page (a hole, the zero page, 0). */
function entryFolio(mem: PhysMem, v: number): Folio | null {
  if (!has(v, MIGRATE_PFN_VALID)) return null;
  return mem.folioAt(migratePfnToPfn(v));
}

// ---------------------------------------------------------------------------------------------
// Device page allocation.

/**
 * A device page of `pgmap`, referenced and locked, ready to be a migration destination (a
 * driver's allocator followed by `zone_device_page_init()`), or null when the pgmap is full.
 * `order` 9 gives a device THP for a MIGRATE_PFN_COMPOUND destination.
 */
export function* allocDevicePage(mem: PhysMem, pgmap: Pgmap, order = 0): Routine<Folio | null> {
  const f = yield* mem.allocDevice(pgmap, order, 'zone_device_page_init');
  if (f) {
    // Nobody else can see the new page yet: its lock is simply taken.
    f.locked = true;
    f.lockedBy = mem.sim.current;
  }
  return f;
}

/**
 * A system page, referenced and locked, for the device-to-RAM direction (`alloc_page_vma()` +
 * `lock_page()` in a driver's `migrate_to_ram`), or null (out of memory).
 */
export function* allocSystemPage(mem: PhysMem, order = 0): Routine<Folio | null> {
  const f = yield* mem.alloc(order, 'alloc_page_vma');
  if (f) {
    f.locked = true;
    f.lockedBy = mem.sim.current;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Collect.

interface Collect {
  args: MigrateVma;
  sys: System;
  faultFolio: Folio | null;
}

/** models migrate_vma_collect_skip(): entries that will not migrate. */
function collectSkip(c: Collect, start: number, end: number): void {
  const a = c.args;
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    a.dst[a.npages] = 0;
    a.src[a.npages++] = 0;
  }
}

/** models migrate_vma_collect_hole(): empty addresses of an anonymous VMA may be populated. */
function collectHole(c: Collect, start: number, end: number): void {
  const a = c.args;
  if (!a.vma.isAnonymous) {
    collectSkip(c, start, end);
    return;
  }
  if (a.flags & MIGRATE_VMA_SELECT_COMPOUND && start % PMD_SIZE === 0 && end % PMD_SIZE === 0) {
    a.src[a.npages] = MIGRATE_PFN_MIGRATE + MIGRATE_PFN_COMPOUND;
    a.dst[a.npages++] = 0;
    a.cpages++;
    // The rest of the PMD is collected as skipped entries, in case it must be split later.
    collectSkip(c, start + PAGE_SIZE, end);
    return;
  }
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    a.src[a.npages] = MIGRATE_PFN_MIGRATE;
    a.dst[a.npages++] = 0;
    a.cpages++;
  }
}

/**
 * models migrate_vma_split_folio(): splits a PTE-mapped large folio so its pages migrate one by
 * one; `keep` is the page being collected. When the folio is the fault page's, the fault page's
 * new (small) folio keeps the fault path's lock and reference, and becomes `faultPage`
 * (`page_folio(fault_page)` after the split). 0 on success.
 */
function* splitForCollect(c: Collect, folio: Folio, keep: number): Routine<number> {
  const sys = c.sys;
  const isFault = folio === c.faultFolio;
  if (!isFault) {
    yield* folio.get('folio_get');
    yield* folio.lock('folio_lock');
  }
  const parts = yield* splitFolio(sys, folio, isFault ? keep : 0);
  if (typeof parts === 'number') {
    if (!isFault) {
      yield* folio.unlock();
      yield* folioPut(sys.mem, folio);
    }
    return parts;
  }
  if (isFault) {
    c.faultFolio = parts[keep]!;
    c.args.faultPage = parts[keep]!;
  } else {
    yield* parts[0]!.unlock();
    yield* folioPut(sys.mem, parts[0]!);
  }
  return 0;
}

type HugeResult = 'done' | 'again' | 'ptes';

/**
 * models migrate_vma_collect_huge_pmd() (v6.19): a PMD-mapped THP. With SELECT_COMPOUND over a
 * whole PMD it is collected as one compound entry; otherwise it is split and its pages go through
 * the PTE path. The model has no PMD migration entries: `set_pmd_migration_entry()` is modelled by
 * replacing the huge PMD, under the PMD lock, with a PTE table of 512 migration entries (the folio
 * stays large and migrates whole).
 */
function* collectHugePmd(c: Collect, start: number, end: number): Routine<HugeResult> {
  const a = c.args;
  const mm = a.vma.mm;
  const sys = c.sys;
  const pt = mm.pageTable;
  const pmdSlot = pt.pmdSlot(start);
  yield* pt.pmdLock.lock('pmd_lock');
  const cur = pmdSlot.entry;
  if (cur.kind !== 'huge') {
    yield* pt.pmdLock.unlock();
    if (cur.kind === 'none') {
      collectHole(c, start, end);
      return 'done';
    }
    return 'again';
  }
  if (!(a.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
    yield* pt.pmdLock.unlock();
    collectSkip(c, start, end);
    return 'done';
  }
  const folio = sys.mem.folioAt(cur.pfn)!;
  yield* folio.get('folio_get');
  if (folio !== c.faultFolio && !(yield* folio.trylock('folio_trylock'))) {
    yield* pt.pmdLock.unlock();
    yield* folioPut(sys.mem, folio);
    collectSkip(c, start, end);
    return 'done';
  }
  if (a.flags & MIGRATE_VMA_SELECT_COMPOUND && start % PMD_SIZE === 0 && end % PMD_SIZE === 0) {
    // models set_pmd_migration_entry(), as a table of PTE migration entries (see above).
    const table = new PteTable(mm.sim, mm, pmdSlot.addr);
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      table.slot(pmdSlot.addr + i * PAGE_SIZE).entry = {
        kind: 'migration',
        pfn: cur.pfn + i,
        write: cur.write,
        young: cur.young,
        dirty: cur.dirty,
      };
    }
    if (cur.dirty) {
      yield* folio.update('folio_mark_dirty', (f) => {
        f.dirty = true;
      });
    }
    yield* pmdSlot.set({ kind: 'table', table }, 'set_pmd_migration_entry');
    yield* folio.update('folio_remove_rmap_pmd', (f) => {
      f.entireMapcount--;
      f.refcount--;
    });
    yield* pt.pmdLock.unlock();
    a.src[a.npages] =
      migratePfn(folio.pfn) +
      MIGRATE_PFN_MIGRATE +
      MIGRATE_PFN_COMPOUND +
      (cur.write ? MIGRATE_PFN_WRITE : 0);
    a.dst[a.npages++] = 0;
    a.cpages++;
    collectSkip(c, start + PAGE_SIZE, end);
    return 'done';
  }
  // Fallback: split the THP (split_folio) and collect its pages one by one.
  yield* pt.pmdLock.unlock();
  const parts = yield* splitFolio(sys, folio, 0);
  const holder = typeof parts === 'number' ? folio : parts[0]!;
  if (holder !== c.faultFolio) yield* holder.unlock();
  yield* folioPut(sys.mem, holder);
  if (typeof parts === 'number') {
    collectSkip(c, start, end);
    return 'done';
  }
  return 'ptes';
}

/**
 * A THP reached through PTEs, with the PTL of `table` held. The model has neither PMD migration
 * entries nor device-private PMD entries, so a THP that a compound migration brought back (or
 * sent to device memory) is mapped by a PTE table of 512 entries where v6.19 has one PMD entry.
 * Such a table, mapping exactly one whole THP over an aligned PMD-sized chunk, is collected as the
 * kernel collects that PMD (one compound entry, with SELECT_COMPOUND); any other PTE-mapped THP is
 * split, as the kernel splits PTE-mapped THPs. Returns 'done' (PTL released, chunk finished) or
 * 'again' (PTL released, re-walk from `addr`).
 */
function* collectLarge(
  c: Collect,
  table: PteTable,
  folio: Folio,
  addr: number,
  start: number,
  end: number,
): Routine<'done' | 'again'> {
  const a = c.args;
  const mem = c.sys.mem;
  const whole =
    a.flags & MIGRATE_VMA_SELECT_COMPOUND &&
    start % PMD_SIZE === 0 &&
    end % PMD_SIZE === 0 &&
    addr === start &&
    folio.nr === HPAGE_PMD_NR;
  let ptes: Pte[] | null = null;
  if (whole) {
    ptes = [];
    for (let j = 0; j < HPAGE_PMD_NR; j++) ptes.push(table.peek(start + j * PAGE_SIZE));
    const kind = folio.zone === 'device-private' ? 'device-private' : 'present';
    if (!ptes.every((e, j) => e.kind === kind && e.pfn === folio.pfn + j)) ptes = null;
  }
  if (!ptes) {
    const keep = (table.peek(addr) as { pfn: number }).pfn - folio.pfn;
    yield* table.ptl.unlock();
    if (yield* splitForCollect(c, folio, keep)) {
      collectSkip(c, addr, end);
      return 'done';
    }
    return 'again';
  }
  yield* folio.get('folio_get');
  if (folio !== c.faultFolio && !(yield* folio.trylock('folio_trylock'))) {
    yield* folioPut(mem, folio);
    yield* table.ptl.unlock();
    collectSkip(c, start, end);
    return 'done';
  }
  const write = ptes.every((e) => (e as { write: boolean }).write);
  const dirty = ptes.some((e) => e.kind === 'present' && e.dirty);
  if (dirty) {
    yield* folio.update('folio_mark_dirty', (f) => {
      f.dirty = true;
    });
  }
  for (let j = 0; j < HPAGE_PMD_NR; j++) {
    const e = ptes[j]!;
    yield* table.slot(start + j * PAGE_SIZE).set(
      {
        kind: 'migration',
        pfn: folio.pfn + j,
        write,
        young: e.kind === 'present' && e.young,
        dirty: e.kind === 'present' && e.dirty,
      },
      'set_pmd_migration_entry',
    );
  }
  yield* folio.update('folio_remove_rmap_ptes', (f) => {
    for (let j = 0; j < f.nr; j++) f.mapcount[j]!--;
    f.refcount -= f.nr;
  });
  yield* table.ptl.unlock('pte_unmap_unlock');
  a.src[a.npages] =
    migratePfn(folio.pfn) + MIGRATE_PFN_MIGRATE + MIGRATE_PFN_COMPOUND + (write ? MIGRATE_PFN_WRITE : 0);
  a.dst[a.npages++] = 0;
  a.cpages++;
  collectSkip(c, start + PAGE_SIZE, end);
  return 'done';
}

/** models migrate_vma_collect_pmd(): one PMD entry's part `[start, end)`. */
function* collectPmd(c: Collect, start: number, end: number): Routine<void> {
  const a = c.args;
  const mm = a.vma.mm;
  const mem = c.sys.mem;
  const pmdSlot = mm.pageTable.pmdSlot(start);
  let addr = start;
  again: for (;;) {
    const pmd = yield* pmdSlot.get('migrate_vma_collect_pmd');
    if (pmd.kind === 'none') {
      collectHole(c, addr, end);
      return;
    }
    if (pmd.kind === 'huge') {
      const r = yield* collectHugePmd(c, addr, end);
      if (r === 'done') return;
      continue;
    }
    const table = pmd.table;
    yield* table.ptl.lock('pte_offset_map_lock');
    let unmapped = false;
    for (; addr < end; addr += PAGE_SIZE) {
      const pte = table.peek(addr);
      let mpfn = 0;
      let folio: Folio | null = null;
      if (pte.kind === 'none') {
        if (a.vma.isAnonymous) {
          mpfn = MIGRATE_PFN_MIGRATE;
          a.cpages++;
        }
      } else if (pte.kind !== 'present') {
        // Only device-private entries of our owner are candidates; swap, migration and
        // device-exclusive entries are left alone.
        if (pte.kind === 'device-private' && a.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) {
          const f = mem.folioAt(pte.pfn);
          if (f && f.pgmap?.owner === a.pgmapOwner) {
            if (f.large) {
              const r = yield* collectLarge(c, table, f, addr, start, end);
              if (r === 'done') return;
              continue again;
            }
            folio = f;
            mpfn = migratePfn(pte.pfn) + MIGRATE_PFN_MIGRATE + (pte.write ? MIGRATE_PFN_WRITE : 0);
          }
        }
      } else if (pte.zero || pte.pfn === ZERO_PFN) {
        if (a.flags & MIGRATE_VMA_SELECT_SYSTEM) {
          mpfn = MIGRATE_PFN_MIGRATE;
          a.cpages++;
        }
      } else if (!pte.special) {
        const f = mem.folioAt(pte.pfn)!;
        const skip =
          (f.zone === 'normal' && !(a.flags & MIGRATE_VMA_SELECT_SYSTEM)) ||
          (f.zone === 'device-coherent' &&
            (!(a.flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) || f.pgmap?.owner !== a.pgmapOwner));
        if (!skip) {
          if (f.large) {
            const r = yield* collectLarge(c, table, f, addr, start, end);
            if (r === 'done') return;
            continue again;
          }
          folio = f;
          mpfn = migratePfn(pte.pfn) + MIGRATE_PFN_MIGRATE + (pte.write ? MIGRATE_PFN_WRITE : 0);
        }
      }
      // A page without a mapping (neither anonymous nor page cache) cannot migrate.
      if (folio && !folio.anon && !folio.mapping) {
        folio = null;
        mpfn = 0;
      }
      if (folio) {
        yield* folio.get('folio_get');
        const i = pte.kind === 'none' ? 0 : (pte as { pfn: number }).pfn - folio.pfn;
        let locked = folio === c.faultFolio || (yield* folio.trylock('folio_trylock'));
        if (locked && folio.anon) {
          // models folio_try_share_anon_rmap_pte(): a maybe-pinned exclusive page cannot be unmapped.
          const ok = yield* folio.inspect(
            'folio_try_share_anon_rmap_pte',
            (f) => !f.anonExclusive[i] || f.pincount === 0,
          );
          if (!ok) {
            if (folio !== c.faultFolio) yield* folio.unlock();
            locked = false;
          }
        }
        if (locked) {
          const p = pte as Extract<Pte, { kind: 'present' | 'device-private' }>;
          const dirty = p.kind === 'present' && p.dirty;
          a.cpages++;
          if (dirty) {
            yield* folio.update('folio_mark_dirty', (f) => {
              f.dirty = true;
            });
          }
          yield* table.slot(addr).set(
            {
              kind: 'migration',
              pfn: p.pfn,
              write: has(mpfn, MIGRATE_PFN_WRITE),
              young: p.kind === 'present' && p.young,
              dirty,
            },
            'migrate_vma_collect_pmd',
          );
          // Like an unmap: the rmap and the mapping's reference go (our reference keeps it).
          yield* folio.update('folio_remove_rmap_pte', (f) => {
            f.mapcount[i]!--;
            f.refcount--;
          });
          if (p.kind === 'present') unmapped = true;
        } else {
          yield* folioPut(mem, folio);
          mpfn = 0;
        }
      }
      a.dst[a.npages] = 0;
      a.src[a.npages++] = mpfn;
    }
    void unmapped; // flush_tlb_range(): TLBs are not modelled
    yield* table.ptl.unlock('pte_unmap_unlock');
    return;
  }
}

/**
 * models migrate_vma_collect(): walks `[start, end)` inside an MMU_NOTIFY_MIGRATE range whose owner
 * is `pgmapOwner` (a driver skips invalidating its own device mappings for it).
 */
function* migrateVmaCollect(c: Collect): Routine<void> {
  const a = c.args;
  const mm = a.vma.mm;
  const range = new MmuNotifierRange({
    mm,
    start: a.start,
    end: a.end,
    event: MmuNotifyEvent.MIGRATE,
    owner: a.pgmapOwner,
  });
  yield* invalidateRangeStart(range);
  for (let addr = a.start; addr < a.end; ) {
    const next = Math.min(a.end, alignDown(addr, PMD_SIZE) + PMD_SIZE);
    yield* collectPmd(c, addr, next);
    addr = next;
  }
  yield* invalidateRangeEnd(range);
  a.end = a.start + a.npages * PAGE_SIZE;
}

// ---------------------------------------------------------------------------------------------
// Unmap.

/**
 * models migrate_vma_check_page(): false if the folio has references beyond the migration's own
 * (a pin, a GUP reference): `refcount - extra > mapcount`.
 */
function checkPage(folio: Folio, faultFolio: Folio | null): boolean {
  let extra = 1 + (folio === faultFolio ? 1 : 0);
  // The kernel still counts one extra reference for ZONE_DEVICE pages.
  if (folio.zone !== 'normal') extra++;
  if (folio.mapping || folio.swapSlot !== null) extra++;
  return !(folio.refcount - extra > folio.totalMapcount);
}

/**
 * models migrate_device_unmap(): every selected page is unmapped everywhere (try_to_migrate for
 * mappings the collect did not see, e.g. another process after fork) and checked for extra
 * references; failures lose MIGRATE and get their mappings back. Returns the pages still selected.
 */
function* migrateDeviceUnmap(
  sys: System,
  src: number[],
  npages: number,
  faultFolio: Folio | null,
): Routine<number> {
  const mem = sys.mem;
  let unmapped = 0;
  let restore = 0;
  for (let i = 0; i < npages; ) {
    const folio = entryFolio(mem, src[i]!);
    let nr = 1;
    if (!folio) {
      if (has(src[i]!, MIGRATE_PFN_MIGRATE)) unmapped++;
      i += nr;
      continue;
    }
    nr = folio.nr;
    if (nr > 1) src[i] = withFlag(src[i]!, MIGRATE_PFN_COMPOUND);
    // LRU isolation is not modelled: it always succeeds, and its reference replaces collect's.
    if (yield* folio.inspect('folio_mapped', (f) => f.mapped)) yield* tryToMigrate(sys, folio);
    const ok = yield* folio.inspect('migrate_vma_check_page', (f) => !f.mapped && checkPage(f, faultFolio));
    if (!ok) {
      src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE);
      restore++;
    } else {
      unmapped++;
    }
    i += nr;
  }
  for (let i = 0; i < npages && restore; i++) {
    const folio = entryFolio(mem, src[i]!);
    if (!folio || has(src[i]!, MIGRATE_PFN_MIGRATE)) continue;
    yield* removeMigrationPtes(folio, folio);
    src[i] = 0;
    if (folio !== faultFolio) yield* folio.unlock();
    yield* folioPut(mem, folio);
    restore--;
  }
  return unmapped;
}

/**
 * models migrate_vma_setup(): validates the arguments (-EINVAL: no VMA, hugetlb, VM_SPECIAL, empty
 * range, range outside the VMA, a `faultPage` that is not a locked device-private page), collects
 * the pages of `[start, end)` the flags select and unmaps them: on return every `src` entry with
 * MIGRATE and VALID names a page that is locked, referenced and mapped only by migration entries
 * (CPU accesses wait). Returns 0 even if nothing was selected. Caller holds `mmap_lock`.
 */
export function* migrateVmaSetup(args: MigrateVma): Routine<number> {
  const nrPages = Math.floor((args.end - args.start) / PAGE_SIZE);
  args.start = alignDown(args.start, PAGE_SIZE);
  args.end = alignDown(args.end, PAGE_SIZE);
  const vma = args.vma;
  if (!vma || vma.flags & VM_HUGETLB || vma.flags & VM_SPECIAL) return -EINVAL;
  if (nrPages <= 0) return -EINVAL;
  if (args.start < vma.start || args.start >= vma.end) return -EINVAL;
  if (args.end <= vma.start || args.end > vma.end) return -EINVAL;
  if (!args.src || !args.dst) return -EINVAL;
  const fp = args.faultPage;
  if (fp && (fp.zone !== 'device-private' || !fp.locked)) return -EINVAL;
  const mm = vma.mm;
  mm.sim.assertHeld(mm.mmapLock);
  for (let i = 0; i < nrPages; i++) args.src[i] = 0;
  args.cpages = 0;
  args.npages = 0;
  const c: Collect = { args, sys: mm.system, faultFolio: fp };
  yield* migrateVmaCollect(c);
  if (args.cpages) args.cpages = yield* migrateDeviceUnmap(c.sys, args.src, args.npages, fp);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Pages.

/** Aborts the insertion of `n` entries from `i` (lost a race, or not allowed). */
function abortInsert(src: number[], i: number, n: number): void {
  for (let j = 0; j < n && i + j < src.length; j++) src[i + j] = without(src[i + j]!, MIGRATE_PFN_MIGRATE);
}

/** The entry mapping a freshly populated page of `folio` (device-private or present). */
function newEntry(vma: Vma, folio: Folio, pfn: number): Pte {
  const write = (vma.flags & VM_WRITE) !== 0;
  return folio.zone === 'device-private'
    ? { kind: 'device-private', pfn, write }
    : { kind: 'present', pfn, write, dirty: write, young: true };
}

/**
 * models migrate_vma_insert_huge_pmd_page() (v6.19): a compound destination for a PMD-sized hole.
 * System and device-coherent THPs get a huge PMD; a device-private THP gets a PTE table of 512
 * device-private entries (the model has no device-private PMD entries).
 */
function* insertHugePage(args: MigrateVma, addr: number, folio: Folio, i: number): Routine<void> {
  const vma = args.vma;
  const mm = vma.mm;
  const pt = mm.pageTable;
  if (
    !vma.isAnonymous ||
    addr % PMD_SIZE !== 0 ||
    addr < vma.start ||
    addr + PMD_SIZE > vma.end ||
    folio.nr !== HPAGE_PMD_NR
  ) {
    abortInsert(args.src, i, HPAGE_PMD_NR);
    return;
  }
  yield* anonVmaPrepare(vma);
  const pmdSlot = pt.pmdSlot(addr);
  yield* pt.pmdLock.lock('pmd_lock');
  const cur = pmdSlot.entry;
  if (cur.kind !== 'none' || (yield* mm.unstable.read('check_stable_address_space'))) {
    yield* pt.pmdLock.unlock();
    abortInsert(args.src, i, HPAGE_PMD_NR);
    return;
  }
  const devPriv = folio.zone === 'device-private';
  yield* folio.update('folio_add_new_anon_rmap', (f) => {
    f.anon = true;
    f.anonVma = vma.anonVma;
    f.index = vma.linearPageIndex(addr);
    f.anonExclusive.fill(true);
    if (devPriv) f.mapcount.fill(1);
    else f.entireMapcount = 1;
    f.refcount += devPriv ? HPAGE_PMD_NR : 1;
  });
  if (devPriv) {
    const table = new PteTable(mm.sim, mm, addr);
    for (let j = 0; j < HPAGE_PMD_NR; j++) {
      table.slot(addr + j * PAGE_SIZE).entry = newEntry(vma, folio, folio.pfn + j);
    }
    yield* pmdSlot.set({ kind: 'table', table }, 'pmd_populate');
  } else {
    const write = (vma.flags & VM_WRITE) !== 0;
    yield* pmdSlot.set({ kind: 'huge', pfn: folio.pfn, write, dirty: write, young: true }, 'set_pmd_at');
  }
  mm.rss.anon += HPAGE_PMD_NR;
  yield* pt.pmdLock.unlock();
}

/**
 * models migrate_vma_insert_page(): maps the destination page of an empty (or zero-page) address,
 * like do_anonymous_page() would; loses MIGRATE if a CPU fault populated it meanwhile.
 */
function* insertPage(args: MigrateVma, addr: number, dstEntry: number, i: number): Routine<void> {
  const vma = args.vma;
  const mm = vma.mm;
  const mem = mm.system.mem;
  const folio = entryFolio(mem, dstEntry);
  if (!folio || !vma.isAnonymous) {
    abortInsert(args.src, i, 1);
    return;
  }
  if (has(dstEntry, MIGRATE_PFN_COMPOUND)) {
    yield* insertHugePage(args, addr, folio, i);
    return;
  }
  const pmdSlot = mm.pageTable.pmdSlot(addr);
  let pmd = yield* pmdSlot.get('pmd_alloc');
  if (pmd.kind === 'huge') {
    abortInsert(args.src, i, 1);
    return;
  }
  if (pmd.kind === 'none') {
    yield* pteAlloc(mm, pmdSlot);
    pmd = yield* pmdSlot.get('pte_alloc');
    if (pmd.kind !== 'table') {
      abortInsert(args.src, i, 1);
      return;
    }
  }
  yield* anonVmaPrepare(vma);
  if (folio.zone !== 'normal' && folio.zone !== 'device-private' && folio.zone !== 'device-coherent') {
    abortInsert(args.src, i, 1);
    return;
  }
  const entry = newEntry(vma, folio, folio.pfn);
  const table = pmd.table;
  yield* table.ptl.lock('pte_offset_map_lock');
  const orig = table.peek(addr);
  const stale =
    (yield* mm.unstable.read('check_stable_address_space')) ||
    (orig.kind === 'present' && !orig.zero) ||
    (orig.kind !== 'present' && orig.kind !== 'none');
  if (stale) {
    yield* table.ptl.unlock();
    abortInsert(args.src, i, 1);
    return;
  }
  mm.rss.anon++;
  yield* folio.update('folio_add_new_anon_rmap', (f) => {
    f.anon = true;
    f.anonVma = vma.anonVma;
    f.index = vma.linearPageIndex(addr);
    f.anonExclusive[0] = true;
    f.mapcount[0] = 1;
    f.refcount++;
  });
  // A zero-page PTE is replaced (ptep_clear_flush + set_pte_at): we are inside a MIGRATE range.
  yield* table.slot(addr).set(entry, 'migrate_vma_insert_page');
  yield* table.ptl.unlock('pte_unmap_unlock');
}

/**
 * models folio_free_swap(): drops a folio from the swap cache if no swap entry refers to its slot
 * any more. True on success (or if it was not in the swap cache).
 */
function* folioFreeSwap(sys: System, folio: Folio): Routine<boolean> {
  const slot = folio.swapSlot;
  if (slot === null) return true;
  const freed = yield* sys.swap.update('folio_free_swap', (s) => {
    const sl = s.slots[slot]!;
    if (sl.count !== 0 || sl.cache !== folio) return false;
    sl.cache = null;
    s.maybeFree(slot);
    return true;
  });
  if (!freed) return false;
  yield* folio.update('delete_from_swap_cache', (f) => {
    f.swapSlot = null;
    f.refcount--;
  });
  return true;
}

/**
 * models folio_migrate_mapping() + folio_migrate_flags(): `dst` takes over `src`'s identity (anon
 * rmap index, page-cache or swap-cache slot, dirty, PageAnonExclusive). Fails (false) if `src` has
 * references other than the migration's own and `extra`.
 */
function* folioMigrateMapping(sys: System, dst: Folio, src: Folio, extra: number): Routine<boolean> {
  const st = yield* src.update('folio_migrate_mapping', (f) => {
    const cache = f.mapping !== null || f.swapSlot !== null ? 1 : 0;
    if (f.mapped || f.refcount !== 1 + extra + cache) return null;
    const out = {
      mapping: f.mapping,
      slot: f.swapSlot,
      anon: f.anon,
      anonVma: f.anonVma,
      index: f.index,
      dirty: f.dirty,
      excl: f.anonExclusive.slice(),
    };
    // The cache's reference moves to the new folio.
    if (cache) {
      f.refcount -= 1;
      f.mapping = null;
      f.swapSlot = null;
    }
    return out;
  });
  if (!st) return false;
  if (st.slot !== null) {
    const slot = st.slot;
    yield* sys.swap.update('__xa_store(swap cache)', (s) => {
      s.slots[slot]!.cache = dst;
    });
  }
  if (st.mapping) {
    const file = st.mapping;
    yield* file.update('__xa_store(page cache)', (fl) => {
      fl.pageCache.set(st.index, dst);
    });
  }
  yield* dst.update('folio_migrate_flags', (f) => {
    f.anon = st.anon;
    f.anonVma = st.anonVma;
    f.index = st.index;
    f.dirty = st.dirty;
    for (let j = 0; j < f.nr && j < st.excl.length; j++) f.anonExclusive[j] = st.excl[j]!;
    if (st.mapping) f.mapping = st.mapping;
    if (st.slot !== null) f.swapSlot = st.slot;
    if (st.mapping || st.slot !== null) f.refcount++;
  });
  return true;
}

/**
 * models folio_split_unmapped() as migrate_vma_split_unmapped_folio() uses it (v6.19): splits a
 * locked, unmapped (migration entries only) PMD-sized folio into base folios, each locked and
 * holding one reference, and rewrites the 512 `src` entries from `i` to name them.
 */
function* splitUnmappedFolio(sys: System, src: number[], i: number, folio: Folio): Routine<boolean> {
  const t = sys.sim.current;
  const parts = yield* sys.mem.update('folio_split_unmapped', (mem) => {
    if (folio.mapped || folio.refcount !== 1 || !folio.anon || folio.swapSlot !== null) return null;
    const out: Folio[] = [];
    for (let j = 0; j < folio.nr; j++) {
      const p = mem.newFolioForSplit(folio.pfn + j, 0, folio.zone, folio.pgmap);
      p.refcount = 1;
      p.anon = true;
      p.anonVma = folio.anonVma;
      p.index = folio.index + j;
      p.anonExclusive[0] = folio.anonExclusive[j]!;
      p.dirty = folio.dirty;
      p.data[0] = folio.data[j]!;
      p.locked = true;
      p.lockedBy = t;
      out.push(p);
    }
    folio.refcount = 0;
    folio.locked = false;
    mem.transferPfns(folio, out);
    return out;
  });
  if (!parts) return false;
  const flags = without(src[i]! % FLAG_SPAN, MIGRATE_PFN_COMPOUND);
  for (let j = 0; j < parts.length; j++) src[i + j] = parts[j]!.pfn * FLAG_SPAN + flags;
  return true;
}

/** The core of migrate_vma_pages() / migrate_device_pages(). */
function* migrateDevicePagesCore(
  mem: PhysMem,
  src: number[],
  dst: number[],
  npages: number,
  args: MigrateVma | null,
): Routine<void> {
  const sys = args ? args.vma.mm.system : null;
  let range: MmuNotifierRange | null = null;
  for (let i = 0; i < npages; ) {
    let nr = 1;
    const newFolio = entryFolio(mem, dst[i]!);
    const folio = entryFolio(mem, src[i]!);
    if (!newFolio) {
      src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE);
      i += nr;
      continue;
    }
    if (!folio) {
      if (!has(src[i]!, MIGRATE_PFN_MIGRATE) || !args) {
        if (!args) src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE);
        i += nr;
        continue;
      }
      const addr = args.start + i * PAGE_SIZE;
      if (!range) {
        range = new MmuNotifierRange({
          mm: args.vma.mm,
          start: addr,
          end: args.end,
          event: MmuNotifyEvent.MIGRATE,
          owner: args.pgmapOwner,
        });
        yield* invalidateRangeStart(range);
      }
      // A compound hole answered with base pages is populated page by page.
      if (has(src[i]!, MIGRATE_PFN_COMPOUND) && !has(dst[i]!, MIGRATE_PFN_COMPOUND)) {
        nr = HPAGE_PMD_NR;
        src[i] = without(src[i]!, MIGRATE_PFN_COMPOUND);
      }
      for (let j = 0; j < nr && i + j < npages; j++) {
        src[i + j] = withFlag(src[i + j]!, MIGRATE_PFN_MIGRATE);
        yield* insertPage(args, addr + j * PAGE_SIZE, dst[i + j]!, i + j);
      }
      i += nr;
      continue;
    }
    const sc = has(src[i]!, MIGRATE_PFN_COMPOUND);
    const dc = has(dst[i]!, MIGRATE_PFN_COMPOUND);
    if (has(src[i]!, MIGRATE_PFN_MIGRATE) && sc && !dc) {
      // A THP answered with base pages: split the source (only with a VMA).
      if (!args || !sys || !(yield* splitUnmappedFolio(sys, src, i, folio))) {
        src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
        i += nr;
        continue;
      }
      nr = HPAGE_PMD_NR;
    } else if (has(src[i]!, MIGRATE_PFN_MIGRATE) && dc && !sc) {
      src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE);
    } else if (sc) {
      nr = folio.nr;
    }
    if (!has(src[i]!, MIGRATE_PFN_MIGRATE)) {
      i += nr;
      continue;
    }
    const system = sys ?? systemOf(mem);
    if (newFolio.zone !== 'normal') {
      // Only anonymous memory goes to device memory; a swap-cache copy must be dropped first.
      const f0 = entryFolio(mem, src[i]!)!;
      if (f0.mapping || !f0.anon || !(yield* folioFreeSwap(system, f0))) {
        src[i] = without(src[i]!, MIGRATE_PFN_MIGRATE);
        i += nr;
        continue;
      }
    }
    const extra = args?.faultPage && args.faultPage === folio ? 1 : 0;
    for (let j = 0; j < nr && i + j < npages; j++) {
      const s = entryFolio(mem, src[i + j]!);
      const d = nr > 1 && dc ? newFolio : entryFolio(mem, dst[i + j]!);
      if (!s || !d) {
        src[i + j] = without(src[i + j]!, MIGRATE_PFN_MIGRATE);
        continue;
      }
      if (!(yield* folioMigrateMapping(system, d, s, extra))) {
        src[i + j] = without(src[i + j]!, MIGRATE_PFN_MIGRATE);
      }
      if (nr > 1 && dc) break; // one large folio
    }
    i += nr;
  }
  if (range) yield* invalidateRangeEnd(range);
}

/**
 * models migrate_vma_pages(): moves the identity of every selected source page to its destination
 * (`dst[i]` set by the driver, locked); populates selected holes (an MMU_NOTIFY_MIGRATE range with
 * `pgmapOwner` around them). Entries that fail lose MIGRATE. Afterwards an entry counts as
 * migrated iff its `src` still has MIGRATE; it is then safe to update device page tables (both
 * pages are locked, mmap_lock is held).
 */
export function* migrateVmaPages(args: MigrateVma): Routine<void> {
  const sys = args.vma.mm.system;
  yield* migrateDevicePagesCore(sys.mem, args.src, args.dst, args.npages, args);
}

/** The core of migrate_vma_finalize() / migrate_device_finalize(). */
function* migrateDeviceFinalizeCore(
  mem: PhysMem,
  src: number[],
  dst: number[],
  npages: number,
  faultFolio: Folio | null,
): Routine<void> {
  for (let i = 0; i < npages; i++) {
    let d = entryFolio(mem, dst[i]!);
    const s = entryFolio(mem, src[i]!);
    if (!s) {
      if (d) {
        yield* d.unlock();
        yield* folioPut(mem, d);
      }
      continue;
    }
    if (!has(src[i]!, MIGRATE_PFN_MIGRATE) || !d) {
      if (d) {
        yield* d.unlock();
        yield* folioPut(mem, d);
      }
      d = s;
    }
    // A large folio appears once (its first entry); the other entries of it are 0.
    yield* removeMigrationPtes(s, d);
    if (s !== faultFolio) yield* s.unlock();
    yield* folioPut(mem, s);
    if (d !== s) {
      yield* d.unlock();
      yield* folioPut(mem, d);
    }
  }
}

/**
 * models migrate_vma_finalize(): replaces the migration entries by mappings of the new pages
 * (device-private entries for device-private pages) for migrated entries, and of the old pages
 * otherwise; unlocks and puts every page it was given (the fault page stays locked for the fault
 * path). No migration entry of this migration remains.
 */
export function* migrateVmaFinalize(args: MigrateVma): Routine<void> {
  yield* migrateDeviceFinalizeCore(args.vma.mm.system.mem, args.src, args.dst, args.npages, args.faultPage);
}

// ---------------------------------------------------------------------------------------------
// Without a VMA: eviction of device memory.

function memFor(mem: PhysMem | undefined, what: string): PhysMem {
  const m = mem ?? currentPhysMem();
  if (!m) throw new Error(`${what}: no running simulation; pass the PhysMem explicitly`);
  return m;
}

/**
 * models migrate_device_range(): selects the device pages `[start, start + npages)` (by pfn) that
 * are in use and can be locked (trylock), and unmaps them wherever they are mapped. Used to evict
 * device memory (driver unload, HMM_DMIRROR_RELEASE); follow with {@link migrateDevicePages} and
 * {@link migrateDeviceFinalize}. `mem` defaults to the pool of the running simulation.
 */
export function* migrateDeviceRange(
  srcPfns: number[],
  start: number,
  npages: number,
  mem?: PhysMem,
): Routine<number> {
  const m = memFor(mem, 'migrate_device_range');
  for (let i = 0; i < npages; i++) {
    const pfn = start + i;
    srcPfns[i] = 0;
    // models migrate_device_pfn_lock(): folio_get_nontail_page() + folio_trylock().
    const folio = m.folioAt(pfn);
    if (!folio || folio.pfn !== pfn || folio.zero) continue;
    if (!(yield* folio.tryGet('folio_get_nontail_page'))) continue;
    if (!(yield* folio.trylock('folio_trylock'))) {
      yield* folioPut(m, folio);
      continue;
    }
    srcPfns[i] = migratePfn(pfn) + MIGRATE_PFN_MIGRATE;
    if (folio.nr > 1) {
      srcPfns[i] = withFlag(srcPfns[i]!, MIGRATE_PFN_COMPOUND);
      for (let j = 1; j < folio.nr && i + j < npages; j++) srcPfns[i + j] = 0;
      i += folio.nr - 1;
    }
  }
  yield* migrateDeviceUnmap(systemOf(m), srcPfns, npages, null);
  return 0;
}

function systemOf(mem: PhysMem): System {
  if (!mem.system) throw new Error(`${mem.name} belongs to no System`);
  return mem.system;
}

/** models migrate_device_pages(): {@link migrateVmaPages} without a VMA (no holes, no THP split). */
export function* migrateDevicePages(
  src: number[],
  dst: number[],
  npages: number,
  mem?: PhysMem,
): Routine<void> {
  yield* migrateDevicePagesCore(memFor(mem, 'migrate_device_pages'), src, dst, npages, null);
}

/** models migrate_device_finalize(): {@link migrateVmaFinalize} without a VMA. */
export function* migrateDeviceFinalize(
  src: number[],
  dst: number[],
  npages: number,
  mem?: PhysMem,
): Routine<void> {
  yield* migrateDeviceFinalizeCore(memFor(mem, 'migrate_device_finalize'), src, dst, npages, null);
}
