/**
 * The machine a test builds: physical memory, a swap device, files, and the mms that use them.
 *
 * ```ts
 * const sys = new System(sim, { memoryPages: 64 });
 * const mm = sys.createMm();
 * const addr = sys.mmapSetup(mm, { len: 4 * PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
 * sim.spawn('CPU0', () => cpuWrite(mm, addr, 42));
 * ```
 */
import { KernelError, type Sim } from '@hmmkit/sim';
import { MAP_ANONYMOUS, MAP_PRIVATE } from './constants.js';
import { File, type FileOptions } from './file.js';
import type { PageValue } from './folio.js';
import { Mm } from './mm.js';
import { validateAndCreateVma } from './mmap-core.js';
import { PhysMem } from './physmem.js';
import { SwapDevice } from './swap.js';

/** Transparent-huge-page policy (`/sys/kernel/mm/transparent_hugepage/enabled`). */
export type ThpMode = 'always' | 'madvise' | 'never';

export interface SystemOptions {
  /** Normal-zone memory in 4 KiB pages (default 256). THP needs at least 512. */
  memoryPages?: number;
  /** Swap slots (default 64). */
  swapSlots?: number;
  /** THP policy for anonymous faults (default 'madvise': only MADV_HUGEPAGE VMAs). */
  thp?: ThpMode;
  /** Map the shared zero page on read faults of anonymous memory (default true). */
  zeroPage?: boolean;
}

/** Arguments of the setup-time mmap. */
export interface MmapArgs {
  /** Hint, or the exact address with MAP_FIXED. */
  addr?: number;
  len: number;
  prot: number;
  /** Default MAP_PRIVATE | MAP_ANONYMOUS. */
  flags?: number;
  file?: File | null;
  /** Byte offset in the file (page aligned). */
  offset?: number;
  /** Extra vm_flags (VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_HUGEPAGE, ...). */
  vmFlags?: number;
}

export class System {
  /** The default system of `sim` (used by an `Mm` created without one). */
  static of(sim: Sim): System {
    return sim.singleton('hmmkit-mm:system', () => new System(sim));
  }

  readonly mem: PhysMem;
  readonly swap: SwapDevice;
  readonly thp: ThpMode;
  readonly zeroPage: boolean;
  /** Every mm created on this system (live or not), in creation order. */
  readonly mms: Mm[] = [];
  readonly files: File[] = [];

  constructor(
    readonly sim: Sim,
    options: SystemOptions = {},
  ) {
    this.mem = new PhysMem(sim, options.memoryPages ?? 256);
    this.mem.system = this;
    this.swap = new SwapDevice(sim, options.swapSlots ?? 64);
    this.thp = options.thp ?? 'madvise';
    this.zeroPage = options.zeroPage ?? true;
  }

  /** A new address space with one user (`mm_alloc()`). */
  createMm(name?: string): Mm {
    return new Mm(this.sim, undefined, { system: this, ...(name ? { name } : {}) });
  }

  /** @internal */
  registerMm(mm: Mm): void {
    if (!this.mms.includes(mm)) this.mms.push(mm);
  }

  /** A file with the given page contents (a regular file, or shmem with `{ shmem: true }`). */
  createFile(name: string, contents: readonly PageValue[] = [], options: FileOptions = {}): File {
    const f = new File(this.sim, name, contents, options);
    this.files.push(f);
    return f;
  }

  /**
   * Setup-time `mmap()` (no thread, no page is populated): returns the address. Throws
   * `KernelError` with the errno the syscall would return for bad arguments, or if the range
   * overlaps an existing mapping.
   */
  mmapSetup(mm: Mm, args: MmapArgs): number {
    const r = validateAndCreateVma(mm, {
      addr: args.addr ?? 0,
      len: args.len,
      prot: args.prot,
      flags: args.flags ?? MAP_PRIVATE | MAP_ANONYMOUS,
      file: args.file ?? null,
      offset: args.offset ?? 0,
      vmFlags: args.vmFlags ?? 0,
      setup: true,
    });
    if (typeof r === 'number') throw new KernelError(r, `mmap(${args.addr ?? 0}, ${args.len}) failed`);
    return r.start;
  }

  /** Mms that still have users. */
  liveMms(): Mm[] {
    return this.mms.filter((m) => !m.exited);
  }
}
