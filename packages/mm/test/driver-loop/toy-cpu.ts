/**
 * A toy CPU side for the driver-loop tests: a flat page table of `Var` PTEs and frames as sim
 * objects, with the CPU operations written the way core mm brackets its PTE changes
 * (core-mm.md §2.7): munmap, mprotect, swap-out, page migration, fork (COW write-protect) and
 * exit. It stands in for the address-space model where a test needs a small, fast program; the
 * integration tests drive the real one.
 */
import { Access, Op, type Routine, type Sim, SimObject, Var } from '@hmmkit/sim';
import type { Mm } from '../../src/mm.js';
import {
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRelease,
} from '../../src/notifier/index.js';
import type { CpuMapping, CpuView } from './mirror-device.js';

export const PAGE = 0x1000;

/** A physical page. Freeing it makes every later operation on it a use-after-free. */
export class Frame extends SimObject {
  *free(): Routine<void> {
    yield new Op('free_page', this, Access.Write, 0, undefined, this.name);
  }
  override exec(op: Op): unknown {
    if (op.kind === 'free_page') this.sim.free(this);
    return undefined;
  }
}

type Pte = { frame: Frame; write: boolean } | null;

export class ToyCpu implements CpuView {
  readonly ptes = new Map<number, Var<Pte>>();
  private frames = 0;

  constructor(
    readonly sim: Sim,
    readonly mm: Mm,
  ) {}

  newFrame(): Frame {
    return new Frame(this.sim, `frame${this.frames++}`);
  }

  /** Setup: map `addr` to a fresh frame. */
  map(addr: number, write = true): Frame {
    const f = this.newFrame();
    this.pte(addr).value = { frame: f, write };
    return f;
  }

  pte(addr: number): Var<Pte> {
    let v = this.ptes.get(addr);
    if (!v) {
      v = new Var<Pte>(this.sim, `pte[0x${addr.toString(16)}]`, null);
      this.ptes.set(addr, v);
    }
    return v;
  }

  peek(addr: number): CpuMapping | null {
    return this.ptes.get(addr)?.value ?? null;
  }

  /** hmm_range_fault() of one page under mmap_lock (read); no fault-in: a missing page is null. */
  *sample(addr: number, _write: boolean): Routine<CpuMapping | null> {
    yield* this.mm.mmapLock.downRead('mmap_read_lock');
    const v = yield* this.pte(addr).read('hmm_range_fault: read PTE');
    yield* this.mm.mmapLock.upRead('mmap_read_unlock');
    return v;
  }

  private range(start: number, end: number, event: MmuNotifyEvent): MmuNotifierRange {
    return new MmuNotifierRange({ mm: this.mm, start, end, event });
  }

  /** munmap(): UNMAP; PTEs cleared and frames freed inside the window. */
  *munmap(addr: number, len = PAGE): Routine<void> {
    yield* this.mm.mmapLock.downWrite('mmap_write_lock');
    const r = this.range(addr, addr + len, MmuNotifyEvent.UNMAP);
    yield* mmuNotifierInvalidateRangeStart(r);
    for (let a = addr; a < addr + len; a += PAGE) {
      const old = yield* this.pte(a).update(() => null, 'zap PTE');
      if (old) yield* old.frame.free();
    }
    yield* mmuNotifierInvalidateRangeEnd(r);
    yield* this.mm.mmapLock.upWrite('mmap_write_unlock');
  }

  /** mprotect(PROT_READ): PROTECTION_VMA; PTEs lose write. */
  *mprotectRead(addr: number, len = PAGE): Routine<void> {
    yield* this.mm.mmapLock.downWrite('mmap_write_lock');
    const r = this.range(addr, addr + len, MmuNotifyEvent.PROTECTION_VMA);
    yield* mmuNotifierInvalidateRangeStart(r);
    for (let a = addr; a < addr + len; a += PAGE) {
      yield* this.pte(a).update((p) => (p ? { ...p, write: false } : p), 'pte_wrprotect');
    }
    yield* mmuNotifierInvalidateRangeEnd(r);
    yield* this.mm.mmapLock.upWrite('mmap_write_unlock');
  }

  /** Reclaim (try_to_unmap_one): CLEAR; the PTE becomes a swap entry and the frame is freed. No mmap_lock. */
  *swapOut(addr: number): Routine<void> {
    const r = this.range(addr, addr + PAGE, MmuNotifyEvent.CLEAR);
    yield* mmuNotifierInvalidateRangeStart(r);
    const old = yield* this.pte(addr).update(() => null, 'PTE -> swap entry');
    yield* mmuNotifierInvalidateRangeEnd(r);
    if (old) yield* old.frame.free();
  }

  /**
   * Page migration (try_to_migrate_one + remove_migration_ptes): CLEAR while the PTE becomes a
   * migration entry; after the copy the PTE maps the new frame (no notification: the device has
   * nothing mapped there any more) and the old frame is freed. No mmap_lock.
   */
  *migrate(addr: number): Routine<void> {
    const r = this.range(addr, addr + PAGE, MmuNotifyEvent.CLEAR);
    yield* mmuNotifierInvalidateRangeStart(r);
    const old = yield* this.pte(addr).update(() => null, 'PTE -> migration entry');
    yield* mmuNotifierInvalidateRangeEnd(r);
    if (!old) return;
    const dst = this.newFrame();
    yield* this.pte(addr).write({ frame: dst, write: old.write }, 'remove_migration_ptes');
    yield* old.frame.free();
  }

  /** fork() of a COW mapping: PROTECTION_PAGE; the parent's PTEs are write-protected. */
  *fork(addr: number, len = PAGE): Routine<void> {
    yield* this.mm.mmapLock.downWrite('mmap_write_lock (parent)');
    const r = this.range(addr, addr + len, MmuNotifyEvent.PROTECTION_PAGE);
    yield* mmuNotifierInvalidateRangeStart(r);
    for (let a = addr; a < addr + len; a += PAGE) {
      yield* this.pte(a).update((p) => (p ? { ...p, write: false } : p), 'COW: write-protect parent PTE');
    }
    yield* mmuNotifierInvalidateRangeEnd(r);
    yield* this.mm.mmapLock.upWrite('mmap_write_unlock (parent)');
  }

  /** exit_mmap(): mmu_notifier_release first, then UNMAP of everything. */
  *exit(addrs: number[]): Routine<void> {
    yield* mmuNotifierRelease(this.mm);
    yield* this.mm.mmapLock.downWrite('mmap_write_lock');
    const lo = Math.min(...addrs);
    const hi = Math.max(...addrs) + PAGE;
    const r = this.range(lo, hi, MmuNotifyEvent.UNMAP);
    yield* mmuNotifierInvalidateRangeStart(r);
    for (const a of addrs) {
      const old = yield* this.pte(a).update(() => null, 'zap PTE');
      if (old) yield* old.frame.free();
    }
    yield* mmuNotifierInvalidateRangeEnd(r);
    yield* this.mm.mmapLock.upWrite('mmap_write_unlock');
  }

  /** A CPU write fault on a present read-only PTE: COW copy (CLEAR), new frame mapped writable. */
  *cowFault(addr: number): Routine<void> {
    yield* this.mm.mmapLock.downRead('mmap_read_lock');
    const r = this.range(addr, addr + PAGE, MmuNotifyEvent.CLEAR);
    yield* mmuNotifierInvalidateRangeStart(r);
    const dst = this.newFrame();
    const old = yield* this.pte(addr).update(() => ({ frame: dst, write: true }), 'wp_page_copy');
    yield* mmuNotifierInvalidateRangeEnd(r);
    yield* this.mm.mmapLock.upRead('mmap_read_unlock');
    if (old) yield* old.frame.free();
  }
}
