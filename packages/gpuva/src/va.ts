/**
 * `struct drm_gpuva`: one GPU VA mapping. Drivers own its memory (they embed it); gpuvm never
 * allocates one.
 */
import type { Routine } from '@hmmkit/sim';
import { GpuvaFlags } from './flags.js';
import type { GemObject } from './gem.js';
import type { OpMap } from './ops.js';
import type { GpuVm } from './vm.js';
import { type GpuVmBo, gpuvaLink, gpuvaUnlink, gpuvaUnlinkDefer } from './vm-bo.js';

export class GpuVa {
  /** `vm`: set by insert and **not** cleared by remove. */
  vm: GpuVm | null = null;
  /** `vm_bo`: set by link, cleared by unlink. */
  vmBo: GpuVmBo | null = null;
  /** `enum drm_gpuva_flags` bits plus driver bits from `GpuvaFlags.USERBITS` up. */
  flags = 0;
  /** `va.addr`, `va.range`. */
  readonly va = { addr: 0, range: 0 };
  /** `gem.offset`, `gem.obj` (null: no GEM, e.g. a sparse or CPU-address-mirror mapping). */
  readonly gem: { offset: number; obj: GemObject | null } = { offset: 0, obj: null };
  /** @internal Interval-tree node while inserted, else -1 (`rb.node` plus membership in `rb.list`). */
  node = -1;
  /** @internal True for a VM's `kernel_alloc_node`. */
  reserved = false;
  private readonly fixedName: string | undefined;

  /** Models `drm_gpuva_init()` on a fresh va. */
  constructor(addr = 0, range = 0, obj: GemObject | null = null, offset = 0, name?: string) {
    this.init(addr, range, obj, offset);
    this.fixedName = name;
  }

  /** A short name for traces and diagnostics: the given one, else `va[addr,end)`. */
  get name(): string {
    return this.fixedName ?? `va[${this.va.addr},${this.va.addr + this.va.range})`;
  }

  /** Models `drm_gpuva_init()`: sets the four fields and nothing else. */
  init(addr: number, range: number, obj: GemObject | null, offset: number): this {
    this.va.addr = addr;
    this.va.range = range;
    this.gem.obj = obj;
    this.gem.offset = offset;
    return this;
  }

  /** Models `drm_gpuva_init_from_op()`: copies addr/range/obj/offset only (never flags). */
  initFromOp(op: OpMap): this {
    return this.init(op.va.addr, op.va.range, op.gem.obj, op.gem.offset);
  }

  /** Models `drm_gpuva_invalidate()`. */
  invalidate(invalidate: boolean): void {
    if (invalidate) this.flags |= GpuvaFlags.INVALIDATED;
    else this.flags &= ~GpuvaFlags.INVALIDATED;
  }

  /** Models `drm_gpuva_invalidated()`. */
  get invalidated(): boolean {
    return (this.flags & GpuvaFlags.INVALIDATED) !== 0;
  }

  /** True while the va is in a VM's tree. */
  get inserted(): boolean {
    return this.node !== -1;
  }

  /** Exclusive end `addr + range`. */
  get end(): number {
    return this.va.addr + this.va.range;
  }

  /** Models `drm_gpuva_link()` (see {@link gpuvaLink}). */
  link(vmBo: GpuVmBo): Routine {
    return gpuvaLink(this, vmBo);
  }

  /** Models `drm_gpuva_unlink()` (see {@link gpuvaUnlink}). */
  unlink(): Routine {
    return gpuvaUnlink(this);
  }

  /** Models `drm_gpuva_unlink_defer()` (newest; see {@link gpuvaUnlinkDefer}). */
  unlinkDefer(): Routine {
    return gpuvaUnlinkDefer(this);
  }

  toString(): string {
    const obj = this.gem.obj ? `${this.gem.obj.name}@${this.gem.offset}` : `-@${this.gem.offset}`;
    return `[${this.va.addr},${this.va.addr + this.va.range})->${obj}`;
  }
}
