/**
 * User memory accesses by a CPU thread (`cpuRead`/`cpuWrite`): the load or store translates
 * through the page tables; when the entry does not allow it, the thread takes a page fault
 * (`do_user_addr_fault` → `handle_mm_fault`) and retries, or gets a signal.
 */
import { Access, EFAULT, ENOMEM, Op, type Routine } from '@hmmkit/sim';
import {
  FAULT_FLAG_WRITE,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGSEGV,
} from './constants.js';
import { accessError, handleMmFault } from './fault.js';
import type { PageValue } from './folio.js';
import type { Mm, MmuResult, UserAccessArg } from './mm.js';

/** Outcome of a user access: the value read (or undefined for a write), or the signal delivered. */
export type UserAccess =
  | { ok: true; value: PageValue | undefined }
  | { ok: false; signal: 'SIGSEGV' | 'SIGBUS' | 'OOM'; fault: number };

function signalOf(fault: number): 'SIGSEGV' | 'SIGBUS' | 'OOM' {
  if (fault & VM_FAULT_SIGSEGV) return 'SIGSEGV';
  if (fault & VM_FAULT_OOM) return 'OOM';
  return 'SIGBUS';
}

/** models do_user_addr_fault(): mmap_lock for read, the VMA check, handle_mm_fault. */
export function* doUserAddrFault(mm: Mm, addr: number, write: boolean): Routine<number> {
  yield* mm.mmapLock.downRead('lock_mm_and_find_vma');
  const vma = mm.vmaLookup(addr);
  let ret: number;
  if (!vma || accessError(vma, write)) ret = VM_FAULT_SIGSEGV;
  else ret = yield* handleMmFault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  return ret;
}

function* userAccess(mm: Mm, addr: number, write: boolean, value?: PageValue): Routine<UserAccess> {
  const arg: UserAccessArg = write ? { addr, write, value: value! } : { addr, write };
  for (;;) {
    // A load only sets the accessed bit (ignored by every kernel path): it conflicts with every
    // step that changes state. A store conflicts with every step.
    const access = write ? Access.Global : Access.GlobalRead;
    const r = (yield new Op(write ? 'user_write' : 'user_read', mm.cpu, access, 0, arg)) as MmuResult;
    if (r.ok) return { ok: true, value: r.value };
    const fault = yield* doUserAddrFault(mm, addr, write);
    if (fault & VM_FAULT_ERROR) return { ok: false, signal: signalOf(fault), fault };
    if (fault & VM_FAULT_RETRY) yield mm.sim.relax('fault retry');
  }
}

/** A load from user address `addr` of `mm` by the running CPU thread. */
export function cpuRead(mm: Mm, addr: number): Routine<UserAccess> {
  return userAccess(mm, addr, false);
}

/** A store of `value` to the page at user address `addr` of `mm`. */
export function cpuWrite(mm: Mm, addr: number, value: PageValue): Routine<UserAccess> {
  return userAccess(mm, addr, true, value);
}

/** Whether the current entry for `addr` allows the access (read in steps on the entries). */
function* entryAllows(mm: Mm, addr: number, write: boolean): Routine<boolean> {
  const pmd = yield* mm.pageTable.pmdSlot(addr).get('follow_page_mask');
  if (pmd.kind === 'huge') return !pmd.protnone && (!write || pmd.write);
  if (pmd.kind !== 'table') return false;
  const pte = yield* pmd.table.slot(addr).get('follow_page_pte');
  return pte.kind === 'present' && !pte.protnone && (!write || pte.write);
}

/**
 * models fixup_user_fault() / GUP's faultin_page(): faults `addr` in (for write if asked) until the
 * page table allows the access. Takes the mmap_lock itself. Returns 0, -EFAULT or -ENOMEM.
 */
export function* fixupUserFault(mm: Mm, addr: number, write: boolean): Routine<number> {
  for (;;) {
    const fault = yield* doUserAddrFault(mm, addr, write);
    if (fault & VM_FAULT_OOM) return -ENOMEM;
    if (fault & VM_FAULT_ERROR) return -EFAULT;
    if (fault & VM_FAULT_RETRY) yield mm.sim.relax('fault retry');
    else if (yield* entryAllows(mm, addr, write)) return 0;
  }
}
