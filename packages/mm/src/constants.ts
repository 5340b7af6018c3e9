/**
 * Constants of the modelled x86-64 address space and the user ABI (mman.h, mm.h, mm_types.h),
 * plus the few errno values the CPU operations need beyond those of @hmmkit/sim.
 *
 * Addresses are JS numbers below 2^47, so arithmetic must never use 32-bit bitwise operators on
 * them; the helpers below use division and remainder instead.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PMD_SHIFT = 21;
export const PMD_SIZE = 2 * 1024 * 1024;
/** Order of a PMD-sized transparent huge page (`HPAGE_PMD_ORDER`). */
export const HPAGE_PMD_ORDER = 9;
export const HPAGE_PMD_NR = 512;
export const PTRS_PER_PTE = 512;
/** x86-64 with 4-level paging: the top of the user address space. */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
/**
 * `ULONG_MAX` as the exclusive end of a whole-address-space range (exit_mmap, release). Addresses
 * are JS numbers, so it is the largest integer that keeps `end - 1` exact.
 */
export const ULONG_MAX = Number.MAX_SAFE_INTEGER;
/** Lowest address `mmap` picks when the caller gives no usable hint. */
export const MMAP_MIN_ADDR = 0x10000;

// mman.h: protection bits.
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
// mman.h: mapping flags.
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_FIXED_NOREPLACE = 0x100000;
// mman.h: madvise behaviours handled by the model.
export const MADV_NORMAL = 0;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
// mman.h: mremap flags.
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;

// mm.h: vm_flags.
export const VM_NONE = 0;
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_DONTCOPY = 0x20000;
export const VM_DONTEXPAND = 0x40000;
export const VM_HUGETLB = 0x400000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;
/** `VM_SPECIAL`: mappings whose pages core mm must not treat as normal pages. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

// mm_types.h: vm_fault_t bits.
export const VM_FAULT_OOM = 0x1;
export const VM_FAULT_SIGBUS = 0x2;
export const VM_FAULT_MAJOR = 0x4;
export const VM_FAULT_HWPOISON = 0x10;
export const VM_FAULT_SIGSEGV = 0x40;
export const VM_FAULT_NOPAGE = 0x100;
export const VM_FAULT_RETRY = 0x400;
export const VM_FAULT_FALLBACK = 0x800;
export const VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON;

// mm_types.h: fault flags.
export const FAULT_FLAG_WRITE = 0x1;
export const FAULT_FLAG_REMOTE = 0x80;

/** errno values not exported by @hmmkit/sim. */
export const ENXIO = 6;
export const EBADF = 9;
export const EACCES = 13;

/** `addr` rounded down to a multiple of `size` (a power of two, but no bitwise ops on addresses). */
export function alignDown(addr: number, size: number): number {
  return addr - (addr % size);
}

/** `addr` rounded up to a multiple of `size`. */
export function alignUp(addr: number, size: number): number {
  const r = addr % size;
  return r === 0 ? addr : addr + (size - r);
}

/** `PAGE_ALIGNED(addr)`. */
export function pageAligned(addr: number): boolean {
  return addr % PAGE_SIZE === 0;
}

/** Hex text for addresses in names and messages. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
