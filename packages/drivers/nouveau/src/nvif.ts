/**
 * The GPU's page table as nouveau drives it through its nvif VMM object (`struct nvif_vmm`, the
 * client side of nvkm's `struct nvkm_vmm`). Two ways of programming it, one per client mode:
 *
 * - MANAGED (SVM): the privileged methods `NVIF_VMM_V0_PFNMAP` (write PTEs straight from a list of
 *   physical addresses with V/W/A bits and an aperture, HOST or VRAM) and `NVIF_VMM_V0_PFNCLR`.
 *   Used by the fault handler, by dmem after a migration and by the mm-wide notifier.
 * - RAW (VM_BIND, nouveau_uvmm.c): `nvif_vmm_raw_get/put` (page-table allocation and reference
 *   counting), `raw_map/unmap` (PTE writes into tables already got) and `raw_sparse`.
 *
 * Every entry names its frame as a `FrameRef` (pfn + allocation generation), sampled when the
 * driver looked the page up; the GPU's own accesses and the conformance kit resolve it, so a PTE
 * left pointing at a freed page is visible as such. The table is one simulated object: each
 * method call is one step, as the method is one ioctl into nvkm that runs under nvkm's own
 * `vmm->mutex` (not modelled separately).
 */
import { type FrameRef, hex, PAGE_SIZE } from '@hmmkit/mm';
import {
  Access,
  ENOMEM,
  type KBuf,
  kfree,
  kmalloc,
  Op,
  type Routine,
  type Sim,
  SimObject,
} from '@hmmkit/sim';
import type { NouveauBo } from './bo.js';

// include/nvif/if000c.h: one PFNMAP argument per page (or per 2 MiB block for page shift 21).
/** `NVIF_VMM_PFNMAP_V0_V`: the entry is valid. */
export const NVIF_VMM_PFNMAP_V0_V = 0x1;
/** `NVIF_VMM_PFNMAP_V0_W`: writable. */
export const NVIF_VMM_PFNMAP_V0_W = 0x2;
/** `NVIF_VMM_PFNMAP_V0_A`: atomics allowed (only on HOST pages made device-exclusive). */
export const NVIF_VMM_PFNMAP_V0_A = 0x4;
/** `NVIF_VMM_PFNMAP_V0_HOST`: aperture system memory. */
export const NVIF_VMM_PFNMAP_V0_HOST = 0x0;
/** `NVIF_VMM_PFNMAP_V0_VRAM`: aperture video memory (a device-private page of this GPU). */
export const NVIF_VMM_PFNMAP_V0_VRAM = 0x10;
/** `NVIF_VMM_PFNMAP_V0_NONE`: no page; PFNMAP unmaps the entry. */
export const NVIF_VMM_PFNMAP_V0_NONE = 0x0;
/** `NVIF_VMM_PFNMAP_V0_ADDR_SHIFT`. */
export const NVIF_VMM_PFNMAP_V0_ADDR_SHIFT = 12;

const ADDR_SPAN = 1 << NVIF_VMM_PFNMAP_V0_ADDR_SHIFT;

/** One PFNMAP argument: `(pfn << ADDR_SHIFT) | flags`, as a JS number (pfns stay below 2^40). */
export function nvifPfnmapEntry(pfn: number, flags: number): number {
  return pfn * ADDR_SPAN + flags;
}

/** The flag bits of a PFNMAP argument. */
export function nvifPfnmapFlags(phys: number): number {
  return phys % ADDR_SPAN;
}

/** The pfn of a PFNMAP argument. */
export function nvifPfnmapPfn(phys: number): number {
  return Math.floor(phys / ADDR_SPAN);
}

/** A GPU page-table entry written by PFNMAP (MANAGED mode). */
export interface PfnPte {
  kind: 'pfn';
  frame: FrameRef;
  vram: boolean;
  write: boolean;
  atomic: boolean;
}

/** A GPU page-table entry written by `raw_map` (RAW mode): page `index` of a BO. */
export interface BoPte {
  kind: 'bo';
  bo: NouveauBo;
  index: number;
}

/** A sparse entry (`raw_sparse` / unmap of a sparse mapping): reads return zero, writes are dropped. */
export interface SparsePte {
  kind: 'sparse';
}

export type GpuPte = PfnPte | BoPte | SparsePte;

/** Pages per page table of the RAW model (small, so page tables are shared between mappings). */
export const NVKM_PT_PAGES = 4;

/** One page table of the RAW model: references (units of mapped-or-reserved pages) and its memory. */
interface RawPt {
  refs: number;
  mem: KBuf;
}

/** `MANAGED` (SVM) or `RAW` (VM_BIND) — `enum nvif_vmm_type` as far as the model goes. */
export type NvifVmmType = 'MANAGED' | 'RAW';

/**
 * `struct nvif_vmm` with the nvkm page table behind it. Threads call the methods; checkers and the
 * conformance adapter read {@link ptes} directly between steps.
 */
export class NvifVmm extends SimObject {
  /** Virtual page number to entry. */
  readonly ptes = new Map<number, GpuPte>();
  /** RAW mode: page tables by table index (`vpn / NVKM_PT_PAGES`). */
  readonly pts = new Map<number, RawPt>();
  /** Set by the destructor; methods on a destroyed VMM are reported. */
  dead = false;

  constructor(
    sim: Sim,
    name: string,
    readonly type: NvifVmmType,
  ) {
    super(sim, name);
  }

  // ---- MANAGED: PFNMAP / PFNCLR ------------------------------------------------------------------

  /**
   * models the `NVIF_VMM_V0_PFNMAP` method (nvkm_vmm_pfn_map()): `phys[i]` describes the
   * `1 << shift` bytes at `addr + (i << shift)`; an entry without V unmaps them. `frames[i]` is the
   * model's record of which allocation the pfn belonged to when the driver sampled it.
   */
  *pfnmap(
    addr: number,
    shift: number,
    size: number,
    phys: readonly number[],
    frames: readonly (FrameRef | null)[],
    label?: string,
  ): Routine {
    yield new Op('NVIF_VMM_V0_PFNMAP', this, Access.Write, 0, { addr, shift, size, phys, frames }, label);
  }

  /** models the `NVIF_VMM_V0_PFNCLR` method (nvkm_vmm_pfn_unmap()): unmaps `[addr, addr + size)`. */
  *pfnclr(addr: number, size: number, label?: string): Routine {
    yield new Op('NVIF_VMM_V0_PFNCLR', this, Access.Write, 0, { addr, size }, label);
  }

  // ---- RAW: get / put / map / unmap / sparse ---------------------------------------------------

  /** The page tables `[addr, addr + range)` touches, with how many of its pages lie in each. */
  private ptSpan(addr: number, range: number): [number, number][] {
    const out: [number, number][] = [];
    const first = addr / PAGE_SIZE;
    const end = first + range / PAGE_SIZE;
    for (let vpn = first; vpn < end; ) {
      const pt = Math.floor(vpn / NVKM_PT_PAGES);
      const next = Math.min(end, (pt + 1) * NVKM_PT_PAGES);
      out.push([pt, next - vpn]);
      vpn = next;
    }
    return out;
  }

  /**
   * models `nvif_vmm_raw_get()` (nvkm_vmm_raw_get → nvkm_vmm_ptes_get): references the page tables
   * of `[addr, addr + range)`, allocating the missing ones (GFP_KERNEL: may fail with -ENOMEM, in
   * which case nothing stays referenced).
   */
  *rawGet(addr: number, range: number, label = 'nvif_vmm_raw_get'): Routine<number> {
    const got: [number, number][] = [];
    for (const [pt, n] of this.ptSpan(addr, range)) {
      if (!this.pts.has(pt)) {
        const mem = yield* kmalloc(this.sim, PAGE_SIZE, 'GFP_KERNEL', `${this.name} pt ${pt}`);
        if (!mem) {
          for (const [p, k] of got) yield* this.ptUnref(p, k, label);
          return -ENOMEM;
        }
        yield new Op('nvkm_vmm_pt_new', this, Access.Write, 0, { pt, mem }, label);
        // Another get may have installed the table meanwhile; then ours goes back.
        if (this.pts.get(pt)?.mem !== mem) yield* kfree(mem);
      }
      yield new Op('nvkm_vmm_ptes_get', this, Access.Write, 0, { pt, n }, label);
      got.push([pt, n]);
    }
    return 0;
  }

  /** Drops `n` references from table `pt`, freeing it at zero. */
  private *ptUnref(pt: number, n: number, label: string): Routine {
    const mem = (yield new Op('nvkm_vmm_ptes_put', this, Access.Write, 0, { pt, n }, label)) as KBuf | null;
    if (mem) yield* kfree(mem, `${this.name} pt ${pt}`);
  }

  /** models `nvif_vmm_raw_put()`: drops the references `raw_get` took, freeing tables at zero. */
  *rawPut(addr: number, range: number, label = 'nvif_vmm_raw_put'): Routine {
    for (const [pt, n] of this.ptSpan(addr, range)) yield* this.ptUnref(pt, n, label);
  }

  /**
   * models `nvif_vmm_raw_map()`: writes the PTEs of `[addr, addr + range)` to page `offset/PAGE_SIZE`
   * of `bo`. Never allocates: the page tables must have been got (the submit path's
   * pre-allocation); a missing one is reported as `vm-bind-pagetable`.
   */
  *rawMap(addr: number, range: number, bo: NouveauBo, offset: number, label = 'nvif_vmm_raw_map'): Routine {
    yield new Op('nvif_vmm_raw_map', this, Access.Write, 0, { addr, range, bo, offset }, label);
  }

  /** models `nvif_vmm_raw_unmap()`: clears the PTEs, or makes them sparse again (`sparse`). */
  *rawUnmap(addr: number, range: number, sparse: boolean, label = 'nvif_vmm_raw_unmap'): Routine {
    yield new Op('nvif_vmm_raw_unmap', this, Access.Write, 0, { addr, range, sparse }, label);
  }

  /**
   * models `nvif_vmm_raw_sparse()`: `ref` references the page tables (allocating, may fail) and
   * marks the range sparse; `!ref` clears the sparse entries and drops the references.
   */
  *rawSparse(addr: number, range: number, ref: boolean): Routine<number> {
    if (ref) {
      const ret = yield* this.rawGet(addr, range, 'nvif_vmm_raw_sparse(ref)');
      if (ret) return ret;
      yield* this.rawUnmap(addr, range, true, 'nvif_vmm_raw_sparse(ref)');
      return 0;
    }
    yield new Op(
      'nvif_vmm_raw_sparse_clear',
      this,
      Access.Write,
      0,
      { addr, range },
      'nvif_vmm_raw_sparse(unref)',
    );
    yield* this.rawPut(addr, range, 'nvif_vmm_raw_sparse(unref)');
    return 0;
  }

  /** models `nvif_vmm_dtor()`: the VMM and every PTE are gone (page tables are freed by nvkm). */
  *dtor(label = 'nvif_vmm_dtor'): Routine {
    const mems = (yield new Op('nvif_vmm_dtor', this, Access.Write, 0, undefined, label)) as KBuf[];
    for (const m of mems) yield* kfree(m, 'nvkm page table');
  }

  // ---- GPU-side access --------------------------------------------------------------------------

  /**
   * One access of the GPU's MMU: translate `addr` and, if the entry allows it, run `touch` on it, in
   * one step (hardware translation and the memory access are not separable by the CPU). Announced
   * as touching everything: it reads the page table and a frame another thread may change.
   */
  *gpuAccess<R>(addr: number, touch: (pte: GpuPte | null) => R, label?: string): Routine<R> {
    return (yield new Op('gpu_mmu_access', this, Access.Global, 0, { addr, touch }, label)) as R;
  }

  // ---- simulator plumbing -----------------------------------------------------------------------

  override exec(op: Op): unknown {
    const a = op.arg as Record<string, unknown>;
    switch (op.kind) {
      case 'NVIF_VMM_V0_PFNMAP':
        this.checkMode('MANAGED', op);
        this.doPfnmap(a as unknown as PfnmapArgs);
        return undefined;
      case 'NVIF_VMM_V0_PFNCLR': {
        this.checkMode('MANAGED', op);
        const { addr, size } = a as { addr: number; size: number };
        this.clear(addr, size);
        return undefined;
      }
      case 'nvkm_vmm_pt_new': {
        const { pt, mem } = a as { pt: number; mem: KBuf };
        if (!this.pts.has(pt)) this.pts.set(pt, { refs: 0, mem });
        return undefined;
      }
      case 'nvkm_vmm_ptes_get': {
        const { pt, n } = a as { pt: number; n: number };
        const t = this.pts.get(pt);
        if (!t) return this.sim.fail('model-error', `${this.name}: ptes_get on missing table ${pt}`);
        t.refs += n;
        return undefined;
      }
      case 'nvkm_vmm_ptes_put': {
        const { pt, n } = a as { pt: number; n: number };
        const t = this.pts.get(pt);
        if (!t || t.refs < n) {
          return this.sim.fail(
            'vm-bind-pagetable',
            `${this.name}: nvif_vmm_raw_put of ${n} page(s) in table ${pt}, which holds ${t?.refs ?? 0} reference(s)`,
          );
        }
        t.refs -= n;
        if (t.refs > 0) return null;
        this.pts.delete(pt);
        return t.mem;
      }
      case 'nvif_vmm_raw_map': {
        this.checkMode('RAW', op);
        const { addr, range, bo, offset } = a as {
          addr: number;
          range: number;
          bo: NouveauBo;
          offset: number;
        };
        for (let i = 0; i < range / PAGE_SIZE; i++) {
          const vpn = addr / PAGE_SIZE + i;
          const t = this.pts.get(Math.floor(vpn / NVKM_PT_PAGES));
          if (!t || t.refs === 0) {
            this.sim.fail(
              'vm-bind-pagetable',
              `${this.name}: nvif_vmm_raw_map at ${hex(vpn * PAGE_SIZE)} without a page table (nothing was got for it)`,
            );
          }
          this.ptes.set(vpn, { kind: 'bo', bo, index: offset / PAGE_SIZE + i });
        }
        return undefined;
      }
      case 'nvif_vmm_raw_unmap': {
        this.checkMode('RAW', op);
        const { addr, range, sparse } = a as { addr: number; range: number; sparse: boolean };
        for (let i = 0; i < range / PAGE_SIZE; i++) {
          const vpn = addr / PAGE_SIZE + i;
          if (sparse) this.ptes.set(vpn, { kind: 'sparse' });
          else this.ptes.delete(vpn);
        }
        return undefined;
      }
      case 'nvif_vmm_raw_sparse_clear': {
        const { addr, range } = a as { addr: number; range: number };
        for (let i = 0; i < range / PAGE_SIZE; i++) {
          const vpn = addr / PAGE_SIZE + i;
          if (this.ptes.get(vpn)?.kind === 'sparse') this.ptes.delete(vpn);
        }
        return undefined;
      }
      case 'nvif_vmm_dtor': {
        this.dead = true;
        this.ptes.clear();
        const mems = [...this.pts.values()].map((t) => t.mem);
        this.pts.clear();
        return mems;
      }
      case 'gpu_mmu_access': {
        const { addr, touch } = a as { addr: number; touch: (pte: GpuPte | null) => unknown };
        return touch(this.dead ? null : (this.ptes.get(Math.floor(addr / PAGE_SIZE)) ?? null));
      }
      default:
        return this.sim.fail('model-error', `${this.name}: unknown method ${op.kind}`);
    }
  }

  private checkMode(type: NvifVmmType, op: Op): void {
    if (this.dead)
      this.sim.fail('use-after-free', `${op.kind} on ${this.name} after nvif_vmm_dtor()`, {
        objects: [this.name],
      });
    if (this.type !== type) this.sim.fail('model-error', `${op.kind} on a ${this.type} VMM`);
  }

  private clear(addr: number, size: number): void {
    const first = Math.floor(addr / PAGE_SIZE);
    const n = Math.ceil(size / PAGE_SIZE);
    if (n > this.ptes.size) {
      for (const vpn of [...this.ptes.keys()]) if (vpn >= first && vpn < first + n) this.ptes.delete(vpn);
    } else {
      for (let i = 0; i < n; i++) this.ptes.delete(first + i);
    }
  }

  private doPfnmap({ addr, shift, size, phys, frames }: PfnmapArgs): void {
    const pagesPer = 2 ** (shift - 12);
    const n = size / 2 ** shift;
    for (let i = 0; i < n; i++) {
      const base = addr / PAGE_SIZE + i * pagesPer;
      const p = phys[i] ?? 0;
      const flags = nvifPfnmapFlags(p);
      const frame = frames[i] ?? null;
      if (!(flags & NVIF_VMM_PFNMAP_V0_V) || !frame) {
        this.clear(base * PAGE_SIZE, pagesPer * PAGE_SIZE);
        continue;
      }
      for (let k = 0; k < pagesPer; k++) {
        this.ptes.set(base + k, {
          kind: 'pfn',
          frame: { pfn: frame.pfn + k, gen: frame.gen },
          vram: (flags & NVIF_VMM_PFNMAP_V0_VRAM) !== 0,
          write: (flags & NVIF_VMM_PFNMAP_V0_W) !== 0,
          atomic: (flags & NVIF_VMM_PFNMAP_V0_A) !== 0,
        });
      }
    }
  }

  override describe(op: Op): string {
    const a = op.arg as Record<string, number> | undefined;
    switch (op.kind) {
      case 'NVIF_VMM_V0_PFNMAP': {
        const { addr, shift, size } = a as { addr: number; shift: number; size: number };
        const phys = (op.arg as PfnmapArgs).phys;
        const bits = phys.map((p) => {
          const f = nvifPfnmapFlags(p);
          if (!(f & NVIF_VMM_PFNMAP_V0_V)) return 'NONE';
          return `${hex(nvifPfnmapPfn(p))}|V${f & NVIF_VMM_PFNMAP_V0_W ? '|W' : ''}${f & NVIF_VMM_PFNMAP_V0_A ? '|A' : ''}|${f & NVIF_VMM_PFNMAP_V0_VRAM ? 'VRAM' : 'HOST'}`;
        });
        return `PFNMAP(${this.name}, ${hex(addr)}+${hex(size)}, page ${shift}: ${bits.join(', ')})`;
      }
      case 'NVIF_VMM_V0_PFNCLR':
        return `PFNCLR(${this.name}, ${hex(a!.addr!)}+${hex(a!.size!)})`;
      case 'nvif_vmm_raw_map':
      case 'nvif_vmm_raw_unmap':
        return `${op.kind}(${this.name}, ${hex(a!.addr!)}+${hex(a!.range!)})`;
      case 'gpu_mmu_access':
        return `gpu_mmu_access(${this.name}, ${hex(a!.addr!)})`;
      default:
        return `${op.kind}(${this.name})`;
    }
  }
}

interface PfnmapArgs {
  addr: number;
  shift: number;
  size: number;
  phys: readonly number[];
  frames: readonly (FrameRef | null)[];
}
