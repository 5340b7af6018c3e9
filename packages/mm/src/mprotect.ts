/**
 * mprotect (mm/mprotect.c): `do_mprotect_pkey` → `mprotect_fixup` → `change_protection`, with
 * MMU_NOTIFY_PROTECTION_VMA over each VMA range whose entries are changed.
 */
import { EINVAL, ENOMEM, type Routine } from '@hmmkit/sim';
import {
  alignDown,
  alignUp,
  EACCES,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  pageAligned,
  TASK_SIZE,
  VM_EXEC,
  VM_READ,
  VM_WRITE,
} from './constants.js';
import { invalidateRangeEnd, invalidateRangeStart } from './events.js';
import { splitHugePmd } from './huge-memory.js';
import type { Mm } from './mm.js';
import { splitVma } from './mmap.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';
import { type Pte, pteSame } from './pgtable.js';
import { protToVmFlags, type Vma } from './vma.js';

const VM_ACCESS = VM_READ | VM_WRITE | VM_EXEC;

/**
 * `mprotect(start, len, prot)`: 0, -EINVAL (unaligned start, unknown prot bits), -ENOMEM (range
 * not fully mapped; VMAs before the hole keep the new protection, as in the kernel), -EACCES
 * (PROT_WRITE on a mapping that may not be written, e.g. a read-only file mapped shared).
 */
export function* mprotect(mm: Mm, start: number, len: number, prot: number): Routine<number> {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || !pageAligned(start) || start < 0)
    return -EINVAL;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return -EINVAL;
  if (len === 0) return 0;
  if (len < 0) return -ENOMEM;
  len = alignUp(len, PAGE_SIZE);
  const end = start + len;
  if (end <= start || end > TASK_SIZE + PAGE_SIZE) return -ENOMEM;
  yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  let error = 0;
  const first = mm.findVma(start);
  if (!first || first.start > start) {
    error = -ENOMEM;
  } else {
    let tmp = start;
    for (const vma of mm.vmasIn(start, end)) {
      if (vma.start > tmp) {
        error = -ENOMEM;
        break;
      }
      const newflags = protToVmFlags(prot) | (vma.flags & ~VM_ACCESS);
      // The VM_MAY* bits sit 4 bits above the access bits.
      if (newflags & ~(newflags >> 4) & VM_ACCESS) {
        error = -EACCES;
        break;
      }
      const tmpEnd = Math.min(vma.end, end);
      yield* mprotectFixup(vma, tmp, tmpEnd, newflags);
      tmp = tmpEnd;
      if (tmp >= end) break;
    }
    if (!error && tmp < end) error = -ENOMEM;
  }
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return error;
}

/** models mprotect_fixup(): splits the VMA to `[start, end)` and changes its protection. */
export function* mprotectFixup(vma: Vma, start: number, end: number, newflags: number): Routine {
  if (newflags === vma.flags) return;
  let v = vma;
  if (start > v.start) v = yield* splitVma(v, start);
  if (end < v.end) yield* splitVma(v, end);
  v.flags = newflags;
  yield* changeProtection(v, start, end);
}

/** The new value of a present entry under the VMA's (new) protection. */
function newPresent(vma: Vma, e: Extract<Pte, { kind: 'present' }>, upgradeOk: boolean): Pte {
  const accessible = (vma.flags & VM_ACCESS) !== 0;
  const mayWrite = (vma.flags & VM_WRITE) !== 0 && !e.zero;
  const write = mayWrite && (e.write || upgradeOk);
  const next: Pte = { kind: 'present', pfn: e.pfn, write, dirty: e.dirty, young: e.young };
  return {
    ...next,
    ...(e.zero ? { zero: true } : {}),
    ...(e.special ? { special: true } : {}),
    ...(accessible ? {} : { protnone: true }),
  };
}

/**
 * models change_protection() over `[start, end)` of one VMA: every entry is brought to the VMA's
 * protection (write removed, PROT_NONE made protnone, writable migration and device-private
 * entries made readable). Write permission is added back only where the kernel does it without a
 * fault (an exclusive anonymous page; a dirty page of a shared mapping).
 */
export function* changeProtection(vma: Vma, start: number, end: number): Routine {
  const mm = vma.mm;
  const sys = mm.system;
  const wantWrite = (vma.flags & VM_WRITE) !== 0;
  const range = new MmuNotifierRange({ mm, start, end, event: MmuNotifyEvent.PROTECTION_VMA });
  yield* invalidateRangeStart(range);
  for (let pmdAddr = alignDown(start, PMD_SIZE); pmdAddr < end; pmdAddr += PMD_SIZE) {
    const s = Math.max(start, pmdAddr);
    const e = Math.min(end, pmdAddr + PMD_SIZE);
    const pmdSlot = mm.pageTable.pmdSlot(pmdAddr);
    let pmd = yield* pmdSlot.get('change_pmd_range');
    if (pmd.kind === 'huge') {
      if (s === pmdAddr && e === pmdAddr + PMD_SIZE) {
        // models change_huge_pmd()
        const folio = sys.mem.folioAt(pmd.pfn)!;
        const excl = wantWrite && (yield* folio.inspect('PageAnonExclusive', (f) => f.anonExclusive[0]!));
        yield* mm.pageTable.pmdLock.lock('change_huge_pmd');
        yield* pmdSlot.modify((o) => {
          if (o.kind !== 'huge') return null;
          const accessible = (vma.flags & VM_ACCESS) !== 0;
          return {
            kind: 'huge',
            pfn: o.pfn,
            write: wantWrite && (o.write || excl),
            dirty: o.dirty,
            young: o.young,
            ...(accessible ? {} : { protnone: true }),
          };
        }, 'change_huge_pmd');
        yield* mm.pageTable.pmdLock.unlock();
        continue;
      }
      yield* splitHugePmd(vma, pmdAddr);
      pmd = yield* pmdSlot.get('change_pmd_range');
    }
    if (pmd.kind !== 'table') continue;
    const table = pmd.table;
    yield* table.ptl.lock('change_pte_range');
    for (let addr = s; addr < e; addr += PAGE_SIZE) {
      const slot = table.existingSlot(addr);
      const old = slot?.entry;
      if (!slot || !old) continue;
      let next: Pte | null = null;
      if (old.kind === 'present') {
        let upgradeOk = false;
        if (wantWrite && !old.write && !old.zero && !old.special) {
          if (vma.isShared) upgradeOk = old.dirty || !!vma.file?.shmem;
          else {
            const folio = sys.mem.folioAt(old.pfn);
            const i = folio ? old.pfn - folio.pfn : 0;
            upgradeOk =
              !!folio && (yield* folio.inspect('PageAnonExclusive', (f) => f.anon && f.anonExclusive[i]!));
          }
        }
        next = newPresent(vma, old, upgradeOk);
      } else if (old.kind === 'migration' && old.write && !wantWrite) {
        next = { ...old, write: false };
      } else if (old.kind === 'device-private' && old.write && !wantWrite) {
        next = { ...old, write: false };
      } else if (old.kind === 'device-exclusive' && old.old?.write && !wantWrite) {
        // Old-API entries had a write variant, downgraded like migration entries; the v6.15+
        // single type is left alone (writability is decided when it is restored).
        next = { ...old, old: { write: false } };
      }
      if (next && !pteSame(next, old)) {
        const n = next;
        yield* slot.modify((o) => (pteSame(o, old) ? n : null), 'change_pte_range');
      }
    }
    yield* table.ptl.unlock();
  }
  yield* invalidateRangeEnd(range);
}
