/**
 * nouveau_uvmm.c, the bind jobs: `struct nouveau_uvmm_bind_job` and its `nouveau_job_ops` —
 * submit (look the BOs up, validate, wait out dirty sparse regions and queued unmaps, apply every
 * op to the VA space under the uvmm mutex, lock and validate the GEMs, link/unlink), armed_submit
 * (the done fence into every resv), run (PTE writes only) and cleanup (free_job).
 */
import {
  DrmExec,
  DrmExecFlags,
  type GemObject,
  type GpuvaOp,
  GpuvaOpType,
  gpuvaLink,
  gpuvaOpsFree,
  gpuvaUnlink,
  gpuvmBoExtobjAdd,
  gpuvmBoObtain,
  gpuvmBoPut,
  gpuvmResvAddFence,
  gpuvmSmMapOpsCreate,
  gpuvmSmUnmapOpsCreate,
  isErr,
  Kref,
  mapReq,
} from '@hmmkit/gpuva';
import { PAGE_SIZE } from '@hmmkit/mm';
import {
  Completion,
  type DmaFence,
  EINVAL,
  ENOENT,
  ENOMEM,
  ENOSPC,
  type KBuf,
  type Routine,
} from '@hmmkit/sim';
import { type NouveauBo, nouveauBoValidate } from './bo.js';
import { nouveauIds } from './drm.js';
import { NouveauJob, type NouveauJobOps, type NouveauSched, nouveauJobDone } from './sched.js';
import {
  type BindJobOp,
  type NouveauUvmm,
  nouveauUvmaRegionCreate,
  nouveauUvmaRegionDestroy,
  nouveauUvmaRegionDirty,
  nouveauUvmaRegionFind,
  nouveauUvmaRegionFindFirst,
  nouveauUvmaRegionInsertRaw,
  nouveauUvmaRegionPut,
  nouveauUvmaRegionRemove,
} from './uvmm.js';
import {
  nouveauUvmmSm,
  nouveauUvmmSmCleanup,
  nouveauUvmmSmPrepare,
  nouveauUvmmSmPrepareUnwind,
} from './uvmm-sm.js';
// ---- bind jobs ---------------------------------------------------------------------------------------

/** `struct nouveau_uvmm_bind_job`. */
export class NouveauUvmmBindJob extends NouveauJob {
  readonly uvmm: NouveauUvmm;
  /** `job->ops`: the user's operations. */
  readonly bops: BindJobOp[] = [];
  readonly kref: Kref;
  /** `job->complete`: completed in cleanup (sparse maps wait for pending unmaps on it). */
  readonly complete: Completion;
  mem: KBuf | null = null;

  constructor(
    uvmm: NouveauUvmm,
    sched: NouveauSched,
    sync: boolean,
    inSync: DmaFenceList,
    outSync: DmaFenceList,
  ) {
    const id = nouveauIds(uvmm.sim).job++;
    super({
      sched,
      cli: uvmm.cli,
      sync,
      inSync,
      outSync,
      ops: bindJobOps,
      name: `bind_job#${id}`,
    });
    this.uvmm = uvmm;
    this.kref = new Kref(uvmm.sim, `bind_job#${id}->kref`, 1);
    this.complete = new Completion(uvmm.sim, `bind_job#${id}->complete`);
  }
}

type DmaFenceList = readonly DmaFence[];

/** models nouveau_uvmm_bind_job_put(): the last put frees the job. */
function* nouveauUvmmBindJobPut(job: NouveauUvmmBindJob): Routine {
  if (yield* job.kref.put('nouveau_uvmm_bind_job_put')) {
    job.uvmm.sim.free(job.kref);
    yield* job.uvmm.ledger.free(job.mem, 'kfree(bind_job)');
    job.mem = null;
  }
}

/** models nouveau_uvmm_validate_range(). */
function nouveauUvmmValidateRange(uvmm: NouveauUvmm, addr: number, range: number): number {
  if (addr % PAGE_SIZE || range % PAGE_SIZE) return -EINVAL;
  if (!uvmm.base.rangeValid(addr, range)) return -EINVAL;
  return 0;
}

/** models bind_validate_op(). */
function bindValidateOp(uvmm: NouveauUvmm, op: BindJobOp): number {
  if (op.op === 'MAP') {
    const bo = op.gem.bo!;
    if (op.gem.offset % PAGE_SIZE) return -EINVAL;
    if (bo.size * PAGE_SIZE <= op.gem.offset) return -EINVAL;
    if (op.va.range > bo.size * PAGE_SIZE - op.gem.offset) return -EINVAL;
  }
  return nouveauUvmmValidateRange(uvmm, op.va.addr, op.va.range);
}

/**
 * models bind_validate_map_sparse(): waits for every queued UNMAP job overlapping the new sparse
 * region (page-table references are per region, so they must not overlap).
 */
function* bindValidateMapSparse(job: NouveauUvmmBindJob, addr: number, range: number): Routine {
  const sched = job.sched;
  const end = addr + range;
  for (;;) {
    yield* sched.jobListLock.lock('spin_lock(&sched->job.list.lock)');
    let wait: NouveauUvmmBindJob | null = null;
    for (const j of sched.jobList) {
      if (!(j instanceof NouveauUvmmBindJob)) continue;
      for (const op of j.bops) {
        if (op.op !== 'UNMAP') continue;
        const opEnd = op.va.addr + op.va.range;
        if (!(end <= op.va.addr || addr >= opEnd)) wait = j;
      }
      if (wait) break;
    }
    if (!wait) {
      yield* sched.jobListLock.unlock('spin_unlock(&sched->job.list.lock)');
      return;
    }
    yield* wait.kref.get('nouveau_uvmm_bind_job_get');
    yield* sched.jobListLock.unlock('spin_unlock(&sched->job.list.lock)');
    yield* wait.complete.wait('wait_for_completion(&bind_job->complete)');
    yield* nouveauUvmmBindJobPut(wait);
  }
}

/**
 * models bind_validate_map_common(): waits out a dirty region overlapping the range; a sparse
 * map must not overlap any region; a map must be outside every region or inside one.
 */
function* bindValidateMapCommon(
  job: NouveauUvmmBindJob,
  addr: number,
  range: number,
  sparse: boolean,
): Routine<number> {
  const uvmm = job.uvmm;
  const end = addr + range;
  for (;;) {
    yield* uvmm.mutex.lock('nouveau_uvmm_lock');
    const reg = nouveauUvmaRegionFindFirst(uvmm, addr, range);
    if (!reg) {
      yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
      return 0;
    }
    // Submits are serialized (sched->mutex): only dirty regions can change meanwhile.
    if (reg.dirty) {
      yield* reg.kref.get('nouveau_uvma_region_get');
      yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
      yield* reg.complete.wait('wait_for_completion(&reg->complete)');
      yield* nouveauUvmaRegionPut(uvmm, reg);
      continue;
    }
    yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
    if (sparse) return -ENOSPC;
    if (reg.va.addr > addr || reg.va.addr + reg.va.range < end) return -ENOSPC;
    return 0;
  }
}

/** models bind_validate_region(). */
function* bindValidateRegion(job: NouveauUvmmBindJob): Routine<number> {
  for (const op of job.bops) {
    if (op.op !== 'MAP_SPARSE' && op.op !== 'MAP') continue;
    const sparse = op.op === 'MAP_SPARSE';
    if (sparse) yield* bindValidateMapSparse(job, op.va.addr, op.va.range);
    const ret = yield* bindValidateMapCommon(job, op.va.addr, op.va.range, sparse);
    if (ret) return ret;
  }
  return 0;
}

/**
 * models bind_link_gpuvas(): the new uvmas are linked to their vm_bo, the old ones unlinked
 * (the GEMs' resvs are held). A remap links the pieces to the victim's vm_bo before unlinking
 * the victim, whose reference may be the vm_bo's last.
 */
function* bindLinkGpuvas(uvmm: NouveauUvmm, bop: BindJobOp): Routine {
  const nw = bop.new;
  for (const op of bop.ops!) {
    switch (op.op) {
      case GpuvaOpType.MAP:
        yield* gpuvaLink(nw.map!, bop.vmBo!);
        break;
      case GpuvaOpType.REMAP: {
        const va = op.remap.unmap.va;
        const vmBo = va.vmBo;
        if (uvmm.cli.drm.variant === 'remap-unlink-before-link') {
          // The mistake: the victim's reference goes before the pieces took theirs.
          yield* gpuvaUnlink(va);
          if (op.remap.prev && vmBo) yield* gpuvaLink(nw.prev!, vmBo);
          if (op.remap.next && vmBo) yield* gpuvaLink(nw.next!, vmBo);
          break;
        }
        if (op.remap.prev && vmBo) yield* gpuvaLink(nw.prev!, vmBo);
        if (op.remap.next && vmBo) yield* gpuvaLink(nw.next!, vmBo);
        yield* gpuvaUnlink(va);
        break;
      }
      case GpuvaOpType.UNMAP:
        yield* gpuvaUnlink(op.unmap.va);
        break;
      default:
        break;
    }
  }
}

/** The GEM an op touches (`op_gem_obj()`): a remap's pieces share the victim's. */
function opGemObj(op: GpuvaOp): GemObject | null {
  switch (op.op) {
    case GpuvaOpType.MAP:
      return op.map.gem.obj;
    case GpuvaOpType.REMAP:
      return op.remap.unmap.va.gem.obj;
    case GpuvaOpType.UNMAP:
      return op.unmap.va.gem.obj;
    default:
      return null;
  }
}

/** models bind_lock_validate(): lock every GEM an op touches; validate those being (re)mapped. */
function* bindLockValidate(job: NouveauUvmmBindJob, exec: DrmExec, numFences: number): Routine<number> {
  for (const op of job.bops) {
    if (!op.ops) continue;
    for (const vaOp of op.ops) {
      const obj = opGemObj(vaOp);
      if (!obj) continue;
      let ret = yield* exec.prepareObj(obj, numFences);
      if (ret) return ret;
      // GEMs backing mappings about to be unmapped are not worth validating.
      if (vaOp.op === GpuvaOpType.UNMAP) continue;
      ret = yield* nouveauBoValidate(obj as NouveauBo);
      if (ret) return ret;
    }
  }
  return 0;
}

/** Unwinds the ops of a failed submit from `from` (inclusive) back to the first. */
function* bindJobSubmitUnwind(uvmm: NouveauUvmm, job: NouveauUvmmBindJob, from: number): Routine {
  for (let k = from; k >= 0; k--) {
    const op = job.bops[k]!;
    switch (op.op) {
      case 'MAP_SPARSE':
        yield* nouveauUvmaRegionDestroy(uvmm, op.va.addr, op.va.range);
        break;
      case 'UNMAP_SPARSE':
        // As upstream: the region never left the tree, so this insert fails (-EEXIST, ignored),
        // and nothing clears `dirty` (see the README: a region left dirty for good).
        if (op.reg) nouveauUvmaRegionInsertRaw(uvmm, op.reg);
        if (op.ops?.last()) yield* nouveauUvmmSmPrepareUnwind(uvmm, op, op.ops, op.ops.last()!, null);
        break;
      case 'MAP':
        if (op.ops?.last())
          yield* nouveauUvmmSmPrepareUnwind(uvmm, op, op.ops, op.ops.last()!, {
            region: null,
            addr: op.va.addr,
            range: op.va.range,
            kind: 0,
          });
        break;
      case 'UNMAP':
        if (op.ops?.last()) yield* nouveauUvmmSmPrepareUnwind(uvmm, op, op.ops, op.ops.last()!, null);
        break;
    }
    if (op.ops) yield* gpuvaOpsFree(uvmm.base, op.ops);
    op.ops = null;
    op.reg = null;
  }
}

/**
 * models nouveau_uvmm_bind_job_submit(): look the BOs up and obtain their vm_bos; validate; wait
 * for dirty regions; under the uvmm mutex apply every op to the VA space (unwinding all of them in
 * reverse on failure); lock and validate the GEMs; link/unlink; drop the uvmm mutex. Cannot fail
 * after that.
 */
function* nouveauUvmmBindJobSubmit(nj: NouveauJob): Routine<number> {
  const job = nj as NouveauUvmmBindJob;
  const uvmm = job.uvmm;
  let ret = 0;
  for (const op of job.bops) {
    if (op.op === 'MAP') {
      const obj = op.gem.bo;
      if (!obj) return -ENOENT;
      obj.get(); // drm_gem_object_lookup()
      yield* obj.resv.lock(null, 'dma_resv_lock');
      const vmBo = yield* gpuvmBoObtain(uvmm.base, obj);
      yield* obj.resv.unlock('dma_resv_unlock');
      if (isErr(vmBo)) return vmBo;
      op.vmBo = vmBo;
      yield* gpuvmBoExtobjAdd(vmBo);
    }
    ret = bindValidateOp(uvmm, op);
    if (ret) return ret;
  }
  // A sparse region or mapping overlapping a dirty region waits for its unbind to complete.
  ret = yield* bindValidateRegion(job);
  if (ret) return ret;

  // From the first VA-space change until nothing can fail, the uvmm mutex stays held.
  yield* uvmm.mutex.lock('nouveau_uvmm_lock');
  let k = 0;
  for (; k < job.bops.length; k++) {
    const op = job.bops[k]!;
    switch (op.op) {
      case 'MAP_SPARSE':
        ret = yield* nouveauUvmaRegionCreate(uvmm, op.va.addr, op.va.range);
        break;
      case 'UNMAP_SPARSE': {
        op.reg = nouveauUvmaRegionFind(uvmm, op.va.addr, op.va.range);
        if (!op.reg || op.reg.dirty) {
          op.reg = null;
          ret = -ENOENT;
          break;
        }
        const ops = yield* gpuvmSmUnmapOpsCreate(uvmm.base, op.va.addr, op.va.range);
        if (isErr(ops)) {
          op.reg = null;
          ret = ops;
          break;
        }
        op.ops = ops;
        ret = yield* nouveauUvmmSmPrepare(uvmm, op, ops, null);
        if (ret) {
          yield* gpuvaOpsFree(uvmm.base, ops);
          op.ops = null;
          op.reg = null;
          break;
        }
        nouveauUvmaRegionDirty(op.reg, uvmm.sim);
        break;
      }
      case 'MAP': {
        const reg = nouveauUvmaRegionFindFirst(uvmm, op.va.addr, op.va.range);
        if (reg) {
          if (reg.dirty) {
            ret = -EINVAL;
            break;
          }
          // The mapping must be outside every region or inside one.
          if (reg.va.addr > op.va.addr || reg.va.addr + reg.va.range < op.va.addr + op.va.range) {
            ret = -ENOSPC;
            break;
          }
        }
        const ops = yield* gpuvmSmMapOpsCreate(
          uvmm.base,
          mapReq(op.va.addr, op.va.range, op.gem.bo, op.gem.offset),
        );
        if (isErr(ops)) {
          ret = ops;
          break;
        }
        op.ops = ops;
        ret = yield* nouveauUvmmSmPrepare(uvmm, op, ops, {
          region: reg,
          addr: op.va.addr,
          range: op.va.range,
          kind: op.flags & 0xff,
        });
        if (ret) {
          yield* gpuvaOpsFree(uvmm.base, ops);
          op.ops = null;
        }
        break;
      }
      case 'UNMAP': {
        const ops = yield* gpuvmSmUnmapOpsCreate(uvmm.base, op.va.addr, op.va.range);
        if (isErr(ops)) {
          ret = ops;
          break;
        }
        op.ops = ops;
        ret = yield* nouveauUvmmSmPrepare(uvmm, op, ops, null);
        if (ret) {
          yield* gpuvaOpsFree(uvmm.base, ops);
          op.ops = null;
        }
        break;
      }
    }
    if (ret) break;
  }
  if (ret) {
    // unwind_continue: the failed op cleaned up after itself.
    yield* bindJobSubmitUnwind(uvmm, job, k - 1);
    yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
    return ret;
  }

  const exec = new DrmExec(uvmm.sim, DrmExecFlags.IGNORE_DUPLICATES, `${job.name} exec`);
  job.exec = exec;
  ret = yield* exec.untilAllLocked(() => bindLockValidate(job, exec, 1));
  if (ret) {
    yield* bindJobSubmitUnwind(uvmm, job, job.bops.length - 1);
    yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
    yield* exec.fini();
    job.exec = null;
    return ret;
  }

  // Link and unlink while holding the resvs: nothing can fail from here on.
  for (const op of job.bops) {
    if (op.op === 'UNMAP_SPARSE' || op.op === 'MAP' || op.op === 'UNMAP') yield* bindLinkGpuvas(uvmm, op);
  }
  yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
  return 0;
}

/** models nouveau_uvmm_bind_job_armed_submit(): the done fence into every locked resv (BOOKKEEP). */
function* nouveauUvmmBindJobArmedSubmit(nj: NouveauJob): Routine {
  const job = nj as NouveauUvmmBindJob;
  const exec = job.exec!;
  yield* gpuvmResvAddFence(job.uvmm.base, exec, job.doneFence!, 'BOOKKEEP', 'BOOKKEEP');
  yield* exec.fini();
  job.exec = null;
}

/** models nouveau_uvmm_bind_job_run(): PTE writes only. */
function* nouveauUvmmBindJobRun(nj: NouveauJob): Routine<number> {
  const job = nj as NouveauUvmmBindJob;
  const uvmm = job.uvmm;
  for (const op of job.bops) {
    switch (op.op) {
      case 'MAP_SPARSE':
        break;
      case 'MAP':
      case 'UNMAP_SPARSE':
      case 'UNMAP': {
        const ret = yield* nouveauUvmmSm(uvmm, op, op.ops!);
        if (ret) return ret;
        break;
      }
    }
  }
  return 0;
}

/**
 * models nouveau_uvmm_bind_job_cleanup() (free_job): page tables of unmapped spans go back, old
 * uvmas are freed, a sparse region being unmapped is finally removed and completed, vm_bo and GEM
 * references are dropped, the job leaves the list and its completion is signalled.
 */
function* nouveauUvmmBindJobCleanup(nj: NouveauJob): Routine {
  const job = nj as NouveauUvmmBindJob;
  const uvmm = job.uvmm;
  for (const op of job.bops) {
    const obj = op.gem.bo;
    switch (op.op) {
      case 'MAP_SPARSE':
        break;
      case 'UNMAP_SPARSE':
        if (op.ops) yield* nouveauUvmmSmCleanup(uvmm, op.ops, true);
        if (op.reg) {
          yield* uvmm.raw.rawSparse(op.reg.va.addr, op.reg.va.range, false);
          yield* uvmm.mutex.lock('nouveau_uvmm_lock');
          nouveauUvmaRegionRemove(uvmm, op.reg);
          yield* uvmm.mutex.unlock('nouveau_uvmm_unlock');
          yield* op.reg.complete.completeAll('nouveau_uvma_region_complete');
          yield* nouveauUvmaRegionPut(uvmm, op.reg);
        }
        break;
      case 'MAP':
        if (op.ops) yield* nouveauUvmmSmCleanup(uvmm, op.ops, false);
        break;
      case 'UNMAP':
        if (op.ops) yield* nouveauUvmmSmCleanup(uvmm, op.ops, true);
        break;
    }
    if (op.ops) yield* gpuvaOpsFree(uvmm.base, op.ops);
    op.ops = null;
    if (op.vmBo && obj) {
      yield* obj.resv.lock(null, 'dma_resv_lock');
      yield* gpuvmBoPut(op.vmBo);
      yield* obj.resv.unlock('dma_resv_unlock');
      op.vmBo = null;
    }
    if (obj && op.op === 'MAP') obj.put();
  }
  yield* nouveauJobDone(job);
  yield* job.complete.completeAll('complete_all(&bind_job->complete)');
  yield* nouveauUvmmBindJobPut(job);
}

const bindJobOps: NouveauJobOps = {
  submit: nouveauUvmmBindJobSubmit,
  armedSubmit: nouveauUvmmBindJobArmedSubmit,
  run: nouveauUvmmBindJobRun,
  free: nouveauUvmmBindJobCleanup,
};

/** A user operation of DRM_NOUVEAU_VM_BIND (`struct drm_nouveau_vm_bind_op`, the BO given directly). */
export interface VmBindUop {
  op: 'map' | 'unmap';
  sparse?: boolean;
  addr: number;
  range: number;
  bo?: NouveauBo | null;
  boOffset?: number;
  flags?: number;
}

/**
 * models nouveau_uvmm_bind_job_init(): the job and one bind_job_op per user op
 * (`bind_job_op_from_uop()`, MAP/UNMAP with the SPARSE flag become MAP_SPARSE/UNMAP_SPARSE).
 */
export function* nouveauUvmmBindJobInit(
  uvmm: NouveauUvmm,
  sched: NouveauSched,
  uops: readonly VmBindUop[],
  sync: boolean,
  inSync: DmaFenceList,
  outSync: DmaFenceList,
): Routine<NouveauUvmmBindJob | number> {
  const mem = yield* uvmm.ledger.alloc(uvmm.sim, 256, 'GFP_KERNEL', 'kzalloc(bind_job)');
  if (!mem) return -ENOMEM;
  const job = new NouveauUvmmBindJob(uvmm, sched, sync, inSync, outSync);
  job.mem = mem;
  for (const u of uops) {
    job.bops.push({
      op: u.op === 'map' ? (u.sparse ? 'MAP_SPARSE' : 'MAP') : u.sparse ? 'UNMAP_SPARSE' : 'UNMAP',
      flags: u.flags ?? 0,
      vmBo: null,
      va: { addr: u.addr, range: u.range },
      gem: { bo: u.op === 'map' && !u.sparse ? (u.bo ?? null) : null, offset: u.boOffset ?? 0 },
      reg: null,
      new: { map: null, prev: null, next: null },
      ops: null,
      deferredGets: [],
    });
  }
  return job;
}
