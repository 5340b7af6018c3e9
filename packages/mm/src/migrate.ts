/**
 * Page migration of one folio (mm/migrate.c `migrate_pages` as compaction or NUMA balancing
 * use it, MIGRATE_SYNC): every mapping becomes a migration entry (`try_to_migrate`,
 * MMU_NOTIFY_CLEAR), the reference count is frozen, the content and identity move to a new folio,
 * and the migration entries are replaced by PTEs to it (`remove_migration_ptes`). CPU faults on a
 * migration entry wait for the old folio's lock. A THP is split first.
 */
import { EAGAIN, EINVAL, ENOENT, ENOMEM, type Routine } from '@hmmkit/sim';
import type { Folio } from './folio.js';
import { splitFolio } from './huge-memory.js';
import type { Mm } from './mm.js';
import { folioPut } from './physmem.js';
import { removeMigrationPtes, tryToMigrate } from './rmap.js';
import type { System } from './system.js';
import { folioGetAt } from './walk.js';

/**
 * Migrates an isolated `folio` (the caller holds a reference). Returns the new folio, which
 * carries the caller's reference, or a negative errno (-EAGAIN: still mapped or referenced by
 * someone else, e.g. a device pin; the old mappings are restored; the reference stays on `folio`).
 * For a THP, `keep` selects the base page migrated after the split (its folio is then the one the
 * reference moves to).
 */
export function* migrateFolio(sys: System, folio: Folio, keep = 0): Routine<Folio | number> {
  const mem = sys.mem;
  if (folio.zero || folio.zone !== 'normal') return -EINVAL;
  yield* folio.lock('folio_lock');
  let src = folio;
  if (src.large) {
    const parts = yield* splitFolio(sys, src, keep);
    if (typeof parts === 'number') {
      yield* src.unlock();
      return parts;
    }
    src = parts[keep]!;
  }
  const st = yield* src.inspect('folio_mapping', (x) => ({
    anon: x.anon,
    mapping: x.mapping,
    slot: x.swapSlot,
  }));
  if (!st.anon && !st.mapping) {
    yield* src.unlock();
    return -EINVAL;
  }
  const dst = yield* mem.alloc(0, 'alloc_migration_target');
  if (!dst) {
    yield* src.unlock();
    return -ENOMEM;
  }
  dst.locked = true;
  dst.lockedBy = sys.sim.current;
  const abort = function* (err: number): Routine<number> {
    yield* removeMigrationPtes(src, src);
    yield* dst.unlock();
    yield* folioPut(mem, dst);
    yield* src.unlock();
    return err;
  };
  // models migrate_folio_unmap()
  if (yield* src.inspect('folio_mapped', (x) => x.mapped)) yield* tryToMigrate(sys, src);
  const expected = 1 + (st.slot !== null || st.mapping ? 1 : 0);
  // models folio_migrate_mapping(): the refcount must be exactly ours (+ the cache's).
  const frozen = yield* src.update('folio_ref_freeze', (x) => {
    if (x.mapped || x.refcount !== expected) return false;
    x.refcount = 0;
    return true;
  });
  if (!frozen) return yield* abort(-EAGAIN);
  // models folio_migrate_copy() + folio_migrate_flags(): dst is private until it is mapped.
  const copy = yield* src.inspect('folio_copy', (x) => ({
    data: x.data[0]!,
    anonVma: x.anonVma,
    index: x.index,
    excl: x.anonExclusive[0]!,
    dirty: x.dirty,
  }));
  dst.data[0] = copy.data;
  dst.anon = st.anon;
  dst.anonVma = copy.anonVma;
  dst.index = copy.index;
  dst.anonExclusive[0] = copy.excl;
  dst.dirty = copy.dirty;
  dst.refcount = expected;
  if (st.slot !== null) {
    const s0 = st.slot;
    dst.swapSlot = s0;
    yield* sys.swap.update('__xa_store(swap cache)', (s) => {
      s.slots[s0]!.cache = dst;
    });
  }
  if (st.mapping) {
    const file = st.mapping;
    dst.mapping = file;
    yield* file.update('__xa_store(page cache)', (fl) => {
      fl.pageCache.set(copy.index, dst);
    });
  }
  // models remove_migration_ptes(src, dst)
  yield* removeMigrationPtes(src, dst);
  yield* src.update('folio_migrate_mapping', (x) => {
    x.mapping = null;
    x.swapSlot = null;
  });
  yield* dst.unlock();
  yield* src.unlock();
  yield* mem.free(src, 'free_folio(migrated)');
  return dst;
}

/**
 * Migrates the page mapped at `addr` of `mm` (compaction / NUMA-balancing style, for tests and
 * scenarios): 0, or a negative errno (-ENOENT if nothing is mapped there).
 */
export function* migratePage(mm: Mm, addr: number): Routine<number> {
  const got = yield* folioGetAt(mm, addr);
  if (!got) return -ENOENT;
  const r = yield* migrateFolio(mm.system, got.folio, got.index);
  if (typeof r === 'number') {
    // The isolation reference is on the folio we were given, or on the split part we kept.
    const holder = got.folio.dead ? mm.system.mem.folioAt(got.folio.pfn + got.index) : got.folio;
    if (holder) yield* folioPut(mm.system.mem, holder);
    return r === -EAGAIN ? -EAGAIN : r;
  }
  yield* folioPut(mm.system.mem, r);
  return 0;
}
