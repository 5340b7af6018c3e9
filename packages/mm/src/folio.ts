/**
 * Physical memory as the kernel sees it: folios (struct folio / struct page) with content,
 * reference and map counts, a sleeping folio lock, an order and a zone; ZONE_DEVICE page maps.
 *
 * A `Folio` object stands for one allocation: when its last reference is dropped the pfns go back
 * to the pool and the object is dead for good (a later allocation of the same pfns gets a new
 * object and a new generation). Devices hold physical frames as {@link FrameRef}s, so a checker
 * can tell a frame that was freed (and maybe reused) from the one the device was given.
 */
import { Access, Op, OpFlag, type Routine, type Sim, SimObject, type Thread } from '@hmmkit/sim';
import { hex } from './constants.js';
import type { File } from './file.js';
import type { AnonVma } from './vma.js';

/** What a page holds: one observable value per 4 KiB page (0 for a zeroed page). */
export type PageValue = number | string;

/** `enum zone_type` as far as the model needs it (ZONE_DEVICE split by `memory_type`). */
export type ZoneType = 'normal' | 'device-private' | 'device-coherent';

/** `MEMORY_DEVICE_PRIVATE` / `MEMORY_DEVICE_COHERENT`. */
export type PgmapType = 'device-private' | 'device-coherent';

/**
 * `struct dev_pagemap_ops`. Routines run in the faulting CPU thread, with the mmap_lock held for
 * read, the device folio locked and referenced.
 */
export interface PgmapOps {
  /** `migrate_to_ram(vmf)`: CPU fault on a device-private entry; returns a `VM_FAULT_*` code. */
  migrateToRam?(vmf: import('./fault.js').VmFault): Routine<number>;
  /** `page_free(page)`: the device folio's refcount dropped to zero. Must not yield. */
  pageFree?(folio: Folio): void;
}

/** `struct dev_pagemap`: a range of device pfns owned by one driver (`owner` cookie). */
export class Pgmap {
  constructor(
    readonly type: PgmapType,
    /** `pgmap->owner`: opaque cookie identifying the owning driver/device. */
    readonly owner: unknown,
    readonly ops: PgmapOps,
    readonly pfnStart: number,
    readonly nrPages: number,
    readonly name: string,
  ) {}

  /** Whether `pfn` belongs to this page map. */
  contains(pfn: number): boolean {
    return pfn >= this.pfnStart && pfn < this.pfnStart + this.nrPages;
  }
}

/**
 * A physical frame as a device holds it: the pfn and the generation of that pfn's allocation.
 * `PhysMem.resolve(ref)` returns null once the frame was freed (and possibly reused).
 */
export interface FrameRef {
  readonly pfn: number;
  readonly gen: number;
}

/** Per-folio state (fields read by checkers; threads change them only through folio operations). */
export class Folio extends SimObject {
  /** Number of pages: `1 << order`. */
  readonly nr: number;
  /** `folio_ref_count()`. The allocation's reference is the first. */
  refcount = 1;
  /** Per-page PTE mapcount (PTE-level mappings, device-private and device-exclusive entries). */
  readonly mapcount: number[];
  /** `_entire_mapcount`: PMD-level mappings of a PMD-sized folio. */
  entireMapcount = 0;
  /** PG_locked. */
  locked = false;
  /** The thread that locked it (for traces; any thread may unlock, as in the kernel). */
  lockedBy: Thread | null = null;
  /** `folio_test_anon()`. */
  anon = false;
  /** `folio_anon_vma()` for anonymous folios. */
  anonVma: AnonVma | null = null;
  /** `folio->mapping` for page-cache folios. */
  mapping: File | null = null;
  /** `folio->index`: linear page index (anon) or file page offset (page cache). */
  index = 0;
  /** Per-page `PageAnonExclusive`. */
  readonly anonExclusive: boolean[];
  /** PG_dirty. */
  dirty = false;
  /** Swap slot of the first page while in the swap cache (`folio_test_swapcache`), else null. */
  swapSlot: number | null = null;
  /** MADV_FREE'd clean anonymous folio (`!folio_test_swapbacked`). */
  lazyfree = false;
  /** Long-term pins (`folio_maybe_dma_pinned`); each also holds a reference. */
  pincount = 0;
  /** Page contents. */
  readonly data: PageValue[];
  /** Set when the folio was freed back to the pool (refcount reached zero). */
  dead = false;
  /** Transient: the shared zero page (never freed, never refcounted by mappings). */
  readonly zero: boolean;

  constructor(
    sim: Sim,
    /** Pfn of the first page. */
    readonly pfn: number,
    readonly order: number,
    readonly zone: ZoneType,
    readonly pgmap: Pgmap | null,
    /** Generation of the pfns when this folio was allocated. */
    readonly gen: number,
    options: { zero?: boolean; name?: string } = {},
  ) {
    super(sim, options.name ?? `folio ${hex(pfn)}${order ? `/o${order}` : ''}#${gen}`);
    this.nr = 1 << order;
    this.mapcount = new Array<number>(this.nr).fill(0);
    this.anonExclusive = new Array<boolean>(this.nr).fill(false);
    this.data = new Array<PageValue>(this.nr).fill(0);
    this.zero = options.zero ?? false;
  }

  /** `folio_test_large()`. */
  get large(): boolean {
    return this.order > 0;
  }

  /** `folio_mapcount()`: PMD mappings count once, PTE mappings once per page. */
  get totalMapcount(): number {
    let n = this.entireMapcount;
    for (const m of this.mapcount) n += m;
    return n;
  }

  /** `folio_mapped()`. */
  get mapped(): boolean {
    return this.totalMapcount > 0;
  }

  /** Whether `pfn` is one of this folio's pages. */
  containsPfn(pfn: number): boolean {
    return pfn >= this.pfn && pfn < this.pfn + this.nr;
  }

  /** `folio_get()`: raising a dead count is a use-after-free. */
  *get(label?: string): Routine {
    yield new Op('folio_get', this, Access.Write, 0, undefined, label);
  }

  /** `folio_ref_add()`. */
  *refAdd(n: number, label?: string): Routine {
    yield new Op('folio_ref_add', this, Access.Write, 0, n, label);
  }

  /** `folio_try_get()`: fails once the count reached zero. */
  *tryGet(label?: string): Routine<boolean> {
    return (yield new Op('folio_try_get', this, Access.Write, 0, undefined, label)) as boolean;
  }

  /**
   * Drops one reference; true when it was the last (the caller must then free the folio, see
   * `folioPut`).
   */
  *putTestZero(label?: string): Routine<boolean> {
    return (yield new Op('folio_put_testzero', this, Access.Write, 0, undefined, label)) as boolean;
  }

  /** `folio_lock()`: sleeps while another holder has it locked. */
  *lock(label?: string): Routine {
    yield new Op('folio_lock', this, Access.Acquire, OpFlag.MightSleep, undefined, label);
  }

  /** `folio_trylock()`. */
  *trylock(label?: string): Routine<boolean> {
    return (yield new Op('folio_trylock', this, Access.Write, 0, undefined, label)) as boolean;
  }

  /** `folio_unlock()`. */
  *unlock(label?: string): Routine {
    yield new Op('folio_unlock', this, Access.Release, 0, undefined, label);
  }

  /** `folio_wait_locked()` (and `migration_entry_wait_on_locked()`): sleeps until unlocked. */
  *waitUnlocked(label?: string): Routine {
    yield new Op('folio_wait_locked', this, Access.Read, OpFlag.MightSleep, undefined, label);
  }

  /**
   * An atomic update of the folio's metadata or content (rmap, flags, refcount arithmetic): `fn`
   * runs in the step and its result is returned. `kind` names the kernel helper in traces.
   */
  *update<R>(kind: string, fn: (f: Folio) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Write, 0, fn, label)) as R;
  }

  /** A read of the folio's metadata or content in one step. */
  *inspect<R>(kind: string, fn: (f: Folio) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Read, 0, fn, label)) as R;
  }

  override enabled(op: Op): boolean {
    if (op.kind === 'folio_lock') return !this.locked;
    // A folio that died while locked (pfns handed to split parts) wakes its waiters.
    if (op.kind === 'folio_wait_locked') return !this.locked || this.dead;
    return true;
  }

  override exec(op: Op, t: Thread): unknown {
    switch (op.kind) {
      case 'folio_get':
        this.checkLive(op);
        if (this.refcount <= 0) this.sim.fail('refcount', `folio_get(${this.name}) on a zero refcount`);
        this.refcount++;
        return undefined;
      case 'folio_ref_add':
        this.checkLive(op);
        if (this.refcount <= 0) this.sim.fail('refcount', `folio_ref_add(${this.name}) on a zero refcount`);
        this.refcount += op.arg as number;
        return undefined;
      case 'folio_try_get':
        if (this.dead || this.refcount <= 0) return false;
        this.refcount++;
        return true;
      case 'folio_put_testzero':
        this.checkLive(op);
        if (this.refcount <= 0) this.sim.fail('refcount', `folio_put(${this.name}): refcount underflow`);
        this.refcount--;
        return this.refcount === 0;
      case 'folio_lock':
        this.checkLive(op);
        this.locked = true;
        this.lockedBy = t;
        return undefined;
      case 'folio_trylock':
        this.checkLive(op);
        if (this.locked) return false;
        this.locked = true;
        this.lockedBy = t;
        return true;
      case 'folio_unlock':
        if (!this.locked)
          this.sim.fail('bad-unlock', `${t.name}: folio_unlock(${this.name}) of an unlocked folio`);
        this.locked = false;
        this.lockedBy = null;
        return undefined;
      case 'folio_wait_locked':
        return undefined;
      default:
        if (op.access === Access.Write) this.checkLive(op);
        return (op.arg as (f: Folio) => unknown)(this);
    }
  }

  private checkLive(op: Op): void {
    if (this.dead) {
      this.sim.fail('use-after-free', `${op.kind}(${this.name}) on a freed folio`, { objects: [this.name] });
    }
  }

  override waitReason(op: Op): string {
    return `${op.describe()}, locked by ${this.lockedBy?.name ?? 'nobody'}`;
  }
}
