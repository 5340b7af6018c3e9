/**
 * Operation records (`struct drm_gpuva_op` and friends) and op lists (`struct drm_gpuva_ops`).
 */

import type { KBuf } from '@hmmkit/sim';
import { GpuvaOpType } from './flags.js';
import type { GemObject } from './gem.js';
import type { GpuVa } from './va.js';

/** `struct drm_gpuva_op_map`: a mapping to create. Carries no flags. */
export interface OpMap {
  va: { addr: number; range: number };
  gem: { offset: number; obj: GemObject | null };
}

/** `struct drm_gpuva_op_unmap`: an existing va to remove, and whether its PTEs may be kept. */
export interface OpUnmap {
  va: GpuVa;
  keep: boolean;
}

/** `struct drm_gpuva_op_remap`: one unmap plus the preceding and/or following leftover. */
export interface OpRemap {
  prev: OpMap | null;
  next: OpMap | null;
  unmap: OpUnmap;
}

/** `struct drm_gpuva_op_prefetch`. */
export interface OpPrefetch {
  va: GpuVa;
}

/** `struct drm_gpuva_op`: a tagged union on `op`. */
export type GpuvaOp =
  | { op: typeof GpuvaOpType.MAP; map: OpMap }
  | { op: typeof GpuvaOpType.REMAP; remap: OpRemap }
  | { op: typeof GpuvaOpType.UNMAP; unmap: OpUnmap }
  | { op: typeof GpuvaOpType.PREFETCH; prefetch: OpPrefetch }
  | { op: typeof GpuvaOpType.DRIVER; driver: unknown };

export type MapOp = Extract<GpuvaOp, { op: 0 }>;
export type RemapOp = Extract<GpuvaOp, { op: 1 }>;
export type UnmapOp = Extract<GpuvaOp, { op: 2 }>;
export type PrefetchOp = Extract<GpuvaOp, { op: 3 }>;

/** `struct drm_gpuvm_map_req`: the request of `sm_map` and `madvise_ops_create`. */
export interface MapReq {
  map: OpMap;
}

/** Builds a {@link MapReq} from the pre-2025 argument list `(addr, range, obj, offset)`. */
export function mapReq(addr: number, range: number, obj: GemObject | null = null, offset = 0): MapReq {
  return { map: { va: { addr, range }, gem: { obj, offset } } };
}

/** @internal The blocks one op of a simulated list owns (op record and the REMAP payload copies). */
export interface OpMem {
  op: KBuf | null;
  unmap: KBuf | null;
  prev: KBuf | null;
  next: KBuf | null;
}

/**
 * `struct drm_gpuva_ops`: an ordered op list. Lists made by the Routine creators also own
 * simulated allocations (`mem`, `head`) that `GpuVm.opsFree()` releases.
 */
export class GpuvaOps {
  readonly list: GpuvaOp[] = [];
  /** @internal Per-op allocations, parallel to `list` (empty for lists built without the simulator). */
  readonly mem: OpMem[] = [];
  /** @internal The list head allocation (`kzalloc(sizeof(*ops))`). */
  head: KBuf | null = null;

  get length(): number {
    return this.list.length;
  }

  /** `drm_gpuva_for_each_op()`. */
  [Symbol.iterator](): Iterator<GpuvaOp> {
    return this.list[Symbol.iterator]();
  }

  /** `drm_gpuva_for_each_op_reverse()`. */
  *reverse(): Generator<GpuvaOp> {
    for (let i = this.list.length - 1; i >= 0; i--) yield this.list[i]!;
  }

  /** `drm_gpuva_for_each_op_from_reverse()`: from `op` (inclusive) back to the first. */
  *fromReverse(op: GpuvaOp): Generator<GpuvaOp> {
    const i = this.list.indexOf(op);
    if (i < 0) throw new RangeError('fromReverse: op is not on this list');
    for (let j = i; j >= 0; j--) yield this.list[j]!;
  }

  /** `drm_gpuva_first_op()`. */
  first(): GpuvaOp | undefined {
    return this.list[0];
  }

  /** `drm_gpuva_last_op()`. */
  last(): GpuvaOp | undefined {
    return this.list[this.list.length - 1];
  }

  /** `drm_gpuva_prev_op()`. */
  prev(op: GpuvaOp): GpuvaOp | undefined {
    const i = this.list.indexOf(op);
    return i > 0 ? this.list[i - 1] : undefined;
  }

  /** `drm_gpuva_next_op()`. */
  next(op: GpuvaOp): GpuvaOp | undefined {
    const i = this.list.indexOf(op);
    return i >= 0 ? this.list[i + 1] : undefined;
  }
}

/** A negative errno returned where the kernel returns `ERR_PTR()`. */
export function isErr<T>(x: T | number): x is number {
  return typeof x === 'number';
}

/**
 * Models `drm_gpuva_op_remap_to_unmap_range()`: the hole a REMAP leaves, as `{ start, range }`.
 */
export function opRemapToUnmapRange(op: OpRemap): { start: number; range: number } {
  const old = op.unmap.va.va;
  const start = op.prev ? op.prev.va.addr + op.prev.va.range : old.addr;
  const end = op.next ? op.next.va.addr : old.addr + old.range;
  return { start, range: end - start };
}

function fmtMap(m: OpMap): string {
  const obj = m.gem.obj ? m.gem.obj.name : '-';
  return `[${m.va.addr},${m.va.addr + m.va.range})->${obj}@${m.gem.offset}`;
}

/**
 * One-line text of an op in the notation of the specification:
 * `MAP([0,1)->A@0)`, `UNMAP([0,2)->A@0, keep=1)`, `REMAP(p=..., n=-, [0,3)->A@0, keep=0)`, `PREFETCH(...)`.
 */
export function formatOp(op: GpuvaOp): string {
  switch (op.op) {
    case GpuvaOpType.MAP:
      return `MAP(${fmtMap(op.map)})`;
    case GpuvaOpType.UNMAP:
      return `UNMAP(${op.unmap.va.toString()}, keep=${op.unmap.keep ? 1 : 0})`;
    case GpuvaOpType.REMAP: {
      const r = op.remap;
      const p = r.prev ? fmtMap(r.prev) : '-';
      const n = r.next ? fmtMap(r.next) : '-';
      return `REMAP(p=${p}, n=${n}, ${r.unmap.va.toString()}, keep=${r.unmap.keep ? 1 : 0})`;
    }
    case GpuvaOpType.PREFETCH:
      return `PREFETCH(${op.prefetch.va.toString()})`;
    default:
      return 'DRIVER';
  }
}

/** {@link formatOp} for a whole list or array. */
export function formatOps(ops: Iterable<GpuvaOp>): string[] {
  return [...ops].map(formatOp);
}
