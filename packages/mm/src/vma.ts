/**
 * Virtual memory areas (`struct vm_area_struct`) and anon_vma (the reverse map of anonymous
 * folios). A VMA is `[start, end)` with `vm_flags`, an optional file and page offset; anonymous
 * folios record the anon_vma and the linear page index they were mapped at, so the rmap can find
 * every address that may map them (mm/rmap.c's anon_vma chains, folded into one set per family).
 */
import { RwSemaphore, type Sim } from '@hmmkit/sim';
import {
  hex,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  VM_EXEC,
  VM_MAYWRITE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './constants.js';
import type { File } from './file.js';
import type { Mm } from './mm.js';

/**
 * `struct anon_vma` with its chain: every VMA of a fork family that may map folios of this
 * anon_vma. Modified under `rwsem` held for write; rmap walkers hold it for read.
 */
export class AnonVma {
  readonly vmas = new Set<Vma>();
  readonly rwsem: RwSemaphore;
  readonly name: string;

  constructor(sim: Sim) {
    this.name = `anon_vma#${sim.nextId('anon_vma')}`;
    this.rwsem = new RwSemaphore(sim, `${this.name}->rwsem`, { lockClass: '&anon_vma->rwsem' });
  }
}

export class Vma {
  /** Unmapped and no longer in the mm's tree (munmap, exit). */
  detached = false;
  /** Pfn of the first page of a remap_pfn_range mapping (VM_PFNMAP), for traces. */
  pfnBase: number | null = null;
  readonly id: number;

  constructor(
    readonly mm: Mm,
    public start: number,
    public end: number,
    public flags: number,
    readonly file: File | null,
    /** `vm_pgoff`: file page offset of `start`, or `start >> PAGE_SHIFT` for anonymous memory. */
    public pgoff: number,
    public anonVma: AnonVma | null = null,
  ) {
    this.id = mm.sim.nextId('vma');
  }

  /** `vma_is_anonymous()`: no file (shared anonymous memory is a shmem file). */
  get isAnonymous(): boolean {
    return this.file === null;
  }

  /** `is_cow_mapping()`: private and may become writable. */
  get isCow(): boolean {
    return (this.flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
  }

  get isShared(): boolean {
    return (this.flags & VM_SHARED) !== 0;
  }

  /** `linear_page_index()`. */
  linearPageIndex(addr: number): number {
    return Math.floor((addr - this.start) / PAGE_SIZE) + this.pgoff;
  }

  /** `vma_address()`: where page `index` would be mapped, or null if outside the VMA. */
  addressOf(index: number): number | null {
    const addr = this.start + (index - this.pgoff) * PAGE_SIZE;
    return addr >= this.start && addr < this.end ? addr : null;
  }

  contains(addr: number): boolean {
    return addr >= this.start && addr < this.end;
  }

  toString(): string {
    return `vma[${hex(this.start)}-${hex(this.end)} ${protString(this.flags)}${this.isShared ? 's' : 'p'}${this.file ? ` ${this.file.name}` : ''}]`;
  }
}

/** `calc_vm_prot_bits()`: PROT_* to VM_READ/WRITE/EXEC. */
export function protToVmFlags(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}

/** `rwxp`-style text. */
export function protString(flags: number): string {
  return `${flags & VM_READ ? 'r' : '-'}${flags & VM_WRITE ? 'w' : '-'}${flags & VM_EXEC ? 'x' : '-'}`;
}
