/**
 * The OOM reaper (mm/oom_kill.c `oom_reap_task_mm` / `__oom_reap_task_mm`): with the mmap_lock
 * only try-locked for read, it unmaps the private memory of a dying mm VMA by VMA. Each VMA is
 * bracketed by a non-blockable invalidation; when a notifier answers -EAGAIN the VMA is skipped and
 * the reap reports failure (the kernel retries later).
 */
import type { Routine } from '@hmmkit/sim';
import { VM_HUGETLB, VM_PFNMAP } from './constants.js';
import { invalidateRangeEnd, invalidateRangeStartNonblock } from './events.js';
import { unmapPageRange } from './memory.js';
import type { Mm } from './mm.js';
import { MmuNotifierRange, MmuNotifyEvent } from './notifier/index.js';

/**
 * Event of the reaper's ranges. Current mainline initialises them with MMU_NOTIFY_CLEAR (older
 * kernels, and reference/core-mm.md §2.7, say MMU_NOTIFY_UNMAP); notifiers must treat both alike.
 */
export const OOM_REAP_EVENT = MmuNotifyEvent.CLEAR;

/** models __oom_reap_task_mm(): true if every reapable VMA was unmapped. */
export function* oomReapVmas(mm: Mm): Routine<boolean> {
  yield* mm.unstable.write(true, 'set_bit(MMF_UNSTABLE)');
  let ret = true;
  for (const vma of [...mm.vmas].reverse()) {
    if (vma.flags & (VM_HUGETLB | VM_PFNMAP)) continue;
    if (!vma.isAnonymous && vma.isShared) continue;
    const range = new MmuNotifierRange({
      mm,
      start: vma.start,
      end: vma.end,
      event: OOM_REAP_EVENT,
      flags: 0,
    });
    if ((yield* invalidateRangeStartNonblock(range)) !== 0) {
      ret = false;
      continue;
    }
    yield* unmapPageRange(vma, vma.start, vma.end);
    yield* invalidateRangeEnd(range);
  }
  return ret;
}

/**
 * models oom_reap_task_mm(): false when the mmap_lock could not be taken or a VMA was skipped
 * (the reaper would retry), true otherwise (also when exit_mmap already took over).
 */
export function* oomReap(mm: Mm): Routine<boolean> {
  if (!(yield* mm.mmapLock.downReadTrylock('mmap_read_trylock'))) return false;
  let ret = true;
  if (!mm.oomSkip) ret = yield* oomReapVmas(mm);
  yield* mm.mmapLock.upRead('mmap_read_unlock');
  return ret;
}
