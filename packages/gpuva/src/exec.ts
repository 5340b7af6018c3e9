/**
 * `drm_exec` (`drivers/gpu/drm/drm_exec.c`): locking many GEM objects' reservations with the
 * wound-wait retry loop, and the gpuvm helpers built on it (`drm_gpuvm_prepare_*()`,
 * `drm_gpuvm_exec_lock*()`, `drm_gpuvm_validate()`, `drm_gpuvm_resv_add_fence()`).
 */
import {
  type DmaFence,
  type DmaResv,
  type DmaResvUsage,
  EALREADY,
  EDEADLK,
  type Routine,
  type Sim,
  WwAcquireCtx,
} from '@hmmkit/sim';
import { wrapAdd } from './addr.js';
import { DrmExecFlags, EOPNOTSUPP } from './flags.js';
import type { GemObject } from './gem.js';
import { lockdepAssertHeld } from './kernel.js';
import type { GpuVm, StepResult } from './vm.js';
import { VmBoList } from './vm.js';
import {
  type GpuVmBo,
  gpuvmBoPut,
  listAddLocked,
  listDelLocked,
  vmBoListNext,
  vmBoListRestore,
} from './vm-bo.js';

const DUMMY: unique symbol = Symbol('DRM_EXEC_DUMMY');

/**
 * Workaround for a gap in `@hmmkit/sim`'s `DmaResv`: a context that acquires a ww_mutex while an
 * older context already waits for it must be wounded (the kernel's `__ww_mutex_check_waiters()`
 * on acquisition). The sim only wounds when the older context's own lock attempt runs, so a lock
 * handed to a younger context after the older one started waiting leaves the older one stuck
 * (three-context cycles deadlock). Called right after each acquisition by drm_exec.
 */
function woundIfOlderWaiter(sim: Sim, resv: DmaResv, ctx: WwAcquireCtx): void {
  for (const t of sim.threads) {
    if (t.done) continue;
    const op = t.pending;
    if (op.obj !== resv || (op.kind !== 'ww_mutex_wait' && op.kind !== 'dma_resv_lock_slow')) continue;
    const waiter = op.arg as WwAcquireCtx | null;
    if (waiter && waiter !== ctx && waiter.stamp < ctx.stamp) ctx.wounded = true;
  }
}

/** `struct drm_exec`. */
export class DrmExec {
  /** Locked objects, in locking order (each holds a GEM reference). */
  readonly objects: GemObject[] = [];
  /** The object that caused the last back-off, `null` when none, `DUMMY` before the first cleanup. */
  contended: GemObject | null | typeof DUMMY = DUMMY;
  /** The contended object after it was locked with `dma_resv_lock_slow()`. */
  prelocked: GemObject | null = null;
  /** The wound-wait acquire context (`ww_acquire_init()` at the first cleanup). */
  ticket: WwAcquireCtx | null = null;
  /** How many times the loop body was restarted because of contention. */
  retries = 0;

  /** Models `drm_exec_init()` (the objects array is not allocated in the model). */
  constructor(
    readonly sim: Sim,
    readonly flags = 0,
    readonly name = 'drm_exec',
  ) {}

  /** `drm_exec_is_contended()`. */
  get isContended(): boolean {
    return this.contended !== null && this.contended !== DUMMY;
  }

  /** `drm_exec_unlock_all()`: unlock in reverse order, drop references (and the prelocked one). */
  private *unlockAll(): Routine {
    for (let i = this.objects.length - 1; i >= 0; i--) {
      const obj = this.objects[i]!;
      yield* obj.resv.unlock();
      obj.put();
    }
    this.objects.length = 0;
    this.prelocked?.put();
    this.prelocked = null;
  }

  /**
   * Models `drm_exec_cleanup()`, the condition of `drm_exec_until_all_locked()`: true to run the
   * loop body (again), false when everything is locked.
   */
  *cleanup(): Routine<boolean> {
    if (this.contended === null) {
      if (this.ticket) this.ticket.done = true;
      return false;
    }
    if (this.contended === DUMMY) {
      this.contended = null;
      this.ticket = new WwAcquireCtx(this.sim, this.name);
      return true;
    }
    yield* this.unlockAll();
    this.retries++;
    return true;
  }

  /**
   * `drm_exec_until_all_locked(exec) { ...; drm_exec_retry_on_contention(exec); if (ret) goto err; }`:
   * runs `body` until it completes without contention. Returns the body's error (the caller then
   * calls {@link fini}), or 0 with every lock held.
   */
  *untilAllLocked(body: (exec: DrmExec) => Routine<number>): Routine<number> {
    while (yield* this.cleanup()) {
      const ret = yield* body(this);
      if (this.isContended) continue;
      if (ret) return ret;
    }
    return 0;
  }

  /** `drm_exec_lock_contended()`: lock the contended object first after a back-off. */
  private *lockContended(): Routine<number> {
    const obj = this.contended;
    if (obj === null || obj === DUMMY) return 0;
    this.contended = null;
    yield* obj.resv.lockSlow(this.ticket!, 'drm_exec_lock_contended');
    woundIfOlderWaiter(this.sim, obj.resv, this.ticket!);
    this.objects.push(obj.get());
    this.prelocked = obj;
    return 0;
  }

  /**
   * Models `drm_exec_lock_obj()`: 0, `-EDEADLK` on contention (the caller must retry),
   * `-EALREADY` for a duplicate unless `IGNORE_DUPLICATES`.
   */
  *lockObj(obj: GemObject): Routine<number> {
    let ret = yield* this.lockContended();
    if (ret) return ret;
    if (this.prelocked === obj) {
      this.prelocked.put();
      this.prelocked = null;
      return 0;
    }
    if (!this.ticket) throw new Error('drm_exec_lock_obj() outside drm_exec_until_all_locked()');
    ret = yield* obj.resv.lock(this.ticket, 'drm_exec_lock_obj');
    if (ret === -EDEADLK) {
      this.contended = obj.get();
      return -EDEADLK;
    }
    if (ret === -EALREADY && this.flags & DrmExecFlags.IGNORE_DUPLICATES) return 0;
    if (ret) return ret;
    woundIfOlderWaiter(this.sim, obj.resv, this.ticket);
    this.objects.push(obj.get());
    return 0;
  }

  /** Models `drm_exec_unlock_obj()`. */
  *unlockObj(obj: GemObject): Routine {
    const i = this.objects.lastIndexOf(obj);
    if (i < 0) return;
    yield* obj.resv.unlock();
    this.objects.splice(i, 1);
    obj.put();
  }

  /** Models `drm_exec_prepare_obj()`: lock, then reserve `numFences` slots (unlock on -ENOMEM). */
  *prepareObj(obj: GemObject, numFences: number): Routine<number> {
    let ret = yield* this.lockObj(obj);
    if (ret) return ret;
    ret = yield* obj.resv.reserveFences(numFences);
    if (ret) {
      yield* this.unlockObj(obj);
      return ret;
    }
    return 0;
  }

  /** Models `drm_exec_prepare_array()`. */
  *prepareArray(objs: readonly GemObject[], numFences: number): Routine<number> {
    for (const obj of objs) {
      const ret = yield* this.prepareObj(obj, numFences);
      if (ret) return ret;
    }
    return 0;
  }

  /** Models `drm_exec_fini()`: unlock everything, drop references, finish the acquire context. */
  *fini(): Routine {
    yield* this.unlockAll();
    if (this.contended !== DUMMY) {
      if (this.contended) this.contended.put();
      this.contended = null;
      if (this.ticket) this.ticket.done = true;
    }
  }

  /** `drm_exec_for_each_locked_object()`. */
  lockedObjects(): readonly GemObject[] {
    return this.objects;
  }
}

/** `exec_prepare_obj()`: prepare with slots, or only lock when `numFences` is 0. */
function execPrepareObj(exec: DrmExec, obj: GemObject, numFences: number): Routine<number> {
  return numFences ? exec.prepareObj(obj, numFences) : exec.lockObj(obj);
}

function* step(r: StepResult): Routine<number> {
  return typeof r === 'number' ? r : yield* r;
}

/** Models `drm_gpuvm_prepare_vm()`: lock the VM's resv object (and reserve slots when `numFences > 0`). */
export function gpuvmPrepareVm(vm: GpuVm, exec: DrmExec, numFences: number): Routine<number> {
  return execPrepareObj(exec, vm.rObj, numFences);
}

/**
 * Models `drm_gpuvm_prepare_objects()`: lock every external object. Protected VMs assert the VM
 * resv and move vm_bos flagged `evicted` onto the evict list; unprotected VMs use the pop-to-local
 * list iteration (§4.3).
 */
export function* gpuvmPrepareObjects(vm: GpuVm, exec: DrmExec, numFences: number): Routine<number> {
  let ret = 0;
  if (vm.resvProtected) {
    vm.resvAssertHeld();
    const items = vm.extobj.list.items;
    for (let i = 0; i < items.length; i++) {
      const vmBo = items[i]!;
      if (vm.features.deferredVmBo && vmBo.kref.count === 0) continue;
      ret = yield* execPrepareObj(exec, vmBo.obj, numFences);
      if (ret) break;
      if (vmBo.evicted) listAddLocked(vmBo, 'evict');
    }
    return ret;
  }
  const local = new VmBoList('extobj (local)');
  let vmBo: GpuVmBo | null = yield* vmBoListNext(vm, 'extobj', local, null);
  while (vmBo) {
    ret = yield* execPrepareObj(exec, vmBo.obj, numFences);
    if (ret) break;
    vmBo = yield* vmBoListNext(vm, 'extobj', local, vmBo);
  }
  yield* gpuvmBoPut(vmBo);
  yield* vmBoListRestore(vm, 'extobj');
  return ret;
}

/**
 * Models `drm_gpuvm_prepare_range()`: lock the object of every va intersecting `[addr, addr+range)`.
 * A GEM-less va in the range is passed straight on, as upstream does (a NULL dereference).
 */
export function* gpuvmPrepareRange(
  vm: GpuVm,
  exec: DrmExec,
  addr: number,
  range: number,
  numFences: number,
): Routine<number> {
  for (const va of vm.vasRange(addr, wrapAdd(addr, range))) {
    const obj = va.gem.obj;
    if (!obj)
      vm.sim.fail('null-pointer-dereference', `drm_gpuvm_prepare_range: ${va.toString()} has no GEM object`);
    const ret = yield* execPrepareObj(exec, obj, numFences);
    if (ret) return ret;
  }
  return 0;
}

/** `struct drm_gpuvm_exec`. */
export interface GpuVmExec {
  vm: GpuVm;
  /** `DrmExecFlags` for the embedded drm_exec. */
  flags: number;
  numFences: number;
  /** Extra objects to lock inside the loop. */
  extra?: { fn: (vmExec: GpuVmExec) => Routine<number>; priv?: unknown };
  /** The embedded drm_exec, set by the lock functions. */
  exec?: DrmExec;
}

/**
 * Models `drm_gpuvm_exec_lock()`: retry loop of prepare_vm, prepare_objects and `extra.fn`;
 * contention restarts the loop; another error finishes the exec and is returned. On 0 every lock is
 * held until {@link gpuvmExecUnlock}.
 */
export function* gpuvmExecLock(vmExec: GpuVmExec): Routine<number> {
  const vm = vmExec.vm;
  const exec = new DrmExec(vm.sim, vmExec.flags, `${vm.name}:exec`);
  vmExec.exec = exec;
  const ret = yield* exec.untilAllLocked(function* () {
    let r = yield* gpuvmPrepareVm(vm, exec, vmExec.numFences);
    if (r) return r;
    r = yield* gpuvmPrepareObjects(vm, exec, vmExec.numFences);
    if (r) return r;
    if (vmExec.extra) {
      r = yield* vmExec.extra.fn(vmExec);
      if (r) return r;
    }
    return 0;
  });
  if (ret) yield* exec.fini();
  return ret;
}

/** Models `drm_gpuvm_exec_lock_array()`: {@link gpuvmExecLock} plus the given objects. */
export function gpuvmExecLockArray(vmExec: GpuVmExec, objs: readonly GemObject[]): Routine<number> {
  vmExec.extra = {
    fn: (e) => e.exec!.prepareArray(objs, e.numFences),
    priv: objs,
  };
  return gpuvmExecLock(vmExec);
}

/** Models `drm_gpuvm_exec_lock_range()`: retry loop over prepare_range only (no VM resv unless in range). */
export function* gpuvmExecLockRange(vmExec: GpuVmExec, addr: number, range: number): Routine<number> {
  const vm = vmExec.vm;
  const exec = new DrmExec(vm.sim, vmExec.flags, `${vm.name}:exec`);
  vmExec.exec = exec;
  const ret = yield* exec.untilAllLocked(() => gpuvmPrepareRange(vm, exec, addr, range, vmExec.numFences));
  if (ret) yield* exec.fini();
  return ret;
}

/** Models `drm_gpuvm_exec_unlock()`. */
export function* gpuvmExecUnlock(vmExec: GpuVmExec): Routine {
  if (vmExec.exec) yield* vmExec.exec.fini();
}

/**
 * Models `drm_gpuvm_validate()`: `-EOPNOTSUPP` without `vm_bo_validate`. Protected: walk the evict
 * list, stop at the first error, drop entries no longer evicted. Unprotected: the pop-and-process
 * iteration (the driver's validate is expected to call `bo_evict(vm_bo, false)`).
 */
export function* gpuvmValidate(vm: GpuVm, exec: DrmExec): Routine<number> {
  const validate = vm.ops.vmBoValidate;
  if (!validate) return -EOPNOTSUPP;
  let ret = 0;
  if (vm.resvProtected) {
    vm.resvAssertHeld();
    const items = vm.evict.list.items;
    let vmBo = items[0];
    while (vmBo) {
      const following: GpuVmBo | undefined = items[items.indexOf(vmBo) + 1];
      if (!(vm.features.deferredVmBo && vmBo.kref.count === 0)) {
        ret = yield* step(validate(vmBo, exec));
        if (ret) break;
        lockdepAssertHeld(vm.sim, vmBo.obj.resv);
        if (!vmBo.evicted) listDelLocked(vmBo, 'evict');
      }
      vmBo = following;
    }
    return ret;
  }
  const local = new VmBoList('evict (local)');
  let vmBo: GpuVmBo | null = yield* vmBoListNext(vm, 'evict', local, null);
  while (vmBo) {
    ret = yield* step(validate(vmBo, exec));
    if (ret) break;
    vmBo = yield* vmBoListNext(vm, 'evict', local, vmBo);
  }
  yield* gpuvmBoPut(vmBo);
  yield* vmBoListRestore(vm, 'evict');
  return ret;
}

/**
 * Models `drm_gpuvm_resv_add_fence()`: add `fence` to every object locked in `exec`, with
 * `extobjUsage` for external objects and `privateUsage` otherwise.
 */
export function* gpuvmResvAddFence(
  vm: GpuVm,
  exec: DrmExec,
  fence: DmaFence,
  privateUsage: DmaResvUsage,
  extobjUsage: DmaResvUsage,
): Routine {
  for (const obj of [...exec.objects]) {
    lockdepAssertHeld(vm.sim, obj.resv);
    yield* obj.resv.addFence(fence, vm.isExtobj(obj) ? extobjUsage : privateUsage);
  }
}

/** Models `drm_gpuvm_exec_resv_add_fence()`. */
export function gpuvmExecResvAddFence(
  vmExec: GpuVmExec,
  fence: DmaFence,
  privateUsage: DmaResvUsage,
  extobjUsage: DmaResvUsage,
): Routine {
  return gpuvmResvAddFence(vmExec.vm, vmExec.exec!, fence, privateUsage, extobjUsage);
}

/** Models `drm_gpuvm_exec_validate()`. */
export function gpuvmExecValidate(vmExec: GpuVmExec): Routine<number> {
  return gpuvmValidate(vmExec.vm, vmExec.exec!);
}
