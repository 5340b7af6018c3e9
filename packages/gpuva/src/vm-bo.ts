/**
 * `struct drm_gpuvm_bo` (the (VM, GEM) pair) and the functions that manage it: create, find,
 * obtain, put, the extobj and evict lists in both locking modes, linking vas, the unprotected
 * list iteration of §4.3 and the deferred cleanup of the newest trees.
 *
 * All of these are Routines: they take locks (spinlocks, the GEM mutex), allocate, or change a
 * refcount another thread may change concurrently. The `...Now` variants are setup helpers for
 * building an initial state before any simulated thread runs.
 */
import { ENOMEM, type KBuf, OpFlag, type Routine } from '@hmmkit/sim';
import type { GemObject } from './gem.js';
import { assertSetup, Kref, lockdepAssertHeld, lockdepAssertNotHeld } from './kernel.js';
import type { GpuVa } from './va.js';
import type { GpuVm, VmBoList, VmList } from './vm.js';

export class GpuVmBo {
  /** `kref`: 1 at create, +1 per linked va, +1 per find/obtain hit, transient +1 during iteration. */
  readonly kref: Kref;
  /** `evicted`, formally protected by the object's resv. */
  evicted = false;
  /** `list.gpuva`: the linked vas, in link order. */
  readonly list: { readonly gpuva: GpuVa[] } = { gpuva: [] };
  /** `list.entry.gem` is on `obj.gpuva.list`. */
  onGem = false;
  /** `list.entry.extobj`: the list it sits on (the VM's, or an iterator's local list), or null. */
  onExtobj: VmBoList | null = null;
  /** `list.entry.evict`: likewise. */
  onEvict: VmBoList | null = null;
  /** `list.entry.bo_defer` (newest): waiting for deferred cleanup. */
  onDefer = false;
  /** Set once the last reference is gone (being destroyed, or a zombie). */
  dying = false;
  /** Set when destroyed; any later operation on `kref` is a use-after-free. */
  freed = false;
  readonly name: string;

  constructor(
    readonly vm: GpuVm,
    readonly obj: GemObject,
    /** @internal The allocation backing this vm_bo (null for setup-created ones). */
    readonly mem: KBuf | null,
  ) {
    // Ids come from a per-run counter so that names (and violation messages) replay identically.
    const ids = vm.sim.singleton('gpuva:vm_bo-ids', () => ({ next: 1 }));
    this.name = `vm_bo#${ids.next++}(${vm.name}, ${obj.name})`;
    this.kref = new Kref(vm.sim, `${this.name}->kref`, 1);
    vm.vmBos.add(this);
  }

  /** A zombie (newest): refcount 0 but not yet freed by the deferred cleanup. */
  get zombie(): boolean {
    return this.kref.count === 0 && !this.freed;
  }

  /** Models `drm_gpuvm_bo_get()`. */
  get(): Routine {
    return this.kref.get('drm_gpuvm_bo_get');
  }

  /** Models `drm_gpuvm_bo_put()`. */
  put(): Routine<boolean> {
    return gpuvmBoPut(this);
  }

  /** Models `drm_gpuvm_bo_for_each_va()`: the linked vas in link order (caller holds the GEM list lock). */
  vas(): readonly GpuVa[] {
    return this.list.gpuva;
  }

  toString(): string {
    return this.name;
  }
}

function vmList(vm: GpuVm, which: 'extobj' | 'evict'): VmList {
  return which === 'extobj' ? vm.extobj : vm.evict;
}

function entryOf(vmBo: GpuVmBo, which: 'extobj' | 'evict'): VmBoList | null {
  return which === 'extobj' ? vmBo.onExtobj : vmBo.onEvict;
}

function setEntry(vmBo: GpuVmBo, which: 'extobj' | 'evict', list: VmBoList | null): void {
  if (which === 'extobj') vmBo.onExtobj = list;
  else vmBo.onEvict = list;
}

/** `list_del_init()` of the vm_bo's node on whichever list it sits. */
function detach(vmBo: GpuVmBo, which: 'extobj' | 'evict'): void {
  const l = entryOf(vmBo, which);
  if (!l) return;
  const i = l.items.indexOf(vmBo);
  if (i >= 0) l.items.splice(i, 1);
  setEntry(vmBo, which, null);
}

/** `__drm_gpuvm_bo_list_add()`: append if not on a list, under the list spinlock when `lock`. */
function* listAdd(vmBo: GpuVmBo, which: 'extobj' | 'evict', lock: boolean): Routine {
  const l = vmList(vmBo.vm, which);
  if (lock) yield* l.lock.lock();
  if (!entryOf(vmBo, which)) {
    l.list.items.push(vmBo);
    setEntry(vmBo, which, l.list);
  }
  if (lock) yield* l.lock.unlock();
}

/** `__drm_gpuvm_bo_list_del()`: remove from whichever list the node sits on. */
function* listDel(vmBo: GpuVmBo, which: 'extobj' | 'evict', lock: boolean): Routine {
  const l = vmList(vmBo.vm, which);
  if (lock) yield* l.lock.lock();
  detach(vmBo, which);
  if (lock) yield* l.lock.unlock();
}

function removeFromGem(vmBo: GpuVmBo): void {
  if (!vmBo.onGem) return;
  const list = vmBo.obj.gpuva.list;
  const i = list.indexOf(vmBo);
  if (i >= 0) list.splice(i, 1);
  vmBo.onGem = false;
}

/** Frees the vm_bo's memory (`vm_bo_free` or `kfree`) and marks it freed. */
function* freeMem(vmBo: GpuVmBo): Routine {
  const vm = vmBo.vm;
  vmBo.freed = true;
  vm.vmBos.delete(vmBo);
  vm.sim.free(vmBo.kref);
  if (vm.ops.vmBoFree) yield* vm.ops.vmBoFree(vmBo);
  else yield* vm.ledger.free(vmBo.mem, 'drm_gpuvm_bo');
}

function requireDeferred(vm: GpuVm, fn: string): void {
  if (!vm.features.deferredVmBo) {
    throw new Error(
      `${fn}() belongs to the deferred vm_bo cleanup; create the VM with features.deferredVmBo`,
    );
  }
}

/** Models `drm_gpuvm_bo_create()`: allocates (may fail: null), takes a VM ref and an object ref; not listed anywhere. */
export function* gpuvmBoCreate(vm: GpuVm, obj: GemObject): Routine<GpuVmBo | null> {
  const buf = vm.ops.vmBoAlloc
    ? yield* vm.ops.vmBoAlloc(vm)
    : yield* vm.ledger.alloc(vm.sim, 64, 'GFP_KERNEL', 'drm_gpuvm_bo');
  if (!buf) return null;
  const vmBo = new GpuVmBo(vm.get(), obj, buf);
  obj.get();
  return vmBo;
}

/** `drm_gpuvm_bo_destroy()`, the release of the last reference. */
function* boDestroy(vmBo: GpuVmBo): Routine {
  vmBo.dying = true;
  const vm = vmBo.vm;
  const obj = vmBo.obj;
  const lock = !vm.resvProtected;
  if (!lock) vm.resvAssertHeld();
  yield* listDel(vmBo, 'extobj', lock);
  yield* listDel(vmBo, 'evict', lock);
  vm.gemAssertLockHeld(obj);
  removeFromGem(vmBo);
  yield* freeMem(vmBo);
  vm.put();
  obj.put();
}

/** Models `drm_gpuvm_bo_put()`: may sleep; true when this put destroyed the vm_bo. */
export function* gpuvmBoPut(vmBo: GpuVmBo | null): Routine<boolean> {
  if (!vmBo) return false;
  if (yield* vmBo.kref.put('drm_gpuvm_bo_put', OpFlag.MightSleep)) {
    yield* boDestroy(vmBo);
    return true;
  }
  return false;
}

/** `__drm_gpuvm_bo_find()`: asserts the GEM list lock; no reference taken. */
function findRaw(vm: GpuVm, obj: GemObject): GpuVmBo | null {
  vm.gemAssertLockHeld(obj);
  for (const vmBo of obj.gpuva.list) if (vmBo.vm === vm) return vmBo;
  return null;
}

/** Models `drm_gpuvm_bo_find()`: the pair's vm_bo with a new reference, or null. */
export function* gpuvmBoFind(vm: GpuVm, obj: GemObject): Routine<GpuVmBo | null> {
  const vmBo = findRaw(vm, obj);
  if (vmBo) yield* vmBo.kref.get('drm_gpuvm_bo_find');
  return vmBo;
}

/** Models `drm_gpuvm_bo_obtain()`: find, else create and append to the object's list; `-ENOMEM`. */
export function* gpuvmBoObtain(vm: GpuVm, obj: GemObject): Routine<GpuVmBo | number> {
  const found = yield* gpuvmBoFind(vm, obj);
  if (found) return found;
  const vmBo = yield* gpuvmBoCreate(vm, obj);
  if (!vmBo) return -ENOMEM;
  vm.gemAssertLockHeld(obj);
  obj.gpuva.list.push(vmBo);
  vmBo.onGem = true;
  return vmBo;
}

/**
 * Models `drm_gpuvm_bo_obtain_prealloc()`. Classic form (caller holds the GEM list lock): a duplicate
 * makes it put `pre`, which destroys it under the caller's locks. With `features.deferredVmBo` the
 * newest form runs instead: it takes `obj->gpuva.lock` itself (the caller must not hold it) and
 * frees a duplicate `pre` after dropping the mutex, without touching any list.
 */
export function* gpuvmBoObtainPrealloc(pre: GpuVmBo): Routine<GpuVmBo> {
  const vm = pre.vm;
  const obj = pre.obj;
  if (vm.features.deferredVmBo) {
    vm.warn(!vm.immediateMode, 'drm_gpuvm_bo_obtain_prealloc() needs DRM_GPUVM_IMMEDIATE_MODE');
    lockdepAssertNotHeld(vm.sim, obj.gpuva.lock);
    yield* obj.gpuva.lock.lock('drm_gpuvm_bo_obtain_prealloc');
    const found = findRaw(vm, obj);
    if (found) {
      yield* found.kref.get('drm_gpuvm_bo_obtain_prealloc');
      yield* obj.gpuva.lock.unlock();
      yield* freeMem(pre);
      vm.put();
      obj.put();
      return found;
    }
    obj.gpuva.list.push(pre);
    pre.onGem = true;
    yield* obj.gpuva.lock.unlock();
    return pre;
  }
  const found = yield* gpuvmBoFind(vm, obj);
  if (found) {
    yield* gpuvmBoPut(pre);
    return found;
  }
  vm.gemAssertLockHeld(obj);
  obj.gpuva.list.push(pre);
  pre.onGem = true;
  return pre;
}

/** Models `drm_gpuvm_bo_extobj_add()`: idempotent; only external objects; protected mode asserts the VM resv. */
export function* gpuvmBoExtobjAdd(vmBo: GpuVmBo): Routine {
  const vm = vmBo.vm;
  const lock = !vm.resvProtected;
  if (!lock) vm.resvAssertHeld();
  if (vm.isExtobj(vmBo.obj)) yield* listAdd(vmBo, 'extobj', lock);
}

/**
 * Models `drm_gpuvm_bo_evict()`: asserts the object's resv, sets `evicted`; an external object in
 * a protected VM stops there (the list update waits for `prepare_objects`), otherwise the vm_bo is
 * added to or removed from the evict list.
 */
export function* gpuvmBoEvict(vmBo: GpuVmBo, evict: boolean): Routine {
  const vm = vmBo.vm;
  const obj = vmBo.obj;
  const lock = !vm.resvProtected;
  lockdepAssertHeld(vm.sim, obj.resv);
  vmBo.evicted = evict;
  if (vm.isExtobj(obj) && !lock) return;
  if (evict) yield* listAdd(vmBo, 'evict', lock);
  else yield* listDel(vmBo, 'evict', lock);
}

/** Models `drm_gpuvm_bo_gem_evict()`: `bo_evict` for every vm_bo of the object (GEM list lock held). */
export function* gpuvmBoGemEvict(obj: GemObject, evict: boolean): Routine {
  for (const vmBo of [...obj.gpuva.list]) {
    vmBo.vm.gemAssertLockHeld(obj);
    yield* gpuvmBoEvict(vmBo, evict);
  }
}

/**
 * Models `drm_gpuva_link()`: no-op for a GEM-less va; WARNs on an object mismatch (and links
 * anyway); takes a vm_bo reference and appends the va to the vm_bo's list. Touches neither the
 * extobj list nor the object's list.
 */
export function* gpuvaLink(va: GpuVa, vmBo: GpuVmBo): Routine {
  const obj = va.gem.obj;
  if (!obj) return;
  const vm = va.vm;
  if (!vm) {
    vmBo.vm.sim.fail(
      'null-pointer-dereference',
      `drm_gpuva_link: ${va.name} was never inserted (va->vm is NULL)`,
    );
  }
  vm.warn(
    obj !== vmBo.obj,
    `drm_gpuva_link: ${va.name} maps ${obj.name} but ${vmBo.name} is for ${vmBo.obj.name}`,
  );
  yield* vmBo.kref.get('drm_gpuva_link');
  va.vmBo = vmBo;
  vm.gemAssertLockHeld(obj);
  vmBo.list.gpuva.push(va);
}

function removeVa(vmBo: GpuVmBo | null, va: GpuVa): void {
  if (!vmBo) return;
  const i = vmBo.list.gpuva.indexOf(va);
  if (i >= 0) vmBo.list.gpuva.splice(i, 1);
}

/** Models `drm_gpuva_unlink()`: no-op without a GEM; drops the va's vm_bo reference (may destroy it). */
export function* gpuvaUnlink(va: GpuVa): Routine {
  const obj = va.gem.obj;
  if (!obj) return;
  const vmBo = va.vmBo;
  const vm = va.vm ?? vmBo?.vm;
  vm?.gemAssertLockHeld(obj);
  removeVa(vmBo, va);
  va.vmBo = null;
  yield* gpuvmBoPut(vmBo);
}

/** Turns a vm_bo whose refcount hit 0 into a zombie (called with `obj->gpuva.lock` held). */
function* zombify(vmBo: GpuVmBo): Routine {
  vmBo.dying = true;
  const vm = vmBo.vm;
  if (!vm.resvProtected) {
    yield* listDel(vmBo, 'extobj', true);
    yield* listDel(vmBo, 'evict', true);
  }
  vm.gemAssertLockHeld(vmBo.obj);
  removeFromGem(vmBo);
}

/** `llist_add()` onto `vm->bo_defer`, after the GEM mutex was released. */
function* pushDefer(vmBo: GpuVmBo): Routine {
  vmBo.onDefer = true;
  yield* vmBo.vm.boDefer.update((l) => [...l, vmBo], 'llist_add(bo_defer)');
}

/**
 * Models `drm_gpuvm_bo_put_deferred()` (newest, IMMEDIATE_MODE): drops a reference; the last one
 * is dropped under `obj->gpuva.lock` (`kref_put_mutex()`), the vm_bo becomes a zombie and is queued
 * on `bo_defer` after the mutex is released. True iff the count hit zero.
 */
export function* gpuvmBoPutDeferred(vmBo: GpuVmBo | null): Routine<boolean> {
  if (!vmBo) return false;
  const vm = vmBo.vm;
  const obj = vmBo.obj;
  requireDeferred(vm, 'drm_gpuvm_bo_put_deferred');
  vm.warn(!vm.immediateMode, 'drm_gpuvm_bo_put_deferred() needs DRM_GPUVM_IMMEDIATE_MODE');
  lockdepAssertNotHeld(vm.sim, obj.gpuva.lock);
  if (yield* vmBo.kref.decNotOne('kref_put_mutex fast path')) return false;
  yield* obj.gpuva.lock.lock('kref_put_mutex');
  if (!(yield* vmBo.kref.put('drm_gpuvm_bo_put_deferred'))) {
    yield* obj.gpuva.lock.unlock();
    return false;
  }
  yield* zombify(vmBo);
  yield* obj.gpuva.lock.unlock();
  yield* pushDefer(vmBo);
  return true;
}

/**
 * Models `drm_gpuva_unlink_defer()` (newest, IMMEDIATE_MODE): takes `obj->gpuva.lock`, unlinks the
 * va, drops the vm_bo reference with zombify-on-zero, unlocks, then queues a zombie on `bo_defer`.
 */
export function* gpuvaUnlinkDefer(va: GpuVa): Routine {
  const obj = va.gem.obj;
  if (!obj) return;
  const vmBo = va.vmBo;
  const vm = va.vm ?? vmBo?.vm;
  if (!vm) throw new Error(`drm_gpuva_unlink_defer: ${va.name} has no VM`);
  requireDeferred(vm, 'drm_gpuva_unlink_defer');
  vm.warn(!vm.immediateMode, 'drm_gpuva_unlink_defer() needs DRM_GPUVM_IMMEDIATE_MODE');
  lockdepAssertNotHeld(vm.sim, obj.gpuva.lock);
  yield* obj.gpuva.lock.lock('drm_gpuva_unlink_defer');
  removeVa(vmBo, va);
  // Cleared under the mutex that protects it (the model does this before the put, see README).
  va.vmBo = null;
  const zero = vmBo ? yield* vmBo.kref.put('drm_gpuva_unlink_defer') : false;
  if (zero) yield* zombify(vmBo!);
  yield* obj.gpuva.lock.unlock();
  if (zero) yield* pushDefer(vmBo!);
}

/**
 * Models `drm_gpuvm_bo_deferred_cleanup()` (newest): detaches the whole `bo_defer` list; in a
 * protected VM takes the VM resv itself to unlist the zombies; then frees each one and drops its
 * VM and object references. May sleep.
 */
export function* gpuvmBoDeferredCleanup(vm: GpuVm): Routine {
  requireDeferred(vm, 'drm_gpuvm_bo_deferred_cleanup');
  const zombies = yield* vm.boDefer.update(() => [], 'llist_del_all(bo_defer)');
  if (zombies.length === 0) return;
  if (vm.resvProtected) {
    yield* vm.resv.lock(null, 'drm_gpuvm_bo_deferred_cleanup');
    for (const vmBo of zombies) {
      detach(vmBo, 'extobj');
      detach(vmBo, 'evict');
    }
    yield* vm.resv.unlock();
  }
  for (const vmBo of zombies) {
    vmBo.onDefer = false;
    yield* freeMem(vmBo);
    vm.put();
    vmBo.obj.put();
  }
}

// ---- the unprotected list iteration (§4.3: get_next_vm_bo_from_list / restore_vm_bo_list) ------

/**
 * `get_next_vm_bo_from_list()`: drops the previous element's temporary reference, then under the
 * list spinlock registers `local` as the iterator's list (WARN if another one is registered), pops
 * the first element whose refcount can be raised onto `local`, and unlinks dying ones.
 */
export function* vmBoListNext(
  vm: GpuVm,
  which: 'extobj' | 'evict',
  local: VmBoList,
  prev: GpuVmBo | null,
): Routine<GpuVmBo | null> {
  yield* gpuvmBoPut(prev);
  const l = vmList(vm, which);
  yield* l.lock.lock(`get_next_vm_bo_from_list(${which})`);
  if (!l.localList) l.localList = local;
  else vm.warn(l.localList !== local, `concurrent iteration of the ${which} list`);
  let found: GpuVmBo | null = null;
  while (!l.list.empty) {
    const first = l.list.items[0]!;
    if (yield* first.kref.getUnlessZero()) {
      detach(first, which);
      local.items.push(first);
      setEntry(first, which, local);
      found = first;
      break;
    }
    detach(first, which);
  }
  yield* l.lock.unlock();
  return found;
}

/** `restore_vm_bo_list()`: splices the local list back to the **head** of the real list. */
export function* vmBoListRestore(vm: GpuVm, which: 'extobj' | 'evict'): Routine {
  const l = vmList(vm, which);
  yield* l.lock.lock(`restore_vm_bo_list(${which})`);
  const local = l.localList;
  if (local) {
    for (const vmBo of local.items) setEntry(vmBo, which, l.list);
    l.list.items.unshift(...local.items);
    local.items.length = 0;
    l.localList = null;
  }
  yield* l.lock.unlock();
}

// ---- setup helpers ---------------------------------------------------------------------------

/** Setup helper: `drm_gpuvm_bo_obtain()` before any thread runs (no allocation, no lock checks). */
export function gpuvmBoObtainNow(vm: GpuVm, obj: GemObject): GpuVmBo {
  assertSetup(vm.sim, 'gpuvmBoObtainNow');
  for (const vmBo of obj.gpuva.list) {
    if (vmBo.vm === vm) {
      vmBo.kref.count++;
      return vmBo;
    }
  }
  const vmBo = new GpuVmBo(vm.get(), obj.get(), null);
  obj.gpuva.list.push(vmBo);
  vmBo.onGem = true;
  return vmBo;
}

/** Setup helper: `drm_gpuva_link()` before any thread runs. */
export function gpuvaLinkNow(va: GpuVa, vmBo: GpuVmBo): void {
  assertSetup(vmBo.vm.sim, 'gpuvaLinkNow');
  if (!va.gem.obj) return;
  vmBo.kref.count++;
  va.vmBo = vmBo;
  vmBo.list.gpuva.push(va);
}

/** Setup helper: drops a reference taken by {@link gpuvmBoObtainNow} (must not be the last one). */
export function gpuvmBoPutNow(vmBo: GpuVmBo): void {
  assertSetup(vmBo.vm.sim, 'gpuvmBoPutNow');
  if (vmBo.kref.count <= 1) throw new Error('gpuvmBoPutNow: would destroy the vm_bo; do that on a thread');
  vmBo.kref.count--;
}

/** Setup helper: `drm_gpuvm_bo_extobj_add()` before any thread runs. */
export function gpuvmBoExtobjAddNow(vmBo: GpuVmBo): void {
  assertSetup(vmBo.vm.sim, 'gpuvmBoExtobjAddNow');
  const vm = vmBo.vm;
  if (vm.isExtobj(vmBo.obj) && !vmBo.onExtobj) {
    vm.extobj.list.items.push(vmBo);
    vmBo.onExtobj = vm.extobj.list;
  }
}

/** @internal Protected-mode `drm_gpuvm_bo_list_add(vm_bo, which, false)` (caller holds the VM resv). */
export function listAddLocked(vmBo: GpuVmBo, which: 'extobj' | 'evict'): void {
  const l = vmList(vmBo.vm, which);
  if (!entryOf(vmBo, which)) {
    l.list.items.push(vmBo);
    setEntry(vmBo, which, l.list);
  }
}

/** @internal Protected-mode `drm_gpuvm_bo_list_del_init(vm_bo, which, false)`. */
export function listDelLocked(vmBo: GpuVmBo, which: 'extobj' | 'evict'): void {
  detach(vmBo, which);
}
