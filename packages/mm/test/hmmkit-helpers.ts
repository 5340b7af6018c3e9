/**
 * Shared pieces of the hmm / device-exclusive / migrate tests (NOT the reference driver, which is
 * packages/drivers/dmirror): a toy device with device memory whose `migrate_to_ram` and
 * migrations use `@hmmkit/mm/migrate`, and a mirroring device driven by `hmm_range_fault` with
 * the documented caller loop, plus the mirror invariant.
 */
import { Access, EBUSY, Mutex, Op, type Routine, type Sim, SimObject } from '@hmmkit/sim';
import { PAGE_SIZE, VM_FAULT_RETRY, VM_FAULT_SIGBUS } from '../src/constants.js';
import { makeDeviceExclusive } from '../src/device-exclusive/index.js';
import type { VmFault } from '../src/fault.js';
import type { Folio, Pgmap, PgmapType } from '../src/folio.js';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnToPfn,
  hmmRangeFault,
} from '../src/hmm/index.js';
import {
  allocDevicePage,
  allocSystemPage,
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '../src/migrate-device/index.js';
import type { Mm } from '../src/mm.js';
import {
  MmuIntervalNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '../src/notifier/index.js';
import { folioPut } from '../src/physmem.js';
import type { System } from '../src/system.js';
import { peekPte } from '../src/walk.js';

/** Reads a page's data for a copy (one step on the folio). */
function* readPage(f: Folio, i: number): Routine<import('../src/folio.js').PageValue> {
  return yield* f.inspect('copy_highpage', (x) => x.data[i]!);
}

/** A toy device with its own device memory (private or coherent) and a pgmap owner cookie. */
export class ToyDevice {
  readonly pgmap: Pgmap;
  /** The `pgmap->owner` cookie. */
  readonly owner: { name: string };
  /** Make the next `migrate_to_ram` decline its page (it then returns VM_FAULT_SIGBUS). */
  failToRam = false;
  toRamCalls = 0;

  constructor(
    readonly sys: System,
    name: string,
    pages: number,
    type: PgmapType = 'device-private',
  ) {
    this.owner = { name };
    const dev = this;
    this.pgmap = sys.mem.addPgmap(type, this.owner, pages, {
      migrateToRam(vmf) {
        return dev.migrateToRam(vmf);
      },
    });
  }

  /** `new struct migrate_vma` over `[start, end)` of the VMA at `start`. */
  args(mm: Mm, start: number, end: number, flags: number, faultPage: Folio | null = null): MigrateVma {
    const n = (end - start) / PAGE_SIZE;
    return {
      vma: mm.vmaLookup(start)!,
      start,
      end,
      src: new Array<number>(n).fill(0),
      dst: new Array<number>(n).fill(0),
      cpages: 0,
      npages: 0,
      pgmapOwner: this.owner,
      flags,
      faultPage,
    };
  }

  /** `pgmap->ops->migrate_to_ram`: the faulting page back to system memory. */
  *migrateToRam(vmf: VmFault): Routine<number> {
    this.toRamCalls++;
    const args = this.args(
      vmf.vma.mm,
      vmf.address,
      vmf.address + PAGE_SIZE,
      MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      vmf.page,
    );
    if (yield* migrateVmaSetup(args)) return VM_FAULT_SIGBUS;
    yield* this.allocAndCopy(args, 'system');
    if (this.failToRam) {
      for (let i = 0; i < args.npages; i++) {
        const d =
          args.dst[i]! & MIGRATE_PFN_VALID ? this.sys.mem.folioAt(migratePfnToPfn(args.dst[i]!)) : null;
        if (d) {
          yield* d.unlock();
          yield* folioPut(this.sys.mem, d);
        }
        args.dst[i] = 0;
      }
    }
    yield* migrateVmaPages(args);
    yield* migrateVmaFinalize(args);
    if (this.failToRam) return VM_FAULT_SIGBUS;
    // Not migrated this time (a transient extra reference, a race): the fault is retried. The
    // model's VM_FAULT_RETRY makes the faulting thread wait for another thread's progress first.
    const s = args.src[0]!;
    return s & MIGRATE_PFN_VALID && !(s & MIGRATE_PFN_MIGRATE) ? VM_FAULT_RETRY : 0;
  }

  /** The driver step: destinations for every selected entry (device or system memory). */
  *allocAndCopy(args: MigrateVma, to: 'device' | 'system', opts: { compound?: boolean } = {}): Routine<void> {
    const mem = this.sys.mem;
    for (let i = 0; i < args.npages; i++) {
      const s = args.src[i]!;
      if (!(s & MIGRATE_PFN_MIGRATE)) continue;
      const big = !!(s & MIGRATE_PFN_COMPOUND) && opts.compound !== false;
      const order = big ? 9 : 0;
      const d =
        to === 'device' ? yield* allocDevicePage(mem, this.pgmap, order) : yield* allocSystemPage(mem, order);
      if (!d) continue;
      const sf = s & MIGRATE_PFN_VALID ? mem.folioAt(migratePfnToPfn(s)) : null;
      const n = s & MIGRATE_PFN_COMPOUND ? 512 : 1;
      if (big) {
        for (let j = 0; j < n; j++) d.data[j] = sf ? yield* readPage(sf, migratePfnToPfn(s) - sf.pfn + j) : 0;
        args.dst[i] = migratePfn(d.pfn) | MIGRATE_PFN_COMPOUND | (s & MIGRATE_PFN_WRITE);
      } else if (n > 1) {
        // Base-page fallback for a compound entry: fill every page of the range.
        yield* d.unlock();
        yield* folioPut(mem, d);
        for (let j = 0; j < n && i + j < args.npages; j++) {
          const p = to === 'device' ? yield* allocDevicePage(mem, this.pgmap) : yield* allocSystemPage(mem);
          if (!p) continue;
          p.data[0] = sf ? yield* readPage(sf, migratePfnToPfn(s) - sf.pfn + j) : 0;
          args.dst[i + j] = migratePfn(p.pfn) | (s & MIGRATE_PFN_WRITE);
        }
      } else {
        d.data[0] = sf ? yield* readPage(sf, migratePfnToPfn(s) - sf.pfn) : 0;
        args.dst[i] = migratePfn(d.pfn) | (s & MIGRATE_PFN_WRITE || !sf ? MIGRATE_PFN_WRITE : 0);
      }
    }
  }

  /** MIGRATE_TO_DEV of `[start, end)` (takes mmap_lock itself). Returns the args for inspection. */
  *toDevice(
    mm: Mm,
    start: number,
    end: number,
    flags = MIGRATE_VMA_SELECT_SYSTEM,
    compound = true,
  ): Routine<MigrateVma> {
    yield* mm.mmapLock.downRead('mmap_read_lock');
    const args = this.args(mm, start, end, flags);
    const r = yield* migrateVmaSetup(args);
    if (r === 0) {
      yield* this.allocAndCopy(args, 'device', { compound });
      yield* migrateVmaPages(args);
      yield* migrateVmaFinalize(args);
    }
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    return args;
  }

  /** MIGRATE_TO_SYS of `[start, end)`. */
  *toSystem(
    mm: Mm,
    start: number,
    end: number,
    flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    compound = true,
  ): Routine<MigrateVma> {
    yield* mm.mmapLock.downRead('mmap_read_lock');
    const args = this.args(mm, start, end, flags);
    const r = yield* migrateVmaSetup(args);
    if (r === 0) {
      yield* this.allocAndCopy(args, 'system', { compound });
      yield* migrateVmaPages(args);
      yield* migrateVmaFinalize(args);
    }
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    return args;
  }
}

/** What a mirror holds for a page: the pfn and whether the device may write. */
export interface MirrorEntry {
  pfn: number;
  write: boolean;
  /** Mapped for device atomics (the CPU PTE is device-exclusive). */
  atomic?: boolean;
}

/** The mirror's device page table (a sim object: its reads and writes are steps). */
export class MirrorPageTable extends SimObject {
  readonly entries = new Map<number, MirrorEntry>();

  *set(addr: number, e: MirrorEntry): Routine<void> {
    yield new Op('dev_pte_set', this, Access.Write, 0, () => this.entries.set(addr, e));
  }

  *clear(start: number, end: number): Routine<void> {
    yield new Op('dev_pte_clear', this, Access.Write, 0, () => {
      for (const a of [...this.entries.keys()]) if (a >= start && a < end) this.entries.delete(a);
    });
  }

  override exec(op: Op): unknown {
    return (op.arg as () => unknown)();
  }
}

/**
 * A device that mirrors CPU page tables with hmm_range_fault() and the documented caller loop.
 * With `filterOwn`, its invalidate callback ignores MIGRATE and EXCLUSIVE events that carry its
 * own owner (as test_hmm and nouveau do); otherwise it treats them like any invalidation.
 */
export class HmmMirror {
  readonly lock: Mutex;
  readonly sub: MmuIntervalNotifier;
  readonly pt: MirrorPageTable;
  readonly owner: unknown;
  /** Invalidate callbacks run (for tests). */
  invalidations = 0;

  constructor(
    readonly sim: Sim,
    readonly mm: Mm,
    name = 'mirror',
    readonly opts: { filterOwn?: boolean; owner?: unknown; maxTries?: number } = {},
  ) {
    this.lock = new Mutex(sim, `${name}->mutex`, { lockClass: 'mirror.mutex' });
    this.sub = new MmuIntervalNotifier(sim, `${name}->notifier`);
    this.pt = new MirrorPageTable(sim, `${name}->pt`);
    this.owner = opts.owner ?? { name };
  }

  *insert(start: number, length: number): Routine<number> {
    const dev = this;
    return yield* mmuIntervalNotifierInsert(this.sub, this.mm, start, length, {
      invalidate(sub, range, curSeq) {
        return dev.invalidate(sub, range, curSeq);
      },
    });
  }

  *invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): Routine<boolean> {
    if (
      this.opts.filterOwn &&
      (range.event === MmuNotifyEvent.MIGRATE || range.event === MmuNotifyEvent.EXCLUSIVE) &&
      range.owner === this.owner
    ) {
      return true;
    }
    if (mmuNotifierRangeBlockable(range)) yield* this.lock.lock();
    else if (!(yield* this.lock.trylock())) return false;
    this.invalidations++;
    yield* mmuIntervalSetSeq(sub, curSeq);
    yield* this.pt.clear(range.start, range.end);
    yield* this.lock.unlock();
    return true;
  }

  /** The documented fault loop over `npages` from `start`. 0, -EBUSY (gave up), or hmm's error. */
  *fault(start: number, npages: number, write: boolean): Routine<number> {
    const mm = this.mm;
    const range: HmmRange = {
      notifier: this.sub,
      notifierSeq: 0,
      start,
      end: start + npages * PAGE_SIZE,
      hmmPfns: new BigUint64Array(npages),
      defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n),
      pfnFlagsMask: 0n,
      devPrivateOwner: this.owner,
    };
    for (let tries = 0; tries < (this.opts.maxTries ?? 8); tries++) {
      range.notifierSeq = yield* mmuIntervalReadBegin(this.sub);
      yield* mm.mmapLock.downRead('mmap_read_lock');
      const ret = yield* hmmRangeFault(range);
      yield* mm.mmapLock.upRead('mmap_read_unlock');
      if (ret === -EBUSY) continue;
      if (ret) return ret;
      yield* this.lock.lock();
      if (yield* mmuIntervalReadRetry(this.sub, range.notifierSeq)) {
        yield* this.lock.unlock();
        continue;
      }
      for (let i = 0; i < npages; i++) {
        const v = range.hmmPfns[i]!;
        if (!(v & HMM_PFN_VALID)) continue;
        yield* this.pt.set(start + i * PAGE_SIZE, { pfn: hmmPfnToPfn(v), write: (v & HMM_PFN_WRITE) !== 0n });
      }
      yield* this.lock.unlock();
      return 0;
    }
    return -EBUSY;
  }
}

/**
 * nouveau's atomic-fault loop (`nouveau_atomic_range_fault`) on one page, with the mirror's lock:
 * read_begin, make_device_exclusive(owner), then under the driver lock read_retry and map the page
 * for device atomics. 0, -EBUSY after `maxTries`, or make_device_exclusive's error.
 */
export function* atomicFault(mirror: HmmMirror, addr: number, maxTries = 1000): Routine<number> {
  const mm = mirror.mm;
  for (let tries = 0; tries < maxTries; tries++) {
    const seq = yield* mmuIntervalReadBegin(mirror.sub);
    yield* mm.mmapLock.downRead('mmap_read_lock');
    const r = yield* makeDeviceExclusive(mm, addr, mirror.owner);
    yield* mm.mmapLock.upRead('mmap_read_unlock');
    if (typeof r === 'number') return r;
    yield* mirror.lock.lock();
    const retry = yield* mmuIntervalReadRetry(mirror.sub, seq);
    if (!retry) {
      // The page of the (locked) folio at addr.
      const pfn = r.pfn + (mm.vmaLookup(addr)!.linearPageIndex(addr) - r.index);
      yield* mirror.pt.set(addr, { pfn, write: true, atomic: true });
    }
    yield* mirror.lock.unlock();
    yield* r.unlock('folio_unlock');
    yield* folioPut(mm.system.mem, r, 'folio_put');
    if (!retry) return 0;
  }
  return -EBUSY;
}

/**
 * The mirror invariant (reference/core-mm.md §7.8 seen from the device): when no invalidation is
 * in progress on the mm, every page the device maps is mapped by the CPU to the same pfn (a
 * present PTE or huge PMD, or a device-private entry), writable on the device only if writable on
 * the CPU. Returns a message or undefined.
 */
export function mirrorInvariant(mirror: HmmMirror): string | undefined {
  const mm = mirror.mm;
  if ((mm.notifierSubscriptions?.activeInvalidateRanges ?? 0) > 0) return undefined;
  for (const [addr, e] of mirror.pt.entries) {
    if (e.atomic) {
      const p = peekPte(mm, addr).entry;
      if (p.kind !== 'device-exclusive' || p.pfn !== e.pfn) {
        return `device maps 0x${addr.toString(16)} for atomics, the CPU PTE is ${p.kind}`;
      }
      continue;
    }
    const pmd = mm.pageTable.peekPmd(addr);
    let pfn: number | null = null;
    let write = false;
    if (pmd.kind === 'huge') {
      pfn = pmd.pfn + (addr % (512 * PAGE_SIZE)) / PAGE_SIZE;
      write = pmd.write;
    } else if (pmd.kind === 'table') {
      const p = pmd.table.peek(addr);
      // A migration entry still names the page (locked, content stable, CPU access waits).
      if (p.kind === 'present' || p.kind === 'device-private' || p.kind === 'migration') {
        pfn = p.pfn;
        write = p.write;
      }
    }
    if (pfn !== e.pfn)
      return `device maps 0x${addr.toString(16)} -> pfn 0x${e.pfn.toString(16)}, CPU: ${pfn === null ? 'nothing' : `0x${pfn.toString(16)}`}`;
    if (e.write && !write) return `device maps 0x${addr.toString(16)} writable, the CPU read-only`;
  }
  return undefined;
}
