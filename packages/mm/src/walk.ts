/**
 * Page-table walks for device models and checkers: `followPte` (takes the page-table lock like
 * `follow_pte()` / `folio_walk_start()`), `folioGetAt` (the walk plus a folio reference, as GUP
 * or reclaim isolation would), and `peekPte` (no scheduling point, for checkers and assertions).
 */
import type { Routine } from '@hmmkit/sim';
import type { Folio } from './folio.js';
import type { Mm } from './mm.js';
import { type HugePmd, PTE_NONE, type Pte } from './pgtable.js';

/** What translates an address: the entry, the folio it refers to (if any) and the page index. */
export interface PteInfo {
  level: 'pte' | 'pmd' | 'none';
  entry: Pte | HugePmd;
  folio: Folio | null;
  /** Page of `folio` the address falls in. */
  index: number;
}

function resolve(mm: Mm, addr: number, level: 'pte' | 'pmd' | 'none', entry: Pte | HugePmd): PteInfo {
  let pfn: number | null = null;
  if (entry.kind === 'huge') pfn = entry.pfn + Math.floor((addr % (2 * 1024 * 1024)) / 4096);
  else if (
    entry.kind === 'present' ||
    entry.kind === 'migration' ||
    entry.kind === 'device-private' ||
    entry.kind === 'device-exclusive'
  ) {
    pfn = entry.pfn;
  }
  const folio = pfn === null ? null : mm.system.mem.folioAt(pfn);
  return { level, entry, folio, index: folio && pfn !== null ? pfn - folio.pfn : 0 };
}

/** The current translation of `addr` without a scheduling point. */
export function peekPte(mm: Mm, addr: number): PteInfo {
  const pmd = mm.pageTable.peekPmd(addr);
  if (pmd.kind === 'huge') return resolve(mm, addr, 'pmd', pmd);
  if (pmd.kind === 'table') return resolve(mm, addr, 'pte', pmd.table.peek(addr));
  return resolve(mm, addr, 'none', PTE_NONE);
}

/** models follow_pte(): reads the entry for `addr` under the PMD lock or the PTL. */
export function* followPte(mm: Mm, addr: number): Routine<PteInfo> {
  const pt = mm.pageTable;
  const pmdSlot = pt.pmdSlot(addr);
  const pmd = yield* pmdSlot.get('follow_pte');
  if (pmd.kind === 'huge') {
    yield* pt.pmdLock.lock('pmd_lock');
    const cur = pmdSlot.entry;
    yield* pt.pmdLock.unlock();
    if (cur.kind === 'huge') return resolve(mm, addr, 'pmd', cur);
    if (cur.kind !== 'table') return resolve(mm, addr, 'none', PTE_NONE);
    return yield* followPte(mm, addr);
  }
  if (pmd.kind !== 'table') return resolve(mm, addr, 'none', PTE_NONE);
  yield* pmd.table.ptl.lock('pte_offset_map_lock');
  const e = pmd.table.peek(addr);
  yield* pmd.table.ptl.unlock('pte_unmap_unlock');
  return resolve(mm, addr, 'pte', e);
}

/**
 * The folio mapped (present, or by a device entry) at `addr` with a reference taken under the
 * page-table lock, or null. The caller must drop the reference (`folioPut`).
 */
export function* folioGetAt(mm: Mm, addr: number): Routine<{ folio: Folio; index: number } | null> {
  const pt = mm.pageTable;
  const pmdSlot = pt.pmdSlot(addr);
  const pmd = yield* pmdSlot.get('folio_walk_start');
  if (pmd.kind === 'huge') {
    yield* pt.pmdLock.lock('pmd_lock');
    const cur = pmdSlot.entry;
    let out: { folio: Folio; index: number } | null = null;
    if (cur.kind === 'huge') {
      const info = resolve(mm, addr, 'pmd', cur);
      if (info.folio && (yield* info.folio.tryGet('folio_get')))
        out = { folio: info.folio, index: info.index };
    }
    yield* pt.pmdLock.unlock();
    if (cur.kind === 'table') return yield* folioGetAt(mm, addr);
    return out;
  }
  if (pmd.kind !== 'table') return null;
  yield* pmd.table.ptl.lock('folio_walk_start');
  const e = pmd.table.peek(addr);
  let out: { folio: Folio; index: number } | null = null;
  if (
    (e.kind === 'present' && !e.zero && !e.special) ||
    e.kind === 'device-private' ||
    e.kind === 'device-exclusive'
  ) {
    const info = resolve(mm, addr, 'pte', e);
    if (info.folio && (yield* info.folio.tryGet('folio_get'))) out = { folio: info.folio, index: info.index };
  }
  yield* pmd.table.ptl.unlock('folio_walk_end');
  return out;
}
