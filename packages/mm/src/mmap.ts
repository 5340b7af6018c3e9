/**
 * mmap, munmap and address-space teardown (mm/mmap.c, mm/vma.c): VMA split and removal,
 * `do_vmi_munmap` (MMU_NOTIFY_UNMAP), `mmput` → `exit_mmap` (`mmu_notifier_release` first, then
 * MMU_NOTIFY_UNMAP over everything), and `remap_pfn_range` for VM_IO/VM_PFNMAP mappings.
 */
import { EINVAL, KernelError, type Routine } from '@hmmkit/sim';
import {
  alignUp,
  PAGE_SIZE,
  PMD_SIZE,
  pageAligned,
  TASK_SIZE,
  ULONG_MAX,
  VM_DONTEXPAND,
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_SHARED,
  VM_WRITE,
} from './constants.js';
import { notifierRelease } from './events.js';
import type { File } from './file.js';
import type { PageValue } from './folio.js';
import { splitHugePmd } from './huge-memory.js';
import { unmapVmas } from './memory.js';
import { type Mm, mmdrop } from './mm.js';
import { createVma, planMmap } from './mmap-core.js';
import { PteTable } from './pgtable.js';
import { protToVmFlags, Vma } from './vma.js';

/** Splits a huge PMD straddling `addr` before a VMA boundary moves there (`vma_adjust_trans_huge`). */
export function* splitHugePmdAt(vma: Vma, addr: number): Routine {
  if (addr % PMD_SIZE === 0) return;
  const pmd = yield* vma.mm.pageTable.pmdSlot(addr).get('split_huge_pmd_if_needed');
  if (pmd.kind === 'huge') yield* splitHugePmd(vma, addr);
}

/**
 * `__split_vma()`: `vma` keeps `[start, addr)`, a new VMA gets `[addr, end)` and is returned.
 * mmap_lock held for write; the anon_vma and i_mmap locks are taken for the rmap updates.
 */
export function* splitVma(vma: Vma, addr: number): Routine<Vma> {
  const mm = vma.mm;
  yield* splitHugePmdAt(vma, addr);
  const upper = new Vma(
    mm,
    addr,
    vma.end,
    vma.flags,
    vma.file,
    vma.pgoff + (addr - vma.start) / PAGE_SIZE,
    vma.anonVma,
  );
  upper.pfnBase = vma.pfnBase;
  yield* linkVma(upper, () => {
    vma.end = addr;
    mm.insertVma(upper);
  });
  return upper;
}

/** Adds `vma` to its anon_vma and file rmap sets under their locks, running `also` inside. */
export function* linkVma(vma: Vma, also: () => void = () => {}): Routine {
  const av = vma.anonVma;
  const file = vma.file;
  if (file) yield* file.iMmapRwsem.downWrite('i_mmap_lock_write');
  if (av) yield* av.rwsem.downWrite('anon_vma_lock_write');
  also();
  av?.vmas.add(vma);
  file?.iMmap.add(vma);
  if (av) yield* av.rwsem.upWrite('anon_vma_unlock_write');
  if (file) yield* file.iMmapRwsem.upWrite('i_mmap_unlock_write');
}

/** `unlink_anon_vmas()` + `unlink_file_vma()`: the VMA leaves the rmap; it is detached for good. */
export function* unlinkVma(vma: Vma): Routine {
  const av = vma.anonVma;
  const file = vma.file;
  if (file) yield* file.iMmapRwsem.downWrite('i_mmap_lock_write');
  if (av) yield* av.rwsem.downWrite('anon_vma_lock_write');
  av?.vmas.delete(vma);
  file?.iMmap.delete(vma);
  vma.detached = true;
  if (av) yield* av.rwsem.upWrite('anon_vma_unlock_write');
  if (file) yield* file.iMmapRwsem.upWrite('i_mmap_unlock_write');
}

/**
 * `vms_gather_munmap_vmas()`: splits the VMAs at `start` and `end` and takes the ones inside out
 * of the tree (they stay in the rmap until unlinked). mmap_lock held for write.
 */
export function* gatherVmas(mm: Mm, start: number, end: number): Routine<Vma[]> {
  let vmas = mm.vmasIn(start, end);
  if (vmas.length === 0) return [];
  const first = vmas[0]!;
  if (first.start < start) yield* splitVma(first, start);
  vmas = mm.vmasIn(start, end);
  const last = vmas[vmas.length - 1]!;
  if (last.end > end) yield* splitVma(last, end);
  vmas = mm.vmasIn(start, end);
  for (const v of vmas) mm.removeVma(v);
  return vmas;
}

/**
 * models do_vmi_munmap() with the mmap_lock held for write. With `unlock` (munmap) the lock is
 * downgraded for the unmap and released; without it (MAP_FIXED, mremap) it stays write-held.
 */
export function* doVmiMunmap(mm: Mm, start: number, end: number, unlock: boolean): Routine {
  const vmas = yield* gatherVmas(mm, start, end);
  if (vmas.length > 0) {
    if (unlock) yield* mm.mmapLock.downgradeWrite('mmap_write_downgrade');
    // models unmap_region(): unmap_vmas() with MMU_NOTIFY_UNMAP; page tables are kept.
    yield* unmapVmas(mm, vmas, start, end);
    for (const v of vmas) yield* unlinkVma(v);
    if (unlock) yield* mm.mmapLock.upRead('mmap_read_unlock');
  } else if (unlock) {
    yield* mm.mmapLock.upWrite('mmap_write_unlock');
  }
}

/**
 * `munmap(addr, len)` (`__vm_munmap`): 0, or -EINVAL for an unaligned address, a zero length or
 * a range outside the user address space. Unmapping nothing is not an error.
 */
export function* munmap(mm: Mm, addr: number, len: number): Routine<number> {
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len)) return -EINVAL;
  if (!pageAligned(addr) || addr < 0 || addr > TASK_SIZE || len > TASK_SIZE - addr) return -EINVAL;
  len = alignUp(len, PAGE_SIZE);
  if (len === 0) return -EINVAL;
  yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  yield* doVmiMunmap(mm, addr, addr + len, true);
  return 0;
}

/**
 * `mmap(addr, len, prot, flags, file, offset)` (`do_mmap`): the address, or -EINVAL, -ENOMEM,
 * -EEXIST (MAP_FIXED_NOREPLACE), -EACCES (shared writable mapping of a read-only file), -EBADF.
 * MAP_FIXED over existing mappings unmaps them first (MMU_NOTIFY_UNMAP). Pages are not populated.
 */
export function* mmap(
  mm: Mm,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  file: File | null = null,
  offset = 0,
  vmFlags = 0,
): Routine<number> {
  yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  const plan = planMmap(mm, { addr, len, prot, flags, file, offset, vmFlags });
  if (typeof plan === 'number') {
    yield* mm.mmapLock.upWrite('mmap_write_unlock');
    return plan;
  }
  if (plan.replace) yield* doVmiMunmap(mm, plan.start, plan.end, false);
  if (plan.file) {
    yield* plan.file.iMmapRwsem.downWrite('i_mmap_lock_write');
    createVma(mm, plan);
    yield* plan.file.iMmapRwsem.upWrite('i_mmap_unlock_write');
  } else {
    createVma(mm, plan);
  }
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return plan.start;
}

/**
 * models exit_mmap(): `mmu_notifier_release` before anything is unmapped, then every VMA is
 * unmapped under one MMU_NOTIFY_UNMAP range `[0, ULONG_MAX)` with the mmap_lock held for read, then
 * the VMAs are freed under the write lock.
 */
export function* exitMmap(mm: Mm): Routine {
  yield* notifierRelease(mm);
  yield* mm.mmapLock.downRead('mmap_read_lock');
  const vmas = [...mm.vmas];
  if (vmas.length > 0) yield* unmapVmas(mm, vmas, 0, ULONG_MAX);
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  yield* mm.mmapLock.downWrite('mmap_write_lock');
  mm.oomSkip = true;
  for (const v of vmas) yield* unlinkVma(v);
  mm.vmas = [];
  mm.exited = true;
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
}

/** `mmput()`: the last user tears the address space down (`exit_mmap`) and drops `mm_count`. */
export function* mmput(mm: Mm): Routine {
  const last = yield* mm.users.decAndTest('mmput');
  if (last) {
    yield* exitMmap(mm);
    yield* mmdrop(mm);
  }
}

/**
 * Setup-time `remap_pfn_range()` of I/O memory: a shared VM_IO|VM_PFNMAP mapping whose special
 * PTEs map pfns that have no struct page (their contents are `values`). Returns the address.
 */
export function remapIoPages(mm: Mm, values: readonly PageValue[], prot: number, addr = 0): number {
  const len = values.length * PAGE_SIZE;
  const start = mm.unmappedArea(len, addr);
  if (len === 0 || start < 0) throw new KernelError(-EINVAL, 'remap_pfn_range: no room');
  const mem = mm.system.mem;
  const pfnBase = 0x100000 + mm.id * 0x1000 + mm.vmas.length * 0x100;
  const vma = createVma(mm, {
    start,
    end: start + len,
    vmFlags:
      protToVmFlags(prot) |
      VM_SHARED |
      VM_MAYSHARE |
      VM_MAYREAD |
      VM_MAYWRITE |
      VM_IO |
      VM_PFNMAP |
      VM_DONTEXPAND,
    file: null,
    pgoff: pfnBase,
    replace: false,
  });
  vma.pfnBase = pfnBase;
  for (let i = 0; i < values.length; i++) {
    const a = start + i * PAGE_SIZE;
    mem.ioData.set(pfnBase + i, values[i]!);
    const pmdSlot = mm.pageTable.pmdSlot(a);
    if (pmdSlot.entry.kind !== 'table')
      pmdSlot.entry = { kind: 'table', table: new PteTable(mm.sim, mm, pmdSlot.addr) };
    const table = (pmdSlot.entry as { table: PteTable }).table;
    table.slot(a).entry = {
      kind: 'present',
      pfn: pfnBase + i,
      write: (vma.flags & VM_WRITE) !== 0,
      dirty: false,
      young: false,
      special: true,
    };
  }
  return start;
}
