/**
 * nouveau_uvmm.c: VM_BIND on drm_gpuvm. The VA space (`uvmm->base`, a `GpuVm`) is changed at
 * submit time, under `uvmm->mutex`, with page tables got (`nvif_vmm_raw_get`) for the span a map
 * needs; every failure unwinds in reverse. Then, under the GEMs' resvs (drm_exec), the new vas are
 * linked and the old ones unlinked, and the job's done fence goes into every resv. `run()` only
 * writes PTEs into tables that were got (no allocation: it is in the fence-signalling path);
 * `free()` puts the page tables of what was unmapped, frees the old uvmas and completes the job.
 *
 * This file: the structures (uvmm, uvma, sparse region, bind_job_op), the nvif wrappers, the
 * region tree, BO moves (`nouveau_uvmm_bo_map_all/unmap_all`), VM teardown and the page-table
 * check. The split/merge steps are in uvmm-sm.ts, the bind jobs in uvmm-bind.ts, the ioctls in
 * uvmm-ioctl.ts.
 *
 * Sparse regions (MAP_SPARSE / UNMAP_SPARSE) live in their own tree (`region_mt`, a maple tree
 * under `uvmm->mutex`); a region whose unmap is still queued is "dirty", and a new sparse region or
 * a map overlapping it waits for that job to complete, since page-table references are per region.
 *
 * Locking (the file's header, paraphrased): uvmm->mutex guards the VA space; a GEM's resv guards
 * its gpuva list (link/unlink); PTE writes in run() are protected by the job's fence sitting in
 * every touched GEM's resv, so a BO cannot move meanwhile; DRM_GPUVA_INVALIDATED is only touched
 * by BO moves and run(), both under that fence.
 */
import {
  AllocLedger,
  type GemObject,
  GpuVa,
  GpuVm,
  type GpuVmBo,
  type GpuvaOps,
  gpuvaUnlink,
  Kref,
} from '@hmmkit/gpuva';
import { hex, PAGE_SIZE } from '@hmmkit/mm';
import {
  Completion,
  EBUSY,
  EEXIST,
  ENOENT,
  ENOMEM,
  ENOSPC,
  type KBuf,
  Mutex,
  type Routine,
  type Sim,
} from '@hmmkit/sim';
import type { NouveauBo } from './bo.js';
import type { NouveauCli, NouveauVmm } from './drm.js';
import { NvifVmm } from './nvif.js';

/** `NOUVEAU_VA_SPACE_BITS` (marked FIXME upstream). */
export const NOUVEAU_VA_SPACE_BITS = 47;
export const NOUVEAU_VA_SPACE_START = 0;
export const NOUVEAU_VA_SPACE_END = 2 ** NOUVEAU_VA_SPACE_BITS;

/** `enum vm_bind_op`. */
export type VmBindOp = 'MAP' | 'UNMAP' | 'MAP_SPARSE' | 'UNMAP_SPARSE';

/** `struct nouveau_uvma`: a drm_gpuva with the region it lies in and its PTE kind. */
export class NouveauUvma extends GpuVa {
  region: NouveauUvmaRegion | null = null;
  kind = 0;
  mem: KBuf | null = null;
}

/** `struct nouveau_uvma_region`: a sparse region. */
export class NouveauUvmaRegion {
  readonly kref: Kref;
  uvmm: NouveauUvmm | null = null;
  readonly va = { addr: 0, range: 0 };
  dirty = false;
  /** `reg->complete`: completed when the unmap that dirtied it is done. */
  complete: Completion;
  constructor(
    sim: Sim,
    readonly mem: KBuf,
    readonly id: number,
  ) {
    this.kref = new Kref(sim, `uvma_region#${id}->kref`, 1);
    this.complete = new Completion(sim, `uvma_region#${id}->complete`);
  }
}

/** `struct nouveau_uvma_prealloc`. */
export interface NouveauUvmaPrealloc {
  map: NouveauUvma | null;
  prev: NouveauUvma | null;
  next: NouveauUvma | null;
}

/** `struct bind_job_op`. */
export interface BindJobOp {
  op: VmBindOp;
  flags: number;
  vmBo: GpuVmBo | null;
  va: { addr: number; range: number };
  gem: { bo: NouveauBo | null; offset: number };
  reg: NouveauUvmaRegion | null;
  new: NouveauUvmaPrealloc;
  ops: GpuvaOps | null;
  /** Model of the 'run-job-allocates-pt' variant: the page-table gets moved into run(). */
  deferredGets: [number, number][];
}

/** `struct uvmm_map_args`. */
export interface UvmmMapArgs {
  region: NouveauUvmaRegion | null;
  addr: number;
  range: number;
  kind: number;
}

/** `struct nouveau_uvmm`. */
export class NouveauUvmm {
  readonly base: GpuVm;
  /** `uvmm->vmm`: a RAW nvif VMM. */
  readonly vmm: NouveauVmm;
  /** `uvmm->mutex`. */
  readonly mutex: Mutex;
  /** `uvmm->region_mt` (external lock: the mutex), ordered by address. */
  readonly regionMt: NouveauUvmaRegion[] = [];
  /** Allocations of uvmas, regions and jobs (leak checks). */
  readonly ledger = new AllocLedger();
  private regionIds = 0;

  constructor(
    readonly sim: Sim,
    readonly cli: NouveauCli,
    rObj: GemObject,
    kernelManagedAddr: number,
    kernelManagedSize: number,
    readonly mem: KBuf,
  ) {
    this.mutex = new Mutex(sim, `${cli.name}->uvmm->mutex`, { lockClass: 'nouveau_uvmm.mutex' });
    this.base = new GpuVm(sim, {
      name: `${cli.name}->uvmm`,
      rObj,
      start: NOUVEAU_VA_SPACE_START,
      range: NOUVEAU_VA_SPACE_END,
      reserveOffset: kernelManagedAddr,
      reserveRange: kernelManagedSize,
      ops: { vmFree: () => {} },
      vaLock: this.mutex,
    });
    this.vmm = { cli, vmm: null, svmm: null };
  }

  nextRegionId(): number {
    return this.regionIds++;
  }

  /** The RAW nvif VMM. */
  get raw(): NvifVmm {
    return this.vmm.vmm!;
  }
}

// ---- nvif wrappers ----------------------------------------------------------------------------------

/** models nouveau_uvmm_vmm_get(): raw_get of `[addr, addr + range)`. */
export function nouveauUvmmVmmGet(uvmm: NouveauUvmm, addr: number, range: number): Routine<number> {
  return uvmm.raw.rawGet(addr, range, 'nouveau_uvmm_vmm_get');
}

/** models nouveau_uvmm_vmm_put(). */
export function nouveauUvmmVmmPut(uvmm: NouveauUvmm, addr: number, range: number): Routine {
  return uvmm.raw.rawPut(addr, range, 'nouveau_uvmm_vmm_put');
}

/** models nouveau_uvma_map(): PTEs of the whole uvma to its BO. */
export function* nouveauUvmaMap(uvma: NouveauUvma, bo: NouveauBo): Routine {
  const uvmm = uvmaUvmm(uvma);
  yield* uvmm.raw.rawMap(uvma.va.addr, uvma.va.range, bo, uvma.gem.offset, 'nouveau_uvma_map');
}

/** models nouveau_uvma_unmap(): nothing to do if the BO was evicted (invalidated). */
export function* nouveauUvmaUnmap(uvma: NouveauUvma): Routine {
  if (uvma.invalidated) return;
  yield* uvmaUvmm(uvma).raw.rawUnmap(uvma.va.addr, uvma.va.range, !!uvma.region, 'nouveau_uvma_unmap');
}

/** models nouveau_uvma_vmm_put(). */
export function nouveauUvmaVmmPut(uvma: NouveauUvma): Routine {
  return nouveauUvmmVmmPut(uvmaUvmm(uvma), uvma.va.addr, uvma.va.range);
}

const uvmmOfVm = new WeakMap<GpuVm, NouveauUvmm>();

function uvmaUvmm(uvma: NouveauUvma): NouveauUvmm {
  const u = uvma.vm ? uvmmOfVm.get(uvma.vm) : undefined;
  if (!u) throw new Error(`${uvma.name} belongs to no uvmm`);
  return u;
}

// ---- uvmas and regions --------------------------------------------------------------------------

/** models nouveau_uvma_alloc(): kzalloc (GFP_KERNEL). */
export function* nouveauUvmaAlloc(uvmm: NouveauUvmm): Routine<NouveauUvma | null> {
  const mem = yield* uvmm.ledger.alloc(uvmm.sim, 128, 'GFP_KERNEL', 'kzalloc(uvma)');
  if (!mem) return null;
  const uvma = new NouveauUvma();
  uvma.mem = mem;
  return uvma;
}

/** models nouveau_uvma_free(). */
export function* nouveauUvmaFree(uvmm: NouveauUvmm, uvma: NouveauUvma): Routine {
  yield* uvmm.ledger.free(uvma.mem, 'kfree(uvma)');
  uvma.mem = null;
}

/** models nouveau_uvma_region_alloc(). */
export function* nouveauUvmaRegionAlloc(uvmm: NouveauUvmm): Routine<NouveauUvmaRegion | null> {
  const mem = yield* uvmm.ledger.alloc(uvmm.sim, 96, 'GFP_KERNEL', 'kzalloc(uvma_region)');
  if (!mem) return null;
  return new NouveauUvmaRegion(uvmm.sim, mem, uvmm.nextRegionId());
}

/** models nouveau_uvma_region_put(): the last put frees it. */
export function* nouveauUvmaRegionPut(uvmm: NouveauUvmm, reg: NouveauUvmaRegion): Routine {
  if (yield* reg.kref.put('nouveau_uvma_region_put')) {
    uvmm.sim.free(reg.kref);
    yield* uvmm.ledger.free(reg.mem, 'kfree(uvma_region)');
  }
}

/** models __nouveau_uvma_region_insert(): -EEXIST if anything of the range is taken. */
export function nouveauUvmaRegionInsertRaw(uvmm: NouveauUvmm, reg: NouveauUvmaRegion): number {
  uvmm.sim.assertHeld(uvmm.mutex);
  const end = reg.va.addr + reg.va.range;
  for (const r of uvmm.regionMt) if (r.va.addr < end && reg.va.addr < r.va.addr + r.va.range) return -EEXIST;
  uvmm.regionMt.push(reg);
  uvmm.regionMt.sort((a, b) => a.va.addr - b.va.addr);
  reg.uvmm = uvmm;
  return 0;
}

/** models nouveau_uvma_region_remove() (mas_erase). */
export function nouveauUvmaRegionRemove(uvmm: NouveauUvmm, reg: NouveauUvmaRegion): void {
  uvmm.sim.assertHeld(uvmm.mutex);
  const i = uvmm.regionMt.indexOf(reg);
  if (i >= 0) uvmm.regionMt.splice(i, 1);
}

/** models nouveau_uvma_region_create(): a sparse region over an empty range, sparse PTEs referenced. */
export function* nouveauUvmaRegionCreate(uvmm: NouveauUvmm, addr: number, range: number): Routine<number> {
  if (!uvmm.base.intervalEmpty(addr, range)) return -ENOSPC;
  const reg = yield* nouveauUvmaRegionAlloc(uvmm);
  if (!reg) return -ENOMEM;
  reg.va.addr = addr;
  reg.va.range = range;
  let ret = nouveauUvmaRegionInsertRaw(uvmm, reg);
  if (!ret) {
    ret = yield* uvmm.raw.rawSparse(addr, range, true);
    if (ret) nouveauUvmaRegionRemove(uvmm, reg);
  }
  if (ret) yield* nouveauUvmaRegionPut(uvmm, reg);
  return ret;
}

/** models nouveau_uvma_region_find_first(): the first region intersecting the range. */
export function nouveauUvmaRegionFindFirst(
  uvmm: NouveauUvmm,
  addr: number,
  range: number,
): NouveauUvmaRegion | null {
  uvmm.sim.assertHeld(uvmm.mutex);
  const end = addr + range;
  return uvmm.regionMt.find((r) => r.va.addr < end && addr < r.va.addr + r.va.range) ?? null;
}

/** models nouveau_uvma_region_find(): a region of exactly this range. */
export function nouveauUvmaRegionFind(
  uvmm: NouveauUvmm,
  addr: number,
  range: number,
): NouveauUvmaRegion | null {
  const reg = nouveauUvmaRegionFindFirst(uvmm, addr, range);
  return reg && reg.va.addr === addr && reg.va.range === range ? reg : null;
}

/** models nouveau_uvma_region_destroy() / __destroy(): only an empty region goes. */
export function* nouveauUvmaRegionDestroy(uvmm: NouveauUvmm, addr: number, range: number): Routine<number> {
  const reg = nouveauUvmaRegionFind(uvmm, addr, range);
  if (!reg) return -ENOENT;
  if (!uvmm.base.intervalEmpty(reg.va.addr, reg.va.range)) return -EBUSY;
  nouveauUvmaRegionRemove(uvmm, reg);
  yield* uvmm.raw.rawSparse(addr, range, false);
  yield* nouveauUvmaRegionPut(uvmm, reg);
  return 0;
}

/** models nouveau_uvma_region_dirty(): its unmap is queued. */
export function nouveauUvmaRegionDirty(reg: NouveauUvmaRegion, sim: Sim): void {
  reg.complete = new Completion(sim, `uvma_region#${reg.id}->complete`);
  reg.dirty = true;
}

// ---- BO moves ---------------------------------------------------------------------------------------

/** models nouveau_uvmm_bo_map_all(): the BO is back; every va of it is mapped again. */
export function* nouveauUvmmBoMapAll(bo: NouveauBo): Routine {
  bo.sim.assertHeld(bo.resv);
  for (const vmBo of [...bo.vmBos()]) {
    for (const va of [...vmBo.vas()]) {
      yield* nouveauUvmaMap(va as NouveauUvma, bo);
      va.invalidate(false);
    }
  }
}

/** models nouveau_uvmm_bo_unmap_all(): the BO moves out; every va of it is unmapped and invalidated. */
export function* nouveauUvmmBoUnmapAll(bo: NouveauBo): Routine {
  bo.sim.assertHeld(bo.resv);
  for (const vmBo of [...bo.vmBos()]) {
    for (const va of [...vmBo.vas()]) {
      yield* nouveauUvmaUnmap(va as NouveauUvma);
      va.invalidate(true);
    }
  }
}

// ---- VM_INIT and teardown ----------------------------------------------------------------------------

/** Registers a new uvmm (the model's container_of from the gpuvm). */
export function newUvmm(
  sim: Sim,
  cli: NouveauCli,
  rObj: GemObject,
  kaddr: number,
  ksize: number,
  mem: KBuf,
): NouveauUvmm {
  const uvmm = new NouveauUvmm(sim, cli, rObj, kaddr, ksize, mem);
  uvmmOfVm.set(uvmm.base, uvmm);
  uvmm.vmm.vmm = new NvifVmm(sim, `${cli.name}->uvmm.vmm`, 'RAW');
  uvmm.vmm.cli = cli;
  return uvmm;
}

/**
 * models nouveau_uvmm_fini(): under the uvmm mutex every va (but the kernel-managed node) is
 * removed, unlinked under its GEM's resv, unmapped, its page tables put, freed; every region is
 * erased and its sparse PTEs dropped; then the VMM and the gpuvm go (under cli->mutex).
 */
export function* nouveauUvmmFini(uvmm: NouveauUvmm): Routine {
  const cli = uvmm.cli;
  yield* uvmm.mutex.lock('nouveau_uvmm_lock');
  for (const va of [...uvmm.base.vasSafe()]) {
    if (va === uvmm.base.kernelAllocNode) continue;
    const uvma = va as NouveauUvma;
    const obj = va.gem.obj;
    uvmm.base.remove(va);
    if (obj) {
      yield* obj.resv.lock(null, 'dma_resv_lock');
      yield* gpuvaUnlink(va);
      yield* obj.resv.unlock('dma_resv_unlock');
    }
    // nouveau_uvma_unmap() / nouveau_uvma_vmm_put() need the uvma's vm: it keeps it after remove.
    yield* nouveauUvmaUnmap(uvma);
    yield* nouveauUvmaVmmPut(uvma);
    obj?.put();
    yield* nouveauUvmaFree(uvmm, uvma);
  }
  for (const reg of [...uvmm.regionMt]) {
    nouveauUvmaRegionRemove(uvmm, reg);
    yield* uvmm.raw.rawSparse(reg.va.addr, reg.va.range, false);
    yield* nouveauUvmaRegionPut(uvmm, reg);
  }
  yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
  yield* cli.mutex.lock('mutex_lock(&cli->mutex)');
  if (uvmm.vmm.vmm) yield* uvmm.vmm.vmm.dtor();
  uvmm.base.put();
  cli.uvmm.ptr = null;
  yield* cli.mutex.unlock('mutex_unlock(&cli->mutex)');
  yield* uvmm.ledger.free(uvmm.mem, 'kfree(uvmm)');
}

// ---- checks --------------------------------------------------------------------------------------------

/**
 * With no bind job pending, the GPU page table is what the VA space says: every va's pages map its
 * BO (or nothing / sparse once the BO was evicted), a sparse region's other pages are sparse,
 * nothing else is mapped. Null if so, else the first difference.
 */
export function nouveauUvmmPageTableProblem(uvmm: NouveauUvmm): string | null {
  const vmm = uvmm.vmm.vmm;
  if (!vmm) return null;
  const want = new Map<number, string>();
  for (const reg of uvmm.regionMt) {
    for (let a = reg.va.addr; a < reg.va.addr + reg.va.range; a += PAGE_SIZE)
      want.set(a / PAGE_SIZE, 'sparse');
  }
  // Walk the tree directly: a checker runs between steps, without the uvmm mutex.
  const tree = uvmm.base.tree;
  for (let n = tree.firstNode(); n !== -1; n = tree.nextNode(n)) {
    const va = tree.value(n);
    if (va.reserved) continue;
    const uvma = va as NouveauUvma;
    for (let i = 0; i < va.va.range / PAGE_SIZE; i++) {
      const vpn = va.va.addr / PAGE_SIZE + i;
      if (uvma.invalidated) {
        if (uvma.region) want.set(vpn, 'sparse');
        else want.delete(vpn);
      } else {
        want.set(vpn, `${va.gem.obj?.name}@${va.gem.offset / PAGE_SIZE + i}`);
      }
    }
  }
  const got = (vpn: number): string => {
    const p = vmm.ptes.get(vpn);
    if (!p) return 'none';
    if (p.kind === 'sparse') return 'sparse';
    if (p.kind === 'bo') return `${p.bo.name}@${p.index}`;
    return 'pfn';
  };
  for (const [vpn, w] of want) {
    const g = got(vpn);
    if (g !== w) return `at ${hex(vpn * PAGE_SIZE)} the VA space says ${w}, the GPU page table has ${g}`;
  }
  for (const vpn of vmm.ptes.keys()) {
    if (!want.has(vpn))
      return `at ${hex(vpn * PAGE_SIZE)} the GPU page table has ${got(vpn)}, the VA space nothing`;
  }
  return null;
}
