/**
 * `struct mm_struct`: users and lifetime counts, `mmap_lock`, the VMA tree and the page tables.
 *
 * The fields `notifierSubscriptions`, `mmUsers`, `mmCount`, `mmapLock` and `sim` are the contract
 * with the notifier layer.
 */
import {
  Access,
  Op,
  OpFlag,
  Refcount,
  type Routine,
  RwSemaphore,
  type Sim,
  SimObject,
  type Thread,
  Var,
} from '@hmmkit/sim';
import { alignUp, hex, MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE } from './constants.js';
import type { PageValue } from './folio.js';
import type { MmuNotifierSubscriptions } from './notifier/subscriptions.js';
import { PageTable } from './pgtable.js';
import { System } from './system.js';
import type { Vma } from './vma.js';

/**
 * The mmap_lock: a read-write semaphore with lockdep nesting for taking two mms' locks (fork
 * takes the parent's, then the child's with `mmap_write_lock_nested(SINGLE_DEPTH_NESTING)`).
 */
export class MmapLock extends RwSemaphore {
  /** `down_write_nested()` / `mmap_write_lock_nested()`. */
  override *downWriteNested(subclass: number, label?: string): Routine {
    yield new Op('down_write_nested', this, Access.Acquire, OpFlag.MightSleep, subclass, label);
  }

  override enabled(op: Op, t: Thread): boolean {
    if (op.kind === 'down_write_nested') return this.writer === null && this.readers.length === 0;
    return super.enabled(op, t);
  }

  override exec(op: Op, t: Thread): unknown {
    if (op.kind !== 'down_write_nested') return super.exec(op, t);
    if (this.heldBy(t))
      this.sim.fail('recursive-lock', `${t.name}: down_write_nested(${this.name}) while holding it`);
    this.sim.lockAcquired(t, this.cls, this, this.name, op.arg as number);
    this.writer = t;
    return undefined;
  }
}

/** `get_mm_counter()` values (`MM_ANONPAGES`, `MM_FILEPAGES`, `MM_SHMEMPAGES`, `MM_SWAPENTS`). */
export interface MmCounters {
  anon: number;
  file: number;
  shmem: number;
  swap: number;
}

/** Options for {@link Mm}. */
export interface MmOptions {
  name?: string;
  /** The physical memory and swap the mm uses (default: `System.of(sim)`). */
  system?: System;
}

/** Argument of a user access. */
export interface UserAccessArg {
  addr: number;
  write: boolean;
  value?: PageValue;
}

/** What the MMU step of a user access returns. */
export type MmuResult = { ok: true; value?: PageValue } | { ok: false };

/**
 * The CPU's MMU for one mm: the object user accesses are announced on. A user access translates
 * and reads or writes memory in one step, like a load or store instruction, so its footprint spans
 * page-table entries and a frame; a store is announced as `Global` (ordered against every other
 * step), a load as `GlobalRead` (ordered against every step that changes state).
 * It sets the accessed and dirty bits of the entry it used, as the hardware does.
 */
export class CpuMmu extends SimObject {
  constructor(
    sim: Sim,
    readonly mm: Mm,
  ) {
    super(sim, `${mm.name} cpu`);
  }

  override exec(op: Op): unknown {
    const { addr, write, value } = op.arg as UserAccessArg;
    const pt = this.mm.pageTable;
    const pmdSlot = pt.pmdSlot(addr);
    const pmd = pmdSlot.entry;
    let pfn: number;
    if (pmd.kind === 'huge') {
      if (pmd.protnone || (write && !pmd.write)) return { ok: false };
      pfn = pmd.pfn + Math.floor((addr - pmdSlot.addr) / PAGE_SIZE);
      if (!pmd.young || (write && !pmd.dirty))
        pmdSlot.entry = { ...pmd, young: true, dirty: pmd.dirty || write };
    } else if (pmd.kind === 'table') {
      const slot = pmd.table.existingSlot(addr);
      const e = slot?.entry;
      if (!slot || e?.kind !== 'present' || e.protnone || (write && !e.write)) return { ok: false };
      pfn = e.pfn;
      if (!e.young || (write && !e.dirty)) slot.entry = { ...e, young: true, dirty: e.dirty || write };
    } else {
      return { ok: false };
    }
    const mem = this.mm.system.mem;
    const folio = mem.folioAt(pfn);
    if (!folio) {
      if (mem.ioData.has(pfn)) {
        if (write) mem.ioData.set(pfn, value!);
        return { ok: true, value: write ? undefined : mem.ioData.get(pfn) };
      }
      this.sim.fail(
        'bad-access',
        `${this.mm.name}: CPU access at ${hex(addr)} through a PTE to free pfn ${hex(pfn)}`,
      );
    }
    if (folio.zone === 'device-private') {
      this.sim.fail(
        'bad-access',
        `${this.mm.name}: present PTE at ${hex(addr)} maps device-private ${folio.name}`,
      );
    }
    const i = pfn - folio.pfn;
    if (write) {
      if (folio.zero) this.sim.fail('bad-access', `${this.mm.name}: write to the zero page at ${hex(addr)}`);
      folio.data[i] = value!;
      return { ok: true };
    }
    return { ok: true, value: folio.data[i] };
  }

  override describe(op: Op): string {
    const { addr, write, value } = op.arg as UserAccessArg;
    return write
      ? `user_write(${this.mm.name}, ${hex(addr)}, ${String(value)})`
      : `user_read(${this.mm.name}, ${hex(addr)})`;
  }
}

export class Mm {
  /** `mm->notifier_subscriptions`: null until the first notifier registration. */
  notifierSubscriptions: MmuNotifierSubscriptions | null = null;
  readonly mmapLock: RwSemaphore;
  /** `mm->mm_users`. */
  readonly users: Refcount;
  /** `mm->mm_count`. */
  readonly count: Refcount;
  readonly name: string;
  readonly pageTable: PageTable;
  /** VMAs in address order (the maple tree). Changed only under mmap_lock held for write. */
  vmas: Vma[] = [];
  /** RSS counters (statistics: updated beside the PTE changes, checked at quiescence). */
  readonly rss: MmCounters = { anon: 0, file: 0, shmem: 0, swap: 0 };
  /** `MMF_UNSTABLE`: the OOM reaper unmapped memory; faults on anonymous memory get SIGBUS. */
  readonly unstable: Var<boolean>;
  /** `MMF_OOM_SKIP`: exit_mmap (or the reaper) is done with the mm. */
  oomSkip = false;
  /** exit_mmap has run. */
  exited = false;
  /** mmdrop dropped the last mm_count reference. */
  destroyed = false;
  /** Announcement point of user accesses. */
  readonly cpu: CpuMmu;
  readonly id: number;
  private systemRef: System | null;

  constructor(
    readonly sim: Sim,
    mmapLock?: RwSemaphore,
    options: MmOptions = {},
  ) {
    this.id = sim.nextId('mm');
    this.name = options.name ?? `mm${this.id}`;
    this.mmapLock = mmapLock ?? new MmapLock(sim, `${this.name}->mmap_lock`, { lockClass: '&mm->mmap_lock' });
    this.users = new Refcount(sim, `${this.name}->mm_users`, 1);
    this.count = new Refcount(sim, `${this.name}->mm_count`, 1);
    this.pageTable = new PageTable(sim, this);
    this.unstable = new Var(sim, `${this.name}->flags(MMF_UNSTABLE)`, false);
    this.cpu = new CpuMmu(sim, this);
    this.systemRef = options.system ?? null;
    this.systemRef?.registerMm(this);
  }

  /** `mm->mm_users` (read it from a step that touches `users`, or at quiescence). */
  get mmUsers(): number {
    return this.users.count;
  }
  set mmUsers(v: number) {
    this.users.count = v;
  }

  /** `mm->mm_count`. */
  get mmCount(): number {
    return this.count.count;
  }
  set mmCount(v: number) {
    this.count.count = v;
  }

  /** Physical memory, swap and files this mm uses. */
  get system(): System {
    if (!this.systemRef) {
      // Lazily bound to the per-sim default system (lets `new Mm(sim)` work on its own).
      this.systemRef = System.of(this.sim);
      this.systemRef.registerMm(this);
    }
    return this.systemRef;
  }

  /** `find_vma()`: the first VMA ending above `addr`. Caller holds mmap_lock. */
  findVma(addr: number): Vma | null {
    for (const v of this.vmas) if (v.end > addr) return v;
    return null;
  }

  /** `vma_lookup()`: the VMA containing `addr`. */
  vmaLookup(addr: number): Vma | null {
    const v = this.findVma(addr);
    return v && v.start <= addr ? v : null;
  }

  /** VMAs intersecting `[start, end)`, in order. */
  vmasIn(start: number, end: number): Vma[] {
    return this.vmas.filter((v) => v.start < end && v.end > start);
  }

  /** @internal Inserts a VMA keeping address order (caller holds mmap_lock for write). */
  insertVma(vma: Vma): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i]!.start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  /** @internal Removes a VMA from the tree. */
  removeVma(vma: Vma): void {
    const i = this.vmas.indexOf(vma);
    if (i >= 0) this.vmas.splice(i, 1);
  }

  /**
   * `get_unmapped_area()`: `hint` if `[hint, hint+len)` is free and in range, else the lowest free
   * gap at or above MMAP_MIN_ADDR (bottom-up, deterministic), or -1.
   */
  unmappedArea(len: number, hint: number, align = PAGE_SIZE): number {
    const free = (a: number) =>
      a >= MMAP_MIN_ADDR && a + len <= TASK_SIZE && this.vmasIn(a, a + len).length === 0;
    if (hint && hint % PAGE_SIZE === 0 && free(hint)) return hint;
    let a = alignUp(MMAP_MIN_ADDR, align);
    for (const v of this.vmas) {
      if (v.start >= a + len) break;
      if (v.end > a) a = alignUp(v.end, align);
    }
    return a + len <= TASK_SIZE ? a : -1;
  }

  toString(): string {
    return `${this.name}{${this.vmas.map((v) => `${hex(v.start)}-${hex(v.end)}`).join(',')}}`;
  }
}

/** `mmget()`: takes an mm_users reference (the mm must still have users). */
export function* mmget(mm: Mm): Routine {
  yield* mm.users.inc('mmget');
}

/** `mmget_not_zero()`. */
export function* mmgetNotZero(mm: Mm): Routine<boolean> {
  return yield* mm.users.incNotZero('mmget_not_zero');
}

/** `mmgrab()`: pins the mm_struct (not the address space). */
export function* mmgrab(mm: Mm): Routine {
  yield* mm.count.inc('mmgrab');
}

/** `mmdrop()`: the last reference frees the mm_struct (`__mmdrop`). */
export function* mmdrop(mm: Mm): Routine {
  const last = yield* mm.count.decAndTest('mmdrop');
  if (last) {
    // models __mmdrop(): the mm_struct is gone; later operations on its counters are reported.
    mm.destroyed = true;
    mm.sim.free(mm.count);
  }
}
