/**
 * The page-fault handler (mm/memory.c `handle_mm_fault` and friends). Called with the mmap_lock
 * held for read; returns a `VM_FAULT_*` code: 0 when the fault was handled (or another thread
 * changed the entry meanwhile), VM_FAULT_RETRY when it could not make progress until another thread
 * does (a folio being freed or frozen), so the caller should `cpu_relax()` before retrying.
 */
import type { Routine } from '@hmmkit/sim';
import {
  alignDown,
  FAULT_FLAG_WRITE,
  PAGE_SIZE,
  VM_EXEC,
  VM_FAULT_FALLBACK,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import type { Folio } from './folio.js';
import { doHugePmdAnonymousPage, doHugePmdWpPage, thpEligible } from './huge-memory.js';
import type { Mm } from './mm.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import {
  type PmdSlot,
  type PresentPte,
  PTE_NONE,
  type Pte,
  type PteSlot,
  PteTable,
  pteSame,
  type SwapPte,
} from './pgtable.js';
import { folioPut, ZERO_PFN } from './physmem.js';
import { addNewAnonRmap, anonVmaPrepare, folioRemoveRmapPteAndPut } from './rmap.js';
import type { Vma } from './vma.js';

/** `struct vm_fault`. */
export interface VmFault {
  vma: Vma;
  /** Page-aligned faulting address. */
  address: number;
  /** The exact address that faulted. */
  realAddress: number;
  /** `FAULT_FLAG_*`. */
  flags: number;
  pmdSlot: PmdSlot;
  table: PteTable | null;
  slot: PteSlot | null;
  /** The entry as first read (`vmf->orig_pte`). */
  origPte: Pte;
  /** For `migrate_to_ram`: the locked, referenced device folio (`vmf->page`). */
  page: Folio | null;
}

/** x86 `access_error()`: the VMA does not allow this access. */
export function accessError(vma: Vma, write: boolean): boolean {
  if (write) return (vma.flags & VM_WRITE) === 0;
  return (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) === 0;
}

/** models handle_mm_fault() → __handle_mm_fault(): walks to the PMD, then the PTE level. */
export function* handleMmFault(vma: Vma, address: number, flags: number): Routine<number> {
  const mm = vma.mm;
  const addr = alignDown(address, PAGE_SIZE);
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const pmdSlot = mm.pageTable.pmdSlot(addr);
  for (;;) {
    const pmd = yield* pmdSlot.get('handle_mm_fault');
    const vmf: VmFault = {
      vma,
      address: addr,
      realAddress: address,
      flags,
      pmdSlot,
      table: null,
      slot: null,
      origPte: PTE_NONE,
      page: null,
    };
    if (pmd.kind === 'none') {
      if (thpEligible(vma, addr)) {
        const ret = yield* doHugePmdAnonymousPage(vmf);
        if (ret !== VM_FAULT_FALLBACK) return ret;
      }
      yield* pteAlloc(mm, pmdSlot);
      continue;
    }
    if (pmd.kind === 'huge') {
      if (pmd.protnone) return VM_FAULT_SIGSEGV;
      if (write && !pmd.write) {
        const ret = yield* doHugePmdWpPage(vmf, pmd);
        if (ret === VM_FAULT_FALLBACK) continue;
        return ret;
      }
      return 0;
    }
    vmf.table = pmd.table;
    return yield* handlePteFault(vmf);
  }
}

/** `__pte_alloc()`: installs a PTE table under the PMD lock unless someone else did. */
export function* pteAlloc(mm: Mm, pmdSlot: PmdSlot): Routine {
  const table = new PteTable(mm.sim, mm, pmdSlot.addr);
  yield* mm.pageTable.pmdLock.lock('pmd_lock');
  yield* pmdSlot.modify((o) => (o.kind === 'none' ? { kind: 'table', table } : null), 'pmd_populate');
  yield* mm.pageTable.pmdLock.unlock();
}

/** models handle_pte_fault(). */
function* handlePteFault(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const slot = vmf.table!.slot(vmf.address);
  vmf.slot = slot;
  const orig = yield* slot.get('handle_pte_fault');
  vmf.origPte = orig;
  if (orig.kind === 'none') {
    if (vma.flags & (VM_PFNMAP | VM_MIXEDMAP)) return VM_FAULT_SIGBUS;
    return vma.isAnonymous ? yield* doAnonymousPage(vmf) : yield* doFault(vmf);
  }
  if (orig.kind !== 'present') return yield* doSwapPage(vmf);
  if (orig.protnone) return VM_FAULT_SIGSEGV;
  if (vmf.flags & FAULT_FLAG_WRITE && !orig.write) {
    yield* vmf.table!.ptl.lock('handle_pte_fault');
    if (!pteSame(slot.entry, orig)) {
      yield* vmf.table!.ptl.unlock();
      return 0;
    }
    return yield* doWpPage(vmf);
  }
  return 0;
}

/** models do_anonymous_page(): the zero page on a read, a new exclusive folio on a write. */
function* doAnonymousPage(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const sys = mm.system;
  const slot = vmf.slot!;
  const ptl = vmf.table!.ptl;
  if (!(vmf.flags & FAULT_FLAG_WRITE) && sys.zeroPage) {
    yield* ptl.lock('do_anonymous_page');
    if (slot.entry.kind !== 'none') {
      yield* ptl.unlock();
      return 0;
    }
    if (yield* mm.unstable.read('check_stable_address_space')) {
      yield* ptl.unlock();
      return VM_FAULT_SIGBUS;
    }
    yield* slot.set(
      { kind: 'present', pfn: ZERO_PFN, write: false, dirty: false, young: true, zero: true, special: true },
      'map zero page',
    );
    yield* ptl.unlock();
    return 0;
  }
  yield* anonVmaPrepare(vma);
  const folio = yield* sys.mem.alloc(0, 'vma_alloc_zeroed_movable_folio');
  if (!folio) return VM_FAULT_OOM;
  yield* ptl.lock('do_anonymous_page');
  if (slot.entry.kind !== 'none') {
    yield* ptl.unlock();
    yield* folioPut(sys.mem, folio);
    return 0;
  }
  if (yield* mm.unstable.read('check_stable_address_space')) {
    yield* ptl.unlock();
    yield* folioPut(sys.mem, folio);
    return VM_FAULT_SIGBUS;
  }
  addNewAnonRmap(folio, vma, vmf.address, 'pte');
  mm.rss.anon++;
  const writable = (vma.flags & VM_WRITE) !== 0;
  yield* slot.set(
    { kind: 'present', pfn: folio.pfn, write: writable, dirty: writable, young: true },
    'do_anonymous_page',
  );
  yield* ptl.unlock();
  return 0;
}

/** The RSS counter of a file folio's mapping. */
function fileCounter(vma: Vma): 'file' | 'shmem' {
  return vma.file?.shmem ? 'shmem' : 'file';
}

/**
 * models filemap_fault(): the page-cache folio at the faulting offset with a reference (read from
 * the file and added to the cache if missing), or a VM_FAULT code (SIGBUS beyond EOF).
 */
export function* filemapFault(vmf: VmFault): Routine<Folio | number> {
  const file = vmf.vma.file!;
  const sys = vmf.vma.mm.system;
  const index = vmf.vma.linearPageIndex(vmf.address);
  for (;;) {
    if (index >= file.sizePages) return VM_FAULT_SIGBUS;
    const cached = yield* file.inspect('filemap_get_folio', (f) => f.pageCache.get(index) ?? null);
    if (cached) {
      if (yield* cached.tryGet('filemap_get_folio')) return cached;
      // Being removed from the page cache: wait for the remover to make progress.
      yield vmf.vma.mm.sim.relax('filemap_get_folio retry');
      continue;
    }
    const n = yield* sys.mem.alloc(0, 'filemap_alloc_folio');
    if (!n) return VM_FAULT_OOM;
    const got = yield* file.update('filemap_add_folio', (f) => {
      const cur = f.pageCache.get(index);
      if (cur) return cur;
      n.mapping = f;
      n.index = index;
      n.data[0] = f.store[index]!;
      n.refcount = 2;
      f.pageCache.set(index, n);
      return n;
    });
    if (got === n) return n;
    yield* folioPut(sys.mem, n);
    if (yield* got.tryGet('filemap_get_folio')) return got;
    yield vmf.vma.mm.sim.relax('filemap_get_folio retry');
  }
}

/** models do_fault(): read, COW (private write) or shared write fault on a file mapping. */
function* doFault(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  if (!vma.file) return VM_FAULT_SIGBUS;
  const mm = vma.mm;
  const sys = mm.system;
  const slot = vmf.slot!;
  const ptl = vmf.table!.ptl;
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  if (write && !vma.isShared) {
    // models do_cow_fault()
    yield* anonVmaPrepare(vma);
    const n = yield* sys.mem.alloc(0, 'do_cow_fault');
    if (!n) return VM_FAULT_OOM;
    const f = yield* filemapFault(vmf);
    if (typeof f === 'number') {
      yield* folioPut(sys.mem, n);
      return f;
    }
    n.data[0] = yield* f.inspect('copy_user_highpage', (x) => x.data[0]!);
    yield* ptl.lock('do_cow_fault');
    if (slot.entry.kind !== 'none') {
      yield* ptl.unlock();
      yield* folioPut(sys.mem, n);
      yield* folioPut(sys.mem, f);
      return 0;
    }
    addNewAnonRmap(n, vma, vmf.address, 'pte');
    mm.rss.anon++;
    const writable = (vma.flags & VM_WRITE) !== 0;
    yield* slot.set(
      { kind: 'present', pfn: n.pfn, write: writable, dirty: writable, young: true },
      'do_cow_fault',
    );
    yield* ptl.unlock();
    yield* folioPut(sys.mem, f);
    return 0;
  }
  // models do_read_fault() and do_shared_fault()
  const f = yield* filemapFault(vmf);
  if (typeof f === 'number') return f;
  yield* ptl.lock(write ? 'do_shared_fault' : 'do_read_fault');
  if (slot.entry.kind !== 'none') {
    yield* ptl.unlock();
    yield* folioPut(sys.mem, f);
    return 0;
  }
  // The lookup reference becomes the mapping's reference.
  yield* f.update('folio_add_file_rmap_pte', (x) => {
    x.mapcount[0]!++;
    if (write) x.dirty = true;
  });
  mm.rss[fileCounter(vma)]++;
  yield* slot.set(
    { kind: 'present', pfn: f.pfn, write, dirty: write, young: true },
    write ? 'do_shared_fault' : 'do_read_fault',
  );
  yield* ptl.unlock();
  return 0;
}

/**
 * models do_wp_page(), entered with the PTL held and the entry unchanged: make the page writable
 * in place (shared mapping, or an exclusive anonymous page), or copy it (COW).
 */
export function* doWpPage(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const sys = mm.system;
  const slot = vmf.slot!;
  const ptl = vmf.table!.ptl;
  const orig = vmf.origPte as PresentPte;
  const folio = orig.zero ? null : sys.mem.folioAt(orig.pfn);
  const mkwrite = (o: Pte): Pte | null =>
    o.kind === 'present' && pteSame(o, orig) ? { ...o, write: true, dirty: true, young: true } : null;
  if (vma.isShared) {
    // models wp_page_shared() / wp_pfn_shared()
    yield* slot.modify(mkwrite, 'wp_page_reuse');
    if (folio && !orig.special) {
      yield* folio.update('folio_mark_dirty', (f) => {
        f.dirty = true;
      });
    }
    yield* ptl.unlock();
    return 0;
  }
  if (folio?.anon && !orig.special) {
    const i = orig.pfn - folio.pfn;
    // models PageAnonExclusive() || wp_can_reuse_anon_folio()
    const reuse = yield* folio.update('wp_can_reuse_anon_folio', (f) => {
      if (f.anonExclusive[i]) return true;
      if (!f.large && f.refcount === 1 && f.swapSlot === null) {
        f.anonExclusive[i] = true;
        return true;
      }
      return false;
    });
    if (reuse) {
      yield* slot.modify(mkwrite, 'wp_page_reuse');
      yield* ptl.unlock();
      return 0;
    }
  }
  const old = folio && !orig.special ? folio : null;
  if (old) yield* old.get('wp_page_copy');
  yield* ptl.unlock();
  return yield* wpPageCopy(vmf, old);
}

/** models wp_page_copy(): a private copy, swapped in under a CLEAR notifier range. */
function* wpPageCopy(vmf: VmFault, old: Folio | null): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const sys = mm.system;
  const slot = vmf.slot!;
  const ptl = vmf.table!.ptl;
  const orig = vmf.origPte as PresentPte;
  yield* anonVmaPrepare(vma);
  const n = yield* sys.mem.alloc(0, 'folio_prealloc');
  if (!n) {
    if (old) yield* folioPut(sys.mem, old);
    return VM_FAULT_OOM;
  }
  if (old) n.data[0] = yield* old.inspect('__wp_page_copy_user', (f) => f.data[orig.pfn - f.pfn]!);
  const range = new MmuNotifierRange({
    mm,
    start: vmf.address,
    end: vmf.address + PAGE_SIZE,
    event: MmuNotifyEvent.CLEAR,
  });
  yield* invalidateRangeStart(range);
  yield* ptl.lock('wp_page_copy');
  let unused: Folio | null = n;
  if (pteSame(slot.entry, orig)) {
    if (!old) mm.rss.anon++;
    else if (!old.anon) {
      mm.rss[fileCounter(vma)]--;
      mm.rss.anon++;
    }
    addNewAnonRmap(n, vma, vmf.address, 'pte');
    yield* slot.set({ kind: 'present', pfn: n.pfn, write: true, dirty: true, young: true }, 'wp_page_copy');
    if (old) yield* folioRemoveRmapPteAndPut(sys, old, orig.pfn - old.pfn);
    unused = null;
  }
  yield* ptl.unlock();
  yield* invalidateRangeEnd(range);
  if (unused) yield* folioPut(sys.mem, unused);
  if (old) yield* folioPut(sys.mem, old);
  return 0;
}

/** models do_swap_page(): every non-present, non-none entry. */
function* doSwapPage(vmf: VmFault): Routine<number> {
  switch (vmf.origPte.kind) {
    case 'migration':
      return yield* migrationEntryWait(vmf);
    case 'device-exclusive':
      return yield* removeDeviceExclusiveEntry(vmf);
    case 'device-private':
      return yield* devicePrivateFault(vmf);
    case 'swap':
      return yield* swapIn(vmf);
    default:
      return VM_FAULT_SIGBUS;
  }
}

/** models migration_entry_wait(): sleep until the migrating folio is unlocked, then retry. */
function* migrationEntryWait(vmf: VmFault): Routine<number> {
  const ptl = vmf.table!.ptl;
  const orig = vmf.origPte as Extract<Pte, { kind: 'migration' }>;
  yield* ptl.lock('migration_entry_wait');
  if (!pteSame(vmf.slot!.entry, orig)) {
    yield* ptl.unlock();
    return 0;
  }
  const folio = vmf.vma.mm.system.mem.folioAt(orig.pfn);
  yield* ptl.unlock();
  if (folio) yield* folio.waitUnlocked('migration_entry_wait_on_locked');
  return 0;
}

/**
 * models remove_device_exclusive_entry() (v6.15+): lock the folio, open a CLEAR notifier range
 * over the page (the owning driver drops its exclusive mapping), restore a present PTE.
 */
function* removeDeviceExclusiveEntry(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const ptl = vmf.table!.ptl;
  const slot = vmf.slot!;
  const orig = vmf.origPte as Extract<Pte, { kind: 'device-exclusive' }>;
  const folio = mm.system.mem.folioAt(orig.pfn);
  if (!folio) return VM_FAULT_RETRY;
  if (!(yield* folio.tryGet('folio_try_get'))) return VM_FAULT_RETRY;
  yield* folio.lock('folio_lock_or_retry');
  // v6.15+: MMU_NOTIFY_CLEAR. An old-API entry (v5.14-v6.14) is restored the old way, with
  // MMU_NOTIFY_EXCLUSIVE and a NULL owner.
  const range = new MmuNotifierRange({
    mm,
    start: vmf.address,
    end: vmf.address + PAGE_SIZE,
    event: orig.old ? MmuNotifyEvent.EXCLUSIVE : MmuNotifyEvent.CLEAR,
    owner: null,
  });
  yield* invalidateRangeStart(range);
  yield* ptl.lock('remove_device_exclusive_entry');
  if (pteSame(slot.entry, orig)) {
    yield* slot.set(yield* restoreExclusivePte(vma, folio, orig), 'restore_exclusive_pte');
  }
  yield* ptl.unlock();
  yield* folio.unlock();
  yield* folioPut(mm.system.mem, folio);
  yield* invalidateRangeEnd(range);
  return 0;
}

/**
 * models restore_exclusive_pte(): the present PTE that replaces a device-exclusive entry (caller
 * holds the folio lock and the PTL). v6.15+: old, writable if the VMA is and the page is
 * anon-exclusive; mapcount untouched (the entry kept it). Old-API entry: writable iff the entry
 * was the WRITE variant, and the rmap dropped at conversion is added back.
 */
export function* restoreExclusivePte(
  vma: Vma,
  folio: Folio,
  orig: Extract<Pte, { kind: 'device-exclusive' }>,
): Routine<PresentPte> {
  const i = orig.pfn - folio.pfn;
  if (orig.old) {
    const writable = orig.old.write && (vma.flags & VM_WRITE) !== 0;
    yield* folio.update('folio_add_anon_rmap_pte', (f) => {
      f.mapcount[i]!++;
      if (writable) f.dirty = true;
    });
    return { kind: 'present', pfn: orig.pfn, write: writable, dirty: writable, young: false };
  }
  const st = yield* folio.inspect('PageAnonExclusive', (f) => ({
    excl: f.anonExclusive[i]!,
    dirty: f.dirty,
  }));
  const writable = (vma.flags & VM_WRITE) !== 0 && st.excl;
  return { kind: 'present', pfn: orig.pfn, write: writable, dirty: writable && st.dirty, young: false };
}

/** do_swap_page() on a device-private entry: hand the fault to `pgmap->ops->migrate_to_ram`. */
function* devicePrivateFault(vmf: VmFault): Routine<number> {
  const mm = vmf.vma.mm;
  const ptl = vmf.table!.ptl;
  const orig = vmf.origPte as Extract<Pte, { kind: 'device-private' }>;
  yield* ptl.lock('do_swap_page(device-private)');
  if (!pteSame(vmf.slot!.entry, orig)) {
    yield* ptl.unlock();
    return 0;
  }
  const folio = mm.system.mem.folioAt(orig.pfn);
  if (!folio) {
    yield* ptl.unlock();
    return VM_FAULT_SIGBUS;
  }
  if (yield* folio.trylock('folio_trylock')) {
    yield* folio.get('get_page');
    yield* ptl.unlock();
    vmf.page = folio;
    const ops = folio.pgmap?.ops;
    const ret = ops?.migrateToRam ? yield* ops.migrateToRam(vmf) : VM_FAULT_SIGBUS;
    // page_folio(vmf->page) again: migrate_to_ram may have split a device THP, and the lock and
    // reference then belong to the faulting page's new folio.
    const holder = folio.dead ? (mm.system.mem.folioAt(orig.pfn) ?? folio) : folio;
    yield* holder.unlock();
    yield* folioPut(mm.system.mem, holder);
    // migrate_to_ram() may leave the page where it is (a concurrent migration holds a reference):
    // the CPU then retries the access. On hardware another CPU makes progress meanwhile; in the
    // model the retry waits until some other thread changed something (VM_FAULT_RETRY here means
    // exactly that), or a busy CPU would starve the thread that holds the page.
    if (ret === 0 && pteSame(yield* vmf.slot!.get('pte_same after migrate_to_ram'), orig)) {
      return VM_FAULT_RETRY;
    }
    return ret;
  }
  yield* ptl.unlock();
  yield* folio.waitUnlocked('migration_entry_wait_on_locked');
  return 0;
}

/**
 * do_swap_page() on a swap entry: find or read the folio (through the swap cache, which also pins
 * the slot against reuse), map it, and drop this entry's swap count; the last one removes the folio
 * from the swap cache. The page is mapped writable when it is certainly exclusive.
 */
function* swapIn(vmf: VmFault): Routine<number> {
  const { vma } = vmf;
  const mm = vma.mm;
  const sys = mm.system;
  const swap = sys.swap;
  const slot = vmf.slot!;
  const ptl = vmf.table!.ptl;
  const orig = vmf.origPte as SwapPte;
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  yield* anonVmaPrepare(vma);
  let folio = yield* swap.inspect('swap_cache_get_folio', (s) => s.slots[orig.slot]?.cache ?? null);
  if (folio) {
    if (!(yield* folio.tryGet('swap_cache_get_folio'))) return VM_FAULT_RETRY;
  } else {
    const n = yield* sys.mem.alloc(0, 'alloc_swap_folio');
    if (!n) {
      yield* ptl.lock();
      const same = pteSame(slot.entry, orig);
      yield* ptl.unlock();
      return same ? VM_FAULT_OOM : 0;
    }
    const got = yield* swap.update('swapin_readahead', (s) => {
      const sl = s.slots[orig.slot]!;
      if (!sl.used) return null;
      if (sl.cache) return sl.cache;
      n.data[0] = sl.data;
      n.swapSlot = orig.slot;
      n.refcount++;
      sl.cache = n;
      return n;
    });
    if (got !== n) {
      yield* folioPut(sys.mem, n);
      if (!got) return 0;
      if (!(yield* got.tryGet('swap_cache_get_folio'))) return VM_FAULT_RETRY;
    }
    folio = got;
  }
  yield* folio.lock('folio_lock_or_retry');
  const f = folio;
  const inCache = yield* f.inspect('folio_test_swapcache', (x) => x.swapSlot === orig.slot);
  yield* ptl.lock('do_swap_page');
  if (!inCache || !pteSame(slot.entry, orig)) {
    yield* ptl.unlock();
    yield* f.unlock();
    yield* folioPut(sys.mem, f);
    return 0;
  }
  const dropCache = yield* swap.update('swap_free', (s) => {
    const sl = s.slots[orig.slot]!;
    sl.count--;
    if (sl.count === 0 && sl.cache === f) {
      // The slot itself is released once the PTE no longer refers to it (below).
      sl.cache = null;
      return true;
    }
    return false;
  });
  if (dropCache) {
    yield* f.update('delete_from_swap_cache', (x) => {
      x.swapSlot = null;
      x.refcount--;
    });
  }
  // Our reference becomes the mapping's.
  const exclusive = yield* f.update('folio_add_anon_rmap_pte', (x) => {
    const excl = orig.exclusive || x.refcount === 1;
    if (!x.anon) {
      x.anon = true;
      x.anonVma = vma.anonVma;
      x.index = vma.linearPageIndex(vmf.address);
    }
    x.mapcount[0]!++;
    if (excl) x.anonExclusive[0] = true;
    return excl;
  });
  const writable = exclusive && (vma.flags & VM_WRITE) !== 0;
  const pte: PresentPte = {
    kind: 'present',
    pfn: f.pfn,
    write: writable,
    dirty: writable && write,
    young: true,
  };
  yield* slot.set(pte, 'do_swap_page');
  mm.rss.anon++;
  mm.rss.swap--;
  if (dropCache) {
    yield* swap.update('swapcache_clear', (s) => {
      s.maybeFree(orig.slot);
    });
  }
  yield* ptl.unlock();
  yield* f.unlock();
  if (write && !writable) {
    yield* ptl.lock('do_wp_page');
    if (pteSame(slot.entry, pte)) {
      vmf.origPte = pte;
      return yield* doWpPage(vmf);
    }
    yield* ptl.unlock();
  }
  return 0;
}
