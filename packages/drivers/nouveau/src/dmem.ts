/**
 * nouveau_dmem.c: device-private VRAM. Chunks of VRAM (a pinned BO each) are registered as
 * `MEMORY_DEVICE_PRIVATE` page maps owned by `drm->dev`, on demand; their pages go to processes
 * through `migrate_vma` (SVM_BIND's migrate hint) and come back on a CPU fault
 * (`migrate_to_ram`) or when the driver is unloaded (`nouveau_dmem_evict_chunk`).
 *
 * The copy engine is modelled as an immediate copy when the copy is queued; the fence that the
 * driver waits for after `migrate_vma_pages()` is then already signalled. A device page remembers
 * the svmm it was migrated for in `zone_device_data` (a raw pointer, as upstream).
 *
 * Simplifications: order-0 device pages only (no MIGRATE_VMA_SELECT_COMPOUND, no THP chunks); the
 * model's VRAM address of a page is its device-private pfn; DMA mapping is not modelled.
 */
import {
  type Folio,
  PAGE_SIZE,
  type Pgmap,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
} from '@hmmkit/mm';
import {
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '@hmmkit/mm/migrate';
import { ENOMEM, type KBuf, kfree, kmalloc, Mutex, type Routine, Spinlock } from '@hmmkit/sim';
import type { NouveauDrm } from './drm.js';
import {
  NVIF_VMM_PFNMAP_V0_NONE,
  NVIF_VMM_PFNMAP_V0_V,
  NVIF_VMM_PFNMAP_V0_VRAM,
  NVIF_VMM_PFNMAP_V0_W,
  nvifPfnmapEntry,
} from './nvif.js';
import {
  type NouveauSvmm,
  nouveauPfnsAlloc,
  nouveauPfnsFree,
  nouveauPfnsMap,
  nouveauSvmmInvalidate,
} from './svm.js';
import { nouveauWarnOn } from './svm-fault.js';

/** `ENODEV` (not among the sim's errno constants). */
const ENODEV = 19;

/** `HPAGE_PMD_NR`: the most pages nouveau_dmem_migrate_vma() migrates per migrate_vma_setup(). */
export const NOUVEAU_DMEM_MIGRATE_MAX = 512;

/** `struct nouveau_dmem_chunk`. */
export class NouveauDmemChunk {
  /** Device pages of this chunk in use (`callocated`). */
  callocated = 0;
  constructor(
    readonly drm: NouveauDrm,
    /** `chunk->pagemap`, owner `drm->dev`. */
    readonly pagemap: Pgmap,
    /** The pinned VRAM BO behind the chunk. */
    readonly bo: KBuf,
    /** kzalloc(sizeof(*chunk)). */
    readonly mem: KBuf,
  ) {}
}

/** `struct nouveau_dmem`. */
export class NouveauDmem {
  /** `dmem->chunks`. */
  readonly chunks: NouveauDmemChunk[] = [];
  /** `dmem->mutex`: the chunk list. */
  readonly mutex: Mutex;
  /** `dmem->lock`: the free lists and `callocated`. */
  readonly lock: Spinlock;
  /** `page->zone_device_data` of allocated pages: the svmm they were migrated for. */
  readonly zoneDeviceData = new Map<Folio, NouveauSvmm>();
  /** Model counters for tests. */
  readonly stats = { toVram: 0, toRam: 0, evicted: 0 };

  constructor(readonly drm: NouveauDrm) {
    this.mutex = new Mutex(drm.sim, `${drm.name}->dmem->mutex`, { lockClass: 'nouveau_dmem.mutex' });
    this.lock = new Spinlock(drm.sim, `${drm.name}->dmem->lock`, { lockClass: 'nouveau_dmem.lock' });
  }

  /** The chunk of a device page (`nouveau_page_to_chunk()`). */
  chunkOf(folio: Folio): NouveauDmemChunk | null {
    return this.chunks.find((c) => c.pagemap === folio.pgmap) ?? null;
  }
}

/** models nouveau_dmem_page_free(): a device page's last reference is gone (runs inside the free). */
function nouveauDmemPageFree(dmem: NouveauDmem, folio: Folio): void {
  const chunk = dmem.chunkOf(folio);
  dmem.zoneDeviceData.delete(folio);
  if (!chunk) return;
  nouveauWarnOn(dmem.drm.sim, chunk.callocated === 0, `${folio.name} freed with callocated == 0`);
  chunk.callocated--;
}

/**
 * models nouveau_dmem_chunk_alloc(): a new chunk (pinned VRAM BO, a fresh device-private page map
 * owned by drm->dev), and its first page for the caller.
 */
function* nouveauDmemChunkAlloc(drm: NouveauDrm): Routine<Folio | number> {
  const dmem = drm.dmem!;
  const sim = drm.sim;
  const mem = drm.system.mem;
  const cmem = yield* kmalloc(sim, 128, 'GFP_KERNEL', 'kzalloc(chunk)');
  if (!cmem) return -ENOMEM;
  // nouveau_bo_new_pin(NOUVEAU_GEM_DOMAIN_VRAM, DMEM_CHUNK_SIZE)
  const bo = yield* kmalloc(sim, 256, 'GFP_KERNEL', 'nouveau_bo_new_pin(DMEM_CHUNK_SIZE)');
  if (!bo) {
    yield* kfree(cmem);
    return -ENOMEM;
  }
  // request_free_mem_region() + memremap_pages(): the page map joins the physical memory map.
  const n = dmem.chunks.length;
  const pagemap = yield* mem.update(
    'memremap_pages',
    (m) =>
      m.addPgmap(
        'device-private',
        drm.dev,
        drm.options.dmemChunkPages,
        {
          migrateToRam: (vmf) => nouveauDmemMigrateToRam(drm, vmf),
          pageFree: (folio) => nouveauDmemPageFree(dmem, folio),
        },
        `${drm.name}:dmem${n}`,
      ),
    `${drm.name} chunk ${n}`,
  );
  const chunk = new NouveauDmemChunk(drm, pagemap, bo, cmem);
  yield* dmem.mutex.lock('mutex_lock(&dmem->mutex)');
  dmem.chunks.unshift(chunk);
  yield* dmem.mutex.unlock('mutex_unlock(&dmem->mutex)');
  yield* dmem.lock.lock('spin_lock(&dmem->lock)');
  const page = yield* mem.allocDevice(pagemap, 0, 'first page of the new chunk');
  if (page) chunk.callocated++;
  yield* dmem.lock.unlock('spin_unlock(&dmem->lock)');
  return page ?? -ENOMEM;
}

/**
 * models nouveau_dmem_page_alloc_locked(): a device page from the free list (or a new chunk),
 * referenced and locked (`zone_device_folio_init()`), or null.
 */
function* nouveauDmemPageAllocLocked(drm: NouveauDrm): Routine<Folio | null> {
  const dmem = drm.dmem!;
  const mem = drm.system.mem;
  let page: Folio | null = null;
  yield* dmem.lock.lock('spin_lock(&dmem->lock)');
  for (const chunk of dmem.chunks) {
    page = yield* mem.allocDevice(chunk.pagemap, 0, 'dmem->free_pages');
    if (page) {
      chunk.callocated++;
      break;
    }
  }
  yield* dmem.lock.unlock('spin_unlock(&dmem->lock)');
  if (!page) {
    const r = yield* nouveauDmemChunkAlloc(drm);
    if (typeof r === 'number') return null;
    page = r;
  }
  // zone_device_folio_init(): one reference (the allocation's) and the page lock.
  page.locked = true;
  page.lockedBy = drm.sim.current;
  return page;
}

/**
 * models nouveau_dmem_copy_folio(): the copy engine copies VRAM page `sfolio` to system page
 * `dfolio` (locking the destination first).
 */
function* nouveauDmemCopyFolio(sfolio: Folio, dfolio: Folio): Routine<number> {
  yield* dfolio.lock('folio_lock(dfolio)');
  const value = yield* sfolio.inspect('copy engine: read VRAM', (f) => f.data[0]!);
  yield* dfolio.update('copy engine: write sysmem', (f) => {
    f.data[0] = value;
  });
  return 0;
}

/**
 * models nouveau_dmem_migrate_to_ram(), the pgmap's migrate_to_ram: a CPU fault on one of this
 * GPU's device-private pages (mmap_lock held, the page locked and referenced by the fault path).
 * One page per fault. Under svmm->mutex the GPU PTEs of the range are cleared and the page copied
 * back; then the migration completes.
 */
export function* nouveauDmemMigrateToRam(drm: NouveauDrm, vmf: VmFault): Routine<number> {
  const sim = drm.sim;
  const mem = drm.system.mem;
  const dmem = drm.dmem!;
  const sfolio = vmf.page!;
  const start = vmf.address - (vmf.address % PAGE_SIZE);
  const args: MigrateVma = {
    vma: vmf.vma,
    start,
    end: start + PAGE_SIZE,
    src: [],
    dst: [],
    cpages: 0,
    npages: 0,
    pgmapOwner: drm.dev,
    flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    faultPage: sfolio,
  };
  const srcMem = yield* kmalloc(sim, 8, 'GFP_KERNEL', 'kcalloc(args.src)');
  const dstMem = srcMem ? yield* kmalloc(sim, 8, 'GFP_KERNEL', 'kcalloc(args.dst)') : null;
  if (!srcMem || !dstMem) {
    if (srcMem) yield* kfree(srcMem);
    return VM_FAULT_OOM;
  }
  // As in the snapshot read, these two early returns do not free src/dst.
  if ((yield* migrateVmaSetup(args)) < 0) return VM_FAULT_SIGBUS;
  if (!args.cpages) return 0;
  let ret = 0;
  const dfolio = yield* mem.alloc(0, 'alloc_page_vma(GFP_HIGHUSER | __GFP_ZERO)');
  if (!dfolio) {
    ret = VM_FAULT_OOM;
  } else {
    args.dst[0] = migratePfn(dfolio.pfn);
    const svmm = dmem.zoneDeviceData.get(sfolio);
    if (!svmm)
      return sim.fail('null-pointer-dereference', `migrate_to_ram: ${sfolio.name}->zone_device_data is NULL`);
    yield* svmm.mutex.lock('mutex_lock(&svmm->mutex)');
    if (drm.variant !== 'migrate-to-ram-no-clear') yield* nouveauSvmmInvalidate(svmm, args.start, args.end);
    const err = yield* nouveauDmemCopyFolio(sfolio, dfolio);
    yield* svmm.mutex.unlock('mutex_unlock(&svmm->mutex)');
    if (err) {
      ret = VM_FAULT_SIGBUS;
    } else {
      // nouveau_fence_new(); migrate_vma_pages(); nouveau_dmem_fence_done(); dma_unmap_page()
      yield* migrateVmaPages(args);
      dmem.stats.toRam++;
    }
  }
  yield* migrateVmaFinalize(args);
  yield* kfree(srcMem);
  yield* kfree(dstMem);
  return ret;
}

/**
 * models nouveau_dmem_migrate_copy_one(): a device page for one selected source entry, filled by
 * the copy engine (or cleared, for a hole), remembered for `svmm`, and the PFNMAP entry that maps
 * it; 0 (and a NONE entry) when the entry is not migrated.
 */
function* nouveauDmemMigrateCopyOne(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  src: number,
  out: { phys: number; frame: import('@hmmkit/mm').FrameRef | null },
): Routine<number> {
  const mem = drm.system.mem;
  out.phys = NVIF_VMM_PFNMAP_V0_NONE;
  out.frame = null;
  if (!(src & MIGRATE_PFN_MIGRATE)) return 0;
  const dpage = yield* nouveauDmemPageAllocLocked(drm);
  if (!dpage) return 0;
  const spage = src & MIGRATE_PFN_VALID ? mem.folioAt(migratePfnToPfn(src)) : null;
  if (spage) {
    const value = yield* spage.inspect(
      'copy engine: read sysmem',
      (f) => f.data[migratePfnToPfn(src) - f.pfn]!,
    );
    yield* dpage.update('copy engine: write VRAM', (f) => {
      f.data[0] = value;
    });
  } else {
    // clear_func: a hole becomes a zeroed device page (allocations start zeroed in the model).
  }
  drm.dmem!.zoneDeviceData.set(dpage, svmm);
  let flags = NVIF_VMM_PFNMAP_V0_V | NVIF_VMM_PFNMAP_V0_VRAM;
  if (src & MIGRATE_PFN_WRITE) flags |= NVIF_VMM_PFNMAP_V0_W;
  out.phys = nvifPfnmapEntry(dpage.pfn, flags);
  out.frame = mem.frameRef(dpage, 0);
  return migratePfn(dpage.pfn);
}

/**
 * models nouveau_dmem_migrate_chunk(): copy every selected page, migrate_vma_pages(), then map the
 * new VRAM pages on the GPU at once (nouveau_pfns_map() under svmm->mutex) and finalize.
 */
function* nouveauDmemMigrateChunk(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  args: MigrateVma,
  pfns: import('./svm.js').NouveauPfnmapArgs,
): Routine {
  let i = 0;
  for (let addr = args.start; addr < args.end; addr += PAGE_SIZE, i++) {
    const out = { phys: 0, frame: null as import('@hmmkit/mm').FrameRef | null };
    args.dst[i] = yield* nouveauDmemMigrateCopyOne(drm, svmm, args.src[i] ?? 0, out);
    pfns.phys[i] = out.phys;
    pfns.frames[i] = out.frame;
  }
  // nouveau_fence_new(); migrate_vma_pages(); nouveau_dmem_fence_done()
  yield* migrateVmaPages(args);
  yield* nouveauPfnsMap(svmm, args.start, pfns, i);
  drm.dmem!.stats.toVram++;
  yield* migrateVmaFinalize(args);
}

/**
 * models nouveau_dmem_migrate_vma(): migrates `[start, end)` of `vma` to VRAM in batches of at most
 * {@link NOUVEAU_DMEM_MIGRATE_MAX} pages (mmap_lock held by the caller). 0, or -ENOMEM / -ENODEV /
 * migrate_vma_setup()'s error.
 */
export function* nouveauDmemMigrateVma(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  vma: Vma,
  start: number,
  end: number,
): Routine<number> {
  const sim = drm.sim;
  const npages = (end - start) / PAGE_SIZE;
  const max = Math.min(npages, NOUVEAU_DMEM_MIGRATE_MAX);
  if (!drm.dmem) return -ENODEV;
  const bufs: KBuf[] = [];
  for (const what of ['kcalloc(args.src)', 'kcalloc(args.dst)', 'kmalloc_array(dma_info)']) {
    const b = yield* kmalloc(sim, 8 * max, 'GFP_KERNEL', what);
    if (!b) {
      for (const x of bufs.reverse()) yield* kfree(x);
      return -ENOMEM;
    }
    bufs.push(b);
  }
  const pfns = yield* nouveauPfnsAlloc(sim, max);
  if (!pfns) {
    for (const x of bufs.reverse()) yield* kfree(x);
    return -ENOMEM;
  }
  let ret = 0;
  const args: MigrateVma = {
    vma,
    start,
    end: start,
    src: [],
    dst: [],
    cpages: 0,
    npages: 0,
    pgmapOwner: drm.dev,
    flags: MIGRATE_VMA_SELECT_SYSTEM,
    faultPage: null,
  };
  for (let i = 0; i < npages; i += max) {
    args.end = Math.min(args.start + max * PAGE_SIZE, end);
    args.src = [];
    args.dst = [];
    ret = yield* migrateVmaSetup(args);
    if (ret) break;
    if (args.cpages) yield* nouveauDmemMigrateChunk(drm, svmm, args, pfns);
    args.start = args.end;
  }
  yield* nouveauPfnsFree(pfns);
  for (const x of bufs.reverse()) yield* kfree(x);
  return ret;
}

/**
 * models nouveau_dmem_evict_chunk(): migrates every page of `chunk` still in use back to system
 * memory (no VMA: migrate_device_range), with __GFP_NOFAIL allocations.
 */
function* nouveauDmemEvictChunk(chunk: NouveauDmemChunk): Routine {
  const drm = chunk.drm;
  const mem = drm.system.mem;
  const npages = chunk.pagemap.nrPages;
  const src = new Array<number>(npages).fill(0);
  const dst = new Array<number>(npages).fill(0);
  yield* migrateDeviceRange(src, chunk.pagemap.pfnStart, npages, mem);
  for (let i = 0; i < npages; i++) {
    const s = src[i]!;
    if (!(s & MIGRATE_PFN_MIGRATE)) continue;
    const spage = mem.folioAt(migratePfnToPfn(s));
    if (!spage) continue;
    // alloc_page(GFP_HIGHUSER | __GFP_NOFAIL): the GPU is going away, the data must come back.
    let dpage: Folio | null = null;
    while (!dpage) {
      dpage = yield* mem.alloc(0, 'alloc_page(__GFP_NOFAIL)');
      if (!dpage) yield drm.sim.relax('__GFP_NOFAIL retry');
    }
    dst[i] = migratePfn(dpage.pfn);
    yield* nouveauDmemCopyFolio(spage, dpage);
    drm.dmem!.stats.evicted++;
  }
  // nouveau_fence_new(); migrate_device_pages(); nouveau_dmem_fence_done(); migrate_device_finalize()
  yield* migrateDevicePages(src, dst, npages, mem);
  yield* migrateDeviceFinalize(src, dst, npages, mem);
}

/**
 * models nouveau_dmem_fini() (driver unload): evicts every chunk, unpins its BO and releases it.
 * The page maps stay registered in the model (their pfns are never reused).
 */
export function* nouveauDmemFini(drm: NouveauDrm): Routine {
  const dmem = drm.dmem;
  if (!dmem) return;
  yield* dmem.mutex.lock('mutex_lock(&dmem->mutex)');
  for (const chunk of [...dmem.chunks]) {
    yield* nouveauDmemEvictChunk(chunk);
    yield* kfree(chunk.bo, 'nouveau_bo_unpin_del');
    nouveauWarnOn(
      drm.sim,
      chunk.callocated !== 0,
      `chunk ${chunk.pagemap.name} still has ${chunk.callocated} page(s) allocated`,
    );
    dmem.chunks.splice(dmem.chunks.indexOf(chunk), 1);
    yield* kfree(chunk.mem, 'kfree(chunk)');
  }
  yield* dmem.mutex.unlock('mutex_unlock(&dmem->mutex)');
}
