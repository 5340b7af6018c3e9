/**
 * Pre-allocation for a VM_BIND job (gpuvm.md §5.4): everything `run_job` may need is allocated at
 * submit time, in the worst case, and the unused part is returned when the job is freed.
 *
 * Worst case per user op: a map can consume one va for the MAP plus two for the REMAP pieces (only
 * the first victim can leave a `prev` and only the last a `next`, §3.1 consequence 3); an unmap
 * can consume two (the pieces); page-table pages for every page the op's span touches (earlier
 * jobs may or may not have created them by the time this one runs).
 */
import type { Gfp, KBuf, Routine, Sim } from '@hmmkit/sim';
import type { AllocLedger } from '../kernel.js';
import { GpuVa } from '../va.js';
import type { DevicePageTable } from './page-table.js';

/** Worst-case number of vas one user op can consume. */
export function vasWorstCase(op: 'map' | 'unmap'): number {
  return op === 'map' ? 3 : 2;
}

export class VmBindPrealloc {
  /** Pre-allocated vas not yet consumed, with their memory. */
  readonly vas: GpuVa[] = [];
  /** Pre-allocated page-table pages not yet consumed. */
  readonly ptPages: KBuf[] = [];
  /** How many were consumed, for tests. */
  consumedVas = 0;
  consumedPtPages = 0;

  constructor(
    readonly sim: Sim,
    readonly ledger: AllocLedger,
    /** Memory of every va allocated through a VM_BIND model (freed with the va). */
    readonly vaMem: Map<GpuVa, KBuf>,
  ) {}

  /** Allocates `n` vas (`gfp`); false on -ENOMEM (what was allocated stays in the pool). */
  *reserveVas(n: number, gfp: Gfp): Routine<boolean> {
    for (let i = 0; i < n; i++) {
      const mem = yield* this.ledger.alloc(this.sim, 96, gfp, 'prealloc va');
      if (!mem) return false;
      const va = new GpuVa();
      this.vaMem.set(va, mem);
      this.vas.push(va);
    }
    return true;
  }

  /** Allocates one page-table page per page of `[addr, addr + range)`; false on -ENOMEM. */
  *reservePtPages(pt: DevicePageTable, addr: number, range: number, gfp: Gfp): Routine<boolean> {
    for (const _ of pt.pagesFor(addr, range)) {
      const mem = yield* this.ledger.alloc(this.sim, 4096, gfp, 'prealloc page-table page');
      if (!mem) return false;
      this.ptPages.push(mem);
    }
    return true;
  }

  /** Takes a pre-allocated va; running out is a model assertion (the worst case was wrong). */
  takeVa(): GpuVa {
    const va = this.vas.shift();
    if (!va)
      return this.sim.fail('assertion', 'VM_BIND pre-allocation exhausted: no va left for a split piece');
    this.consumedVas++;
    return va;
  }

  /** Takes a pre-allocated page-table page, or null. */
  takePtPage = (): KBuf | null => {
    const p = this.ptPages.shift() ?? null;
    if (p) this.consumedPtPages++;
    return p;
  };

  /** Returns (frees) everything not consumed. */
  *release(): Routine {
    for (const va of this.vas.splice(0)) {
      const mem = this.vaMem.get(va);
      this.vaMem.delete(va);
      yield* this.ledger.free(mem, 'unused prealloc va');
    }
    for (const p of this.ptPages.splice(0)) yield* this.ledger.free(p, 'unused prealloc page-table page');
  }
}
