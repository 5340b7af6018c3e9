/**
 * The few `mm_struct` helpers the notifier layer needs, written against the `Mm` contract
 * (`mmUsers`, `mmCount`, `mmapLock`, `notifierSubscriptions`).
 *
 * @module
 */
import { Access, EINTR, Op, Refcount, type Routine, RwSemaphore } from '@hmmkit/sim';
import type { Mm } from '../mm.js';
import { notifierDebug } from './debug.js';

/** The `mm_count` refcount object of an mm that has one (the address-space model's `Mm.count`). */
function countOf(mm: Mm): Refcount | null {
  const c = (mm as { count?: unknown }).count;
  return c instanceof Refcount ? c : null;
}

/** models `mmgrab()`: pins the `mm_struct` (not the address space). */
export function* mmgrab(mm: Mm): Routine<void> {
  const c = countOf(mm);
  if (c) {
    yield* c.inc('mmgrab');
    return;
  }
  if (mm.mmCount <= 0)
    mm.sim.fail('refcount', 'mmgrab() on an mm_struct whose mm_count is 0: use-after-free');
  mm.mmCount++;
}

/**
 * models `mmdrop()`. With the address-space model's `Mm`, the last reference destroys the
 * mm_struct the way its own `mmdrop()` does (`destroyed`, counter freed).
 */
export function* mmdrop(mm: Mm): Routine<void> {
  const c = countOf(mm);
  if (c) {
    const last = yield* c.decAndTest('mmdrop');
    if (last) {
      (mm as { destroyed?: boolean }).destroyed = true;
      mm.sim.free(c);
    }
    return;
  }
  if (mm.mmCount <= 0) mm.sim.fail('refcount', 'mmdrop(): mm_count underflow');
  mm.mmCount--;
}

/** models `mmap_assert_write_locked()`. */
export function mmapAssertWriteLocked(mm: Mm, where: string): void {
  const t = mm.sim.current;
  if (!t || mm.mmapLock.writer !== t) {
    mm.sim.fail(
      'lockdep-assert',
      `${where}: mmap_assert_write_locked(mm) failed in ${t?.name ?? 'setup'} (${mm.mmapLock.name} not write-held)`,
      { objects: [mm.mmapLock.name] },
    );
  }
}

/**
 * models `might_lock(&mm->mmap_lock)`: tells lockdep the caller may take `mmap_lock`, so holding
 * it already (or anything that nests inside it) is reported.
 */
export function mightLockMmap(mm: Mm): void {
  const sim = mm.sim;
  const t = sim.current;
  if (!t) return;
  const marker = {};
  sim.lockAcquired(t, mm.mmapLock.cls, marker, mm.mmapLock.name);
  sim.lockReleased(t, marker);
}

/** The rmap locks of an mm's VMAs, in `mm_take_all_locks()` order: files' `i_mmap_rwsem`, then anon_vmas'. */
function rmapLocksOf(mm: Mm): RwSemaphore[] {
  const vmas = (mm as { vmas?: unknown }).vmas;
  if (!Array.isArray(vmas)) return [];
  const files: RwSemaphore[] = [];
  const anon: RwSemaphore[] = [];
  for (const v of vmas as {
    file?: { iMmapRwsem?: unknown } | null;
    anonVma?: { rwsem?: unknown } | null;
  }[]) {
    const f = v.file?.iMmapRwsem;
    if (f instanceof RwSemaphore && !files.includes(f)) files.push(f);
    const a = v.anonVma?.rwsem;
    if (a instanceof RwSemaphore && !anon.includes(a)) anon.push(a);
  }
  // Lockdep: the kernel takes same-class instances with down_write_nest_lock(..., &mm->mmap_lock);
  // @hmmkit/sim's rwsem has no nest_lock acquisition, so only one instance per class is taken.
  const out: RwSemaphore[] = [];
  for (const l of [...files, ...anon]) if (!out.some((o) => o.cls === l.cls)) out.push(l);
  return out;
}

/**
 * models `mm_take_all_locks()` (with `mm_drop_all_locks()` called by `release`): the caller holds
 * `mmap_lock` for write; this also takes the rmap locks of the mm's VMAs for write (files'
 * `i_mmap_rwsem`, then anon_vmas' `rwsem`) when the mm has them, so that CPU paths that invalidate
 * under an rmap lock without `mmap_lock` (reclaim, migration) are kept out of registration, as in
 * the kernel. Fails with -EINTR when `notifierDebug(sim).takeAllLocksFailures` asks for it (the
 * kernel fails on a pending fatal signal).
 */
export function* mmTakeAllLocks(mm: Mm): Routine<{ ret: number; release: () => Routine<void> }> {
  yield new Op('mm_take_all_locks', null, Access.None, 0, undefined, 'registration excludes invalidations');
  const d = notifierDebug(mm.sim);
  if (d.takeAllLocksFailures > 0) {
    d.takeAllLocksFailures--;
    return { ret: -EINTR, release: nothing };
  }
  const locks = rmapLocksOf(mm);
  for (const l of locks) yield* l.downWrite('mm_take_all_locks');
  return {
    ret: 0,
    *release() {
      for (const l of [...locks].reverse()) yield* l.upWrite('mm_drop_all_locks');
    },
  };
}

function* nothing(): Routine<void> {}
