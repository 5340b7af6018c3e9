/**
 * The mirror device's view of the address-space model (`Mm`): sampling a PTE the way
 * `hmm_range_fault()` does for one page (walk under `mmap_lock` held for read, faulting the page
 * in when it is missing or lacks write permission, then walking again), and peeking at it for the
 * mirror invariant.
 */
import type { Routine } from '@hmmkit/sim';
import { FAULT_FLAG_WRITE, VM_FAULT_ERROR } from '../../src/constants.js';
import { handleMmFault } from '../../src/fault.js';
import type { Mm } from '../../src/mm.js';
import { followPte, type PteInfo, peekPte } from '../../src/walk.js';
import type { CpuMapping, CpuView } from './mirror-device.js';

function mapping(info: PteInfo, write: boolean): CpuMapping | null {
  const e = info.entry;
  if (info.level === 'none' || !info.folio) return null;
  if (e.kind !== 'present' && e.kind !== 'huge') return null;
  if (e.protnone) return null;
  if (write && !e.write) return null;
  return { frame: info.folio, index: info.index, write: e.write };
}

export class MmCpuView implements CpuView {
  constructor(readonly mm: Mm) {}

  *sample(addr: number, write: boolean): Routine<CpuMapping | null> {
    const mm = this.mm;
    yield* mm.mmapLock.downRead('hmm_range_fault: mmap_read_lock');
    let out: CpuMapping | null = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      const info = yield* followPte(mm, addr);
      out = mapping(info, write);
      if (out) break;
      const vma = mm.vmaLookup(addr);
      if (!vma) break;
      const fault = yield* handleMmFault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
      if (fault & VM_FAULT_ERROR) break;
    }
    yield* mm.mmapLock.upRead('hmm_range_fault: mmap_read_unlock');
    return out;
  }

  peek(addr: number): CpuMapping | null {
    return mapping(peekPte(this.mm, addr), false);
  }
}
