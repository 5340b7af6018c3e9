/**
 * The argument checks and VMA creation of `do_mmap()` that need no scheduling point (shared by
 * the `mmap` thread operation and the setup-time `System.mmapSetup`).
 */
import { EEXIST, EINVAL, ENOMEM } from '@hmmkit/sim';
import {
  alignDown,
  alignUp,
  EACCES,
  EBADF,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_WRITE,
  pageAligned,
  TASK_SIZE,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_SHARED,
} from './constants.js';
import { File } from './file.js';
import type { Mm } from './mm.js';
import { protToVmFlags, Vma } from './vma.js';

export interface MmapRequest {
  addr: number;
  len: number;
  prot: number;
  flags: number;
  file: File | null;
  /** Byte offset in the file. */
  offset: number;
  /** Extra vm_flags (VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_HUGEPAGE, VM_LOCKED, ...). */
  vmFlags: number;
  /** Setup-time call: no existing mapping may be replaced. */
  setup?: boolean;
}

/** A checked request: where the VMA goes and with which flags. */
export interface MmapPlan {
  start: number;
  end: number;
  vmFlags: number;
  file: File | null;
  pgoff: number;
  /** MAP_FIXED over existing mappings: they must be unmapped first. */
  replace: boolean;
}

/**
 * The checks of `do_mmap()` / `get_unmapped_area()`, in the kernel's order: a plan, or a negative
 * errno. Caller holds the mmap_lock for write (or is setup code).
 */
export function planMmap(mm: Mm, req: MmapRequest): MmapPlan | number {
  const type = req.flags & (MAP_SHARED | MAP_PRIVATE);
  if (type !== MAP_SHARED && type !== MAP_PRIVATE) return -EINVAL;
  if (!Number.isSafeInteger(req.len) || req.len <= 0) return -EINVAL;
  const len = alignUp(req.len, PAGE_SIZE);
  if (len > TASK_SIZE) return -ENOMEM;
  if (!Number.isSafeInteger(req.offset) || req.offset < 0 || !pageAligned(req.offset)) return -EINVAL;
  const anon = (req.flags & MAP_ANONYMOUS) !== 0;
  let file = anon ? null : req.file;
  if (!anon && !file) return -EBADF;
  let vmFlags = protToVmFlags(req.prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | req.vmFlags;
  if (type === MAP_SHARED) {
    vmFlags |= VM_SHARED | VM_MAYSHARE;
    if (file && !file.writable) {
      if (req.prot & PROT_WRITE) return -EACCES;
      vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
  }
  let start: number;
  let replace = false;
  if (req.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
    if (!pageAligned(req.addr)) return -EINVAL;
    if (req.addr + len > TASK_SIZE || req.addr < 0) return -ENOMEM;
    start = req.addr;
    if (mm.vmasIn(start, start + len).length > 0) {
      if (req.flags & MAP_FIXED_NOREPLACE || req.setup) return -EEXIST;
      replace = true;
    }
  } else {
    const align = anon && len >= PMD_SIZE ? PMD_SIZE : PAGE_SIZE;
    start = mm.unmappedArea(len, alignDown(Math.max(0, req.addr), PAGE_SIZE), align);
    if (start < 0) return -ENOMEM;
  }
  let pgoff = req.offset / PAGE_SIZE;
  if (anon && type === MAP_SHARED) {
    // models shmem_zero_setup(): shared anonymous memory is a shmem file of the mapping's size.
    file = new File(mm.sim, `dev/zero(${mm.name})`, new Array(len / PAGE_SIZE).fill(0), { shmem: true });
    mm.system.files.push(file);
    pgoff = 0;
  } else if (anon) {
    pgoff = start / PAGE_SIZE;
  }
  return { start, end: start + len, vmFlags, file, pgoff, replace };
}

/** Inserts the VMA of a plan (mmap_lock held for write; the file's i_mmap lock by the caller). */
export function createVma(mm: Mm, plan: MmapPlan): Vma {
  const vma = new Vma(mm, plan.start, plan.end, plan.vmFlags, plan.file, plan.pgoff);
  mm.insertVma(vma);
  plan.file?.iMmap.add(vma);
  return vma;
}

/** Setup-time mmap: plan and create, no replacement allowed. */
export function validateAndCreateVma(mm: Mm, req: MmapRequest): Vma | number {
  const plan = planMmap(mm, { ...req, setup: true });
  if (typeof plan === 'number') return plan;
  return createVma(mm, plan);
}
