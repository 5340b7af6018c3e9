/**
 * The facet of `struct drm_gem_object` that gpuvm depends on: the reservation object, the list of
 * vm_bos (`gpuva.list`), the list lock used in IMMEDIATE_MODE (`gpuva.lock`) and the refcount.
 */
import { DmaResv, type KBuf, kmalloc, Mutex, type Routine, type Sim } from '@hmmkit/sim';
import { inFenceSignalling } from './kernel.js';
import type { GpuVmBo } from './vm-bo.js';

export interface GemObjectOptions {
  /**
   * The reservation object to share, e.g. `vm.resv` for an object local to one VM. Omitted: the
   * object gets its own resv (an external object for every VM).
   */
  resv?: DmaResv;
  /** Size in the VM's unit (informational; gpuvm never checks it). */
  size?: number;
}

/** `struct drm_gem_object`, the part gpuvm uses. */
export class GemObject {
  readonly resv: DmaResv;
  /** True when `resv` belongs to this object (freed with it). */
  readonly ownsResv: boolean;
  readonly size: number;
  /**
   * `gpuva.list`: the vm_bos of this object, in creation order; `gpuva.lock`: the mutex that
   * protects the list for IMMEDIATE_MODE VMs (otherwise the object's resv does).
   */
  readonly gpuva: { readonly list: GpuVmBo[]; readonly lock: Mutex };
  /** `refcount` of the embedded kref; the creator holds the first reference. */
  refcount = 1;
  freed = false;
  /** The allocation backing the object, when a model allocated it (freed with the last put). */
  mem: KBuf | null = null;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    options: GemObjectOptions = {},
  ) {
    this.ownsResv = !options.resv;
    this.resv = options.resv ?? new DmaResv(sim, `${name}->resv`);
    this.size = options.size ?? 0;
    this.gpuva = {
      list: [],
      lock: new Mutex(sim, `${name}->gpuva.lock`, { lockClass: 'drm_gem_object.gpuva.lock' }),
    };
  }

  /** `drm_gem_object_get()`. */
  get(): this {
    if (this.refcount <= 0 || this.freed) {
      this.sim.fail('refcount', `drm_gem_object_get(${this.name}): addition on 0; use-after-free`, {
        objects: [this.name],
      });
    }
    this.refcount++;
    return this;
  }

  /**
   * `drm_gem_object_put()`. The last put frees the object (and its own resv and mutex, so any later
   * operation on them is a use-after-free). A put inside a fence-signalling section is reported:
   * it may be the last one, and freeing a GEM object takes locks (the resv) and may sleep.
   */
  put(): void {
    const sim = this.sim;
    if (inFenceSignalling(sim)) {
      sim.fail(
        'fence-signalling',
        `${sim.current!.name}: drm_gem_object_put(${this.name}) inside a fence-signalling section (the put may free the object)`,
        { objects: [this.name] },
      );
    }
    if (this.refcount <= 0 || this.freed) {
      sim.fail('refcount', `drm_gem_object_put(${this.name}): underflow; use-after-free`, {
        objects: [this.name],
      });
    }
    if (--this.refcount === 0) {
      this.freed = true;
      if (this.mem) sim.free(this.mem);
      sim.free(this.gpuva.lock);
      if (this.ownsResv) sim.free(this.resv);
    }
  }

  /** `drm_gem_for_each_gpuvm_bo()`: the vm_bos in creation order (the caller holds the list lock). */
  vmBos(): readonly GpuVmBo[] {
    return this.gpuva.list;
  }

  toString(): string {
    return this.name;
  }
}

/**
 * Models `drm_gpuvm_resv_object_alloc()`: allocates (GFP_KERNEL) a bare, zero-size private GEM
 * object whose resv serves as a VM's shared resv; null on -ENOMEM.
 */
export function* gpuvmResvObjectAlloc(sim: Sim, name = 'drm_gpuvm r_obj'): Routine<GemObject | null> {
  const mem = yield* kmalloc(sim, 256, 'GFP_KERNEL', 'drm_gpuvm_resv_object_alloc');
  if (!mem) return null;
  const obj = new GemObject(sim, name);
  obj.mem = mem;
  return obj;
}
