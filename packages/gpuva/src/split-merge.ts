/**
 * Split/merge (`drivers/gpu/drm/drm_gpuvm.c`): the `sm_map`, `sm_unmap` and madvise walks, their
 * callback form (`drm_gpuvm_sm_map()`, `drm_gpuvm_sm_unmap()`), their op-list form
 * (`drm_gpuvm_*_ops_create()`), prefetch and per-BO unmap lists, `drm_gpuva_ops_free()`, and the
 * `*_exec_lock()` helpers.
 *
 * One walk serves every form. It is a generator whose step callbacks may return an errno directly
 * or a Routine that yields: the op-list creators allocate (`kmalloc` is a scheduling point), driver
 * callbacks in a simulated driver may take locks, and `*_exec_lock()` takes dma_resv locks. The
 * `...Now` functions drive the same walk without the simulator (plain callbacks, no allocation
 * model); they throw if a callback tries to yield.
 */
import { EINVAL, ENOMEM, type KBuf, type Op, type Routine } from '@hmmkit/sim';
import { wrapAdd } from './addr.js';
import type { DrmExec } from './exec.js';
import { GpuvaOpType } from './flags.js';
import type { GemObject } from './gem.js';
import { type GpuvaOp, GpuvaOps, type MapReq, mapReq, type OpMap, type OpMem, type OpUnmap } from './ops.js';
import { GpuVa } from './va.js';
import { type GpuVm, gpuvaMap, gpuvaRemap, gpuvaUnmap, type StepResult } from './vm.js';
import type { GpuVmBo } from './vm-bo.js';

/** The three step callbacks of a walk. */
export interface SmSteps<P = unknown> {
  smStepMap(op: GpuvaOp, priv: P): StepResult;
  smStepRemap(op: GpuvaOp, priv: P): StepResult;
  smStepUnmap(op: GpuvaOp, priv: P): StepResult;
}

type Walk = Generator<Op, number, unknown>;

function* call<P>(fn: SmSteps<P>, key: keyof SmSteps<P>, op: GpuvaOp, priv: P): Walk {
  const r = fn[key](op, priv);
  return typeof r === 'number' ? r : yield* r;
}

function opMap(addr: number, range: number, obj: GemObject | null, offset: number): OpMap {
  return { va: { addr, range }, gem: { obj, offset } };
}

/** `op_map_cb()`: nothing for a null request (madvise without a split). */
function mapCb<P>(fn: SmSteps<P>, priv: P, req: MapReq | null): Walk | number {
  if (!req) return 0;
  const m = req.map;
  return call(
    fn,
    'smStepMap',
    { op: GpuvaOpType.MAP, map: opMap(m.va.addr, m.va.range, m.gem.obj, m.gem.offset) },
    priv,
  );
}

/** `op_remap_cb()`. */
function remapCb<P>(fn: SmSteps<P>, priv: P, prev: OpMap | null, next: OpMap | null, unmap: OpUnmap): Walk {
  return call(fn, 'smStepRemap', { op: GpuvaOpType.REMAP, remap: { prev, next, unmap } }, priv);
}

/** `op_unmap_cb()`: suppressed for madvise. */
function unmapCb<P>(fn: SmSteps<P>, priv: P, va: GpuVa, keep: boolean, madvise: boolean): Walk | number {
  if (madvise) return 0;
  return call(fn, 'smStepUnmap', { op: GpuvaOpType.UNMAP, unmap: { va, keep } }, priv);
}

function* run(x: Walk | number): Walk {
  return typeof x === 'number' ? x : yield* x;
}

/**
 * `__drm_gpuvm_sm_map()`: the map walk (§3.1), and with `madvise` the madvise walk (§3.7).
 * Victims are visited with the safe range iterator (the next va is captured before each step), so
 * callbacks may remove the current va and insert split pieces.
 */
function* smMapWalk<P>(vm: GpuVm, fn: SmSteps<P>, priv: P, req: MapReq, madvise: boolean): Walk {
  const reqObj = req.map.gem.obj;
  const reqOffset = req.map.gem.offset;
  const reqRange = req.map.va.range;
  const reqAddr = req.map.va.addr;
  let finalMap: MapReq | null = madvise ? null : req;
  let ret: number;

  if (!vm.rangeValid(reqAddr, reqRange)) return -EINVAL;
  const reqEnd = reqAddr + reqRange;

  let va = vm.findFirst(reqAddr, reqRange);
  let next = va ? vm.vaNext(va) : null;
  for (; va && va.va.addr < reqEnd; va = next, next = va ? vm.vaNext(va) : null) {
    const obj = va.gem.obj;
    const offset = va.gem.offset;
    const addr = va.va.addr;
    const range = va.va.range;
    const end = addr + range;
    let keep = obj !== null;

    if (madvise && obj) continue;

    if (addr === reqAddr) {
      keep = keep && obj === reqObj && offset === reqOffset;
      if (end === reqEnd) {
        ret = yield* run(unmapCb(fn, priv, va, keep, madvise));
        if (ret) return ret;
        break;
      }
      if (end < reqEnd) {
        ret = yield* run(unmapCb(fn, priv, va, keep, madvise));
        if (ret) return ret;
        continue;
      }
      const n = opMap(reqEnd, range - reqRange, obj, wrapAdd(offset, reqRange));
      ret = yield* remapCb(fn, priv, null, n, { va, keep });
      if (ret) return ret;
      if (madvise) finalMap = req;
      break;
    }

    if (addr < reqAddr) {
      const lsRange = reqAddr - addr;
      const p = opMap(addr, lsRange, obj, offset);
      keep = keep && obj === reqObj && wrapAdd(offset, lsRange) === reqOffset;
      if (end === reqEnd) {
        ret = yield* remapCb(fn, priv, p, null, { va, keep });
        if (ret) return ret;
        if (madvise) finalMap = req;
        break;
      }
      if (end < reqEnd) {
        ret = yield* remapCb(fn, priv, p, null, { va, keep });
        if (ret) return ret;
        if (madvise) {
          ret = yield* run(mapCb(fn, priv, mapReq(reqAddr, end - reqAddr, null, 0)));
          if (ret) return ret;
        }
        continue;
      }
      const n = opMap(reqEnd, end - reqEnd, obj, wrapAdd(wrapAdd(offset, lsRange), reqRange));
      ret = yield* remapCb(fn, priv, p, n, { va, keep });
      if (ret) return ret;
      if (madvise) finalMap = req;
      break;
    }

    // addr > reqAddr
    keep = keep && obj === reqObj && offset === wrapAdd(reqOffset, addr - reqAddr);
    if (end === reqEnd) {
      ret = yield* run(unmapCb(fn, priv, va, keep, madvise));
      if (ret) return ret;
      break;
    }
    if (end < reqEnd) {
      ret = yield* run(unmapCb(fn, priv, va, keep, madvise));
      if (ret) return ret;
      continue;
    }
    const n = opMap(reqEnd, end - reqEnd, obj, wrapAdd(offset, reqEnd - addr));
    ret = yield* remapCb(fn, priv, null, n, { va, keep });
    if (ret) return ret;
    if (madvise) return yield* run(mapCb(fn, priv, mapReq(addr, reqEnd - addr, null, 0)));
    break;
  }
  return yield* run(mapCb(fn, priv, finalMap));
}

/** `__drm_gpuvm_sm_unmap()`: the unmap walk (§3.6); keep is always false. */
function* smUnmapWalk<P>(vm: GpuVm, fn: SmSteps<P>, priv: P, reqAddr: number, reqRange: number): Walk {
  if (!vm.rangeValid(reqAddr, reqRange)) return -EINVAL;
  const reqEnd = reqAddr + reqRange;
  let va = vm.findFirst(reqAddr, reqRange);
  let next = va ? vm.vaNext(va) : null;
  for (; va && va.va.addr < reqEnd; va = next, next = va ? vm.vaNext(va) : null) {
    const obj = va.gem.obj;
    const offset = va.gem.offset;
    const addr = va.va.addr;
    const end = addr + va.va.range;
    const prev = addr < reqAddr ? opMap(addr, reqAddr - addr, obj, offset) : null;
    const nxt = end > reqEnd ? opMap(reqEnd, end - reqEnd, obj, wrapAdd(offset, reqEnd - addr)) : null;
    const ret =
      prev || nxt
        ? yield* remapCb(fn, priv, prev, nxt, { va, keep: false })
        : yield* run(unmapCb(fn, priv, va, false, false));
    if (ret) return ret;
  }
  return 0;
}

/** Drives a walk without the simulator; a callback that yields is a usage error. */
function runPlain<T>(g: Generator<Op, T, unknown>, what: string): T {
  const r = g.next();
  if (!r.done) {
    throw new Error(
      `${what}: a callback yielded (${r.value.describe()}); use the Routine form on a simulated thread`,
    );
  }
  return r.value;
}

function stepsOf<P>(vm: GpuVm<P>, needMap: boolean): SmSteps<P> | null {
  const o = vm.ops;
  if (!o.smStepRemap || !o.smStepUnmap || (needMap && !o.smStepMap)) return null;
  return {
    smStepMap: (op, priv) => (o.smStepMap ? o.smStepMap(op, priv) : 0),
    smStepRemap: (op, priv) => (o.smStepRemap ? o.smStepRemap(op, priv) : 0),
    smStepUnmap: (op, priv) => (o.smStepUnmap ? o.smStepUnmap(op, priv) : 0),
  };
}

// ---- callback form ---------------------------------------------------------------------------

/**
 * Models `drm_gpuvm_sm_map()`: calls the VM's `sm_step_*` callbacks with `priv` for every step of
 * the map walk; the first non-zero return ends the walk and is returned (earlier steps are not
 * rolled back). `-EINVAL` without all three callbacks or for an invalid range.
 */
export function* gpuvmSmMap<P>(vm: GpuVm<P>, priv: P, req: MapReq): Routine<number> {
  const fn = stepsOf(vm, true);
  if (!fn) return -EINVAL;
  return yield* smMapWalk(vm, fn, priv, req, false);
}

/** {@link gpuvmSmMap} without the simulator (plain callbacks). */
export function gpuvmSmMapNow<P>(vm: GpuVm<P>, priv: P, req: MapReq): number {
  return runPlain(gpuvmSmMap(vm, priv, req), 'drm_gpuvm_sm_map');
}

/** Models `drm_gpuvm_sm_unmap()`: needs only the remap and unmap callbacks. */
export function* gpuvmSmUnmap<P>(vm: GpuVm<P>, priv: P, addr: number, range: number): Routine<number> {
  const fn = stepsOf(vm, false);
  if (!fn) return -EINVAL;
  return yield* smUnmapWalk(vm, fn, priv, addr, range);
}

/** {@link gpuvmSmUnmap} without the simulator. */
export function gpuvmSmUnmapNow<P>(vm: GpuVm<P>, priv: P, addr: number, range: number): number {
  return runPlain(gpuvmSmUnmap(vm, priv, addr, range), 'drm_gpuvm_sm_unmap');
}

// ---- op lists --------------------------------------------------------------------------------

function cloneMap(m: OpMap): OpMap {
  return opMap(m.va.addr, m.va.range, m.gem.obj, m.gem.offset);
}

/** The copy `drm_gpuva_sm_step()` stores: the record by value, REMAP payloads as separate copies. */
function copyOp(src: GpuvaOp): GpuvaOp {
  switch (src.op) {
    case GpuvaOpType.MAP:
      return { op: GpuvaOpType.MAP, map: cloneMap(src.map) };
    case GpuvaOpType.UNMAP:
      return { op: GpuvaOpType.UNMAP, unmap: { va: src.unmap.va, keep: src.unmap.keep } };
    case GpuvaOpType.REMAP:
      return {
        op: GpuvaOpType.REMAP,
        remap: {
          prev: src.remap.prev ? cloneMap(src.remap.prev) : null,
          next: src.remap.next ? cloneMap(src.remap.next) : null,
          unmap: { va: src.remap.unmap.va, keep: src.remap.unmap.keep },
        },
      };
    default:
      return { ...src } as GpuvaOp;
  }
}

/** Step callbacks that append plain copies (no allocation model). */
function plainListSteps(ops: GpuvaOps): SmSteps<undefined> {
  const step = (op: GpuvaOp) => {
    ops.list.push(copyOp(op));
    return 0;
  };
  return { smStepMap: step, smStepRemap: step, smStepUnmap: step };
}

/** `gpuva_op_alloc()`: the driver's `op_alloc` or `kzalloc(GFP_KERNEL)`. */
function* opAlloc(vm: GpuVm): Routine<KBuf | null> {
  if (vm.ops.opAlloc) return yield* vm.ops.opAlloc(vm);
  return yield* vm.ledger.alloc(vm.sim, 72, 'GFP_KERNEL', 'drm_gpuva_op');
}

/** `gpuva_op_free()`. */
function* opFree(vm: GpuVm, buf: KBuf | null): Routine {
  if (!buf) return;
  if (vm.ops.opFree) yield* vm.ops.opFree(vm, buf);
  else yield* vm.ledger.free(buf, 'drm_gpuva_op');
}

/**
 * `drm_gpuva_sm_step()`: allocates the op record and, for a REMAP, copies of the unmap record and
 * of each piece; on failure frees what it allocated (upstream leaks the unmap copy when the `next`
 * copy fails; reproduced with `quirks.remapNextAllocLeak`) and returns -ENOMEM.
 */
function allocListSteps(vm: GpuVm, ops: GpuvaOps): SmSteps<undefined> {
  const sim = vm.sim;
  const ledger = vm.ledger;
  const step = function* (src: GpuvaOp): Routine<number> {
    const buf = yield* opAlloc(vm);
    if (!buf) return -ENOMEM;
    const mem: OpMem = { op: buf, unmap: null, prev: null, next: null };
    if (src.op === GpuvaOpType.REMAP) {
      mem.unmap = yield* ledger.alloc(sim, 16, 'GFP_KERNEL', 'drm_gpuva_op_unmap');
      if (!mem.unmap) {
        yield* opFree(vm, buf);
        return -ENOMEM;
      }
      if (src.remap.prev) {
        mem.prev = yield* ledger.alloc(sim, 32, 'GFP_KERNEL', 'drm_gpuva_op_map(prev)');
        if (!mem.prev) {
          yield* ledger.free(mem.unmap);
          yield* opFree(vm, buf);
          return -ENOMEM;
        }
      }
      if (src.remap.next) {
        mem.next = yield* ledger.alloc(sim, 32, 'GFP_KERNEL', 'drm_gpuva_op_map(next)');
        if (!mem.next) {
          if (!vm.quirks.remapNextAllocLeak) yield* ledger.free(mem.unmap);
          yield* ledger.free(mem.prev);
          yield* opFree(vm, buf);
          return -ENOMEM;
        }
      }
    }
    ops.list.push(copyOp(src));
    ops.mem.push(mem);
    return 0;
  };
  return { smStepMap: step, smStepRemap: step, smStepUnmap: step };
}

/** The list head allocation of every creator (`kzalloc(sizeof(*ops))`). */
function* newList(vm: GpuVm): Routine<GpuvaOps | null> {
  const head = yield* vm.ledger.alloc(vm.sim, 16, 'GFP_KERNEL', 'drm_gpuva_ops');
  if (!head) return null;
  const ops = new GpuvaOps();
  ops.head = head;
  return ops;
}

/** `__drm_gpuvm_sm_map_ops_create()`. */
function* smMapOpsCreate(vm: GpuVm, req: MapReq, madvise: boolean): Routine<GpuvaOps | number> {
  const ops = yield* newList(vm);
  if (!ops) return -ENOMEM;
  const ret = yield* smMapWalk(vm, allocListSteps(vm, ops), undefined, req, madvise);
  if (ret) {
    yield* gpuvaOpsFree(vm, ops);
    return ret;
  }
  return ops;
}

/**
 * Models `drm_gpuvm_sm_map_ops_create()`: the map walk recorded into a fresh list. Errors:
 * `-EINVAL` (invalid range), `-ENOMEM` (the partial list is freed).
 */
export function gpuvmSmMapOpsCreate(vm: GpuVm, req: MapReq): Routine<GpuvaOps | number> {
  return smMapOpsCreate(vm, req, false);
}

/** Models `drm_gpuvm_madvise_ops_create()`: the madvise walk recorded into a fresh list. */
export function gpuvmMadviseOpsCreate(vm: GpuVm, req: MapReq): Routine<GpuvaOps | number> {
  return smMapOpsCreate(vm, req, true);
}

/** Models `drm_gpuvm_sm_unmap_ops_create()`. */
export function* gpuvmSmUnmapOpsCreate(vm: GpuVm, addr: number, range: number): Routine<GpuvaOps | number> {
  const ops = yield* newList(vm);
  if (!ops) return -ENOMEM;
  const ret = yield* smUnmapWalk(vm, allocListSteps(vm, ops), undefined, addr, range);
  if (ret) {
    yield* gpuvaOpsFree(vm, ops);
    return ret;
  }
  return ops;
}

/**
 * Models `drm_gpuvm_prefetch_ops_create()`: one PREFETCH per va intersecting `[addr, addr+range)`
 * in address order; no validity check (the reserved node is included when hit).
 */
export function* gpuvmPrefetchOpsCreate(vm: GpuVm, addr: number, range: number): Routine<GpuvaOps | number> {
  const ops = yield* newList(vm);
  if (!ops) return -ENOMEM;
  for (const va of vm.vasRange(addr, wrapAdd(addr, range))) {
    const buf = yield* opAlloc(vm);
    if (!buf) {
      yield* gpuvaOpsFree(vm, ops);
      return -ENOMEM;
    }
    ops.list.push({ op: GpuvaOpType.PREFETCH, prefetch: { va } });
    ops.mem.push({ op: buf, unmap: null, prev: null, next: null });
  }
  return ops;
}

/**
 * Models `drm_gpuvm_bo_unmap_ops_create()`: asserts the GEM list lock; one `UNMAP(va, keep=0)` per
 * linked va in **link order**, whole vas (no clipping).
 */
export function* gpuvmBoUnmapOpsCreate(vmBo: GpuVmBo): Routine<GpuvaOps | number> {
  const vm = vmBo.vm;
  vm.gemAssertLockHeld(vmBo.obj);
  const ops = yield* newList(vm);
  if (!ops) return -ENOMEM;
  for (const va of [...vmBo.list.gpuva]) {
    const buf = yield* opAlloc(vm);
    if (!buf) {
      yield* gpuvaOpsFree(vm, ops);
      return -ENOMEM;
    }
    ops.list.push({ op: GpuvaOpType.UNMAP, unmap: { va, keep: false } });
    ops.mem.push({ op: buf, unmap: null, prev: null, next: null });
  }
  return ops;
}

/** Models `drm_gpuva_ops_free()`: frees every op (REMAP payload copies first) and the list. */
export function* gpuvaOpsFree(vm: GpuVm, ops: GpuvaOps): Routine {
  for (let i = 0; i < ops.list.length; i++) {
    const mem = ops.mem[i];
    if (!mem) continue;
    yield* vm.ledger.free(mem.prev);
    yield* vm.ledger.free(mem.next);
    yield* vm.ledger.free(mem.unmap);
    yield* opFree(vm, mem.op);
  }
  ops.list.length = 0;
  ops.mem.length = 0;
  yield* vm.ledger.free(ops.head, 'drm_gpuva_ops');
  ops.head = null;
}

// ---- op lists without the simulator ----------------------------------------------------------

/** {@link gpuvmSmMapOpsCreate} without the simulator: no allocation model, never -ENOMEM. */
export function gpuvmSmMapOpsCreateNow(vm: GpuVm, req: MapReq): GpuvaOps | number {
  const ops = new GpuvaOps();
  const ret = runPlain(
    smMapWalk(vm, plainListSteps(ops), undefined, req, false),
    'drm_gpuvm_sm_map_ops_create',
  );
  return ret ? ret : ops;
}

/** {@link gpuvmMadviseOpsCreate} without the simulator. */
export function gpuvmMadviseOpsCreateNow(vm: GpuVm, req: MapReq): GpuvaOps | number {
  const ops = new GpuvaOps();
  const ret = runPlain(
    smMapWalk(vm, plainListSteps(ops), undefined, req, true),
    'drm_gpuvm_madvise_ops_create',
  );
  return ret ? ret : ops;
}

/** {@link gpuvmSmUnmapOpsCreate} without the simulator. */
export function gpuvmSmUnmapOpsCreateNow(vm: GpuVm, addr: number, range: number): GpuvaOps | number {
  const ops = new GpuvaOps();
  const ret = runPlain(
    smUnmapWalk(vm, plainListSteps(ops), undefined, addr, range),
    'drm_gpuvm_sm_unmap_ops_create',
  );
  return ret ? ret : ops;
}

/** {@link gpuvmPrefetchOpsCreate} without the simulator. */
export function gpuvmPrefetchOpsCreateNow(vm: GpuVm, addr: number, range: number): GpuvaOps {
  const ops = new GpuvaOps();
  for (const va of vm.vasRange(addr, wrapAdd(addr, range)))
    ops.list.push({ op: GpuvaOpType.PREFETCH, prefetch: { va } });
  return ops;
}

/** {@link gpuvmBoUnmapOpsCreate} without the simulator (the lock assertion still runs on a thread). */
export function gpuvmBoUnmapOpsCreateNow(vmBo: GpuVmBo): GpuvaOps {
  vmBo.vm.gemAssertLockHeld(vmBo.obj);
  const ops = new GpuvaOps();
  for (const va of vmBo.list.gpuva) ops.list.push({ op: GpuvaOpType.UNMAP, unmap: { va, keep: false } });
  return ops;
}

// ---- applying ops to the tree ----------------------------------------------------------------

/** What {@link applyOpNow} changed. */
export interface Applied {
  /** New vas inserted (MAP, REMAP pieces), in order. */
  inserted: GpuVa[];
  /** Victims removed (UNMAP, REMAP), in order. */
  removed: GpuVa[];
}

/**
 * Applies one op to the tree with the kernel helpers (`drm_gpuva_map()`, `drm_gpuva_remap()`,
 * `drm_gpuva_unmap()`), taking fresh vas from `alloc`. No linking. PREFETCH and DRIVER ops do
 * nothing.
 */
export function applyOpNow(
  vm: GpuVm,
  op: GpuvaOp,
  alloc: () => GpuVa = () => new GpuVa(),
  out?: Applied,
): Applied {
  const res = out ?? { inserted: [], removed: [] };
  switch (op.op) {
    case GpuvaOpType.MAP: {
      const va = alloc();
      gpuvaMap(vm, va, op.map);
      res.inserted.push(va);
      break;
    }
    case GpuvaOpType.REMAP: {
      const prev = op.remap.prev ? alloc() : null;
      const next = op.remap.next ? alloc() : null;
      res.removed.push(op.remap.unmap.va);
      gpuvaRemap(prev, next, op.remap);
      if (prev) res.inserted.push(prev);
      if (next) res.inserted.push(next);
      break;
    }
    case GpuvaOpType.UNMAP:
      res.removed.push(op.unmap.va);
      gpuvaUnmap(op.unmap);
      break;
    default:
      break;
  }
  return res;
}

/** {@link applyOpNow} for every op of a list, in order. */
export function applyOpsNow(
  vm: GpuVm,
  ops: Iterable<GpuvaOp>,
  alloc: () => GpuVa = () => new GpuVa(),
): Applied {
  const res: Applied = { inserted: [], removed: [] };
  for (const op of ops) applyOpNow(vm, op, alloc, res);
  return res;
}

/**
 * Step callbacks that apply every step to the tree right away (the DOC's second example, minus
 * linking), recording each step. With these, `drm_gpuvm_sm_map()` mutates the tree while it walks.
 */
export function applyingSteps(
  vm: GpuVm,
  record: GpuvaOp[] = [],
  alloc: () => GpuVa = () => new GpuVa(),
): SmSteps<unknown> & { record: GpuvaOp[] } {
  const step = (op: GpuvaOp) => {
    record.push(copyOp(op));
    applyOpNow(vm, op, alloc);
    return 0;
  };
  return { smStepMap: step, smStepRemap: step, smStepUnmap: step, record };
}

/** Step callbacks that only record each step (a copy), changing nothing. */
export function recordingSteps(record: GpuvaOp[] = []): SmSteps<unknown> & { record: GpuvaOp[] } {
  const step = (op: GpuvaOp) => {
    record.push(copyOp(op));
    return 0;
  };
  return { smStepMap: step, smStepRemap: step, smStepUnmap: step, record };
}

/** Runs the map walk with the given callbacks instead of the VM's (tests, drivers with several step sets). */
export function* smMapWith<P>(vm: GpuVm, fn: SmSteps<P>, priv: P, req: MapReq): Routine<number> {
  return yield* smMapWalk(vm, fn, priv, req, false);
}

/** {@link smMapWith} without the simulator. */
export function smMapWithNow<P>(vm: GpuVm, fn: SmSteps<P>, priv: P, req: MapReq): number {
  return runPlain(smMapWalk(vm, fn, priv, req, false), 'drm_gpuvm_sm_map');
}

/** Runs the unmap walk with the given callbacks instead of the VM's. */
export function* smUnmapWith<P>(
  vm: GpuVm,
  fn: SmSteps<P>,
  priv: P,
  addr: number,
  range: number,
): Routine<number> {
  return yield* smUnmapWalk(vm, fn, priv, addr, range);
}

/** {@link smUnmapWith} without the simulator. */
export function smUnmapWithNow<P>(vm: GpuVm, fn: SmSteps<P>, priv: P, addr: number, range: number): number {
  return runPlain(smUnmapWalk(vm, fn, priv, addr, range), 'drm_gpuvm_sm_unmap');
}

// ---- locking the objects a walk touches ------------------------------------------------------

/** `drm_gpuva_sm_step_lock()`: lock (no fence slots) the object of every REMAP/UNMAP victim. */
function lockSteps(): SmSteps<DrmExec> {
  const step = (op: GpuvaOp, exec: DrmExec): StepResult => {
    const va =
      op.op === GpuvaOpType.REMAP ? op.remap.unmap.va : op.op === GpuvaOpType.UNMAP ? op.unmap.va : null;
    const obj = va?.gem.obj;
    return obj ? exec.lockObj(obj) : 0;
  };
  return { smStepMap: step, smStepRemap: step, smStepUnmap: step };
}

/**
 * Models `drm_gpuvm_sm_map_exec_lock()`: inside a drm_exec retry loop, lock and reserve fence
 * slots on the request's object, then lock every object the map walk would unmap or remap.
 */
export function* gpuvmSmMapExecLock(
  vm: GpuVm,
  exec: DrmExec,
  numFences: number,
  req: MapReq,
): Routine<number> {
  const reqObj = req.map.gem.obj;
  if (reqObj) {
    const ret = yield* exec.prepareObj(reqObj, numFences);
    if (ret) return ret;
  }
  return yield* smMapWalk(vm, lockSteps(), exec, req, false);
}

/** Models `drm_gpuvm_sm_unmap_exec_lock()`. */
export function* gpuvmSmUnmapExecLock(
  vm: GpuVm,
  exec: DrmExec,
  addr: number,
  range: number,
): Routine<number> {
  return yield* smUnmapWalk(vm, lockSteps(), exec, addr, range);
}
