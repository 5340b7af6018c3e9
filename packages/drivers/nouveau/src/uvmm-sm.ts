/**
 * nouveau_uvmm.c, the split/merge half: applying a drm_gpuva op list to the VA space at submit
 * time (`nouveau_uvmm_sm_prepare()`: new uvmas inserted, old ones removed, page tables got for the
 * span a map needs) and undoing it in reverse on failure (`_prepare_unwind()`); writing the PTEs in
 * the fence-signalling path (`nouveau_uvmm_sm()`: only PTE writes into tables already got); and the
 * free path (`nouveau_uvmm_sm_cleanup()`: page tables of unmapped spans put, old uvmas freed).
 */
import {
  type GpuVa,
  type GpuvaOp,
  type GpuvaOps,
  GpuvaOpType,
  gpuvaMap,
  gpuvaUnmap,
  type OpMap,
  type OpRemap,
  type OpUnmap,
} from '@hmmkit/gpuva';
import { EINVAL, ENOMEM, type Routine } from '@hmmkit/sim';
import type { NouveauBo } from './bo.js';
import {
  type BindJobOp,
  type NouveauUvma,
  type NouveauUvmaPrealloc,
  type NouveauUvmaRegion,
  type NouveauUvmm,
  nouveauUvmaAlloc,
  nouveauUvmaFree,
  nouveauUvmaMap,
  nouveauUvmaUnmap,
  nouveauUvmaVmmPut,
  nouveauUvmmVmmGet,
  nouveauUvmmVmmPut,
  type UvmmMapArgs,
} from './uvmm.js';

// ---- prepare (submit time) and unwind -----------------------------------------------------------------

/** models op_map_prepare_unwind(). */
function* opMapPrepareUnwind(uvmm: NouveauUvmm, uvma: NouveauUvma): Routine {
  uvma.gem.obj?.put();
  uvmm.base.remove(uvma);
  yield* nouveauUvmaFree(uvmm, uvma);
}

/** models op_unmap_prepare_unwind(): the va goes back into the tree. */
function opUnmapPrepareUnwind(uvmm: NouveauUvmm, va: GpuVa): void {
  const ret = uvmm.base.insert(va);
  if (ret) uvmm.sim.fail('model-error', `op_unmap_prepare_unwind: re-insert of ${va.name} failed (${ret})`);
}

/**
 * models nouveau_uvmm_sm_prepare_unwind(): the VA-space changes of `ops` up to `last`, in reverse,
 * then (for a map) the page-table references taken for the span not covered by merged mappings.
 */
export function* nouveauUvmmSmPrepareUnwind(
  uvmm: NouveauUvmm,
  bop: BindJobOp,
  ops: GpuvaOps,
  last: GpuvaOp,
  args: UvmmMapArgs | null,
): Routine {
  const nw = bop.new;
  for (const op of ops.fromReverse(last)) {
    switch (op.op) {
      case GpuvaOpType.MAP:
        yield* opMapPrepareUnwind(uvmm, nw.map!);
        break;
      case GpuvaOpType.REMAP: {
        const r = op.remap;
        if (r.next) yield* opMapPrepareUnwind(uvmm, nw.next!);
        if (r.prev) yield* opMapPrepareUnwind(uvmm, nw.prev!);
        opUnmapPrepareUnwind(uvmm, r.unmap.va);
        break;
      }
      case GpuvaOpType.UNMAP:
        opUnmapPrepareUnwind(uvmm, op.unmap.va);
        break;
      default:
        break;
    }
  }
  // Unmaps get no page tables: nothing more to undo.
  if (!args) return;
  let getStart = args.addr;
  let getEnd = args.addr + args.range;
  for (const op of ops) {
    switch (op.op) {
      case GpuvaOpType.MAP: {
        const getRange = getEnd - getStart;
        if (getRange) yield* putOrForget(uvmm, bop, getStart, getRange);
        break;
      }
      case GpuvaOpType.REMAP: {
        const r = op.remap;
        const ustart = r.unmap.va.va.addr;
        const uend = ustart + r.unmap.va.va.range;
        if (r.prev) getStart = uend;
        if (r.next) getEnd = ustart;
        if (r.prev && r.next) getStart = getEnd = 0;
        break;
      }
      case GpuvaOpType.UNMAP: {
        const ustart = op.unmap.va.va.addr;
        const uend = ustart + op.unmap.va.va.range;
        if (uend === getStart || ustart === getEnd) break;
        if (ustart > getStart) yield* putOrForget(uvmm, bop, getStart, ustart - getStart);
        getStart = uend;
        break;
      }
      default:
        break;
    }
    if (op === last) break;
  }
}

/** Puts page tables got at prepare time (or, in the run-job-allocates-pt variant, drops the deferred get). */
function* putOrForget(uvmm: NouveauUvmm, bop: BindJobOp, addr: number, range: number): Routine {
  const i = bop.deferredGets.findIndex(([a, r]) => a === addr && r === range);
  if (i >= 0) {
    bop.deferredGets.splice(i, 1);
    return;
  }
  yield* nouveauUvmmVmmPut(uvmm, addr, range);
}

/** Gets page tables for `[addr, addr + range)` at prepare time (the mistake of one variant defers it to run()). */
function* prepareGet(uvmm: NouveauUvmm, bop: BindJobOp, addr: number, range: number): Routine<number> {
  if (uvmm.cli.drm.variant === 'run-job-allocates-pt') {
    bop.deferredGets.push([addr, range]);
    return 0;
  }
  return yield* nouveauUvmmVmmGet(uvmm, addr, range);
}

/** models op_map_prepare(): a new uvma inserted into the VA space, holding a GEM reference. */
function* opMapPrepare(
  uvmm: NouveauUvmm,
  bop: BindJobOp,
  which: keyof NouveauUvmaPrealloc,
  op: OpMap,
  args: { region: NouveauUvmaRegion | null; kind: number },
): Routine<number> {
  const uvma = yield* nouveauUvmaAlloc(uvmm);
  if (!uvma) return -ENOMEM;
  uvma.region = args.region;
  uvma.kind = args.kind;
  gpuvaMap(uvmm.base, uvma, op);
  // Keep a reference until this uvma is destroyed.
  uvma.gem.obj?.get();
  bop.new[which] = uvma;
  return 0;
}

/** models op_unmap_prepare(). */
function opUnmapPrepare(u: OpUnmap): void {
  gpuvaUnmap(u);
}

/**
 * models nouveau_uvmm_sm_prepare(): applies `ops` to the VA space at once and, for a map, gets
 * page tables for the mapped span minus what merged or split mappings already cover. Any failure
 * unwinds everything done so far.
 */
export function* nouveauUvmmSmPrepare(
  uvmm: NouveauUvmm,
  bop: BindJobOp,
  ops: GpuvaOps,
  args: UvmmMapArgs | null,
): Routine<number> {
  let getStart = args ? args.addr : 0;
  let getEnd = args ? args.addr + args.range : 0;
  let ret = 0;
  let failed: GpuvaOp | null = null;
  for (const op of ops) {
    switch (op.op) {
      case GpuvaOpType.MAP: {
        const getRange = getEnd - getStart;
        ret = yield* opMapPrepare(uvmm, bop, 'map', op.map, { region: args!.region, kind: args!.kind });
        if (ret) break;
        if (getRange) {
          ret = yield* prepareGet(uvmm, bop, getStart, getRange);
          if (ret) yield* opMapPrepareUnwind(uvmm, bop.new.map!);
        }
        break;
      }
      case GpuvaOpType.REMAP: {
        const r: OpRemap = op.remap;
        const va = r.unmap.va as NouveauUvma;
        const remapArgs = { kind: va.kind, region: va.region };
        const ustart = va.va.addr;
        const uend = ustart + va.va.range;
        opUnmapPrepare(r.unmap);
        if (r.prev) {
          ret = yield* opMapPrepare(uvmm, bop, 'prev', r.prev, remapArgs);
          if (ret) break;
          if (args) getStart = uend;
        }
        if (r.next) {
          ret = yield* opMapPrepare(uvmm, bop, 'next', r.next, remapArgs);
          if (ret) {
            if (r.prev) yield* opMapPrepareUnwind(uvmm, bop.new.prev!);
            break;
          }
          if (args) getEnd = ustart;
        }
        if (args && r.prev && r.next) getStart = getEnd = 0;
        break;
      }
      case GpuvaOpType.UNMAP: {
        const u = op.unmap;
        const ustart = u.va.va.addr;
        const uend = ustart + u.va.va.range;
        opUnmapPrepare(u);
        if (!args) break;
        // Nothing to do for mappings we merge with.
        if (uend === getStart || ustart === getEnd) break;
        if (ustart > getStart) {
          ret = yield* prepareGet(uvmm, bop, getStart, ustart - getStart);
          if (ret) {
            opUnmapPrepareUnwind(uvmm, u.va);
            break;
          }
        }
        getStart = uend;
        break;
      }
      default:
        ret = -EINVAL;
    }
    if (ret) {
      failed = op;
      break;
    }
  }
  if (!ret) return 0;
  const prev = failed ? ops.prev(failed) : undefined;
  if (prev) yield* nouveauUvmmSmPrepareUnwind(uvmm, bop, ops, prev, args);
  return ret;
}

// ---- run (fence-signalling path) ----------------------------------------------------------------------

/** models op_map(): map the new uvma to its BO's current memory. */
function* opMap(uvmm: NouveauUvmm, bop: BindJobOp, uvma: NouveauUvma): Routine {
  if (uvmm.cli.drm.variant === 'run-job-allocates-pt') {
    // The mistake: the page tables are got here, in the fence-signalling path.
    for (const [addr, range] of bop.deferredGets) yield* nouveauUvmmVmmGet(uvmm, addr, range);
    bop.deferredGets.length = 0;
  }
  yield* nouveauUvmaMap(uvma, uvma.gem.obj as NouveauBo);
}

/** models op_unmap(): unless the PTEs are kept (a merge), and unless the BO was evicted. */
function* opUnmap(u: OpUnmap): Routine {
  if (!u.keep) yield* nouveauUvmaUnmap(u.va as NouveauUvma);
}

/** models op_unmap_range(). */
function* opUnmapRange(uvmm: NouveauUvmm, u: OpUnmap, addr: number, range: number): Routine {
  const uvma = u.va as NouveauUvma;
  if (!uvma.invalidated) yield* uvmm.raw.rawUnmap(addr, range, !!uvma.region, 'op_unmap_range');
}

/** models op_remap(): only the hole between prev and next is unmapped. */
function* opRemap(uvmm: NouveauUvmm, r: OpRemap): Routine {
  const va = r.unmap.va;
  let addr = va.va.addr;
  let end = va.va.addr + va.va.range;
  if (r.prev) addr = r.prev.va.addr + r.prev.va.range;
  if (r.next) end = r.next.va.addr;
  yield* opUnmapRange(uvmm, r.unmap, addr, end - addr);
}

/** models nouveau_uvmm_sm(): the PTE writes of one op list. */
export function* nouveauUvmmSm(uvmm: NouveauUvmm, bop: BindJobOp, ops: GpuvaOps): Routine<number> {
  for (const op of ops) {
    switch (op.op) {
      case GpuvaOpType.MAP:
        yield* opMap(uvmm, bop, bop.new.map!);
        break;
      case GpuvaOpType.REMAP:
        yield* opRemap(uvmm, op.remap);
        break;
      case GpuvaOpType.UNMAP:
        yield* opUnmap(op.unmap);
        break;
      default:
        break;
    }
  }
  return 0;
}

// ---- cleanup (free path) --------------------------------------------------------------------------

/** models nouveau_uvmm_sm_cleanup(): put page tables of unmapped spans (`unmap`), free the old uvmas. */
export function* nouveauUvmmSmCleanup(uvmm: NouveauUvmm, ops: GpuvaOps, unmap: boolean): Routine {
  for (const op of ops) {
    switch (op.op) {
      case GpuvaOpType.REMAP: {
        const r = op.remap;
        const uvma = r.unmap.va as NouveauUvma;
        if (unmap) {
          let addr = uvma.va.addr;
          let end = addr + uvma.va.range;
          if (r.prev) addr = r.prev.va.addr + r.prev.va.range;
          if (r.next) end = r.next.va.addr;
          yield* nouveauUvmmVmmPut(uvmm, addr, end - addr);
        }
        uvma.gem.obj?.put();
        yield* nouveauUvmaFree(uvmm, uvma);
        break;
      }
      case GpuvaOpType.UNMAP: {
        const uvma = op.unmap.va as NouveauUvma;
        if (unmap) yield* nouveauUvmaVmmPut(uvma);
        uvma.gem.obj?.put();
        yield* nouveauUvmaFree(uvmm, uvma);
        break;
      }
      default:
        break;
    }
  }
}
