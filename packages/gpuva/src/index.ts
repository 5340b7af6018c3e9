/**
 * `@hmmkit/gpuva`: an executable model of the DRM GPU VA manager (`drm_gpuvm`) and `drm_exec`.
 * The asynchronous VM_BIND model lives in `@hmmkit/gpuva/vm-bind`.
 *
 * @packageDocumentation
 */
export { checkAddOverflow, isU64, U64_LIMIT, U64_MAX, wrapAdd, wrapSub } from './addr.js';
export { checkGpuvm, checkTree, checkVmBos, checkVmRefcount, gpuvmChecks } from './check.js';
export {
  DrmExec,
  type GpuVmExec,
  gpuvmExecLock,
  gpuvmExecLockArray,
  gpuvmExecLockRange,
  gpuvmExecResvAddFence,
  gpuvmExecUnlock,
  gpuvmExecValidate,
  gpuvmPrepareObjects,
  gpuvmPrepareRange,
  gpuvmPrepareVm,
  gpuvmResvAddFence,
  gpuvmValidate,
} from './exec.js';
export { DrmExecFlags, EOPNOTSUPP, GpuvaFlags, GpuvaOpType, GpuvmFlags } from './flags.js';
export { GemObject, type GemObjectOptions, gpuvmResvObjectAlloc } from './gem.js';
export {
  AllocLedger,
  dmaResvReserveFences,
  inFenceSignalling,
  Kref,
  lockdepAssertHeld,
  lockdepAssertNotHeld,
} from './kernel.js';
export {
  formatOp,
  formatOps,
  type GpuvaOp,
  GpuvaOps,
  isErr,
  type MapOp,
  type MapReq,
  mapReq,
  type OpMap,
  type OpPrefetch,
  type OpRemap,
  type OpUnmap,
  opRemapToUnmapRange,
  type PrefetchOp,
  type RemapOp,
  type UnmapOp,
} from './ops.js';
export {
  type Applied,
  applyingSteps,
  applyOpNow,
  applyOpsNow,
  gpuvaOpsFree,
  gpuvmBoUnmapOpsCreate,
  gpuvmBoUnmapOpsCreateNow,
  gpuvmMadviseOpsCreate,
  gpuvmMadviseOpsCreateNow,
  gpuvmPrefetchOpsCreate,
  gpuvmPrefetchOpsCreateNow,
  gpuvmSmMap,
  gpuvmSmMapExecLock,
  gpuvmSmMapNow,
  gpuvmSmMapOpsCreate,
  gpuvmSmMapOpsCreateNow,
  gpuvmSmUnmap,
  gpuvmSmUnmapExecLock,
  gpuvmSmUnmapNow,
  gpuvmSmUnmapOpsCreate,
  gpuvmSmUnmapOpsCreateNow,
  recordingSteps,
  type SmSteps,
  smMapWith,
  smMapWithNow,
  smUnmapWith,
  smUnmapWithNow,
} from './split-merge.js';
export { GpuVa } from './va.js';
export {
  GpuVm,
  type GpuVmFeatures,
  type GpuVmInit,
  type GpuVmOps,
  type GpuVmQuirks,
  gpuvaMap,
  gpuvaRemap,
  gpuvaUnmap,
  type LayoutEntry,
  type SmStep,
  type StepResult,
  VmBoList,
  type VmList,
} from './vm.js';
export {
  GpuVmBo,
  gpuvaLink,
  gpuvaLinkNow,
  gpuvaUnlink,
  gpuvaUnlinkDefer,
  gpuvmBoCreate,
  gpuvmBoDeferredCleanup,
  gpuvmBoEvict,
  gpuvmBoExtobjAdd,
  gpuvmBoExtobjAddNow,
  gpuvmBoFind,
  gpuvmBoGemEvict,
  gpuvmBoObtain,
  gpuvmBoObtainNow,
  gpuvmBoObtainPrealloc,
  gpuvmBoPut,
  gpuvmBoPutDeferred,
  gpuvmBoPutNow,
  vmBoListNext,
  vmBoListRestore,
} from './vm-bo.js';
