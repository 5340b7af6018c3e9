/**
 * Page tables: a PMD level (one entry per 2 MiB, each none, a PTE table, or a huge leaf) and PTE
 * tables of 512 entries with their own page-table lock (split PTL). Every entry is a sim object,
 * so the explorer sees which entry a step reads or writes; entries are created on first use.
 *
 * Page-table pages are never freed before the mm is torn down (`free_pgtables` is not modelled),
 * so a thread that saw a PTE table may keep using it.
 */
import {
  Access,
  Ctx,
  ExclusiveLock,
  type LockOptions,
  Op,
  type Routine,
  type Sim,
  SimObject,
  type Thread,
} from '@hmmkit/sim';
import { alignDown, hex, PAGE_SIZE, PMD_SIZE, PTRS_PER_PTE } from './constants.js';
import { mmObservers } from './events.js';
import type { Mm } from './mm.js';

/** A present PTE: `pte_present()`. */
export interface PresentPte {
  readonly kind: 'present';
  readonly pfn: number;
  readonly write: boolean;
  readonly dirty: boolean;
  readonly young: boolean;
  /** Maps the shared zero page (special: no refcount, no rmap). */
  readonly zero?: boolean;
  /** `pte_special()`: a raw pfn mapping (VM_PFNMAP/VM_MIXEDMAP), no struct page accounting. */
  readonly special?: boolean;
  /** `pte_protnone()`: present for core mm but inaccessible to the CPU (PROT_NONE). */
  readonly protnone?: boolean;
}

/** A genuine swap entry. */
export interface SwapPte {
  readonly kind: 'swap';
  readonly slot: number;
  /** `pte_swp_exclusive()`: the swapped-out page was PageAnonExclusive. */
  readonly exclusive: boolean;
}

/** A migration entry (readable or writable). */
export interface MigrationPte {
  readonly kind: 'migration';
  readonly pfn: number;
  readonly write: boolean;
  readonly young: boolean;
  readonly dirty: boolean;
}

/** A device-private entry (`SWP_DEVICE_READ`/`SWP_DEVICE_WRITE`). */
export interface DevicePrivatePte {
  readonly kind: 'device-private';
  readonly pfn: number;
  readonly write: boolean;
}

/**
 * A device-exclusive entry: `SWP_DEVICE_EXCLUSIVE` (v6.15+ single type), which keeps the folio's
 * mapcount and reference, or with `old` set an entry of the v5.14–v6.14 API
 * (`SWP_DEVICE_EXCLUSIVE_READ`/`_WRITE`, made by `makeDeviceExclusiveRange`), which keeps the
 * reference but not the mapcount.
 */
export interface DeviceExclusivePte {
  readonly kind: 'device-exclusive';
  readonly pfn: number;
  /** Cookie of the driver that made the entry (`make_device_exclusive(..., owner)`). */
  readonly owner: unknown;
  /** Present only on old-API (v5.14–v6.14) entries: the write bit of the replaced PTE. */
  readonly old?: { readonly write: boolean };
}

export interface NonePte {
  readonly kind: 'none';
}

/** A page-table entry, as a tagged union of the kinds core mm distinguishes. */
export type Pte = NonePte | PresentPte | SwapPte | MigrationPte | DevicePrivatePte | DeviceExclusivePte;

/** `pte_none()`. */
export const PTE_NONE: NonePte = Object.freeze({ kind: 'none' });

/** A PMD entry: none, a PTE table, or a PMD-sized leaf mapping a THP. */
export type Pmd =
  | { readonly kind: 'none' }
  | { readonly kind: 'table'; readonly table: PteTable }
  | {
      readonly kind: 'huge';
      readonly pfn: number;
      readonly write: boolean;
      readonly dirty: boolean;
      readonly young: boolean;
      readonly protnone?: boolean;
    };

export type HugePmd = Extract<Pmd, { kind: 'huge' }>;

export const PMD_NONE: Pmd = Object.freeze({ kind: 'none' });

/** The pfn an entry refers to (present, migration, device-private, device-exclusive), else null. */
export function ptePfn(p: Pte): number | null {
  switch (p.kind) {
    case 'present':
    case 'migration':
    case 'device-private':
    case 'device-exclusive':
      return p.pfn;
    default:
      return null;
  }
}

/**
 * `pte_same()`. The accessed and dirty bits are ignored: the CPU sets them at any time without
 * the PTL, and no fault path depends on them.
 */
export function pteSame(a: Pte, b: Pte): boolean {
  if (a === b) return true;
  switch (a.kind) {
    case 'none':
      return b.kind === 'none';
    case 'present':
      return (
        b.kind === 'present' &&
        a.pfn === b.pfn &&
        a.write === b.write &&
        !!a.zero === !!b.zero &&
        !!a.special === !!b.special &&
        !!a.protnone === !!b.protnone
      );
    case 'swap':
      return b.kind === 'swap' && a.slot === b.slot && a.exclusive === b.exclusive;
    case 'migration':
      return b.kind === 'migration' && a.pfn === b.pfn && a.write === b.write;
    case 'device-private':
      return b.kind === 'device-private' && a.pfn === b.pfn && a.write === b.write;
    case 'device-exclusive':
      return (
        b.kind === 'device-exclusive' &&
        a.pfn === b.pfn &&
        a.owner === b.owner &&
        !!a.old === !!b.old &&
        a.old?.write === b.old?.write
      );
  }
}

/** `pmd_same()` for huge entries and tables. */
export function pmdSame(a: Pmd, b: Pmd): boolean {
  if (a === b) return true;
  if (a.kind === 'huge' && b.kind === 'huge') {
    return a.pfn === b.pfn && a.write === b.write && a.dirty === b.dirty && !!a.protnone === !!b.protnone;
  }
  if (a.kind === 'table' && b.kind === 'table') return a.table === b.table;
  return a.kind === 'none' && b.kind === 'none';
}

/**
 * Whether the entry counts as a mapping of its folio (mapcount and a reference). Old-API
 * device-exclusive entries hold only the reference.
 */
export function pteMapsFolio(p: Pte): boolean {
  return (
    (p.kind === 'present' && !p.zero && !p.special) ||
    p.kind === 'device-private' ||
    (p.kind === 'device-exclusive' && !p.old)
  );
}

/** Trace text of an entry. */
export function pteText(p: Pte | Pmd): string {
  switch (p.kind) {
    case 'none':
      return 'none';
    case 'table':
      return 'table';
    case 'huge':
      return `huge(${hex(p.pfn)}${p.write ? ',W' : ''}${p.protnone ? ',NONE' : ''})`;
    case 'present':
      return `present(${p.zero ? 'zero' : hex(p.pfn)}${p.write ? ',W' : ''}${p.dirty ? ',D' : ''}${p.protnone ? ',NONE' : ''})`;
    case 'swap':
      return `swap(${p.slot}${p.exclusive ? ',excl' : ''})`;
    case 'migration':
      return `migration(${hex(p.pfn)}${p.write ? ',W' : ''})`;
    case 'device-private':
      return `device-private(${hex(p.pfn)}${p.write ? ',W' : ''})`;
    case 'device-exclusive':
      return `device-exclusive(${hex(p.pfn)}${p.old ? `,old${p.old.write ? ',W' : ''}` : ''})`;
  }
}

/**
 * A page-table spinlock (`ptlock`, `mm->page_table_lock`): a spinlock with lockdep nesting
 * (`spin_lock_nested`), needed where the kernel holds two of one class (fork, mremap).
 */
export class PageTableLock extends ExclusiveLock {
  constructor(sim: Sim, name: string, options: LockOptions = {}) {
    super(sim, name, options);
  }

  /** `spin_lock()`. */
  *lock(label?: string): Routine {
    yield new Op('spin_lock', this, Access.Acquire, 0, 0, label);
  }

  /** `spin_lock_nested(lock, subclass)`. */
  *lockNested(subclass: number, label?: string): Routine {
    yield new Op('spin_lock_nested', this, Access.Acquire, 0, subclass, label);
  }

  /** `spin_unlock()`. */
  *unlock(label?: string): Routine {
    yield new Op('spin_unlock', this, Access.Release, 0, 0, label);
  }

  /**
   * A lockless read of several entries of this table in one step (`pte_offset_map()` followed by a
   * `ptep_get()` per entry, as `hmm_vma_walk_pmd()` does), returning `read()`'s result. The kernel
   * takes no lock; the model runs the read at a moment when nobody holds the PTL, and announces
   * the step on the PTL with `Acquire` access. Every writer of an entry of this table holds its
   * PTL, so ordering this step against the writers' lock and unlock steps orders it against
   * their entry writes: the footprint is honest, at the price of one step per table instead of
   * one per entry. What it leaves out: a reader that sees one writer's critical section half done
   * (every such change is inside an invalidation window, which the caller's sequence check sees).
   * No lock is taken (no lockdep, no atomic context).
   */
  *snapshot<R>(read: () => R, label?: string): Routine<R> {
    return (yield new Op('pte_offset_map', this, Access.Acquire, 0, read, label)) as R;
  }

  override enabled(op: Op, t: Thread): boolean {
    if (op.access === Access.Acquire) return this.owner === null || this.owner === t;
    return true;
  }

  override exec(op: Op, t: Thread): unknown {
    if (op.kind === 'pte_offset_map') return (op.arg as () => unknown)();
    if (op.kind === 'spin_unlock') {
      this.drop(t, op.kind);
      t.ctx[Ctx.Atomic]!--;
      return undefined;
    }
    this.checkSelf(t, op.kind);
    this.take(t, op.arg as number);
    t.ctx[Ctx.Atomic]!++;
    return undefined;
  }
}

/** One PTE. */
export class PteSlot extends SimObject {
  entry: Pte = PTE_NONE;

  constructor(
    sim: Sim,
    readonly table: PteTable,
    /** User virtual address this entry translates. */
    readonly addr: number,
  ) {
    super(sim, `${table.mm.name} pte@${hex(addr)}`);
  }

  /** `ptep_get()` (lockless or under the PTL). */
  *get(label?: string): Routine<Pte> {
    return (yield new Op('ptep_get', this, Access.Read, 0, undefined, label)) as Pte;
  }

  /** `set_pte_at()`. */
  *set(pte: Pte, label?: string): Routine {
    yield new Op('set_pte_at', this, Access.Write, 0, pte, label);
  }

  /** `ptep_get_and_clear()` / `ptep_clear_flush()`: returns the old entry. */
  *getAndClear(label?: string): Routine<Pte> {
    return (yield new Op('ptep_get_and_clear', this, Access.Write, 0, undefined, label)) as Pte;
  }

  /**
   * A read-modify-write of the entry in one step (`ptep_modify_prot_*`, `ptep_set_wrprotect`,
   * `ptep_set_access_flags`): `fn` returns the new entry, or null to leave it. Returns the old one.
   */
  *modify(fn: (old: Pte) => Pte | null, label?: string): Routine<Pte> {
    return (yield new Op('ptep_modify', this, Access.Write, 0, fn, label)) as Pte;
  }

  /** @internal Stores `next` and tells the observers (all writes go through here). */
  store(next: Pte, t: Thread | null): void {
    const old = this.entry;
    this.entry = next;
    mmObservers(this.sim).pteChanged({
      mm: this.table.mm,
      addr: this.addr,
      level: 'pte',
      old,
      new: next,
      thread: t,
    });
  }

  override exec(op: Op, t: Thread): unknown {
    const old = this.entry;
    switch (op.kind) {
      case 'ptep_get':
        return old;
      case 'set_pte_at':
        this.store(op.arg as Pte, t);
        return undefined;
      case 'ptep_get_and_clear':
        if (old.kind !== 'none') this.store(PTE_NONE, t);
        return old;
      default: {
        const next = (op.arg as (o: Pte) => Pte | null)(old);
        if (next !== null) this.store(next, t);
        return old;
      }
    }
  }

  override describe(op: Op): string {
    if (op.kind === 'set_pte_at') return `set_pte_at(${this.name}, ${pteText(op.arg as Pte)})`;
    return `${op.kind}(${this.name})`;
  }
}

/** A PTE table (one page-table page): 512 entries and their split PTL. */
export class PteTable {
  /** The page-table lock of this table (`pte_lockptr`). */
  readonly ptl: PageTableLock;
  private readonly slots: (PteSlot | undefined)[] = new Array(PTRS_PER_PTE);

  constructor(
    readonly sim: Sim,
    readonly mm: Mm,
    /** Address translated by entry 0 (2 MiB aligned). */
    readonly base: number,
  ) {
    this.ptl = new PageTableLock(sim, `${mm.name} ptl@${hex(base)}`, { lockClass: 'ptlock' });
  }

  /** Entry index of `addr`. */
  index(addr: number): number {
    return Math.floor((addr - this.base) / PAGE_SIZE);
  }

  /** The entry for `addr` (created on first use). */
  slot(addr: number): PteSlot {
    const i = this.index(addr);
    let s = this.slots[i];
    if (!s) {
      s = new PteSlot(this.sim, this, this.base + i * PAGE_SIZE);
      this.slots[i] = s;
    }
    return s;
  }

  /** The entry for `addr` if it was ever created. */
  existingSlot(addr: number): PteSlot | undefined {
    return this.slots[this.index(addr)];
  }

  /** Current value of the entry for `addr` (no scheduling point: checkers, or under the PTL). */
  peek(addr: number): Pte {
    return this.slots[this.index(addr)]?.entry ?? PTE_NONE;
  }

  /** Entries that exist and are not none, in address order. */
  *used(): Generator<PteSlot> {
    for (const s of this.slots) if (s && s.entry.kind !== 'none') yield s;
  }
}

/** One PMD entry. */
export class PmdSlot extends SimObject {
  entry: Pmd = PMD_NONE;

  constructor(
    sim: Sim,
    readonly mm: Mm,
    /** Address of the 2 MiB region this entry covers. */
    readonly addr: number,
  ) {
    super(sim, `${mm.name} pmd@${hex(addr)}`);
  }

  /** `pmdp_get_lockless()`. */
  *get(label?: string): Routine<Pmd> {
    return (yield new Op('pmdp_get', this, Access.Read, 0, undefined, label)) as Pmd;
  }

  /** `set_pmd_at()` / `pmd_populate()`. */
  *set(pmd: Pmd, label?: string): Routine {
    yield new Op('set_pmd_at', this, Access.Write, 0, pmd, label);
  }

  /** A read-modify-write in one step; `fn` returns the new entry or null. Returns the old one. */
  *modify(fn: (old: Pmd) => Pmd | null, label?: string): Routine<Pmd> {
    return (yield new Op('pmdp_modify', this, Access.Write, 0, fn, label)) as Pmd;
  }

  /** @internal Stores `next` and tells the observers. */
  store(next: Pmd, t: Thread | null): void {
    const old = this.entry;
    this.entry = next;
    mmObservers(this.sim).pteChanged({
      mm: this.mm,
      addr: this.addr,
      level: 'pmd',
      old,
      new: next,
      thread: t,
    });
  }

  override exec(op: Op, t: Thread): unknown {
    const old = this.entry;
    if (op.kind === 'pmdp_get') return old;
    if (op.kind === 'set_pmd_at') {
      this.store(op.arg as Pmd, t);
      return undefined;
    }
    const next = (op.arg as (o: Pmd) => Pmd | null)(old);
    if (next !== null) this.store(next, t);
    return old;
  }

  override describe(op: Op): string {
    if (op.kind === 'set_pmd_at') return `set_pmd_at(${this.name}, ${pteText(op.arg as Pmd)})`;
    return `${op.kind}(${this.name})`;
  }
}

/** An mm's page tables above the PTE level. */
export class PageTable {
  private readonly pmds = new Map<number, PmdSlot>();
  /** `mm->page_table_lock`, used as the PMD lock (`pmd_lock()`). */
  readonly pmdLock: PageTableLock;

  constructor(
    readonly sim: Sim,
    readonly mm: Mm,
  ) {
    this.pmdLock = new PageTableLock(sim, `${mm.name}->page_table_lock`, {
      lockClass: '&mm->page_table_lock',
    });
  }

  /** The PMD entry covering `addr` (created on first use). */
  pmdSlot(addr: number): PmdSlot {
    const base = alignDown(addr, PMD_SIZE);
    let s = this.pmds.get(base);
    if (!s) {
      s = new PmdSlot(this.sim, this.mm, base);
      this.pmds.set(base, s);
    }
    return s;
  }

  /** Current PMD entry for `addr` without a scheduling point. */
  peekPmd(addr: number): Pmd {
    return this.pmds.get(alignDown(addr, PMD_SIZE))?.entry ?? PMD_NONE;
  }

  /** Current PTE for `addr` (none under a huge PMD or no table) without a scheduling point. */
  peekPte(addr: number): Pte {
    const pmd = this.peekPmd(addr);
    return pmd.kind === 'table' ? pmd.table.peek(addr) : PTE_NONE;
  }

  /** Every PMD entry that exists, in address order. */
  allPmds(): PmdSlot[] {
    return [...this.pmds.values()].sort((a, b) => a.addr - b.addr);
  }
}
