/**
 * Migration between system memory and device memory: HMM_DMIRROR_MIGRATE_TO_DEV
 * (`dmirror_migrate_to_device()`, `dmirror_migrate_alloc_and_copy()`,
 * `dmirror_migrate_finalize_and_map()`), HMM_DMIRROR_MIGRATE_TO_SYS
 * (`dmirror_migrate_to_system()`, `dmirror_devmem_fault_alloc_and_copy()`), and the CPU fault on
 * a device-private page (`dmirror_devmem_fault()`, the page map's `migrate_to_ram`).
 *
 * The migrate_vma core (`@hmmkit/mm/migrate`) selects, unmaps and remaps; the driver allocates
 * destination pages, copies the data and updates its own page table. Only the driver knows where
 * a device page's data lives, so the copies are the driver's.
 */
import { mmgetNotZero, mmput, PAGE_SIZE, VM_FAULT_SIGBUS, VM_READ, VM_WRITE, type VmFault } from '@hmmkit/mm';
import {
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '@hmmkit/mm/migrate';
import { EINVAL, type Routine } from '@hmmkit/sim';
import { dmirrorWarnOn, frameOf, mpfnHas } from './access.js';
import type { DmirrorDevice } from './device.js';
import { dmirrorDevmemAllocPage } from './devmem.js';
import type { Dmirror } from './dmirror.js';
import { DMIRROR_FAULT_CHUNK } from './fault.js';
import { DPT_XA_TAG_NONE, DPT_XA_TAG_WRITE } from './pt.js';
import { copyToUser, dmirrorBounceInit, dmirrorDoRead } from './read-write.js';
import type { HmmDmirrorCmd } from './uapi.js';

/** models dmirror_select_device(): which device pages a migration back to system memory selects. */
export function dmirrorSelectDevice(device: DmirrorDevice): number {
  return device.isPrivate ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
}

/** The folio and page index a migrate pfn names, or null (`migrate_pfn_to_page()`). */
function pageOf(dmirror: Dmirror, m: number) {
  if (!mpfnHas(m, MIGRATE_PFN_VALID)) return null;
  const f = frameOf(dmirror.mm.system.mem, migratePfnToPfn(m));
  return f.folio ? f : null;
}

/** models dmirror_migrate_alloc_and_copy(): device pages for every selected system page. */
export function* dmirrorMigrateAllocAndCopy(args: MigrateVma, dmirror: Dmirror): Routine {
  const device = dmirror.device;
  for (let i = 0; i < args.npages; i++) {
    const src = args.src[i]!;
    if (!mpfnHas(src, MIGRATE_PFN_MIGRATE)) continue;
    // No page: an empty (pte_none) or zero-page address, to be filled with zeroes.
    const spage = pageOf(dmirror, src);
    if (dmirrorWarnOn(dmirror.sim, !!spage && spage.folio!.zone !== 'normal', 'page already in device'))
      continue;
    const dpage = yield* dmirrorDevmemAllocPage(device);
    if (!dpage) continue;
    // models copy_highpage() / clear_highpage() into the (backing) device page.
    dpage.data[0] = spage ? yield* spage.folio!.inspect('copy_highpage', (f) => f.data[spage.index]!) : 0;
    device.zoneDeviceData.set(dpage, dmirror);
    let dst = migratePfn(dpage.pfn);
    if (mpfnHas(src, MIGRATE_PFN_WRITE) || (!spage && args.vma.flags & VM_WRITE)) dst += MIGRATE_PFN_WRITE;
    args.dst[i] = dst;
  }
}

/** models dmirror_migrate_finalize_and_map(): maps the migrated pages in the device page table. */
export function* dmirrorMigrateFinalizeAndMap(args: MigrateVma, dmirror: Dmirror): Routine<number> {
  yield* dmirror.mutex.lock('mutex_lock');
  for (let i = 0; i < args.npages; i++) {
    if (!mpfnHas(args.src[i]!, MIGRATE_PFN_MIGRATE)) continue;
    const dst = args.dst[i]!;
    const dpage = pageOf(dmirror, dst);
    if (!dpage) continue;
    // The page that holds the data (BACKING_PAGE): the device page itself in the model.
    const tag = mpfnHas(dst, MIGRATE_PFN_WRITE) ? DPT_XA_TAG_WRITE : DPT_XA_TAG_NONE;
    const va = args.start + i * PAGE_SIZE;
    yield* dmirror.pt.store(
      va / PAGE_SIZE,
      { frame: dpage.frame, folio: dpage.folio, index: dpage.index, tag },
      'dmirror_migrate_finalize_and_map',
    );
  }
  yield* dmirror.mutex.unlock('mutex_unlock');
  return 0;
}

/**
 * models dmirror_devmem_fault_alloc_and_copy(): system pages for every selected device page; the
 * device entry is erased here (the core skipped our own MIGRATE invalidation).
 */
export function* dmirrorDevmemFaultAllocAndCopy(args: MigrateVma, dmirror: Dmirror): Routine<number> {
  const mem = dmirror.mm.system.mem;
  for (let i = 0; i < args.npages; i++) {
    const src = args.src[i]!;
    const spage = pageOf(dmirror, src);
    if (!spage || !mpfnHas(src, MIGRATE_PFN_MIGRATE)) continue;
    if (dmirrorWarnOn(dmirror.sim, spage.folio!.zone === 'normal', 'not a device page')) continue;
    const dpage = yield* mem.alloc(0, 'alloc_page_vma');
    if (!dpage) continue;
    // models lock_page() of a page nobody else can see yet.
    dpage.locked = true;
    dpage.lockedBy = dmirror.sim.current;
    const addr = args.start + i * PAGE_SIZE;
    yield* dmirror.pt.erase(addr / PAGE_SIZE, 'xa_erase');
    dpage.data[0] = yield* spage.folio!.inspect('copy_highpage', (f) => f.data[spage.index]!);
    let dst = migratePfn(dpage.pfn);
    if (mpfnHas(src, MIGRATE_PFN_WRITE)) dst += MIGRATE_PFN_WRITE;
    args.dst[i] = dst;
  }
  return 0;
}

/** models dmirror_successful_migrated_pages(). */
export function dmirrorSuccessfulMigratedPages(args: MigrateVma): number {
  let n = 0;
  for (let i = 0; i < args.npages; i++) {
    const s = args.src[i]!;
    if (mpfnHas(s, MIGRATE_PFN_VALID) && mpfnHas(s, MIGRATE_PFN_MIGRATE)) n++;
  }
  return n;
}

function newArgs(
  dmirror: Dmirror,
  vma: MigrateVma['vma'],
  start: number,
  end: number,
  flags: number,
): MigrateVma {
  const n = (end - start) / PAGE_SIZE;
  return {
    vma,
    start,
    end,
    src: new Array<number>(n).fill(0),
    dst: new Array<number>(n).fill(0),
    cpages: 0,
    npages: 0,
    pgmapOwner: dmirror.device,
    flags,
    faultPage: null,
  };
}

/**
 * Walks `[start, end)` VMA by VMA in chunks of 64 pages (mmap_lock held), as both migrate ioctls
 * do: -EINVAL for an address without a readable VMA.
 */
function* forEachChunk(
  dmirror: Dmirror,
  start: number,
  end: number,
  flags: number,
  body: (args: MigrateVma) => Routine<void>,
): Routine<number> {
  const mm = dmirror.mm;
  for (let addr = start; addr < end; ) {
    const vma = mm.vmaLookup(addr);
    if (!vma || !(vma.flags & VM_READ)) return -EINVAL;
    let next = Math.min(end, addr + DMIRROR_FAULT_CHUNK * PAGE_SIZE);
    if (next > vma.end) next = vma.end;
    const args = newArgs(dmirror, vma, addr, next, flags);
    const ret = yield* migrateVmaSetup(args);
    if (ret) return ret;
    yield* body(args);
    addr = next;
  }
  return 0;
}

/** models dmirror_migrate_to_device(): HMM_DMIRROR_MIGRATE_TO_DEV, then reads the data back. */
export function* dmirrorMigrateToDevice(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const mm = dmirror.mm;
  const start = cmd.addr;
  const size = cmd.npages * PAGE_SIZE;
  const end = start + size;
  if (!(yield* mmgetNotZero(mm))) return -EINVAL;
  yield* mm.mmapLock.downRead('mmap_read_lock');
  let ret = yield* forEachChunk(dmirror, start, end, MIGRATE_VMA_SELECT_SYSTEM, function* (args) {
    yield* dmirrorMigrateAllocAndCopy(args, dmirror);
    yield* migrateVmaPages(args);
    yield* dmirrorMigrateFinalizeAndMap(args, dmirror);
    yield* migrateVmaFinalize(args);
  });
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  yield* mmput(mm);
  if (ret) return ret;
  // Return the migrated data for verification (only pages now in device memory are mapped).
  const bounce = dmirrorBounceInit(start, size);
  yield* dmirror.mutex.lock('mutex_lock');
  ret = yield* dmirrorDoRead(dmirror, start, end, bounce);
  yield* dmirror.mutex.unlock('mutex_unlock');
  if (ret === 0) copyToUser(cmd, bounce.ptr);
  cmd.cpages = bounce.cpages;
  return ret;
}

/** models dmirror_migrate_to_system(): HMM_DMIRROR_MIGRATE_TO_SYS. */
export function* dmirrorMigrateToSystem(dmirror: Dmirror, cmd: HmmDmirrorCmd): Routine<number> {
  const mm = dmirror.mm;
  const start = cmd.addr;
  const end = start + cmd.npages * PAGE_SIZE;
  if (!(yield* mmgetNotZero(mm))) return -EINVAL;
  cmd.cpages = 0;
  yield* mm.mmapLock.downRead('mmap_read_lock');
  const ret = yield* forEachChunk(dmirror, start, end, dmirrorSelectDevice(dmirror.device), function* (args) {
    yield* dmirrorDevmemFaultAllocAndCopy(args, dmirror);
    yield* migrateVmaPages(args);
    cmd.cpages += dmirrorSuccessfulMigratedPages(args);
    yield* migrateVmaFinalize(args);
  });
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  yield* mmput(mm);
  return ret;
}

/**
 * models dmirror_devmem_fault(): `migrate_to_ram` of the device's page maps. The CPU faulted on a
 * device-private entry; migrate that one page back to system memory.
 */
export function* dmirrorDevmemFault(device: DmirrorDevice, vmf: VmFault): Routine<number> {
  const page = vmf.page!;
  // zone_device_data names the open file that migrated the page.
  const dmirror = device.zoneDeviceData.get(page);
  if (!dmirror) return VM_FAULT_SIGBUS;
  const args = newArgs(dmirror, vmf.vma, vmf.address, vmf.address + PAGE_SIZE, dmirrorSelectDevice(device));
  args.faultPage = page;
  if (yield* migrateVmaSetup(args)) return VM_FAULT_SIGBUS;
  const ret = yield* dmirrorDevmemFaultAllocAndCopy(args, dmirror);
  if (ret) return ret;
  yield* migrateVmaPages(args);
  // No device finalize step: the entry was erased in dmirrorDevmemFaultAllocAndCopy().
  yield* migrateVmaFinalize(args);
  return 0;
}
