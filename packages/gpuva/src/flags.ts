/**
 * Flag values and enumerations of `include/drm/drm_gpuvm.h` and `include/drm/drm_exec.h`.
 */

/** `enum drm_gpuva_flags`. gpuvm itself never sets or reads SPARSE and never copies flags into split pieces. */
export const GpuvaFlags = {
  /** `DRM_GPUVA_INVALIDATED`: the backing GEM is invalidated (e.g. moved). */
  INVALIDATED: 1 << 0,
  /** `DRM_GPUVA_SPARSE`: a sparse mapping (driver-managed meaning). */
  SPARSE: 1 << 1,
  /** `DRM_GPUVA_USERBITS`: first bit free for drivers. */
  USERBITS: 1 << 2,
} as const;

/**
 * `enum drm_gpuvm_flags` of newer trees (with `DRM_GPUVM_IMMEDIATE_MODE`). In trees older than the
 * IMMEDIATE_MODE rework, `DRM_GPUVM_USERBITS` was `BIT(1)`.
 */
export const GpuvmFlags = {
  /** `DRM_GPUVM_RESV_PROTECTED`: extobj/evict lists protected by the VM resv; internal spinlocks skipped. */
  RESV_PROTECTED: 1 << 0,
  /** `DRM_GPUVM_IMMEDIATE_MODE`: GEM gpuva lists protected by `obj->gpuva.lock` (a signalling-safe mutex). */
  IMMEDIATE_MODE: 1 << 1,
  /** `DRM_GPUVM_USERBITS`: first bit free for drivers. */
  USERBITS: 1 << 2,
} as const;

/** `enum drm_gpuva_op_type`. */
export const GpuvaOpType = {
  MAP: 0,
  REMAP: 1,
  UNMAP: 2,
  PREFETCH: 3,
  /** Never produced by gpuvm; lets drivers mix their own op kinds into op lists (Xe SVM). */
  DRIVER: 4,
} as const;
export type GpuvaOpType = (typeof GpuvaOpType)[keyof typeof GpuvaOpType];

/** `DRM_EXEC_*` init flags (`include/drm/drm_exec.h`). */
export const DrmExecFlags = {
  /** `DRM_EXEC_INTERRUPTIBLE_WAIT`: waits are interruptible (no signals exist in the model). */
  INTERRUPTIBLE_WAIT: 1 << 0,
  /** `DRM_EXEC_IGNORE_DUPLICATES`: locking an already locked object is not an error. */
  IGNORE_DUPLICATES: 1 << 1,
} as const;

/** Kernel errno values gpuva needs that `@hmmkit/sim` does not define. */
export const EOPNOTSUPP = 95;
