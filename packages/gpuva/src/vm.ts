/**
 * `struct drm_gpuvm`: the VA space, its tree of vas, the kernel-reserved node, the extobj and
 * evict lists, and the VM refcount (`drivers/gpu/drm/drm_gpuvm.c`, `include/drm/drm_gpuvm.h`).
 *
 * Tree operations (insert, remove, lookups, iteration) are plain functions: the kernel runs them
 * under a driver lock the caller already holds, and they neither sleep nor allocate. Everything
 * that allocates, takes a lock or touches a refcount other threads may touch concurrently is a
 * {@link Routine} (see the vm_bo, exec and op-list functions).
 */
import {
  type DmaResv,
  EEXIST,
  EINVAL,
  type KBuf,
  type Routine,
  type Sim,
  type SimObject,
  Spinlock,
  Var,
} from '@hmmkit/sim';
import { IntervalTree } from '@hmmkit/sim/interval-tree';
import { assertU64, checkAddOverflow, wrapAdd, wrapSub } from './addr.js';
import type { DrmExec } from './exec.js';
import { GpuvmFlags } from './flags.js';
import type { GemObject } from './gem.js';
import { AllocLedger, lockdepAssertHeld } from './kernel.js';
import type { GpuvaOp, OpMap, OpRemap, OpUnmap } from './ops.js';
import { GpuVa } from './va.js';
import type { GpuVmBo } from './vm-bo.js';

/** What a step callback or driver hook returns: an errno now, or a Routine that yields one. */
export type StepResult = number | Routine<number>;

/** A step callback of `sm_map`/`sm_unmap` (`int (*sm_step_*)(struct drm_gpuva_op *op, void *priv)`). */
export type SmStep<P = unknown> = (op: GpuvaOp, priv: P) => StepResult;

/** `struct drm_gpuvm_ops`. Every member is optional, as in the kernel (see each one's users). */
export interface GpuVmOps<P = unknown> {
  /** Called by the last `drm_gpuvm_put()`; mandatory (missing: WARN, VM leaked). */
  vmFree?(vm: GpuVm): void;
  /** Allocates an op record for the op-list creators (default: `kzalloc`). */
  opAlloc?(vm: GpuVm): Routine<KBuf | null>;
  /** Frees an op record allocated by `opAlloc` (default: `kfree`). */
  opFree?(vm: GpuVm, buf: KBuf): Routine;
  /** Allocates a vm_bo (default: `kzalloc`). */
  vmBoAlloc?(vm: GpuVm): Routine<KBuf | null>;
  /** Frees a vm_bo allocated by `vmBoAlloc` (default: `kfree`). */
  vmBoFree?(vmBo: GpuVmBo): Routine;
  /** Validates an evicted BO; required only by `drm_gpuvm_validate()`. */
  vmBoValidate?(vmBo: GpuVmBo, exec: DrmExec): StepResult;
  /** Required by `drm_gpuvm_sm_map()`. */
  smStepMap?(op: GpuvaOp, priv: P): StepResult;
  /** Required by `drm_gpuvm_sm_map()` and `drm_gpuvm_sm_unmap()`. */
  smStepRemap?(op: GpuvaOp, priv: P): StepResult;
  /** Required by `drm_gpuvm_sm_map()` and `drm_gpuvm_sm_unmap()`. */
  smStepUnmap?(op: GpuvaOp, priv: P): StepResult;
}

/** Opt-in features of newer trees. */
export interface GpuVmFeatures {
  /**
   * The deferred vm_bo cleanup of the newest trees ("add deferred vm_bo cleanup"):
   * `drm_gpuvm_bo_put_deferred()`, `drm_gpuva_unlink_defer()`, `drm_gpuvm_bo_deferred_cleanup()`,
   * zombie-skipping list walkers, and `drm_gpuvm_bo_obtain_prealloc()` taking the GEM mutex itself.
   * Requires `IMMEDIATE_MODE`.
   */
  deferredVmBo?: boolean;
}

/** Upstream behaviours the model reproduces only on request (see the README). */
export interface GpuVmQuirks {
  /**
   * Reproduce the error path of `drm_gpuva_sm_step()` as written upstream: when copying a REMAP's
   * `next` piece fails, the already copied `unmap` record is not freed (leaked).
   */
  remapNextAllocLeak?: boolean;
}

/** Arguments of `drm_gpuvm_init()`. */
export interface GpuVmInit<P = unknown> {
  /** `"unknown"` when omitted or null. */
  name?: string | null;
  /** `GpuvmFlags` bits. */
  flags?: number;
  /** Owning device (only used in WARN text). */
  drm?: unknown;
  /** The resv object: its resv is the VM-wide shared resv. The VM takes a reference. */
  rObj: GemObject;
  start: number;
  range: number;
  reserveOffset?: number;
  /** 0: no kernel-reserved node. */
  reserveRange?: number;
  ops?: GpuVmOps<P>;
  features?: GpuVmFeatures;
  quirks?: GpuVmQuirks;
  /** Report every WARN as a `drm-warn` violation instead of only recording it in `warnings`. */
  failOnWarn?: boolean;
  /**
   * Model extension: the driver lock protecting the VA tree (`gpu_vm->lock`). The kernel does not
   * assert it; when given, the model asserts it (on simulated threads) in every tree access.
   */
  vaLock?: SimObject;
}

/** A list of vm_bos (the VM's extobj or evict list, or an iterator's local list). */
export class VmBoList {
  readonly items: GpuVmBo[] = [];
  constructor(readonly name: string) {}
  get empty(): boolean {
    return this.items.length === 0;
  }
}

/** A VM list with its spinlock and the iterator's scratch pointer (`extobj` / `evict`). */
export interface VmList {
  list: VmBoList;
  localList: VmBoList | null;
  readonly lock: Spinlock;
}

/** A layout entry of {@link GpuVm.layout}: what a va maps, without identity. */
export interface LayoutEntry {
  addr: number;
  range: number;
  obj: GemObject | null;
  offset: number;
  flags: number;
}

export class GpuVm<P = unknown> {
  name: string | null;
  readonly flags: number;
  readonly drm: unknown;
  readonly mmStart: number;
  readonly mmRange: number;
  /** `rb.tree` (ordered iteration of it is `rb.list`). */
  readonly tree = new IntervalTree<GpuVa>();
  /** `kref`: creator + inserted non-reserved vas + vm_bos + other gets. Plain counter, see README. */
  kref = 1;
  readonly kernelAllocNode: GpuVa;
  readonly ops: GpuVmOps<P>;
  readonly rObj: GemObject;
  readonly extobj: VmList;
  readonly evict: VmList;
  /**
   * `bo_defer` (newest): the lock-free list of zombie vm_bos awaiting
   * `drm_gpuvm_bo_deferred_cleanup()`; a simulated variable so `llist_add`/`llist_del_all` are
   * atomic steps with a footprint.
   */
  readonly boDefer: Var<GpuVmBo[]>;
  readonly features: Readonly<GpuVmFeatures>;
  readonly quirks: Readonly<GpuVmQuirks>;
  readonly vaLock: SimObject | null;
  /** Every `drm_WARN` that fired, in order. */
  readonly warnings: string[] = [];
  /**
   * Failures that the kernel discards silently (the insert inside `drm_gpuva_map()` /
   * `drm_gpuva_remap()`), recorded for tests (§7 invariant 6).
   */
  readonly silentFailures: string[] = [];
  /** Model bookkeeping: every vm_bo of this VM not yet freed (zombies included). */
  readonly vmBos = new Set<GpuVmBo>();
  /** Allocations made through this VM's op-list creators and vm_bo helpers (leak checks). */
  readonly ledger = new AllocLedger();
  /** Set once the last reference is gone and `vm_free` ran (or would have). */
  freed = false;
  private readonly failOnWarn: boolean;

  /** Models `drm_gpuvm_init()`. */
  constructor(
    readonly sim: Sim,
    init: GpuVmInit<P>,
  ) {
    const name = init.name ?? 'unknown';
    this.name = name;
    this.flags = init.flags ?? 0;
    this.drm = init.drm;
    this.ops = init.ops ?? {};
    this.rObj = init.rObj;
    this.features = init.features ?? {};
    this.quirks = init.quirks ?? {};
    this.vaLock = init.vaLock ?? null;
    this.failOnWarn = init.failOnWarn ?? false;
    this.extobj = {
      list: new VmBoList('extobj'),
      localList: null,
      lock: new Spinlock(sim, `${name}->extobj.lock`, { lockClass: 'drm_gpuvm.extobj.lock' }),
    };
    this.evict = {
      list: new VmBoList('evict'),
      localList: null,
      lock: new Spinlock(sim, `${name}->evict.lock`, { lockClass: 'drm_gpuvm.evict.lock' }),
    };
    this.boDefer = new Var<GpuVmBo[]>(sim, `${name}->bo_defer`, []);
    if (this.features.deferredVmBo) {
      this.warn(
        !(this.flags & GpuvmFlags.IMMEDIATE_MODE),
        'deferred vm_bo cleanup needs DRM_GPUVM_IMMEDIATE_MODE',
      );
    }
    this.rObj.get();
    assertU64('drm_gpuvm_init: start', init.start);
    assertU64('drm_gpuvm_init: range', init.range);
    this.warnCheckOverflow(init.start, init.range);
    this.mmStart = init.start;
    this.mmRange = init.range;
    this.kernelAllocNode = new GpuVa(0, 0, null, 0, `${name}->kernel_alloc_node`);
    this.kernelAllocNode.reserved = true;
    const rsvRange = init.reserveRange ?? 0;
    if (rsvRange) {
      const rsvStart = init.reserveOffset ?? 0;
      assertU64('drm_gpuvm_init: reserve_offset', rsvStart);
      assertU64('drm_gpuvm_init: reserve_range', rsvRange);
      this.kernelAllocNode.va.addr = rsvStart;
      this.kernelAllocNode.va.range = rsvRange;
      if (!this.warnCheckOverflow(rsvStart, rsvRange)) this.insertNode(this.kernelAllocNode);
    }
  }

  /** `drm_WARN(drm, cond, msg)`: records (and with `failOnWarn`, reports) a WARN; returns `cond`. */
  warn(cond: boolean, message: string): boolean {
    if (!cond) return false;
    const text = `WARNING: ${this.name ?? '(fini)'}: ${message}`;
    this.warnings.push(text);
    if (this.failOnWarn) this.sim.fail('drm-warn', text);
    return true;
  }

  private warnCheckOverflow(addr: number, range: number): boolean {
    return this.warn(checkAddOverflow(addr, range), 'GPUVA address limited to the address word');
  }

  private checkAlive(what: string): void {
    if (this.freed)
      this.sim.fail('use-after-free', `${what} on a freed drm_gpuvm`, { objects: [String(this.name)] });
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Models `drm_gpuvm_get()`. */
  get(): this {
    if (this.kref <= 0 || this.freed) {
      this.sim.fail('refcount', `drm_gpuvm_get(${this.name}): addition on 0; use-after-free`);
    }
    this.kref++;
    return this;
  }

  /** Models `drm_gpuvm_put()` (callable from any context): the last put runs fini and `vm_free`. */
  put(): void {
    if (this.kref <= 0 || this.freed)
      this.sim.fail('refcount', `drm_gpuvm_put(${this.name}): underflow; use-after-free`);
    if (--this.kref === 0) this.free();
  }

  /** `drm_gpuvm_free()` = `drm_gpuvm_fini()` + `vm_free`. */
  private free(): void {
    this.name = null;
    if (this.kernelAllocNode.va.range && this.kernelAllocNode.inserted) this.removeNode(this.kernelAllocNode);
    this.warn(this.tree.size !== 0, 'GPUVA tree is not empty, potentially leaking memory.');
    this.warn(!this.extobj.list.empty, 'Extobj list should be empty.');
    this.warn(!this.evict.list.empty, 'Evict list should be empty.');
    if (this.features.deferredVmBo)
      this.warn(this.boDefer.value.length !== 0, 'bo_defer list should be empty.');
    this.rObj.put();
    this.freed = true;
    if (this.warn(!this.ops.vmFree, 'vm_free callback missing')) return;
    this.ops.vmFree!(this);
  }

  // ---- predicates and accessors ---------------------------------------------------------------

  /** `drm_gpuvm_resv()`: the VM-wide shared reservation object. */
  get resv(): DmaResv {
    return this.rObj.resv;
  }

  /** `drm_gpuvm_resv_obj()`. */
  get resvObj(): GemObject {
    return this.rObj;
  }

  /** `drm_gpuvm_resv_held()` for the running thread. */
  resvHeld(): boolean {
    return this.sim.isHeld(this.resv);
  }

  /** `drm_gpuvm_resv_assert_held()`. */
  resvAssertHeld(): void {
    lockdepAssertHeld(this.sim, this.resv);
  }

  /** `drm_gpuvm_resv_protected()`. */
  get resvProtected(): boolean {
    return (this.flags & GpuvmFlags.RESV_PROTECTED) !== 0;
  }

  /** `drm_gpuvm_immediate_mode()`. */
  get immediateMode(): boolean {
    return (this.flags & GpuvmFlags.IMMEDIATE_MODE) !== 0;
  }

  /** `drm_gpuvm_is_extobj()`: non-null and not sharing the VM's resv. */
  isExtobj(obj: GemObject | null): boolean {
    return !!obj && obj.resv !== this.resv;
  }

  /** The lock protecting `obj`'s gpuva list for this VM: `obj->gpuva.lock` in IMMEDIATE_MODE, else the resv. */
  gemListLock(obj: GemObject): SimObject {
    return this.immediateMode ? obj.gpuva.lock : obj.resv;
  }

  /** `drm_gem_gpuva_assert_lock_held(vm, obj)` (the two-argument form of newer trees). */
  gemAssertLockHeld(obj: GemObject): void {
    lockdepAssertHeld(this.sim, this.gemListLock(obj));
  }

  /** Model extension: asserts the driver's VA lock if one was registered. */
  assertVaLock(): void {
    if (this.vaLock) lockdepAssertHeld(this.sim, this.vaLock);
  }

  // ---- ranges ----------------------------------------------------------------------------------

  /** Models `drm_gpuvm_range_valid()`. */
  rangeValid(addr: number, range: number): boolean {
    assertU64('drm_gpuvm_range_valid: addr', addr);
    assertU64('drm_gpuvm_range_valid: range', range);
    return !checkAddOverflow(addr, range) && this.inMmRange(addr, range) && !this.inKernelNode(addr, range);
  }

  private inMmRange(addr: number, range: number): boolean {
    const end = addr + range;
    const mmEnd = wrapAdd(this.mmStart, this.mmRange);
    return addr >= this.mmStart && end <= mmEnd;
  }

  private inKernelNode(addr: number, range: number): boolean {
    const kstart = this.kernelAllocNode.va.addr;
    const krange = this.kernelAllocNode.va.range;
    const kend = wrapAdd(kstart, krange);
    const end = wrapAdd(addr, range);
    return krange !== 0 && addr < kend && kstart < end;
  }

  /** Models `drm_gpuvm_interval_empty()`. */
  intervalEmpty(addr: number, range: number): boolean {
    return this.findFirst(addr, range) === null;
  }

  // ---- lookup ----------------------------------------------------------------------------------

  /**
   * The kernel's interval-tree query for the closed interval `[addr, addr + range - 1]` computed
   * in the address word, including the inverted interval that `range == 0` (or a wrapping sum)
   * produces: then only a va containing both `last` and `addr` matches.
   */
  private query(addr: number, range: number): GpuVa | null {
    const last = wrapSub(wrapAdd(addr, range), 1);
    if (last >= addr) {
      const n = this.tree.iterFirst(addr, last);
      return n === -1 ? null : this.tree.value(n);
    }
    const n = this.tree.iterFirst(last, last);
    if (n === -1) return null;
    return this.tree.last(n) >= addr ? this.tree.value(n) : null;
  }

  /** Models `drm_gpuva_find_first()`: the lowest va intersecting the closed `[addr, addr+range-1]`. */
  findFirst(addr: number, range: number): GpuVa | null {
    assertU64('drm_gpuva_find_first: addr', addr);
    assertU64('drm_gpuva_find_first: range', range);
    this.assertVaLock();
    return this.query(addr, range);
  }

  /** Models `drm_gpuva_find()`: `find_first` only if it matches exactly. */
  find(addr: number, range: number): GpuVa | null {
    const va = this.findFirst(addr, range);
    return va && va.va.addr === addr && va.va.range === range ? va : null;
  }

  /**
   * Models `drm_gpuva_find_prev()`: null unless `[start-1, start)` is a valid range; else the lowest
   * va intersecting the closed `[start-1, start]` (quirk: a va starting at `start` is returned when
   * nothing covers `start-1`).
   */
  findPrev(start: number): GpuVa | null {
    assertU64('drm_gpuva_find_prev: start', start);
    const p = wrapSub(start, 1);
    if (!this.rangeValid(p, 1)) return null;
    this.assertVaLock();
    return this.query(p, 2);
  }

  /**
   * Models `drm_gpuva_find_next()`: null unless `[end, end+1)` is valid; else the lowest va
   * intersecting the closed `[end, end+1]` (quirk: a va starting at `end+1` is returned when nothing
   * covers `end`).
   */
  findNext(end: number): GpuVa | null {
    assertU64('drm_gpuva_find_next: end', end);
    if (!this.rangeValid(end, 1)) return null;
    this.assertVaLock();
    return this.query(end, 2);
  }

  // ---- insert / remove -------------------------------------------------------------------------

  /** `__drm_gpuva_insert()`: overlap check, tree insert, `va.vm = vm`; no range check, no VM ref. */
  private insertNode(va: GpuVa): number {
    const addr = va.va.addr;
    const range = va.va.range;
    if (this.query(addr, range)) return -EEXIST;
    // The kernel would insert a degenerate node [addr, addr - 1]; the model refuses it (README).
    if (range === 0) return -EINVAL;
    if (va.inserted)
      this.sim.fail('gpuva-double-insert', `drm_gpuva_insert: ${va.name} is already in a tree`);
    va.vm = this;
    va.node = this.tree.insert(addr, addr + range - 1, va);
    return 0;
  }

  /** `__drm_gpuva_remove()`. */
  private removeNode(va: GpuVa): void {
    if (!va.inserted || va.vm !== this) {
      this.sim.fail(
        'gpuva-not-inserted',
        `drm_gpuva_remove: ${va.name} ${va.toString()} is not in ${this.name}'s tree`,
      );
    }
    this.tree.remove(va.node);
    va.node = -1;
  }

  /** Models `drm_gpuva_insert()`: 0, `-EINVAL` (invalid range) or `-EEXIST` (overlap); +1 VM ref. */
  insert(va: GpuVa): number {
    this.checkAlive('drm_gpuva_insert');
    this.assertVaLock();
    const { addr, range } = va.va;
    if (!this.rangeValid(addr, range)) return -EINVAL;
    const ret = this.insertNode(va);
    if (ret === 0) this.get();
    return ret;
  }

  /** Models `drm_gpuva_remove()`: WARNs and does nothing for the reserved node; −1 VM ref. */
  remove(va: GpuVa): void {
    this.checkAlive('drm_gpuva_remove');
    this.assertVaLock();
    if (va === this.kernelAllocNode) {
      this.warn(true, "Can't destroy kernel reserved node.");
      return;
    }
    this.removeNode(va);
    this.put();
  }

  // ---- iteration -------------------------------------------------------------------------------

  /** `__drm_gpuva_next()`: the va after `va` in address order, or null. */
  vaNext(va: GpuVa): GpuVa | null {
    if (!va.inserted || va.vm !== this) {
      this.sim.fail(
        'gpuva-not-inserted',
        `iteration continued from ${va.name}, which was removed from the tree`,
      );
    }
    const n = this.tree.nextNode(va.node);
    return n === -1 ? null : this.tree.value(n);
  }

  /** The va before `va` in address order, or null (`list_prev_entry` on `rb.list`). */
  vaPrev(va: GpuVa): GpuVa | null {
    if (!va.inserted || va.vm !== this) this.sim.fail('gpuva-not-inserted', `${va.name} is not in the tree`);
    const n = this.tree.prevNode(va.node);
    return n === -1 ? null : this.tree.value(n);
  }

  /** `drm_gpuvm_for_each_va()`: every va in ascending order, the reserved node included. */
  *vas(): Generator<GpuVa> {
    this.assertVaLock();
    for (let n = this.tree.firstNode(); n !== -1; n = this.tree.nextNode(n)) yield this.tree.value(n);
  }

  /** `drm_gpuvm_for_each_va_safe()`: tolerates removal of the current va. */
  *vasSafe(): Generator<GpuVa> {
    this.assertVaLock();
    const first = this.tree.firstNode();
    let va = first === -1 ? null : this.tree.value(first);
    let next = va ? this.vaNext(va) : null;
    for (; va; va = next, next = va ? this.vaNext(va) : null) yield va;
  }

  /**
   * `drm_gpuvm_for_each_va_range()`: from `find_first(start, end - start)` along the list while
   * `va.addr < end`. The reserved node is not skipped.
   */
  *vasRange(start: number, end: number): Generator<GpuVa> {
    assertU64('drm_gpuvm_for_each_va_range: start', start);
    assertU64('drm_gpuvm_for_each_va_range: end', end);
    this.assertVaLock();
    for (let va = this.query(start, wrapSub(end, start)); va && va.va.addr < end; va = this.vaNext(va))
      yield va;
  }

  /** `drm_gpuvm_for_each_va_range_safe()`: as {@link vasRange}, tolerating removal of the current va. */
  *vasRangeSafe(start: number, end: number): Generator<GpuVa> {
    assertU64('drm_gpuvm_for_each_va_range_safe: start', start);
    assertU64('drm_gpuvm_for_each_va_range_safe: end', end);
    this.assertVaLock();
    let va = this.query(start, wrapSub(end, start));
    let next = va ? this.vaNext(va) : null;
    for (; va && va.va.addr < end; va = next, next = va ? this.vaNext(va) : null) yield va;
  }

  /** Number of vas in the tree, the reserved node included. */
  get size(): number {
    return this.tree.size;
  }

  /** The mapped layout in address order, without the reserved node (tests, unwind checks). */
  layout(): LayoutEntry[] {
    const out: LayoutEntry[] = [];
    for (let n = this.tree.firstNode(); n !== -1; n = this.tree.nextNode(n)) {
      const va = this.tree.value(n);
      if (va.reserved) continue;
      out.push({
        addr: va.va.addr,
        range: va.va.range,
        obj: va.gem.obj,
        offset: va.gem.offset,
        flags: va.flags,
      });
    }
    return out;
  }

  /** {@link layout} as text: `[0,2)->A@0 [4,5)->-@0`. */
  layoutText(): string {
    return this.layout()
      .map((e) => `[${e.addr},${e.addr + e.range})->${e.obj ? e.obj.name : '-'}@${e.offset}`)
      .join(' ');
  }

  /** The end of the managed window (`mm_start + mm_range`, wrapped like the kernel's sum). */
  get mmEnd(): number {
    return wrapAdd(this.mmStart, this.mmRange);
  }
}

/** Models `drm_gpuva_map()`: init `va` from `op`, insert it; the insert's error is discarded (recorded). */
export function gpuvaMap(vm: GpuVm, va: GpuVa, op: OpMap): void {
  va.initFromOp(op);
  const ret = vm.insert(va);
  if (ret) vm.silentFailures.push(`drm_gpuva_map(${va.toString()}) discarded ${ret}`);
}

/**
 * Models `drm_gpuva_remap()`: removes the victim, then inserts `prev` and `next` initialised from
 * the op's pieces (flags untouched, insert errors discarded).
 */
export function gpuvaRemap(prev: GpuVa | null, next: GpuVa | null, op: OpRemap): void {
  const va = op.unmap.va;
  const vm = va.vm;
  if (!vm) throw new Error(`drm_gpuva_remap: ${va.name} was never inserted`);
  vm.remove(va);
  if (op.prev) {
    if (!prev) throw nullDeref(vm, 'prev');
    prev.initFromOp(op.prev);
    const ret = vm.insert(prev);
    if (ret) vm.silentFailures.push(`drm_gpuva_remap(prev ${prev.toString()}) discarded ${ret}`);
  }
  if (op.next) {
    if (!next) throw nullDeref(vm, 'next');
    next.initFromOp(op.next);
    const ret = vm.insert(next);
    if (ret) vm.silentFailures.push(`drm_gpuva_remap(next ${next.toString()}) discarded ${ret}`);
  }
}

function nullDeref(vm: GpuVm, piece: string): never {
  return vm.sim.fail(
    'null-pointer-dereference',
    `drm_gpuva_remap: op has a ${piece} piece but ${piece} is NULL`,
  );
}

/** Models `drm_gpuva_unmap()`. */
export function gpuvaUnmap(op: OpUnmap): void {
  const vm = op.va.vm;
  if (!vm) throw new Error(`drm_gpuva_unmap: ${op.va.name} was never inserted`);
  vm.remove(op.va);
}
