/**
 * Files and their page cache (`struct address_space`): the on-disk content, cached folios by page
 * index, and `i_mmap` (the VMAs mapping the file, walked by rmap). Shared anonymous memory is a
 * shmem file whose "disk" is memory.
 */
import { Access, Op, type Routine, RwSemaphore, type Sim, SimObject } from '@hmmkit/sim';
import type { Folio, PageValue } from './folio.js';
import type { Vma } from './vma.js';

export interface FileOptions {
  /** Opened for writing (O_RDWR): shared writable mappings need it (else -EACCES). */
  writable?: boolean;
  /** shmem/tmpfs (MAP_SHARED|MAP_ANONYMOUS): the file grows with the mapping. */
  shmem?: boolean;
}

export class File extends SimObject {
  /** Page contents as stored on disk (written back from dirty page-cache folios). */
  readonly store: PageValue[];
  /** `mapping->i_pages`: page index to folio. */
  readonly pageCache = new Map<number, Folio>();
  /** `mapping->i_mmap`: VMAs mapping this file. */
  readonly iMmap = new Set<Vma>();
  /** `mapping->i_mmap_rwsem`. */
  readonly iMmapRwsem: RwSemaphore;
  readonly writable: boolean;
  readonly shmem: boolean;

  constructor(sim: Sim, name: string, contents: readonly PageValue[] = [], options: FileOptions = {}) {
    super(sim, `file:${name}`);
    this.store = [...contents];
    this.writable = options.writable ?? true;
    this.shmem = options.shmem ?? false;
    this.iMmapRwsem = new RwSemaphore(sim, `${this.name}->i_mmap_rwsem`, {
      lockClass: '&mapping->i_mmap_rwsem',
    });
  }

  /** File size in pages (`i_size >> PAGE_SHIFT`). */
  get sizePages(): number {
    return this.store.length;
  }

  /** One atomic step on the page cache or the backing store (`xa_lock` section, I/O). */
  *update<R>(kind: string, fn: (f: File) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Write, 0, fn, label)) as R;
  }

  /** A read of the page cache or the backing store. */
  *inspect<R>(kind: string, fn: (f: File) => R, label?: string): Routine<R> {
    return (yield new Op(kind, this, Access.Read, 0, fn, label)) as R;
  }

  override exec(op: Op): unknown {
    return (op.arg as (f: File) => unknown)(this);
  }
}
