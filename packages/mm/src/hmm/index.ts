/**
 * `@hmmkit/mm/hmm`: executable model of `hmm_range_fault()` (mm/hmm.c, include/linux/hmm.h, as of
 * the v6.15+ layout with the DMA-mapping sticky bits).
 *
 * A device driver snapshots the CPU page tables of a range into an array of `unsigned long`
 * (here a `BigUint64Array`), optionally faulting pages in first, and then programs its own page
 * table under its notifier lock if `mmu_interval_read_retry()` says nothing changed meanwhile:
 *
 * ```ts
 * for (;;) {
 *   range.notifierSeq = yield* mmuIntervalReadBegin(sub);
 *   yield* mm.mmapLock.downRead();
 *   const ret = yield* hmmRangeFault(range);
 *   yield* mm.mmapLock.upRead();
 *   if (ret === -EBUSY) continue;
 *   if (ret) return ret;
 *   yield* driverLock.lock();
 *   if (yield* mmuIntervalReadRetry(sub, range.notifierSeq)) { yield* driverLock.unlock(); continue; }
 *   // program the device from range.hmmPfns
 *   yield* driverLock.unlock();
 *   return 0;
 * }
 * ```
 *
 * Scheduling points: one per pass (`mmu_interval_check_retry`), one per PMD entry read, one per
 * PTE table read (see `PageTableLock.snapshot`), plus whatever faulting does. Filling the output
 * array is thread-local. So a range of N pages with nothing to fault costs O(N / 512) steps and
 * O(N) work.
 *
 * @module
 */
import { EBUSY, EFAULT, EINVAL, EPERM, type Routine } from '@hmmkit/sim';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  HPAGE_PMD_ORDER,
  PAGE_SIZE,
  PMD_SIZE,
  VM_FAULT_ERROR,
  VM_FAULT_RETRY,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
} from '../constants.js';
import { handleMmFault } from '../fault.js';
import type { Mm } from '../mm.js';
import { type MmuIntervalNotifier, mmuIntervalCheckRetry } from '../notifier/index.js';
import type { HugePmd, Pte, PteTable } from '../pgtable.js';
import type { Vma } from '../vma.js';

const MASK64 = (1n << 64n) - 1n;

/** Output: the pfn is valid and at least readable (`1 << (BITS_PER_LONG - 1)`). */
export const HMM_PFN_VALID = 1n << 63n;
/** Output: the CPU mapping is writable (only with VALID). */
export const HMM_PFN_WRITE = 1n << 62n;
/** Output: the address cannot be accessed (no VMA, VM_IO/VM_PFNMAP, unreadable VMA, special pfn). */
export const HMM_PFN_ERROR = 1n << 61n;
/** Sticky in/out: the driver's "this pfn is DMA-mapped" bookkeeping (v6.15+). */
export const HMM_PFN_DMA_MAPPED = 1n << 60n;
/** Sticky in/out: a P2P page mapped through the host bridge. */
export const HMM_PFN_P2PDMA = 1n << 59n;
/** Sticky in/out: a P2P page mapped by bus address. */
export const HMM_PFN_P2PDMA_BUS = 1n << 58n;
/** Position of the 5-bit map order (`BITS_PER_LONG - 11`). */
export const HMM_PFN_ORDER_SHIFT = 53n;
/** Input: the entry must end up VALID, faulting if needed (same bit as VALID). */
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
/** Input: the entry must end up WRITE (with REQ_FAULT; same bit as WRITE). */
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
/** Every non-pfn bit: `~((1UL << HMM_PFN_ORDER_SHIFT) - 1)`. */
export const HMM_PFN_FLAGS = MASK64 & ~((1n << HMM_PFN_ORDER_SHIFT) - 1n);
/** The sticky bits: every output write keeps them from the input (`(old & INOUT) | new`). */
export const HMM_PFN_INOUT_FLAGS = HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS;
/** `HMM_RANGE_DEFAULT_TIMEOUT`: callers' retry budget in milliseconds (test_hmm, nouveau). */
export const HMM_RANGE_DEFAULT_TIMEOUT = 1000;

/** `hmm_pfn_to_page()`'s pfn: the entry without its flag bits. */
export function hmmPfnToPfn(v: bigint): number {
  return Number(v & ~HMM_PFN_FLAGS & MASK64);
}

/** `hmm_pfn_to_map_order()`: log2 of the pages of the CPU mapping the entry belongs to. */
export function hmmPfnToMapOrder(v: bigint): number {
  return Number((v >> HMM_PFN_ORDER_SHIFT) & 0x1fn);
}

/** `struct hmm_range`. */
export interface HmmRange {
  /** The caller's interval subscription covering `[start, end)`; its `mm` is the mm walked. */
  notifier: MmuIntervalNotifier;
  /** `mmu_interval_read_begin()`'s value for this attempt. */
  notifierSeq: number;
  /** Page-aligned, `[start, end)`. */
  start: number;
  end: number;
  /** One entry per page: request flags on input, pfn + flags on output. */
  hmmPfns: BigUint64Array;
  /** Request flags OR-ed into every entry. */
  defaultFlags: bigint;
  /** Which bits of each entry's own input are honoured. */
  pfnFlagsMask: bigint;
  /** Device-private pages whose `pgmap.owner` is this are reported, not faulted. */
  devPrivateOwner: unknown;
}

// The HMM_NEED_* result of hmm_pte_need_fault().
const NEED_FAULT = 1;
const NEED_WRITE_FAULT = 2;
const NEED_ALL = NEED_FAULT | NEED_WRITE_FAULT;

/** `struct hmm_vma_walk`. */
interface HmmVmaWalk {
  range: HmmRange;
  mm: Mm;
  /** First address whose entry has not been written yet (where a restart resumes). */
  last: number;
  /** `(default_flags | pfn_flags_mask) & HMM_PFN_REQ_FAULT`: some entry may need a fault. */
  mayFault: boolean;
}

function idx(w: HmmVmaWalk, addr: number): number {
  return (addr - w.range.start) / PAGE_SIZE;
}

/** Stores an output, keeping the sticky bits of the input. */
function put(w: HmmVmaWalk, i: number, v: bigint): void {
  const pfns = w.range.hmmPfns;
  pfns[i] = (pfns[i]! & HMM_PFN_INOUT_FLAGS) | v;
}

/** models hmm_pfns_fill(): `v` in every entry of `[addr, end)`. */
function fill(w: HmmVmaWalk, addr: number, end: number, v: bigint): number {
  const pfns = w.range.hmmPfns;
  for (let i = idx(w, addr), n = idx(w, end); i < n; i++) pfns[i] = (pfns[i]! & HMM_PFN_INOUT_FLAGS) | v;
  return 0;
}

/** models hmm_pte_need_fault(): what entry input `req` asks of a mapping with CPU flags `cpu`. */
function pteNeedFault(w: HmmVmaWalk, req: bigint, cpu: bigint): number {
  if (!w.mayFault) return 0;
  const r = w.range;
  const flags = (req & r.pfnFlagsMask) | r.defaultFlags;
  if ((flags & HMM_PFN_REQ_FAULT) === 0n) return 0;
  if ((flags & HMM_PFN_REQ_WRITE) !== 0n && (cpu & HMM_PFN_WRITE) === 0n) return NEED_ALL;
  if ((cpu & HMM_PFN_VALID) === 0n) return NEED_FAULT;
  return 0;
}

/** models hmm_range_need_fault(): the union over the entries of `[addr, end)`. */
function rangeNeedFault(w: HmmVmaWalk, addr: number, end: number, cpu: bigint): number {
  if (!w.mayFault) return 0;
  const pfns = w.range.hmmPfns;
  // With pfn_flags_mask == 0 every entry asks the same thing.
  if (w.range.pfnFlagsMask === 0n) return pteNeedFault(w, 0n, cpu);
  let required = 0;
  for (let i = idx(w, addr), n = idx(w, end); i < n; i++) {
    required |= pteNeedFault(w, pfns[i]!, cpu);
    if (required === NEED_ALL) break;
  }
  return required;
}

/**
 * models hmm_vma_fault(): faults every page of `[addr, end)` (over-faulting the rest of the unit)
 * and returns -EBUSY so the walk restarts at `addr`; -EPERM for a write on a VMA without
 * VM_WRITE, -EFAULT if a fault fails.
 */
function* hmmVmaFault(w: HmmVmaWalk, vma: Vma, addr: number, end: number, required: number): Routine<number> {
  w.last = addr;
  let flags = FAULT_FLAG_REMOTE;
  if (required & NEED_WRITE_FAULT) {
    if (!(vma.flags & VM_WRITE)) return -EPERM;
    flags |= FAULT_FLAG_WRITE;
  }
  for (let a = addr; a < end; a += PAGE_SIZE) {
    for (;;) {
      const ret = yield* handleMmFault(vma, a, flags);
      if (ret & VM_FAULT_ERROR) return -EFAULT;
      // The model's handle_mm_fault() returns VM_FAULT_RETRY only when it must wait for another
      // thread (a folio being freed or frozen); the kernel would have slept inside the fault.
      if (!(ret & VM_FAULT_RETRY)) break;
      yield w.mm.sim.relax('handle_mm_fault retry');
    }
  }
  return -EBUSY;
}

/** models hmm_vma_walk_hole(): no page table (or no VMA) over `[addr, end)`. */
function* walkHole(w: HmmVmaWalk, vma: Vma | null, addr: number, end: number): Routine<number> {
  const required = rangeNeedFault(w, addr, end, 0n);
  if (!vma) {
    if (required) return -EFAULT;
    return fill(w, addr, end, HMM_PFN_ERROR);
  }
  if (required) return yield* hmmVmaFault(w, vma, addr, end, required);
  return fill(w, addr, end, 0n);
}

/** models hmm_vma_handle_pmd(): a PMD-mapped THP, reported with map order 9. */
function* handlePmd(w: HmmVmaWalk, vma: Vma, addr: number, end: number, pmd: HugePmd): Routine<number> {
  // models pmd_to_hmm_pfn_flags(): a protnone PMD gives no flags at all (not even the order).
  const cpu = pmd.protnone
    ? 0n
    : HMM_PFN_VALID | (pmd.write ? HMM_PFN_WRITE : 0n) | (BigInt(HPAGE_PMD_ORDER) << HMM_PFN_ORDER_SHIFT);
  const required = rangeNeedFault(w, addr, end, cpu);
  if (required) return yield* hmmVmaFault(w, vma, addr, end, required);
  let pfn = pmd.pfn + (addr % PMD_SIZE) / PAGE_SIZE;
  const pfns = w.range.hmmPfns;
  for (let i = idx(w, addr), n = idx(w, end); i < n; i++, pfn++) {
    pfns[i] = (pfns[i]! & HMM_PFN_INOUT_FLAGS) | BigInt(pfn) | cpu;
  }
  return 0;
}

/** models migration_entry_wait(): sleep until the folio behind a migration entry is unlocked. */
function* migrationEntryWait(w: HmmVmaWalk, table: PteTable, addr: number): Routine<void> {
  yield* table.ptl.lock('migration_entry_wait');
  const cur = table.peek(addr);
  const folio = cur.kind === 'migration' ? w.mm.system.mem.folioAt(cur.pfn) : null;
  yield* table.ptl.unlock();
  if (folio) yield* folio.waitUnlocked('migration_entry_wait_on_locked');
}

/** models hmm_vma_handle_pte(): one entry, as read in the table snapshot. */
function* handlePte(
  w: HmmVmaWalk,
  vma: Vma,
  table: PteTable,
  addr: number,
  end: number,
  pte: Pte,
): Routine<number> {
  const i = idx(w, addr);
  const req = w.range.hmmPfns[i]!;
  if (pte.kind === 'none') {
    const required = pteNeedFault(w, req, 0n);
    if (required) return yield* hmmVmaFault(w, vma, addr, end, required);
    put(w, i, 0n);
    return 0;
  }
  if (pte.kind !== 'present') {
    if (pte.kind === 'device-private') {
      const pgmap = w.mm.system.mem.folioAt(pte.pfn)?.pgmap;
      // The caller's own device memory is reported, never faulted, even for a write request.
      if (pgmap && pgmap.owner === w.range.devPrivateOwner) {
        put(w, i, BigInt(pte.pfn) | HMM_PFN_VALID | (pte.write ? HMM_PFN_WRITE : 0n));
        return 0;
      }
    }
    const required = pteNeedFault(w, req, 0n);
    if (!required) {
      put(w, i, 0n);
      return 0;
    }
    switch (pte.kind) {
      case 'swap':
      case 'device-private':
      case 'device-exclusive':
        return yield* hmmVmaFault(w, vma, addr, end, required);
      case 'migration':
        w.last = addr;
        yield* migrationEntryWait(w, table, addr);
        return -EBUSY;
    }
    return -EFAULT;
  }
  const cpu = pte.protnone ? 0n : pte.write ? HMM_PFN_VALID | HMM_PFN_WRITE : HMM_PFN_VALID;
  const required = pteNeedFault(w, req, cpu);
  if (required) return yield* hmmVmaFault(w, vma, addr, end, required);
  // No struct page behind a special PTE (the zero page is reported like a normal page).
  if (pte.special && !pte.zero) {
    if (pteNeedFault(w, req, 0n)) return -EFAULT;
    put(w, i, HMM_PFN_ERROR);
    return 0;
  }
  put(w, i, BigInt(pte.pfn) | cpu);
  return 0;
}

/** models hmm_vma_walk_pmd(): one PMD entry's part `[start, end)` of the range. */
function* walkPmd(w: HmmVmaWalk, vma: Vma, start: number, end: number): Routine<number> {
  const pmdSlot = w.mm.pageTable.pmdSlot(start);
  const pmd = yield* pmdSlot.get('hmm_vma_walk_pmd');
  if (pmd.kind === 'none') return yield* walkHole(w, vma, start, end);
  if (pmd.kind === 'huge') return yield* handlePmd(w, vma, start, end, pmd);
  const table = pmd.table;
  const n = (end - start) / PAGE_SIZE;
  const ptes = yield* table.ptl.snapshot(() => {
    const out: Pte[] = new Array(n);
    for (let k = 0; k < n; k++) out[k] = table.peek(start + k * PAGE_SIZE);
    return out;
  }, 'hmm_vma_walk_pmd');
  for (let k = 0; k < n; k++) {
    const r = yield* handlePte(w, vma, table, start + k * PAGE_SIZE, end, ptes[k]!);
    if (r) return r;
  }
  return 0;
}

/**
 * models hmm_vma_walk_test(): a VMA that is VM_IO/VM_PFNMAP or not readable cannot be mirrored:
 * -EFAULT if a fault is requested in it, else ERROR entries and the VMA is skipped (1).
 */
function vmaWalkTest(w: HmmVmaWalk, vma: Vma, start: number, end: number): number {
  if (!(vma.flags & (VM_IO | VM_PFNMAP)) && vma.flags & VM_READ) return 0;
  if (rangeNeedFault(w, start, end, 0n)) return -EFAULT;
  fill(w, start, end, HMM_PFN_ERROR);
  return 1;
}

/** models walk_page_range() with hmm_walk_ops over `[start, end)`. VMAs are stable (mmap_lock). */
function* walkPageRange(w: HmmVmaWalk, start: number, end: number): Routine<number> {
  if (start >= end) return -EINVAL;
  const mm = w.mm;
  let addr = start;
  while (addr < end) {
    const vma = mm.findVma(addr);
    if (!vma || addr < vma.start) {
      const next = vma ? Math.min(end, vma.start) : end;
      const r = yield* walkHole(w, null, addr, next);
      if (r) return r;
      addr = next;
      continue;
    }
    const next = Math.min(end, vma.end);
    const t = vmaWalkTest(w, vma, addr, next);
    if (t < 0) return t;
    if (t === 0) {
      for (let a = addr; a < next; ) {
        const e = Math.min(next, a - (a % PMD_SIZE) + PMD_SIZE);
        const r = yield* walkPmd(w, vma, a, e);
        if (r) return r;
        a = e;
      }
    }
    addr = next;
  }
  return 0;
}

/**
 * models hmm_range_fault(): fills `range.hmmPfns` for `[range.start, range.end)`, faulting what the
 * requests ask for. The caller holds `mmap_lock` (read) on `range.notifier.mm`. Returns 0;
 * -EBUSY only when the interval sequence moved (checked before every pass: the caller re-does
 * `mmu_interval_read_begin()` and calls again); -EFAULT (a requested page cannot be made valid);
 * -EPERM (write requested on a VMA without VM_WRITE); -EINVAL (empty range). After an error,
 * entries below the point reached hold outputs and the others still hold their inputs.
 */
export function* hmmRangeFault(range: HmmRange): Routine<number> {
  const sub = range.notifier;
  const mm = sub.mm;
  if (!mm) return sub.sim.fail('api-misuse', `hmm_range_fault: ${sub.name} is not inserted (no mm)`);
  mm.sim.assertHeld(mm.mmapLock);
  const npages = Math.max(0, (range.end - range.start) / PAGE_SIZE);
  if (range.hmmPfns.length < npages) {
    mm.sim.fail(
      'api-misuse',
      `hmm_range_fault: hmm_pfns has ${range.hmmPfns.length} entries for ${npages} pages`,
    );
  }
  const w: HmmVmaWalk = {
    range,
    mm,
    last: range.start,
    mayFault: ((range.defaultFlags | range.pfnFlagsMask) & HMM_PFN_REQ_FAULT) !== 0n,
  };
  for (;;) {
    if (yield* mmuIntervalCheckRetry(sub, range.notifierSeq)) return -EBUSY;
    const ret = yield* walkPageRange(w, w.last, range.end);
    // Internal -EBUSY: a fault or a migration wait happened; walk again from `last`.
    if (ret !== -EBUSY) return ret;
  }
}
