/**
 * Reclaim of one folio (mm/vmscan.c `shrink_folio_list`, mm/swap_state.c, mm/rmap.c
 * `try_to_unmap`): an anonymous folio goes to the swap cache and every mapping becomes a swap
 * entry (MMU_NOTIFY_CLEAR per VMA), its content is written to the swap slot, and the folio is
 * freed if nobody else holds a reference. Page-cache folios are unmapped, written back if dirty,
 * and dropped from the page cache. Clean MADV_FREE folios are simply discarded.
 */
import { EAGAIN, EBUSY, EINVAL, ENOENT, ENOMEM, type Routine } from '@hmmkit/sim';
import type { Folio } from './folio.js';
import { splitFolio } from './huge-memory.js';
import type { Mm } from './mm.js';
import { folioPut } from './physmem.js';
import { tryToUnmap } from './rmap.js';
import type { System } from './system.js';
import { folioGetAt } from './walk.js';

/**
 * Reclaims `folio`, which the caller has isolated (holds a reference to; the reference is consumed
 * either way). Returns 0 when the folio was freed, or -EAGAIN (locked, or redirtied lazy-free
 * folio), -EBUSY (still mapped or referenced: e.g. pinned by a device, it then stays in the swap
 * cache with its mappings turned into swap entries), -ENOMEM (no swap slot), -EINVAL.
 * For a THP, `keep` selects the page whose base folio is reclaimed after the split.
 */
export function* shrinkFolio(sys: System, folio: Folio, keep = 0): Routine<number> {
  const mem = sys.mem;
  if (folio.zero || folio.zone !== 'normal') {
    yield* folioPut(mem, folio);
    return -EINVAL;
  }
  if (!(yield* folio.trylock('folio_trylock'))) {
    yield* folioPut(mem, folio);
    return -EAGAIN;
  }
  let f = folio;
  const keepFolio = function* (err: number): Routine<number> {
    yield* f.unlock();
    yield* folioPut(mem, f);
    return err;
  };
  if (f.large) {
    const parts = yield* splitFolio(sys, f, keep);
    if (typeof parts === 'number') return yield* keepFolio(parts);
    f = parts[keep]!;
  }
  const st = yield* f.inspect('folio_test_anon', (x) => ({
    anon: x.anon,
    lazyfree: x.lazyfree,
    dirty: x.dirty,
    slot: x.swapSlot,
    mapping: x.mapping,
  }));
  if (!st.anon && !st.mapping) return yield* keepFolio(-EINVAL);
  const mode = st.anon ? (st.lazyfree && !st.dirty ? 'discard' : 'swap') : 'file';
  let slot = st.slot;
  if (mode === 'swap' && slot === null) {
    // models folio_alloc_swap() + add_to_swap_cache()
    const cur = f;
    const got = yield* sys.swap.update('folio_alloc_swap', (s) => {
      const i = s.allocSlot();
      if (i >= 0) s.slots[i]!.cache = cur;
      return i;
    });
    if (got < 0) return yield* keepFolio(-ENOMEM);
    slot = got;
    yield* f.update('add_to_swap_cache', (x) => {
      x.swapSlot = got;
      x.refcount++;
      x.dirty = true;
    });
  }
  if (yield* f.inspect('folio_mapped', (x) => x.mapped)) {
    const ok = yield* tryToUnmap(sys, f, mode);
    const still = yield* f.inspect('folio_mapped', (x) => x.mapped);
    if (!ok || still) return yield* keepFolio(mode === 'discard' && !ok ? -EAGAIN : -EBUSY);
  }
  if (mode === 'discard') {
    const freed = yield* f.update('folio_ref_freeze', (x) => {
      if (x.refcount !== 1 || x.dirty) return false;
      x.refcount = 0;
      return true;
    });
    if (!freed) return yield* keepFolio(-EBUSY);
    yield* f.unlock();
    yield* mem.free(f, 'free_folio(lazyfree)');
    return 0;
  }
  // models pageout(): the content goes to the swap slot or the file.
  const data = yield* f.inspect('swap_writepage', (x) => ({ v: x.data[0]!, dirty: x.dirty, index: x.index }));
  if (mode === 'swap') {
    const s0 = slot!;
    yield* sys.swap.update('swap_writepage', (s) => {
      s.slots[s0]!.data = data.v;
    });
  } else if (data.dirty) {
    const file = st.mapping!;
    yield* file.update('writepage', (fl) => {
      fl.store[data.index] = data.v;
    });
  }
  yield* f.update('folio_clear_dirty', (x) => {
    x.dirty = false;
  });
  // models __remove_mapping(): freeze the cache's and our reference, then drop the cache entry.
  const frozen = yield* f.update('folio_ref_freeze', (x) => {
    if (x.refcount !== 2 || x.mapped) return false;
    x.refcount = 0;
    return true;
  });
  if (!frozen) return yield* keepFolio(-EBUSY);
  if (mode === 'swap') {
    const s0 = slot!;
    yield* sys.swap.update('__delete_from_swap_cache', (s) => {
      s.slots[s0]!.cache = null;
      s.maybeFree(s0);
    });
  } else {
    const file = st.mapping!;
    const index = data.index;
    yield* file.update('__filemap_remove_folio', (fl) => {
      fl.pageCache.delete(index);
    });
  }
  yield* f.update('__remove_mapping', (x) => {
    x.swapSlot = null;
    x.mapping = null;
  });
  yield* f.unlock();
  yield* mem.free(f, 'free_folio');
  return 0;
}

/**
 * Reclaims the page mapped at `addr` of `mm` (a targeted `shrink_folio_list` for tests and
 * scenarios): isolates its folio and calls {@link shrinkFolio}. -ENOENT if nothing is mapped.
 */
export function* swapOutPage(mm: Mm, addr: number): Routine<number> {
  const got = yield* folioGetAt(mm, addr);
  if (!got) return -ENOENT;
  return yield* shrinkFolio(mm.system, got.folio, got.index);
}
