/**
 * The VM_BIND uAPI entry points of nouveau_uvmm.c: DRM_NOUVEAU_VM_INIT
 * (`nouveau_uvmm_ioctl_vm_init()`) and DRM_NOUVEAU_VM_BIND (`nouveau_uvmm_ioctl_vm_bind()` →
 * `nouveau_uvmm_vm_bind()`), with the BOs given as objects instead of GEM handles and syncobjs as
 * fences. Plus two helpers the conformance adapter uses.
 */
import { gpuvmResvObjectAlloc } from '@hmmkit/gpuva';
import { PAGE_SIZE } from '@hmmkit/mm';
import { type DmaFence, EINVAL, ENOMEM, ENOSYS, kmalloc, type Routine } from '@hmmkit/sim';
import { type NouveauBo, nouveauGemNew } from './bo.js';
import type { NouveauCli } from './drm.js';
import { nouveauJobInit, nouveauJobSubmit, nouveauSchedCreate } from './sched.js';
import { NOUVEAU_VA_SPACE_END, type NouveauUvmm, newUvmm } from './uvmm.js';
import { nouveauUvmmBindJobInit, type VmBindUop } from './uvmm-bind.js';

/** models nouveau_uvmm_ioctl_vm_init(): the client's uvmm, its RAW VMM and (model) its scheduler. */
export function* nouveauUvmmVmInit(
  cli: NouveauCli,
  kernelManagedAddr: number,
  kernelManagedSize: number,
): Routine<number> {
  const sim = cli.drm.sim;
  const kend = kernelManagedAddr + kernelManagedSize;
  if (kend > NOUVEAU_VA_SPACE_END) return -EINVAL;
  yield* cli.mutex.lock('mutex_lock(&cli->mutex)');
  let ret = 0;
  if (cli.uvmm.disabled) {
    ret = -ENOSYS;
  } else {
    const mem = yield* kmalloc(sim, 512, 'GFP_KERNEL', 'kzalloc(uvmm)');
    const rObj = mem ? yield* gpuvmResvObjectAlloc(sim, `${cli.name}->uvmm r_obj`) : null;
    if (!mem || !rObj) {
      ret = -ENOMEM;
    } else {
      const uvmm = newUvmm(sim, cli, rObj, kernelManagedAddr, kernelManagedSize, mem);
      // GPUVM takes care of the resv object from here on.
      rObj.put();
      cli.uvmm.ptr = uvmm;
      // The model creates the client's scheduler entity with its uvmm.
      cli.sched ??= nouveauSchedCreate(sim, `${cli.name}->sched`);
    }
  }
  yield* cli.mutex.unlock('mutex_unlock(&cli->mutex)');
  return ret;
}

/** Arguments of DRM_NOUVEAU_VM_BIND. */
export interface VmBindArgs {
  ops: readonly VmBindUop[];
  /** DRM_NOUVEAU_VM_BIND_RUN_ASYNC; without it the ioctl waits for the job. */
  async?: boolean;
  /** In-syncobjs (async only). */
  inSync?: readonly DmaFence[];
  /** Out-syncobjs (async only): signalled when the job finished. */
  outSync?: readonly DmaFence[];
}

/** models nouveau_cli_uvmm_locked(). */
function* nouveauCliUvmmLocked(cli: NouveauCli): Routine<NouveauUvmm | null> {
  yield* cli.mutex.lock('mutex_lock(&cli->mutex)');
  const uvmm = cli.uvmm.ptr;
  yield* cli.mutex.unlock('mutex_unlock(&cli->mutex)');
  return uvmm;
}

/**
 * models nouveau_uvmm_ioctl_vm_bind() → nouveau_uvmm_vm_bind(): build the job, submit it; on a
 * submit error the job is finished at once (its cleanup runs, `nouveau_job_fini()`).
 */
export function* nouveauUvmmIoctlVmBind(cli: NouveauCli, args: VmBindArgs): Routine<number> {
  const uvmm = yield* nouveauCliUvmmLocked(cli);
  if (!uvmm || !cli.sched) return -ENOSYS;
  const job = yield* nouveauUvmmBindJobInit(
    uvmm,
    cli.sched,
    args.ops,
    !args.async,
    args.inSync ?? [],
    args.outSync ?? [],
  );
  if (typeof job === 'number') return job;
  let ret = nouveauJobInit(job);
  if (ret) {
    yield* uvmm.ledger.free(job.mem, 'kfree(bind_job)');
    return ret;
  }
  ret = yield* nouveauJobSubmit(job);
  if (ret) yield* job.ops.free(job);
  return ret;
}

/** Adapter helper: a new BO of `len` bytes mapped (sync VM_BIND) at `[addr, addr + len)`. */
export function* nouveauUvmmBindBo(cli: NouveauCli, addr: number, len: number): Routine<number> {
  const bo = yield* nouveauGemNew(
    cli.drm.sim,
    `bo@${addr.toString(16)}`,
    Math.max(1, Math.ceil(len / PAGE_SIZE)),
  );
  if (!bo) return -ENOMEM;
  const ret = yield* nouveauUvmmIoctlVmBind(cli, { ops: [{ op: 'map', addr, range: len, bo }] });
  // The GEM handle's reference goes (userspace closes the handle); the mapping keeps its own.
  bo.put();
  return ret;
}

/** Adapter helper: sync VM_BIND UNMAP of `[addr, addr + len)`. */
export function nouveauUvmmUnbindRange(cli: NouveauCli, addr: number, len: number): Routine<number> {
  return nouveauUvmmIoctlVmBind(cli, { ops: [{ op: 'unmap', addr, range: len }] });
}

export type { NouveauBo };
