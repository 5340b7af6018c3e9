/**
 * `@hmmkit/mm/device-exclusive`: device-exclusive entries (mm/rmap.c `make_device_exclusive()`,
 * mm/memory.c `remove_device_exclusive_entry()`).
 *
 * A driver that wants a device to do atomics on an anonymous page replaces the CPU's PTE by a
 * non-present device-exclusive entry; any CPU access then faults and restores the PTE
 * (`remove_device_exclusive_entry`, an MMU_NOTIFY_CLEAR the driver must honour by dropping its
 * atomic mapping). Fork, swap-out, migration and munmap handle the entries (fault.ts, fork.ts,
 * rmap.ts, memory.ts).
 *
 * Two forms:
 *
 * - {@link makeDeviceExclusive}: the current one (v6.15+): one page, sleeps on the folio lock,
 *   re-checks the PTE under an MMU_NOTIFY_EXCLUSIVE range carrying the caller's owner and retries
 *   silently if it changed, keeps the folio's mapcount, returns the folio locked and referenced.
 * - {@link makeDeviceExclusiveRange}: the OLD API (v5.14–v6.14), kept as an opt-in to compare:
 *   `folio_trylock()` with failure reported as a NULL page (callers turn it into -EBUSY), an rmap
 *   walk that converts every mapping of the folio, and entries that drop the mapcount.
 *
 * @module
 */
import { EOPNOTSUPP, type Routine } from '@hmmkit/sim';
import { alignDown, PAGE_SIZE, VM_HUGETLB } from '../constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from '../events.js';
import type { Folio } from '../folio.js';
import { FOLL_GET, FOLL_SPLIT_PMD, FOLL_WRITE, getUserPageVmaRemote } from '../gup.js';
import type { Mm } from '../mm.js';
import { MmuNotifierRange, MmuNotifyEvent } from '../notifier/index.js';
import { folioPut } from '../physmem.js';
import { folioPagesIn, rmapWalk } from '../rmap.js';
import type { Vma } from '../vma.js';

/**
 * models make_device_exclusive() (v6.15+): makes the page at `addr` device-exclusive for `owner`.
 * The caller holds `mmap_lock` (read). Returns the folio, locked and with a reference the caller
 * must drop (`folio.unlock()`, `folioPut()`) once it has programmed its device mapping, or a
 * negative errno: GUP's (-EFAULT: no VMA, VMA not writable; -ENOMEM) or -EOPNOTSUPP (not an
 * anonymous folio, hugetlb).
 *
 * Steps: GUP the page writable (FOLL_SPLIT_PMD: a PMD-mapped THP is PTE-mapped first; an entry
 * that is already device-exclusive, for this or another device, is restored by the fault), sleep
 * on the folio lock, open an MMU_NOTIFY_EXCLUSIVE range over the page with `owner` (so the caller's
 * own interval notifier can recognise and skip it: a caller that does not skip it livelocks in its
 * read_begin/read_retry loop), re-check that the same page is mapped writable at PTE level (if not,
 * close the range and start over), replace the PTE by the device-exclusive entry. Mapcount and the
 * mapping's reference stay with the entry.
 */
export function* makeDeviceExclusive(mm: Mm, addr: number, owner: unknown): Routine<Folio | number> {
  mm.sim.assertHeld(mm.mmapLock);
  const page = alignDown(addr, PAGE_SIZE);
  const mem = mm.system.mem;
  for (;;) {
    const got = yield* getUserPageVmaRemote(mm, page, FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD);
    if (typeof got === 'number') return got;
    const { folio, index, vma } = got;
    if (!folio.anon || vma.flags & VM_HUGETLB) {
      yield* folioPut(mem, folio, 'folio_put');
      return -EOPNOTSUPP;
    }
    // folio_lock_killable(): no fatal signals in the model, so it simply sleeps.
    yield* folio.lock('folio_lock_killable');
    const range = new MmuNotifierRange({
      mm,
      start: page,
      end: page + PAGE_SIZE,
      event: MmuNotifyEvent.EXCLUSIVE,
      owner,
    });
    yield* invalidateRangeStart(range);
    // models folio_walk_start(): the same page must still be mapped writable by a PTE.
    const pmd = yield* mm.pageTable.pmdSlot(page).get('folio_walk_start');
    let done = false;
    if (pmd.kind === 'table') {
      const table = pmd.table;
      yield* table.ptl.lock('folio_walk_start');
      const e = table.peek(page);
      if (e.kind === 'present' && e.pfn === folio.pfn + index && e.write) {
        if (e.dirty) {
          yield* folio.update('folio_mark_dirty', (f) => {
            f.dirty = true;
          });
        }
        // models ptep_clear_flush() + set_pte_at(make_device_exclusive_entry(pfn)).
        yield* table.slot(page).set({ kind: 'device-exclusive', pfn: e.pfn, owner }, 'make_device_exclusive');
        done = true;
      }
      yield* table.ptl.unlock('folio_walk_end');
    }
    yield* invalidateRangeEnd(range);
    if (done) return folio;
    // Raced with something that changed the PTE (swap-out, migration, a CPU fault): retry.
    yield* folio.unlock();
    yield* folioPut(mem, folio, 'folio_put');
  }
}

/**
 * models page_make_device_exclusive_one() (v5.14–v6.14) for one VMA: every PTE of `vma` mapping
 * `folio` becomes an old-API device-exclusive entry (read or write variant, after the PTE's write
 * bit), inside an MMU_NOTIFY_EXCLUSIVE range with `owner`; the rmap is dropped, the reference kept.
 * Sets `args.valid` if the expected address of the expected mm was mapped writable. Returns false
 * (stop the walk) on a non-present entry.
 */
function* makeExclusiveOne(
  folio: Folio,
  vma: Vma,
  args: { mm: Mm; addr: number; owner: unknown; valid: boolean },
): Routine<boolean> {
  const pages = folioPagesIn(folio, vma);
  if (pages.length === 0) return true;
  const mm = vma.mm;
  const start = pages[0]!.addr;
  const range = new MmuNotifierRange({
    mm,
    start,
    end: Math.min(vma.end, start + folio.nr * PAGE_SIZE),
    event: MmuNotifyEvent.EXCLUSIVE,
    owner: args.owner,
  });
  yield* invalidateRangeStart(range);
  let ok = true;
  for (const { i, addr } of pages) {
    const pmd = yield* mm.pageTable.pmdSlot(addr).get('page_vma_mapped_walk');
    if (pmd.kind !== 'table') continue;
    const table = pmd.table;
    yield* table.ptl.lock('page_vma_mapped_walk');
    const e = table.peek(addr);
    if (e.kind === 'present' && e.pfn === folio.pfn + i && !e.zero && !e.special) {
      if (e.dirty) {
        yield* folio.update('folio_mark_dirty', (f) => {
          f.dirty = true;
        });
      }
      if (mm === args.mm && addr === args.addr && e.write) args.valid = true;
      yield* table
        .slot(addr)
        .set(
          { kind: 'device-exclusive', pfn: e.pfn, owner: args.owner, old: { write: e.write } },
          'set_pte_at',
        );
      // The entry keeps the reference but not the mapcount (the behaviour v6.15 fixed).
      yield* folio.update('folio_remove_rmap_pte', (f) => {
        f.mapcount[i]!--;
      });
    } else if (e.kind !== 'none' && e.kind !== 'present' && 'pfn' in e && e.pfn === folio.pfn + i) {
      ok = false;
    }
    yield* table.ptl.unlock('page_vma_mapped_walk_done');
    if (!ok) break;
  }
  yield* invalidateRangeEnd(range);
  return ok;
}

/**
 * models make_device_exclusive_range() — the OLD API (v5.14–v6.14), an opt-in kept to compare with
 * {@link makeDeviceExclusive}. Makes `[start, end)` of `mm` device-exclusive for `owner`; the
 * caller holds `mmap_lock` (read).
 *
 * Every page is GUP'd writable first; then each is `folio_trylock()`ed — failure (the folio is
 * locked by concurrent swap-out, migration, or another driver) puts it and leaves `pages[i]` null,
 * which callers turned into -EBUSY; large folios fail the same way (the old code rejected THPs).
 * Otherwise an rmap walk replaces every PTE mapping the folio by an old-API entry, dropping the
 * mapcount; success requires the page to have been mapped writable at the expected address and no
 * mapping to remain. `pages[i]` is then the folio, locked and referenced (the caller unlocks and
 * puts it). The restore on CPU access of such an entry is the old one (MMU_NOTIFY_EXCLUSIVE, NULL
 * owner).
 *
 * Returns the number of pages made exclusive (non-null entries of `pages`), or GUP's errno if the
 * first page could not be faulted. (The kernel returned the GUP count instead, leaving the failed
 * entries NULL; its callers compared it with the page count and then checked every entry.)
 */
export function* makeDeviceExclusiveRange(
  mm: Mm,
  start: number,
  end: number,
  pages: (Folio | null)[],
  owner: unknown,
): Routine<number> {
  mm.sim.assertHeld(mm.mmapLock);
  const mem = mm.system.mem;
  const npages = Math.max(0, Math.floor((end - start) / PAGE_SIZE));
  const indexOf: number[] = [];
  // models get_user_pages_remote(FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD) over the whole range.
  let got = 0;
  for (; got < npages; got++) {
    const g = yield* getUserPageVmaRemote(
      mm,
      start + got * PAGE_SIZE,
      FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD,
    );
    if (typeof g === 'number') {
      if (got === 0) return g;
      break;
    }
    pages[got] = g.folio;
    indexOf[got] = g.index;
  }
  let made = 0;
  for (let i = 0; i < got; i++) {
    const folio = pages[i]!;
    if (folio.large || !folio.anon || !(yield* folio.trylock('folio_trylock'))) {
      yield* folioPut(mem, folio, 'put_page');
      pages[i] = null;
      continue;
    }
    const args = { mm, addr: start + i * PAGE_SIZE, owner, valid: false };
    yield* rmapWalk(folio, (vma) => makeExclusiveOne(folio, vma, args));
    const unmapped = yield* folio.inspect('folio_mapcount', (f) => !f.mapped);
    if (!args.valid || !unmapped || indexOf[i] !== 0) {
      yield* folio.unlock();
      yield* folioPut(mem, folio, 'put_page');
      pages[i] = null;
      continue;
    }
    made++;
  }
  for (let i = got; i < npages; i++) pages[i] = null;
  return made;
}
