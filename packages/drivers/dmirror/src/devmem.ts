/**
 * The device-memory allocator and teardown of lib/test_hmm.c: `dmirror_allocate_chunk()`,
 * `dmirror_devmem_alloc_page()`, and HMM_DMIRROR_RELEASE (`dmirror_device_remove_chunks()`,
 * `dmirror_device_evict_chunk()`), which migrates everything still in device memory back to
 * system memory without a VMA (`migrate_device_range()`).
 */
import type { Folio } from '@hmmkit/mm';
import {
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPfn,
} from '@hmmkit/mm/migrate';
import { ENOMEM, type KBuf, kfree, kmalloc, type Routine } from '@hmmkit/sim';
import { dmirrorWarnOn, mpfnHas } from './access.js';
import { addChunk, type DmirrorChunk, type DmirrorDevice } from './device.js';

/** models dmirror_allocate_chunk(): a new chunk of device memory, and one page of it if asked. */
export function* dmirrorAllocateChunk(
  device: DmirrorDevice,
  wantPage: boolean,
): Routine<Folio | null | number> {
  const sim = device.sim;
  const mem = device.system.mem;
  const devmem = yield* kmalloc(sim, 64, 'GFP_KERNEL', 'struct dmirror_chunk');
  if (!devmem) return -ENOMEM;
  yield* device.devmemLock.lock('mutex_lock(devmem_lock)');
  // models memremap_pages(): the page map joins the physical memory map.
  const chunk = yield* mem.update('memremap_pages', () => addChunk(device), `${device.name} new chunk`);
  yield* device.devmemLock.unlock('mutex_unlock(devmem_lock)');
  let page: Folio | null = null;
  yield* device.lock.lock('spin_lock');
  if (wantPage) {
    page = yield* mem.allocDevice(chunk.pgmap, 0, 'dmirror free page');
    if (page) device.calloc++;
  }
  yield* device.lock.unlock('spin_unlock');
  chunkBufs.set(chunk, devmem);
  return page;
}

const chunkBufs = new WeakMap<DmirrorChunk, KBuf>();

/**
 * models dmirror_devmem_alloc_page(): a device page, referenced and locked
 * (`zone_device_page_init()`), or null.
 */
export function* dmirrorDevmemAllocPage(device: DmirrorDevice): Routine<Folio | null> {
  const mem = device.system.mem;
  let dpage: Folio | null = null;
  yield* device.lock.lock('spin_lock');
  for (const chunk of device.chunks) {
    if (chunk.remove) continue;
    dpage = yield* mem.allocDevice(chunk.pgmap, 0, 'mdevice->free_pages');
    if (dpage) break;
  }
  if (dpage) device.calloc++;
  yield* device.lock.unlock('spin_unlock');
  if (!dpage) {
    const r = yield* dmirrorAllocateChunk(device, true);
    if (typeof r === 'number' || !r) return null;
    dpage = r;
  }
  // models zone_device_page_init(): one reference (from the allocation) and the page lock.
  dpage.locked = true;
  dpage.lockedBy = device.sim.current;
  return dpage;
}

/** models dmirror_device_evict_chunk(): migrates every page of `chunk` back to system memory. */
export function* dmirrorDeviceEvictChunk(device: DmirrorDevice, chunk: DmirrorChunk): Routine {
  const mem = device.system.mem;
  const npages = chunk.pgmap.nrPages;
  const startPfn = chunk.pgmap.pfnStart;
  const src = new Array<number>(npages).fill(0);
  const dst = new Array<number>(npages).fill(0);
  yield* migrateDeviceRange(src, startPfn, npages);
  for (let i = 0; i < npages; i++) {
    const s = src[i]!;
    if (!mpfnHas(s, MIGRATE_PFN_VALID) || !mpfnHas(s, MIGRATE_PFN_MIGRATE)) continue;
    const spage = mem.folioAt(migratePfnToPfn(s));
    if (!spage) continue;
    if (dmirrorWarnOn(device.sim, spage.zone === 'normal', 'evicting a system page')) continue;
    // GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL: the model retries until memory is there.
    let dpage: Folio | null = null;
    while (!dpage) {
      dpage = yield* mem.alloc(0, 'alloc_page(__GFP_NOFAIL)');
      if (!dpage) yield device.sim.relax('__GFP_NOFAIL retry');
    }
    dpage.locked = true;
    dpage.lockedBy = device.sim.current;
    dpage.data[0] = yield* spage.inspect('copy_highpage', (f) => f.data[0]!);
    let d = migratePfn(dpage.pfn);
    if (mpfnHas(s, MIGRATE_PFN_WRITE)) d += MIGRATE_PFN_WRITE;
    dst[i] = d;
  }
  yield* migrateDevicePages(src, dst, npages);
  yield* migrateDeviceFinalize(src, dst, npages);
}

/** models dmirror_device_remove_chunks(): HMM_DMIRROR_RELEASE. */
export function* dmirrorDeviceRemoveChunks(device: DmirrorDevice): Routine {
  yield* device.devmemLock.lock('mutex_lock(devmem_lock)');
  for (const chunk of device.chunks) {
    yield* device.lock.lock('spin_lock');
    chunk.remove = true; // dmirror_remove_free_pages(): no more allocations from it
    yield* device.lock.unlock('spin_unlock');
    yield* dmirrorDeviceEvictChunk(device, chunk);
    // models memunmap_pages() + kfree(devmem): the chunk is gone (its pfns are never reused).
    const buf = chunkBufs.get(chunk);
    if (buf) yield* kfree(buf);
  }
  device.chunks = [];
  yield* device.devmemLock.unlock('mutex_unlock(devmem_lock)');
}
