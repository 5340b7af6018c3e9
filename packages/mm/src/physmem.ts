/**
 * The physical frame pool (the buddy allocator, as far as the model needs it): a normal zone of
 * `memoryPages` frames, the shared zero page, and ZONE_DEVICE ranges added by drivers.
 *
 * Allocation is first-fit over naturally aligned blocks, so runs are deterministic. Each pfn has a
 * generation counter bumped when its folio is freed: a {@link FrameRef} taken before the free no
 * longer resolves.
 */
import {
  Access,
  LockMaps,
  lockMap,
  Op,
  OpFlag,
  type Routine,
  type Sim,
  SimObject,
  type Thread,
} from '@hmmkit/sim';
import { HPAGE_PMD_NR } from './constants.js';
import {
  Folio,
  type FrameRef,
  type PageValue,
  Pgmap,
  type PgmapOps,
  type PgmapType,
  type ZoneType,
} from './folio.js';

/** Pfn of the shared zero page (`my_zero_pfn`). */
export const ZERO_PFN = 0;
/** First pfn of the normal zone (2 MiB aligned, so order-9 blocks are naturally aligned). */
export const NORMAL_PFN_BASE = 0x1000;

interface AllocArg {
  order: number;
  pgmap: Pgmap | null;
  /** GFP_KERNEL-like allocations may sleep and enter reclaim (fs_reclaim). */
  mayReclaim: boolean;
}

/** Counters for tests and benchmarks. */
export interface PhysMemStats {
  /** Normal-zone pages. */
  total: number;
  free: number;
  /** Live folios (all zones, zero page excluded). */
  liveFolios: number;
  allocations: number;
  frees: number;
}

/** The most recently created pools, newest last (see {@link currentPhysMem}). */
const recentMems: PhysMem[] = [];
const RECENT_MEMS = 16;

/**
 * The pool of the simulation whose thread is running now, or null: the model's `pfn_to_page()`
 * for the kernel interfaces that take bare pfns (`migrate_device_range()`). Only one simulation
 * runs a step at a time, and a pool belongs to one simulation, so this is the pool whose sim has a
 * current thread. Setup code (no thread) must pass the pool explicitly.
 */
export function currentPhysMem(): PhysMem | null {
  for (let i = recentMems.length - 1; i >= 0; i--) {
    const m = recentMems[i]!;
    if (m.sim.current) return m;
  }
  return null;
}

export class PhysMem extends SimObject {
  /** Per pfn (normal zone and device ranges): the folio covering it and the pfn's generation. */
  private readonly owner = new Map<number, Folio>();
  private readonly gens = new Map<number, number>();
  /** Free flags of the normal zone, indexed by pfn - NORMAL_PFN_BASE. */
  private readonly freeNormal: boolean[];
  private freeCount: number;
  private readonly pgmaps: Pgmap[] = [];
  private readonly freeDevice = new Map<Pgmap, boolean[]>();
  private nextDevicePfn: number;
  private allocations = 0;
  private frees = 0;
  /** The shared zero page. */
  readonly zeroFolio: Folio;
  /** Contents of pfns that belong to no folio (I/O memory mapped by remap_pfn_range). */
  readonly ioData = new Map<number, PageValue>();
  /** @internal The machine this pool belongs to (set by `System`). */
  system: import('./system.js').System | null = null;

  constructor(
    sim: Sim,
    /** Size of the normal zone in pages. */
    readonly memoryPages: number,
  ) {
    super(sim, 'physmem');
    this.freeNormal = new Array<boolean>(memoryPages).fill(true);
    this.freeCount = memoryPages;
    this.nextDevicePfn =
      NORMAL_PFN_BASE + Math.ceil(memoryPages / HPAGE_PMD_NR) * HPAGE_PMD_NR + HPAGE_PMD_NR;
    this.zeroFolio = new Folio(sim, ZERO_PFN, 0, 'normal', null, 0, { zero: true, name: 'zero_page' });
    this.zeroFolio.refcount = 1;
    recentMems.push(this);
    if (recentMems.length > RECENT_MEMS) recentMems.shift();
  }

  /** `is_zero_pfn()`. */
  isZeroPfn(pfn: number): boolean {
    return pfn === ZERO_PFN;
  }

  /**
   * Registers a ZONE_DEVICE range (`devm_memremap_pages`). Setup-time; returns the page map whose
   * pfns `allocDevice` hands out.
   */
  addPgmap(
    type: PgmapType,
    owner: unknown,
    nrPages: number,
    ops: PgmapOps = {},
    name = `pgmap${this.pgmaps.length}`,
  ): Pgmap {
    const start = this.nextDevicePfn;
    this.nextDevicePfn += Math.ceil(nrPages / HPAGE_PMD_NR) * HPAGE_PMD_NR + HPAGE_PMD_NR;
    const pgmap = new Pgmap(type, owner, ops, start, nrPages, name);
    this.pgmaps.push(pgmap);
    this.freeDevice.set(pgmap, new Array<boolean>(nrPages).fill(true));
    return pgmap;
  }

  /** The page map covering `pfn`, if it is device memory. */
  pgmapOf(pfn: number): Pgmap | null {
    for (const p of this.pgmaps) if (p.contains(pfn)) return p;
    return null;
  }

  /**
   * `folio_alloc()` / `alloc_pages(GFP_HIGHUSER_MOVABLE, order)`: a zero-filled folio with one
   * reference, or null (out of memory, or an injected failure when the sim has `allocFailures`).
   */
  *alloc(order = 0, label?: string): Routine<Folio | null> {
    const arg: AllocArg = { order, pgmap: null, mayReclaim: true };
    return (yield new Op(
      'alloc_pages',
      this,
      Access.Write,
      OpFlag.MightSleep | OpFlag.AllocKernel,
      arg,
      label,
    )) as Folio | null;
  }

  /** Allocates a device folio from `pgmap` (the driver's own allocator; never sleeps). */
  *allocDevice(pgmap: Pgmap, order = 0, label?: string): Routine<Folio | null> {
    const arg: AllocArg = { order, pgmap, mayReclaim: false };
    return (yield new Op('alloc_device_page', this, Access.Write, 0, arg, label)) as Folio | null;
  }

  /** Frees a folio whose refcount reached zero (`__folio_put` → `free_unref_page`). */
  *free(folio: Folio, label?: string): Routine {
    yield new Op('free_folio', this, Access.Write, 0, folio, label);
  }

  /** One atomic step on the allocator's state (`fn` runs in the step; its result is returned). */
  *update<R>(kind: string, fn: (mem: PhysMem) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Write, 0, fn, label)) as R;
  }

  /** Setup-time allocation (no thread): for building initial states in tests. */
  allocNow(order = 0, pgmap: Pgmap | null = null): Folio | null {
    return this.doAlloc({ order, pgmap, mayReclaim: false });
  }

  /** The live folio covering `pfn` (head folio), or null for a free or unknown pfn. */
  folioAt(pfn: number): Folio | null {
    if (pfn === ZERO_PFN) return this.zeroFolio;
    return this.owner.get(pfn) ?? null;
  }

  /** Current generation of `pfn` (bumped at every free). */
  genOf(pfn: number): number {
    return this.gens.get(pfn) ?? 0;
  }

  /** A device-holdable reference to page `i` of `folio`. */
  frameRef(folio: Folio, i = 0): FrameRef {
    return { pfn: folio.pfn + i, gen: folio.gen };
  }

  /** The folio and page index a frame reference still designates, or null if it was freed. */
  resolve(ref: FrameRef): { folio: Folio; index: number } | null {
    const folio = this.folioAt(ref.pfn);
    if (!folio || folio.dead || folio.gen !== ref.gen) return null;
    return { folio, index: ref.pfn - folio.pfn };
  }

  /** Every live folio (zero page excluded), in pfn order. */
  liveFolios(): Folio[] {
    const seen = new Set<Folio>();
    const out: Folio[] = [];
    for (const f of this.owner.values()) {
      if (!seen.has(f)) {
        seen.add(f);
        out.push(f);
      }
    }
    return out.sort((a, b) => a.pfn - b.pfn);
  }

  stats(): PhysMemStats {
    return {
      total: this.memoryPages,
      free: this.freeCount,
      liveFolios: this.liveFolios().length,
      allocations: this.allocations,
      frees: this.frees,
    };
  }

  override exec(op: Op, t: Thread): unknown {
    if (typeof op.arg === 'function') return (op.arg as (m: PhysMem) => unknown)(this);
    if (op.kind === 'free_folio') {
      this.doFree(op.arg as Folio);
      return undefined;
    }
    const arg = op.arg as AllocArg;
    if (arg.mayReclaim) lockMap(this.sim, LockMaps.fsReclaim).touchNow(t);
    if (this.sim.mayFailAlloc() && this.sim.decide(2, `fail ${op.label ?? op.kind}`) === 1) {
      this.sim.spendAllocFailure();
      return null;
    }
    return this.doAlloc(arg);
  }

  override describe(op: Op): string {
    if (typeof op.arg === 'function') return `${op.kind}(${this.name})`;
    if (op.kind === 'free_folio') return `free_folio(${(op.arg as Folio).name})`;
    const arg = op.arg as AllocArg;
    return arg.pgmap
      ? `alloc_device_page(${arg.pgmap.name}, order ${arg.order})`
      : `alloc_pages(order ${arg.order})`;
  }

  private doAlloc(arg: AllocArg): Folio | null {
    const nr = 1 << arg.order;
    const free = arg.pgmap ? this.freeDevice.get(arg.pgmap)! : this.freeNormal;
    const base = arg.pgmap ? arg.pgmap.pfnStart : NORMAL_PFN_BASE;
    for (let i = 0; i + nr <= free.length; i += nr) {
      let ok = true;
      for (let j = 0; j < nr; j++) {
        if (!free[i + j]) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      for (let j = 0; j < nr; j++) free[i + j] = false;
      const pfn = base + i;
      const zone: ZoneType = arg.pgmap ? arg.pgmap.type : 'normal';
      const folio = new Folio(this.sim, pfn, arg.order, zone, arg.pgmap, this.genOf(pfn));
      for (let j = 0; j < nr; j++) this.owner.set(pfn + j, folio);
      if (!arg.pgmap) this.freeCount -= nr;
      this.allocations++;
      return folio;
    }
    return null;
  }

  private doFree(folio: Folio): void {
    if (folio.zero) this.sim.fail('bad-page', 'freeing the zero page');
    if (folio.dead)
      this.sim.fail('use-after-free', `double free of ${folio.name}`, { objects: [folio.name] });
    if (folio.refcount !== 0)
      this.sim.fail('bad-page', `freeing ${folio.name} with refcount ${folio.refcount}`);
    if (folio.mapped || folio.swapSlot !== null || folio.mapping !== null || folio.locked) {
      this.sim.fail(
        'bad-page',
        `BUG: Bad page state: ${folio.name} freed while ${folio.mapped ? 'mapped' : folio.locked ? 'locked' : 'in a cache'}`,
        { objects: [folio.name] },
      );
    }
    folio.dead = true;
    const free = folio.pgmap ? this.freeDevice.get(folio.pgmap)! : this.freeNormal;
    const base = folio.pgmap ? folio.pgmap.pfnStart : NORMAL_PFN_BASE;
    for (let j = 0; j < folio.nr; j++) {
      const pfn = folio.pfn + j;
      this.owner.delete(pfn);
      this.gens.set(pfn, this.genOf(pfn) + 1);
      free[pfn - base] = true;
    }
    if (!folio.pgmap) this.freeCount += folio.nr;
    this.frees++;
    folio.pgmap?.ops.pageFree?.(folio);
  }

  /**
   * @internal Hands the pfns of a large folio to new folios (split): `parts` must cover exactly the
   * same pfns. The old folio becomes dead without its pfns being freed.
   */
  transferPfns(old: Folio, parts: Folio[]): void {
    old.dead = true;
    for (const p of parts) for (let j = 0; j < p.nr; j++) this.owner.set(p.pfn + j, p);
  }

  /** @internal Creates the folio object for a split part (same generation as the pfn). */
  newFolioForSplit(pfn: number, order: number, zone: ZoneType, pgmap: Pgmap | null): Folio {
    return new Folio(this.sim, pfn, order, zone, pgmap, this.genOf(pfn));
  }
}

/** `folio_put()`: drops a reference and frees the folio when it was the last. */
export function* folioPut(mem: PhysMem, folio: Folio, label?: string): Routine {
  if (folio.zero) return;
  const last = yield* folio.putTestZero(label);
  if (last) yield* mem.free(folio, label);
}
