/**
 * The CPU operations' calls into the notifier layer, and an observer hub that lets checkers (and
 * tests) see every page-table change and every invalidation window as it happens.
 *
 * The core-mm code calls `mmu_notifier_*` only through the wrappers here, which forward to
 * `../notifier/index.js` unchanged and then report to the observers. That keeps the address-space
 * code independent of how the notifier layer is implemented, and gives invariant 12 ("every
 * present→other or permission-reducing PTE change is bracketed by start/end") a place to be
 * checked whatever the notifiers do.
 */
import type { Routine, Sim, Thread } from '@hmmkit/sim';
import type { Mm } from './mm.js';
import {
  type MmuNotifierRange,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRelease,
} from './notifier/index.js';
import type { Pmd, Pte } from './pgtable.js';

/** One change of a page-table entry. */
export interface PteChange {
  mm: Mm;
  /** Address the entry translates (the 2 MiB region's start for PMD entries). */
  addr: number;
  level: 'pte' | 'pmd';
  old: Pte | Pmd;
  new: Pte | Pmd;
  /** The thread whose step made the change (null during setup). */
  thread: Thread | null;
}

/** What an observer can be told. Every method is optional and must not yield or throw (use sim.fail). */
export interface MmObserver {
  /** `invalidate_range_start` returned `ret` (0, or -EAGAIN for a failed non-blockable start). */
  invalidateRangeStart?(range: MmuNotifierRange, thread: Thread | null, ret: number): void;
  /** `invalidate_range_end` is about to be called. */
  invalidateRangeEnd?(range: MmuNotifierRange, thread: Thread | null): void;
  /** `mmu_notifier_release` returned (exit_mmap). */
  release?(mm: Mm, thread: Thread | null): void;
  pteChange?(change: PteChange): void;
}

/** The per-run set of observers (a sim singleton). */
export class MmObservers {
  private list: MmObserver[] = [];

  /** Adds an observer; returns a function that removes it. */
  add(o: MmObserver): () => void {
    this.list = [...this.list, o];
    return () => {
      this.list = this.list.filter((x) => x !== o);
    };
  }

  /** @internal */
  pteChanged(c: PteChange): void {
    for (const o of this.list) o.pteChange?.(c);
  }
  /** @internal */
  started(range: MmuNotifierRange, t: Thread | null, ret: number): void {
    for (const o of this.list) o.invalidateRangeStart?.(range, t, ret);
  }
  /** @internal */
  ending(range: MmuNotifierRange, t: Thread | null): void {
    for (const o of this.list) o.invalidateRangeEnd?.(range, t);
  }
  /** @internal */
  released(mm: Mm, t: Thread | null): void {
    for (const o of this.list) o.release?.(mm, t);
  }
}

/** The observer hub of `sim` (created on first use). */
export function mmObservers(sim: Sim): MmObservers {
  return sim.singleton('hmmkit-mm:observers', () => new MmObservers());
}

/** `mmu_notifier_invalidate_range_start(range)` as core mm calls it. */
export function* invalidateRangeStart(range: MmuNotifierRange): Routine<void> {
  yield* mmuNotifierInvalidateRangeStart(range);
  const sim = range.mm.sim;
  mmObservers(sim).started(range, sim.current, 0);
}

/** `mmu_notifier_invalidate_range_start_nonblock(range)`: 0 or -EAGAIN. */
export function* invalidateRangeStartNonblock(range: MmuNotifierRange): Routine<number> {
  const ret = yield* mmuNotifierInvalidateRangeStartNonblock(range);
  const sim = range.mm.sim;
  mmObservers(sim).started(range, sim.current, ret);
  return ret;
}

/** `mmu_notifier_invalidate_range_end(range)`. */
export function* invalidateRangeEnd(range: MmuNotifierRange): Routine<void> {
  const sim = range.mm.sim;
  mmObservers(sim).ending(range, sim.current);
  yield* mmuNotifierInvalidateRangeEnd(range);
}

/** `mmu_notifier_release(mm)`, first thing in exit_mmap. */
export function* notifierRelease(mm: Mm): Routine<void> {
  yield* mmuNotifierRelease(mm);
  mmObservers(mm.sim).released(mm, mm.sim.current);
}
