/**
 * A device page table, as small as the VM_BIND model needs: one entry per VA unit (what the GPU
 * would reach) and page-table pages that cover `entriesPerPage` units each. Page-table pages must
 * come from memory pre-allocated before the job's fence was published; writing needs no
 * allocation, so it is legal in `run_job`.
 */
import { Access, type KBuf, Op, type Routine, type Sim, SimObject } from '@hmmkit/sim';
import type { GemObject } from '../gem.js';

/** One device PTE: the backing object (null: a sparse/NULL mapping) and its offset. */
export interface Pte {
  obj: GemObject | null;
  offset: number;
}

interface MapArg {
  addr: number;
  range: number;
  obj: GemObject | null;
  offset: number;
  takePage: () => KBuf | null;
}

export class DevicePageTable extends SimObject {
  /** Entries by VA unit. */
  readonly entries = new Map<number, Pte>();
  /** Page-table pages by page index (`unit / entriesPerPage`), with the memory backing them (null: set up before any thread ran). */
  readonly pages = new Map<number, KBuf | null>();
  /** Writes performed, in order (`map [a,e)` / `unmap [a,e)`), for tests. */
  readonly log: string[] = [];

  constructor(
    sim: Sim,
    name: string,
    readonly entriesPerPage = 4,
  ) {
    super(sim, name);
  }

  /** Page indexes covering `[addr, addr + range)`. */
  pagesFor(addr: number, range: number): number[] {
    if (range <= 0) return [];
    const out: number[] = [];
    for (
      let p = Math.floor(addr / this.entriesPerPage);
      p <= Math.floor((addr + range - 1) / this.entriesPerPage);
      p++
    )
      out.push(p);
    return out;
  }

  /**
   * Writes PTEs for `[addr, addr + range)`; a missing page-table page is taken from `takePage`
   * (pre-allocated memory). Running out is reported as a model assertion: the pre-allocation was
   * not the worst case.
   */
  *map(
    addr: number,
    range: number,
    obj: GemObject | null,
    offset: number,
    takePage: () => KBuf | null,
    label?: string,
  ): Routine {
    yield new Op(
      'pt_map',
      this,
      Access.Write,
      0,
      { addr, range, obj, offset, takePage } satisfies MapArg,
      label,
    );
  }

  /** Clears PTEs for `[addr, addr + range)` (page-table pages are kept until teardown). */
  *unmap(addr: number, range: number, label?: string): Routine {
    yield new Op('pt_unmap', this, Access.Write, 0, { addr, range }, label);
  }

  /** Setup helper: writes PTEs (and pages) directly, before any thread runs. */
  mapNow(addr: number, range: number, obj: GemObject | null, offset: number): void {
    for (const p of this.pagesFor(addr, range)) if (!this.pages.has(p)) this.pages.set(p, null);
    for (let i = 0; i < range; i++) this.entries.set(addr + i, { obj, offset: offset + i });
  }

  override exec(op: Op): unknown {
    if (op.kind === 'pt_map') {
      const a = op.arg as MapArg;
      for (const p of this.pagesFor(a.addr, a.range)) {
        if (this.pages.has(p)) continue;
        const mem = a.takePage();
        if (!mem)
          this.sim.fail('assertion', `${this.name}: no pre-allocated page-table page left for page ${p}`);
        this.pages.set(p, mem);
      }
      for (let i = 0; i < a.range; i++) this.entries.set(a.addr + i, { obj: a.obj, offset: a.offset + i });
      this.log.push(`map [${a.addr},${a.addr + a.range})->${a.obj?.name ?? '-'}@${a.offset}`);
      return undefined;
    }
    const { addr, range } = op.arg as { addr: number; range: number };
    for (let i = 0; i < range; i++) this.entries.delete(addr + i);
    this.log.push(`unmap [${addr},${addr + range})`);
    return undefined;
  }

  override describe(op: Op): string {
    const a = op.arg as { addr: number; range: number; obj?: GemObject | null; offset?: number };
    const what = op.kind === 'pt_map' ? ` -> ${a.obj?.name ?? '-'}@${a.offset}` : '';
    return `${op.kind}(${this.name}, [${a.addr},${a.addr + a.range})${what})`;
  }
}
